"""The dashboard's device and place labels: short, and never the full address (the device
label is the core's: ``sessionkit.client.device_label``)."""

from __future__ import annotations

import pytest

from example_projects.shared.devices import place_label
from sessionkit.client import device_label

PIXEL = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36"
)
MAC_SAFARI = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15"
)


@pytest.mark.parametrize(
    ("agent", "label"),
    [
        (PIXEL, "Chrome on Android"),
        (MAC_SAFARI, "Safari on macOS"),
        ("Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0",
         "Firefox on Linux"),
        ("curl/8.5.0", "curl"),
        ("", None),
        ("<script>", None),
    ],
)  # fmt: skip
def test_device_label(agent: str, label: str | None) -> None:
    assert device_label(agent) == label


@pytest.mark.parametrize(
    ("address", "label"),
    [
        ("127.0.0.1", "this computer (loopback)"),
        ("::1", "this computer (loopback)"),
        ("81.2.69.160", "network 81.2.69.0/24"),
        ("192.168.1.20", "private network 192.168.1.0/24"),
        ("2001:db8:1234:5678::1", "private network 2001:db8:1234::/48"),
        (None, "unknown network"),
        ("not an address", "unknown network"),
    ],
)
def test_place_label_keeps_only_a_prefix(address: str | None, label: str) -> None:
    assert place_label(address) == label
