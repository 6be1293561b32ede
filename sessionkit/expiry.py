"""When a session dies: the earliest of its idle deadline, absolute deadline and fixed date.

All three are computed from the record (or the encrypted payload), never from the cookie's
Max-Age, so a replayed cookie past its time is refused whatever the browser kept.
"""

from __future__ import annotations

from sessionkit.config import SessionConfig
from sessionkit.stores.base import RecordMeta

FOREVER = float("inf")


def deadline(meta: RecordMeta, config: SessionConfig) -> float:
    """The epoch second at which the session described by ``meta`` expires."""
    idle = meta.idle if meta.idle is not None else config.idle_timeout
    end = meta.last_seen + idle if idle is not None else FOREVER
    if config.absolute_timeout is not None:
        end = min(end, meta.created + config.absolute_timeout)
    if meta.until is not None:
        end = min(end, meta.until)
    return end


def browser_session(meta: RecordMeta, config: SessionConfig) -> bool:
    """Whether the cookie should be a browser-session cookie (no Max-Age)."""
    return config.browser_session if meta.browser is None else meta.browser
