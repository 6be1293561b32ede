"""The "your session" panel every page ends with: who, until when, and what sessionkit did."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from example_projects.shared import activity
from example_projects.shared.config import Link, links, store_url
from sessionkit.stores.base import mask_url

#: How each event reads on the page.
EXPLAIN = {
    "loaded": "loaded the session from the store",
    "created": "stored a new session under a new ID",
    "saved": "saved only the keys that changed",
    "touched": "extended the idle expiry (no data changed)",
    "regenerated": "regenerated the ID (the old cookie is dead)",
    "invalidated": "invalidated the session server-side",
    "expired": "found the session expired",
    "fingerprint_mismatch": "saw a different browser fingerprint",
    "cookie_rejected": "rejected a forged or stale cookie",
    "record_rejected": "rejected a corrupted record",
    "save_conflict": "refused to resurrect a session deleted meanwhile",
    "store_error": "could not reach the store",
}


@dataclass
class Panel:
    """Everything the shared layout shows about the session (templates only read it)."""

    app: str
    user: str | None
    handle: str | None
    stored: bool  # a record stands behind this request's session
    expires: datetime | None
    events: list[str]
    flashed: list[str] = field(default_factory=list)
    store: str = ""
    links: list[Link] = field(default_factory=list)

    @property
    def expires_text(self) -> str:
        if self.expires is None:
            return "nothing stored yet: anonymous visitors without data cost no storage"
        left = (self.expires - datetime.now(timezone.utc)).total_seconds()
        minutes = max(0, int(left // 60))
        hours, minutes = divmod(minutes, 60)
        span = f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"
        return f"{self.expires:%Y-%m-%d %H:%M:%S} UTC (in {span}, unless used again)"

    @property
    def did(self) -> list[str]:
        return [EXPLAIN.get(kind, kind) for kind in self.events]


def build(
    app: str,
    *,
    user: str | None,
    handle: str | None,
    stored: bool,
    expires: datetime | None,
    flashed: list[str] | None = None,
) -> Panel:
    return Panel(
        app=app,
        user=user,
        handle=handle,
        stored=stored,
        expires=expires,
        events=activity.last_request(handle),
        flashed=flashed or [],
        store=mask_url(store_url()),
        links=links(),
    )
