"""The Redis store's audit trail: one capped STREAM per user.

``<prefix>audit:{<sha256(user)>}`` holds a user's entries (user keys never appear in key
names, as with the user index), ``<prefix>audit:{-}`` those of no user (cookie
rejections). Each entry is one stream entry with one field, ``e``: the entry as JSON.

Every write is one pipeline: ``XADD key MAXLEN ~ N * e <json>`` per entry (the cap, so a
user's stream never grows past about ``audit_max_entries``), then per stream written
``XTRIM key MINID ~ <now - retention>`` (the retention, by the server's time in the entry
IDs) and ``PEXPIRE key <retention>``, so a stream nobody writes to any more vanishes once
its newest entry is past the retention. Reads also filter each entry by its own time, so
an entry past the retention is never shown, even before the next write trims it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sessionkit.audit import AuditEntry, AuditSink

if TYPE_CHECKING:
    from sessionkit.stores.redis.store import RedisStore

_FIELDS = ("at", "kind", "handle", "user", "device", "network", "actor", "reason")


def _encode(entry: AuditEntry) -> str:
    return json.dumps([getattr(entry, f) for f in _FIELDS], ensure_ascii=False,
                      separators=(",", ":"))  # fmt: skip


def _decode(raw: Any) -> AuditEntry | None:
    try:
        values = json.loads(raw)
        if type(values) is not list or len(values) != len(_FIELDS):
            return None
        return AuditEntry(float(values[0]), *values[1:])
    except (TypeError, ValueError):
        return None


class RedisAuditSink(AuditSink):
    """``audit="store"`` on ``RedisStore`` (the sync client: the trail's writer thread)."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store

    def key(self, user: str | None) -> str:
        if user is None:
            return f"{self.store.prefix}audit:{{-}}"
        return f"{self.store.prefix}audit:{{{hashlib.sha256(user.encode()).hexdigest()}}}"

    def write(self, entries: Sequence[AuditEntry], *, retention: float, max_entries: int) -> None:
        if not entries:
            return
        client = self.store._client()
        ms = int(retention * 1000)
        now_ms = int(max(e.at for e in entries) * 1000)
        with self.store._guard():
            pipe = client.pipeline(transaction=False)
            keys: dict[str, None] = {}
            for entry in entries:
                key = self.key(entry.user)
                keys[key] = None
                pipe.execute_command(
                    "XADD", key, "MAXLEN", "~", max_entries, "*", "e", _encode(entry)
                )
            for key in keys:
                pipe.execute_command("XTRIM", key, "MINID", max(now_ms - ms, 0))
                pipe.execute_command("PEXPIRE", key, ms)
            # XTRIM MINID needs Redis 6.2: before it, the cap, the expiry and the time
            # filter on reads still hold the retention
            pipe.execute(raise_on_error=False)

    def entries(
        self, user: str | None, *, since: float | None = None, limit: int | None = None
    ) -> list[AuditEntry]:
        client = self.store._client()
        with self.store._guard():
            start = "-" if since is None else str(max(int(since * 1000), 0))
            raw = client.execute_command("XRANGE", self.key(user), start, "+")
        found = []
        for _id, fields in raw or ():
            entry = _decode(_field(fields, b"e"))
            if entry is not None and entry.user == user and (since is None or entry.at >= since):
                found.append(entry)
        found.sort(key=lambda e: e.at)
        return found if limit is None else found[-limit:] if limit else []

    def erase(self, user: str, pseudonym: str | None) -> int:
        """Pseudonymise: the entries move to the pseudonym's stream, rewritten; the user's
        stream is deleted either way."""
        found = self.entries(user)
        client, key = self.store._client(), self.key(user)
        with self.store._guard():
            if pseudonym is not None and found:
                target = self.key(pseudonym)
                ttl = client.execute_command("PTTL", key)
                before = client.execute_command("PTTL", target)  # -2: no such stream yet
                pipe = client.pipeline(transaction=False)
                for entry in found:
                    moved = entry.replace(user=pseudonym, device=None, network=None)
                    pipe.execute_command("XADD", target, "*", "e", _encode(moved))
                if ttl > 0 and (before == -2 or 0 < before < ttl):
                    pipe.execute_command("PEXPIRE", target, ttl)
                pipe.execute()
            client.execute_command("DEL", key)
        return len(found)


def _field(fields: Any, name: bytes) -> Any:
    if isinstance(fields, dict):
        return fields.get(name, fields.get(name.decode()))
    items = list(fields)
    for i in range(0, len(items) - 1, 2):
        if items[i] in (name, name.decode()):
            return items[i + 1]
    return None
