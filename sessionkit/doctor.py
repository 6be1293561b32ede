"""``sessionkit doctor STORE``: what is wrong with a session store, one line per finding,
each saying what to do.

The checks every store gets: that it answers, and how fast (``health``). Each store adds
its own through ``Store.diagnostics(fix=..., progress=...)``: the server's version against
what the store needs, settings that can lose sessions (Redis ``maxmemory-policy``), the
clock skew between this machine and the server, and the consistency of the user indexes
(entries that point at sessions that are gone), which ``fix=True`` repairs in bounded
chunks. A finding is data (``Finding``); the command prints it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from sessionkit.health import probe

if TYPE_CHECKING:
    from sessionkit.stores.base import Store

Level = Literal["ok", "warn", "error"]
#: How far apart this machine's clock and the store server's may be before it matters:
#: expiry and idle timeouts are whole seconds.
SKEW_LIMIT = 1.0


@dataclass(frozen=True)
class Finding:
    """One check's result: ``level`` (``ok``, ``warn``, ``error``), the check's name, and
    one line that says what was found and, unless it is ``ok``, what to do."""

    level: Level
    check: str
    message: str

    def __str__(self) -> str:
        return f"{self.level:<5} {self.check}: {self.message}"


def diagnose(
    store: Store, *, fix: bool = False, progress: Callable[[int], None] | None = None
) -> list[Finding]:
    """Run every check on ``store``; with ``fix``, repair what can be repaired."""
    health = probe(store)
    if not health.ok:
        return [Finding("error", "connectivity", f"{health.error}")]
    if health.latency_ms is None:
        return [Finding("ok", "connectivity", "client-side store: there is no server")]
    found = [Finding("ok", "connectivity", f"answered in {health.latency_ms:.2f} ms")]
    return found + store.diagnostics(fix=fix, progress=progress)


def version_finding(found: str | None, needed: tuple[int, ...], what: str) -> Finding:
    """``found`` (``"7.0.15"``, ``"SQLite 3.40.1"``) against the ``needed`` version."""
    numbers = "".join(c if c.isdigit() or c == "." else " " for c in found or "").split()
    parts = tuple(int(p) for p in (numbers[0] if numbers else "").split(".") if p)
    wanted = ".".join(map(str, needed))
    named = found if found and found.startswith(what) else f"{what} {found}"
    if not parts:
        return Finding("warn", "version", f"{what} did not say its version; it needs {wanted}+")
    if parts < needed:
        return Finding(
            "error", "version", f"{named} is too old: sessionkit needs {wanted} or newer"
        )
    return Finding("ok", "version", f"{named} (needs {wanted}+)")


def skew_finding(server_time: float, before: float, after: float) -> Finding:
    """The server's clock read between ``before`` and ``after`` (this machine's)."""
    skew = server_time - (before + after) / 2
    if abs(skew) > SKEW_LIMIT + (after - before) / 2:
        return Finding(
            "warn", "clock",
            f"the server's clock is {skew:+.1f} s from this machine's: sessions expire early "
            "or late by that much; run NTP (chrony, systemd-timesyncd) on both",
        )  # fmt: skip
    return Finding("ok", "clock", f"within {SKEW_LIMIT:g} s of the server's ({skew:+.3f} s)")
