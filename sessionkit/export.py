"""The document ``SessionEngine.export_user`` writes (GDPR article 15: a copy of the data).

``{"format": "sessionkit-export/1", "user": ..., "exported_at": ..., "sessions": [...]}``,
each session with its opaque handle (never its ID or digest), its times as ISO 8601 UTC,
its expiry settings, the device label, and its data as sessionkit's tagged JSON (a value
that JSON cannot carry, such as a datetime, is tagged with its type, as the Sessions page
describes), and ``"audit"``: the user's entries in the store's audit trail (docs/audit.md),
oldest first, each as ``AuditEntry.as_dict`` writes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from sessionkit.audit import AuditEntry
from sessionkit.ids import handle
from sessionkit.records import Record

FORMAT = "sessionkit-export/1"


def _when(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat(timespec="seconds")


def exported(
    user: str, found: list[tuple[str, Record, dict[str, Any]]], now: float,
    audit: Sequence[AuditEntry] = (),
) -> dict[str, Any]:  # fmt: skip
    sessions = []
    for digest, record, data in sorted(found, key=lambda f: f[1].meta.created):
        meta = record.meta
        sessions.append({
            "handle": handle(digest),
            "created": _when(meta.created),
            "last_seen": _when(meta.last_seen),
            "idle_timeout": meta.idle,
            "fixed_expiry": _when(meta.until),
            "browser_session": meta.browser,
            "device": meta.device,
            "data": data,
        })  # fmt: skip
    return {
        "format": FORMAT, "user": user, "exported_at": _when(now), "sessions": sessions,
        "audit": [entry.as_dict() for entry in audit],
    }  # fmt: skip
