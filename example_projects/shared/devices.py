"""Device and place labels for the "your active sessions" page.

The core's ``SessionInfo`` lists a user's sessions by opaque handle with their created and
last-seen times, but keeps nothing about the device (``detail`` is empty for every store).
Until the core records that itself, the example apps note, the first time they serve a
signed-in page on a session, which device and network it came from: one row per handle in
a small SQLite file in the data folder. Only a label and an address *prefix* are kept, no
full user agent and no full address, which is all a "was this me?" list needs.
"""

from __future__ import annotations

import ipaddress
import re
import sqlite3
from collections.abc import Iterable
from contextlib import closing

from example_projects.shared.config import data_dir

_BROWSERS = (
    ("Edg/", "Edge"),
    ("Firefox/", "Firefox"),
    ("HeadlessChrome/", "Chrome (headless)"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
    ("curl/", "curl"),
    ("python-httpx/", "httpx"),
    ("python-requests/", "requests"),
)
_SYSTEMS = (
    ("Android", "Android"),
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)
_WORD = re.compile(r"[A-Za-z][\w.-]{0,30}")


def device_label(user_agent: str) -> str:
    """ "Firefox on Linux", from a User-Agent header; the first word of anything unknown."""
    browser = next((name for token, name in _BROWSERS if token in user_agent), None)
    system = next((name for token, name in _SYSTEMS if token in user_agent), None)
    if browser is None:
        match = _WORD.match(user_agent)
        browser = match.group(0) if match else "Unknown browser"
    return f"{browser} on {system}" if system else browser


def place_label(address: str | None) -> str:
    """The network a request came from, as a prefix (a /24 or a /48): without a GeoIP
    database this is the most a demo can say, and it says no more than it needs to."""
    if not address:
        return "unknown network"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "unknown network"
    if ip.is_loopback:
        return "this computer (loopback)"
    prefix = 24 if ip.version == 4 else 48
    network = ipaddress.ip_network(f"{ip}/{prefix}", strict=False)
    kind = "private network" if ip.is_private else "network"
    return f"{kind} {network}"


def _connect() -> sqlite3.Connection:
    conn = sqlite3.connect(data_dir() / "devices.sqlite3", timeout=5)
    conn.execute(
        "CREATE TABLE IF NOT EXISTS devices (handle TEXT PRIMARY KEY, device TEXT NOT NULL, "
        "place TEXT NOT NULL)"
    )
    return conn


def remember(handle: str | None, user_agent: str, address: str | None) -> None:
    """Note the device of session ``handle``, once (a handle's device never changes)."""
    if not handle:
        return
    with closing(_connect()) as conn, conn:
        conn.execute(
            "INSERT OR IGNORE INTO devices VALUES (?, ?, ?)",
            (handle, device_label(user_agent), place_label(address)),
        )


def lookup(handles: Iterable[str]) -> dict[str, tuple[str, str]]:
    """handle → (device, place) for the handles this registry has seen."""
    wanted = list(handles)
    if not wanted:
        return {}
    marks = ",".join("?" * len(wanted))
    with closing(_connect()) as conn:
        rows = conn.execute(
            # Only "?" placeholders are formatted in; the handles are bound parameters.
            f"SELECT handle, device, place FROM devices WHERE handle IN ({marks})",  # noqa: S608
            wanted,
        ).fetchall()
    return {handle: (device, place) for handle, device, place in rows}
