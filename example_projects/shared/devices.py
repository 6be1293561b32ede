"""Place labels for the "your active sessions" page.

The core's ``SessionInfo`` lists a user's sessions by opaque handle, with their created and
last-seen times and a device label ("Firefox on Linux") that the core derives from the
User-Agent. Where a session was used from is deliberately not kept by the core (an address
is personal data that most apps need not store). The example apps show it anyway, to make
"was this me?" answerable: the first time they serve a signed-in page on a session, they
note its network *prefix* (never the full address) in a small SQLite file in the data folder.
"""

from __future__ import annotations

import ipaddress
import sqlite3
from collections.abc import Iterable
from contextlib import closing

from example_projects.shared.config import data_dir


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
    conn = sqlite3.connect(data_dir() / "places.sqlite3", timeout=5)
    conn.execute("CREATE TABLE IF NOT EXISTS places (handle TEXT PRIMARY KEY, place TEXT NOT NULL)")
    return conn


def remember(handle: str | None, address: str | None) -> None:
    """Note the network session ``handle`` was first used from, once."""
    if not handle:
        return
    with closing(_connect()) as conn, conn:
        conn.execute("INSERT OR IGNORE INTO places VALUES (?, ?)", (handle, place_label(address)))


def lookup(handles: Iterable[str]) -> dict[str, str]:
    """handle → place, for the handles this registry has seen."""
    wanted = list(handles)
    if not wanted:
        return {}
    marks = ",".join("?" * len(wanted))
    with closing(_connect()) as conn:
        rows = conn.execute(
            # Only "?" placeholders are formatted in; the handles are bound parameters.
            f"SELECT handle, place FROM places WHERE handle IN ({marks})",  # noqa: S608
            wanted,
        ).fetchall()
    return dict(rows)
