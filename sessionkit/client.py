"""Who is asking: the client as the adapter describes it, its address behind trusted proxies,
its network, and a coarse label of its device for device lists (``sessionkit.fingerprint``
binds a session to some of these).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

from sessionkit.config import IPNetwork, SessionConfig


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """What the adapter tells the core about the request's client."""

    remote_addr: str | None = None
    user_agent: str = ""
    secure: bool = False


def client_address(
    peer: str | None, forwarded_for: str | None, trusted: Sequence[IPNetwork]
) -> str | None:
    """The client's address. ``X-Forwarded-For`` is read from the right, and only while each
    hop is a trusted proxy; a header sent by an untrusted peer changes nothing."""
    if not trusted or peer is None or not forwarded_for or not _in(peer, trusted):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    client = peer
    for hop in reversed(hops):
        if _parse(hop) is None:
            break
        client = hop
        if not _in(hop, trusted):
            break
    return client


def _parse(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _in(address: str, networks: Sequence[IPNetwork]) -> bool:
    parsed = _parse(address)
    return parsed is not None and any(parsed in net for net in networks)


def network_of(address: str | None, config: SessionConfig) -> str:
    parsed = _parse(address) if address else None
    if parsed is None:
        return "-"
    prefix = (
        config.fingerprint_ipv4_prefix if parsed.version == 4 else config.fingerprint_ipv6_prefix
    )
    return str(ipaddress.ip_network(f"{parsed}/{prefix}", strict=False))


# First match wins, so the order matters: Edge and Opera also say "Chrome" and "Safari",
# Chrome says "Safari", an iPhone says "like Mac OS X" and Android says "Linux".
_BROWSERS = (
    ("Edg", "Edge"), ("EdgA", "Edge"), ("EdgiOS", "Edge"), ("OPR", "Opera"),
    ("SamsungBrowser", "Samsung Internet"), ("Firefox", "Firefox"), ("FxiOS", "Firefox"),
    ("HeadlessChrome", "Chrome (headless)"), ("CriOS", "Chrome"), ("Chrome", "Chrome"),
    ("Safari", "Safari"),
)  # fmt: skip
_PLATFORMS = (
    ("iPhone", "iOS"), ("iPad", "iPadOS"), ("Android", "Android"), ("CrOS", "ChromeOS"),
    ("Windows", "Windows"), ("Macintosh", "macOS"), ("Linux", "Linux"),
)  # fmt: skip
_WORDS = re.compile(r"[A-Za-z]+")
_PRODUCT = re.compile(r"[A-Za-z][\w.-]{0,31}")


def device_label(user_agent: str) -> str | None:
    """``"Firefox on Linux"``: a browser and platform family, from a User-Agent header. A
    client that is no browser gets the first word it names itself by (``"curl"``), none
    ``None``. Only this label is ever stored, never the header."""
    head = user_agent[:512]
    words = set(_WORDS.findall(head))
    browser = next((name for token, name in _BROWSERS if token in words), None)
    platform = next((name for token, name in _PLATFORMS if token in words), None)
    if browser is None:
        product = _PRODUCT.match(head.strip())
        browser = product.group(0) if product is not None else None
    if browser is not None and platform is not None:
        return f"{browser} on {platform}"
    return browser or platform
