"""Client address behind trusted proxies, and the coarse client fingerprint."""

from __future__ import annotations

import ipaddress

import pytest

from sessionkit.client import ClientInfo, client_address, device_label, network_of
from sessionkit.config import SessionConfig
from sessionkit.fingerprint import fingerprint_material, normalise_user_agent

KEY = "FaWbAmZ2QofmTa7fW4bpYftfzDZOG8ywyXEDTt4SbFcybr1O"
PROXIES = (ipaddress.ip_network("10.0.0.0/8"),)

CHROME_120 = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.6099.109 Safari/537.36"
)
CHROME_121 = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/121.0.6167.85 Safari/537.36"
)
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)


def config(**settings: object) -> SessionConfig:
    return SessionConfig(secret_key=KEY, **settings)  # type: ignore[arg-type]


# -- client_address ---------------------------------------------------------------------------
def test_without_trusted_proxies_xff_is_ignored() -> None:
    assert client_address("203.0.113.7", "1.2.3.4", ()) == "203.0.113.7"
    assert client_address("10.0.0.1", "1.2.3.4", ()) == "10.0.0.1"


def test_without_xff_the_peer_is_the_client() -> None:
    assert client_address("10.0.0.1", None, PROXIES) == "10.0.0.1"
    assert client_address("10.0.0.1", "", PROXIES) == "10.0.0.1"


def test_no_peer_gives_none() -> None:
    assert client_address(None, "1.2.3.4", PROXIES) is None


def test_trusted_chain_is_walked_from_the_right() -> None:
    assert client_address("10.0.0.1", "1.2.3.4, 10.0.0.2", PROXIES) == "1.2.3.4"
    assert client_address("10.0.0.1", "1.2.3.4", PROXIES) == "1.2.3.4"
    assert client_address("10.0.0.1", "1.2.3.4,10.0.0.3,10.0.0.2", PROXIES) == "1.2.3.4"


def test_forged_leftmost_entry_is_not_believed() -> None:
    """The client wrote 6.6.6.6 itself; the trusted proxy appended the real address."""
    assert client_address("10.0.0.1", "6.6.6.6, 1.2.3.4", PROXIES) == "1.2.3.4"
    assert client_address("10.0.0.1", "6.6.6.6, 1.2.3.4, 10.0.0.9", PROXIES) == "1.2.3.4"
    # A forged entry claiming to be a trusted proxy does not help either.
    assert client_address("10.0.0.1", "6.6.6.6, 10.0.0.5, 1.2.3.4", PROXIES) == "1.2.3.4"


def test_untrusted_peer_xff_changes_nothing() -> None:
    """SECURITY item 18: a forged X-Forwarded-For from an untrusted peer changes nothing."""
    assert client_address("203.0.113.7", "1.2.3.4", PROXIES) == "203.0.113.7"
    assert client_address("203.0.113.7", "10.0.0.2", PROXIES) == "203.0.113.7"
    assert client_address("203.0.113.7", "1.2.3.4, 10.0.0.2", PROXIES) == "203.0.113.7"


@pytest.mark.parametrize(
    ("xff", "expected"),
    [
        ("garbage", "10.0.0.1"),
        ("1.2.3.4, garbage", "10.0.0.1"),
        ("garbage, 1.2.3.4", "1.2.3.4"),
        (",,, ,", "10.0.0.1"),
        ("1.2.3.4:8080", "10.0.0.1"),
        ("999.1.1.1", "10.0.0.1"),
        ("unknown", "10.0.0.1"),
        ("1.2.3.4\x00", "10.0.0.1"),
        ("x" * 10_000, "10.0.0.1"),
        (" 1.2.3.4 ,  ", "1.2.3.4"),
        ("2001:db8::1", "2001:db8::1"),
    ],
    ids=lambda v: repr(v[:40]),
)
def test_garbage_in_xff_is_handled(xff: str, expected: str) -> None:
    assert client_address("10.0.0.1", xff, PROXIES) == expected


def test_garbage_peer_is_returned_untrusted() -> None:
    assert client_address("not-an-ip", "1.2.3.4", PROXIES) == "not-an-ip"


def test_ipv6_proxies() -> None:
    trusted = (ipaddress.ip_network("fd00::/8"),)
    assert client_address("fd00::1", "2001:db8::7, fd00::2", trusted) == "2001:db8::7"
    assert client_address("2001:db8::9", "2001:db8::7", trusted) == "2001:db8::9"


def test_config_trusted_networks_feed_client_address() -> None:
    cfg = config(trusted_proxies="10.0.0.0/8")
    assert client_address("10.0.0.1", "6.6.6.6, 1.2.3.4", cfg.trusted_networks) == "1.2.3.4"


# -- normalise_user_agent ---------------------------------------------------------------------
def test_browser_update_does_not_change_the_normalised_agent() -> None:
    assert normalise_user_agent(CHROME_120) == normalise_user_agent(CHROME_121)


def test_different_browsers_differ() -> None:
    assert normalise_user_agent(CHROME_120) != normalise_user_agent(FIREFOX)


