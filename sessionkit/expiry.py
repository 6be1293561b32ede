"""When a session dies: the earliest of its idle deadline, absolute deadline and fixed date.

All three are computed from the record (or the encrypted payload), never from the cookie's
Max-Age, so a replayed cookie past its time is refused whatever the browser kept.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from sessionkit.config import SessionConfig
from sessionkit.stores.base import RecordMeta

FOREVER = float("inf")


def deadline(meta: RecordMeta, config: SessionConfig) -> float:
    """The epoch second at which the session described by ``meta`` expires."""
    return deadline_for(config)(meta)


def deadline_for(config: SessionConfig) -> Callable[[RecordMeta], float]:
    """``deadline`` with the configuration bound once (the engine calls it on every load
    and every save)."""
    idle_default, absolute = config.idle_timeout, config.absolute_timeout

    def bound(meta: RecordMeta) -> float:
        idle = meta.idle if meta.idle is not None else idle_default
        end = meta.last_seen + idle if idle is not None else FOREVER
        if absolute is not None and meta.created + absolute < end:
            end = meta.created + absolute
        until = meta.until
        return until if until is not None and until < end else end

    return bound


def browser_session(meta: RecordMeta, config: SessionConfig) -> bool:
    """Whether the cookie should be a browser-session cookie (no Max-Age)."""
    return browser_cookie(meta.browser, config)


def browser_cookie(choice: bool | None, config: SessionConfig) -> bool:
    """The same decision from a session's own choice (``None``: the configured default),
    for a session not saved yet."""
    return config.browser_session if choice is None else choice


def max_age(end: float, now: float) -> int:
    """The cookie's Max-Age for a session that dies at ``end``, seen at ``now``.

    Rounded up: deadlines are whole seconds counted from ``int(now)``, so a fresh 14-day
    session gets exactly ``Max-Age=1209600`` (truncating gave 1209599 whenever ``now`` had a
    fraction), and a session with 0.4 s left is not told to delete itself. The server
    enforces the deadline itself; the browser keeping the cookie under a second longer is moot.
    """
    return max(0, math.ceil(end - now))
