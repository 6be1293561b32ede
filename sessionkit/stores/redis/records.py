"""Reading RedisStore's records: a HASH reply becomes a ``Record``, or ``None`` with a
security log line when it is damaged or foreign (never an exception, never partial data)."""

from __future__ import annotations

import contextlib
import json
import math
import time
from typing import Any

from sessionkit import serialization
from sessionkit.ids import handle
from sessionkit.records import in_order
from sessionkit.stores.base import Record, RecordMeta, SessionInfo, reject_record

FIELDS = frozenset({b"m", b"v", b"t", b"u", b"x", b"f", b"o", b"n", b"w"})  # all but "d:<key>"
LAYOUT = b"2"  # the record layout this release writes (``f``); absent: layout 1, also read
MAX_PTTL = 10 * 365 * 86400 * 1000


def decode(digest: str, reply: list[bytes] | dict[bytes, bytes]) -> Record | None:
    """The record in a HGETALL reply, or None (with a security log line) if it is not ours.

    ``reply`` is the dict redis-py makes of a HGETALL reply (or the raw flat list
    ``[name, value, name, value, ...]``). One pass over the fields. The items come back in
    the session's key order (``o``, layout 2); a layout-1 record has none, so its items
    come in the HASH's order."""
    if not reply:
        return None
    if isinstance(reply, dict):
        pairs: Any = reply.items()
    else:
        rest = iter(reply)
        pairs = zip(rest, rest, strict=True)  # an odd length is a ValueError: rejected
    raw_meta = version = last_seen = order = layout = tombstone = None
    items = {}
    try:
        for name, value in pairs:
            if name[:2] == b"d:":
                items[name[2:].decode()] = value.decode()
            elif name == b"m":
                raw_meta = value
            elif name == b"v":
                version = value
            elif name == b"t":
                last_seen = value
            elif name == b"o":
                order = value
            elif name == b"f":
                layout = value
            elif name == b"r":
                tombstone = value
            elif name not in FIELDS:
                raise ValueError(f"unexpected field {name[:40]!r}")
        if raw_meta is None:
            if tombstone is not None and len(reply) in (1, 2):  # rotated away (a Cluster)
                return None
            reject_record(digest, "stored record has no metadata")
            return None
        if layout is not None and layout != LAYOUT:
            raise ValueError(f"unknown record layout {layout[:10]!r}")
        meta = decode_meta(raw_meta, last_seen)
        number = int(version if version is not None else b"")
        if order is not None:
            items = in_order(items, json.loads(order))
    except (ValueError, TypeError) as exc:  # UnicodeDecodeError is a ValueError
        reject_record(digest, f"stored record is corrupted or foreign ({exc})")
        return None
    return Record(items, meta, number)


def order_of(names: Any) -> str:
    """The ``o`` field for these key names, in the one spelling the scripts can edit."""
    return json.dumps(list(names), ensure_ascii=True, separators=(",", ":"))


def encoded_name(name: str) -> str:
    """One name as it appears in ``o``."""
    return json.dumps(name, ensure_ascii=True)


def decode_meta(raw: bytes, last_seen: bytes | None) -> RecordMeta:
    return RecordMeta.from_list(
        serialization.loads_plain(raw), None if last_seen is None else int(last_seen)
    )


def sift(
    user: str, index: str, members: list[str], rows: list[Any]
) -> tuple[list[SessionInfo], list[str]]:
    """Split index members into live sessions of ``user`` and stale members to prune."""
    live, stale = [], []
    for digest, row in zip(members, rows, strict=True):
        meta = None
        if isinstance(row, list) and row[0] is not None and owned(row[2], index):
            with contextlib.suppress(ValueError, TypeError):
                meta = decode_meta(row[0], row[1])
        if meta is None or meta.user != user:
            stale.append(digest)
        else:
            live.append(SessionInfo.of(digest, meta))
    return live, stale


def seen_by(
    user: str, index: str, members: list[str], rows: list[Any]
) -> tuple[list[tuple[int, str]], list[str]]:
    """``sift`` for ``max_sessions_per_user``: the live sessions as ``(last_seen, digest)``
    pairs, and the stale members to prune."""
    live, stale = sift(user, index, members, rows)
    digests = {handle(digest): digest for digest in members}
    return [(int(info.last_seen), digests[info.handle]) for info in live], stale


def owned(owner: Any, index: str) -> bool:
    return isinstance(owner, bytes) and owner == index.encode()


def pttl_of(ttl: float) -> int:
    if not math.isfinite(ttl):
        return MAX_PTTL
    return min(max(1, int(ttl * 1000)), MAX_PTTL)


def now_ms() -> int:
    return int(time.time() * 1000)


def glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