def test_different_platforms_differ() -> None:
    assert normalise_user_agent(CHROME_120) != normalise_user_agent(CHROME_WINDOWS)


def test_normalised_agent_has_words_but_no_digits() -> None:
    normal = normalise_user_agent(CHROME_120)
    assert "chrome" in normal
    assert "linux" in normal
    assert not any(c.isdigit() for c in normal)
    assert normal == normal.strip()
    assert "  " not in normal


def test_android_build_ids_are_dropped() -> None:
    a = "Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/UQ1A.240105.004) Chrome/120.0 Mobile"
    b = "Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP2A.240805.005) Chrome/121.0 Mobile"
    assert normalise_user_agent(a) == normalise_user_agent(b)


def test_empty_and_huge_agents() -> None:
    assert normalise_user_agent("") == ""
    huge = normalise_user_agent("A" * 100_000)
    assert len(huge) <= 512


# -- fingerprint_material ---------------------------------------------------------------------
CLIENT = ClientInfo(remote_addr="1.2.3.4", user_agent=CHROME_120)


def test_no_material_when_both_switches_are_off() -> None:
    cfg = config(fingerprint_user_agent=False, fingerprint_ip=False)
    assert fingerprint_material(CLIENT, cfg) is None


def test_default_binds_to_user_agent_only() -> None:
    cfg = config()
    material = fingerprint_material(CLIENT, cfg)
    assert isinstance(material, bytes)
    assert material == fingerprint_material(ClientInfo("9.9.9.9", CHROME_121), cfg)
    assert material != fingerprint_material(ClientInfo("1.2.3.4", FIREFOX), cfg)


def test_ip_binding_groups_by_ipv4_prefix() -> None:
    cfg = config(fingerprint_user_agent=False, fingerprint_ip=True)
    same_net = fingerprint_material(ClientInfo("1.2.3.99", "anything"), cfg)
    assert fingerprint_material(CLIENT, cfg) == same_net
    assert fingerprint_material(CLIENT, cfg) != fingerprint_material(ClientInfo("1.2.4.1"), cfg)


def test_ipv4_prefix_is_configurable() -> None:
    cfg = config(fingerprint_user_agent=False, fingerprint_ip=True, fingerprint_ipv4_prefix=16)
    assert fingerprint_material(CLIENT, cfg) == fingerprint_material(ClientInfo("1.2.4.1"), cfg)
    assert fingerprint_material(CLIENT, cfg) != fingerprint_material(ClientInfo("1.3.0.1"), cfg)


def test_ip_binding_groups_by_ipv6_64() -> None:
    cfg = config(fingerprint_user_agent=False, fingerprint_ip=True)

    def material(addr: str) -> bytes | None:
        return fingerprint_material(ClientInfo(remote_addr=addr), cfg)

    assert material("2001:db8:1:2::1") == material("2001:db8:1:2:ffff:ffff:ffff:fffe")
    assert material("2001:db8:1:2::1") != material("2001:db8:1:3::1")
    assert material("2001:db8:1:2::1") != material("1.2.3.4")


def test_network_of() -> None:
    cfg = config()
    assert network_of("1.2.3.4", cfg) == "1.2.3.0/24"
    assert network_of("2001:db8:1:2:3:4:5:6", cfg) == "2001:db8:1:2::/64"
    assert network_of(None, cfg) == network_of("garbage", cfg)


def test_both_switches_combine() -> None:
    cfg = config(fingerprint_user_agent=True, fingerprint_ip=True)
    base = fingerprint_material(CLIENT, cfg)
    assert base == fingerprint_material(ClientInfo("1.2.3.50", CHROME_121), cfg)
    assert base != fingerprint_material(ClientInfo("1.2.3.50", FIREFOX), cfg)
    assert base != fingerprint_material(ClientInfo("5.6.7.8", CHROME_120), cfg)


def test_missing_address_does_not_crash() -> None:
    cfg = config(fingerprint_ip=True)
    material = fingerprint_material(ClientInfo(remote_addr=None, user_agent=CHROME_120), cfg)
    assert material is not None
    assert material != fingerprint_material(CLIENT, cfg)


# -- device labels ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("agent", "label"),
    [
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/120.0.0.0 Safari/537.36", "Chrome on Windows"),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0", "Edge on Windows"),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
         "like Gecko) Version/17.1 Mobile/15E148 Safari/604.1", "Safari on iOS"),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
         "Gecko) Version/17.1 Safari/605.1.15", "Safari on macOS"),
        ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/120.0.0.0 Mobile Safari/537.36", "Chrome on Android"),
        ("Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
         "Firefox on Linux"),
        ("Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120 "
         "Safari/537.36 OPR/106.0", "Opera on Windows"),
        ("curl/8.4.0", "curl"),
        ("python-httpx/0.27.0", "python-httpx"),
        ("", None),
        ("   ", None),
    ],
)  # fmt: skip
def test_device_label_names_browser_and_platform_families(agent: str, label: str | None) -> None:
    assert device_label(agent) == label


def test_device_label_is_short_whatever_the_header() -> None:
    label = device_label("x" * 10_000 + " Firefox")
    assert label is not None and len(label) <= 40
