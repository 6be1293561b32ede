"""What a store holds and what the engine asks of it: records, metadata, writes, device
list entries. The core's own types, imported by the engine and by every store (a store
never defines them), so the import runs one way: core -> stores.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from sessionkit import serialization
from sessionkit.errors import SessionLimitReached
from sessionkit.ids import handle


class RecordMeta(NamedTuple):
    """What the engine knows about a session besides its data. Timestamps are whole epoch
    seconds (sub-second precision buys nothing for expiry and costs bytes in every cookie)."""

    created: int
    last_seen: int
    idle: float | None = None  # per-session idle timeout ("remember me"); None: the default
    browser: bool | None = None  # per-session browser-session cookie; None: the default
    until: float | None = None  # a fixed deadline set with set_expiry(datetime)
    user: str | None = None
    fingerprint: str | None = None
    flash_new: tuple[str, ...] = ()
    flash_old: tuple[str, ...] = ()
    device: str | None = None  # "Firefox on Linux": a coarse label for device lists
    #: the session's device-bound key (DBSC, ``sessionkit.dbsc``): compact JSON of its
    #: DBSC session identifier, algorithm and public JWK; None: not device-bound
    dbsc: str | None = None

    def to_list(self) -> list[Any]:
        """Positional and plain JSON: ``[version, created, last_seen, idle, browser, until,
        user, fingerprint, flash_new, flash_old, device]``, and ``dbsc`` after them only
        when the session has a device-bound key, so a record without one is written
        exactly as before. Readers also take the first ten alone (records written before
        ``device`` existed)."""
        if self.dbsc is None:
            return [serialization.FORMAT_VERSION, *self[:10]]  # JSON writes tuples as arrays
        return [serialization.FORMAT_VERSION, *self]

    @classmethod
    def from_list(cls, raw: Any, last_seen: int | None = None) -> RecordMeta:
        """Metadata out of a stored record, every field's type checked. ``last_seen``, when
        the store keeps it apart (a touch moves only that), replaces the list's."""
        if type(raw) is not list or len(raw) not in _META_LENGTHS or raw[0] != _FORMAT:
            raise ValueError("not a sessionkit v1 record")
        _, created, seen, idle, browser, until, user, fingerprint, flash_new, flash_old = raw[:10]
        device = raw[10] if len(raw) >= 11 else None
        dbsc = raw[11] if len(raw) == 12 else None
        if type(seen) is not int:  # checked even when the store keeps a newer one apart
            raise ValueError("malformed record metadata")
        if last_seen is not None:
            seen = last_seen
        if (
            type(created) is not int
            or type(seen) is not int
            or type(idle) not in _NUMBER_OR_NONE
            or type(until) not in _NUMBER_OR_NONE
            or type(browser) not in _BOOL_OR_NONE
            or type(user) not in _STR_OR_NONE
            or type(fingerprint) not in _STR_OR_NONE
            or not _is_str_list(flash_new)
            or not _is_str_list(flash_old)
            or type(device) not in _STR_OR_NONE
            or (len(raw) == 12 and type(dbsc) is not str)  # written only when set
        ):
            raise ValueError("malformed record metadata")
        return cls(
            created=created, last_seen=seen, idle=idle, browser=browser, until=until,
            user=user, fingerprint=fingerprint, flash_new=tuple(flash_new),
            flash_old=tuple(flash_old), device=device, dbsc=dbsc,
        )  # fmt: skip

    @classmethod
    def from_sealed_list(cls, raw: Any) -> RecordMeta:
        """Metadata out of an AEAD-authenticated cookie. Only a holder of our key can have
        written it, so the layout is checked (format version, length, timestamps) but not
        every optional field's type, which ``from_list`` checks for server-side records."""
        if type(raw) is not list or len(raw) not in _META_LENGTHS or raw[0] != _FORMAT:
            raise ValueError("not a sessionkit v1 record")
        if type(raw[1]) is not int or type(raw[2]) is not int:
            raise ValueError("malformed record metadata")
        return cls(
            created=raw[1], last_seen=raw[2], idle=raw[3], browser=raw[4], until=raw[5],
            user=raw[6], fingerprint=raw[7], flash_new=tuple(raw[8]),
            flash_old=tuple(raw[9]), device=raw[10] if len(raw) >= 11 else None,
            dbsc=raw[11] if len(raw) == 12 else None,
        )  # fmt: skip


_FORMAT = serialization.FORMAT_VERSION
_META_LENGTHS = frozenset({10, 11, 12})  # without and with ``device``, and with ``dbsc``


_NUMBER_OR_NONE = frozenset({int, float, type(None)})
_BOOL_OR_NONE = frozenset({bool, type(None)})
_STR_OR_NONE = frozenset({str, type(None)})


def _is_str_list(value: Any) -> bool:
    return type(value) is list and (not value or all(type(v) is str for v in value))


class Record(NamedTuple):
    """A stored session: per-key tagged-JSON values, metadata and a version counter."""

    items: Mapping[str, str]
    meta: RecordMeta
    version: int = 1


class SessionLimit(NamedTuple):
    """``max_sessions_per_user`` as a write carries it: the write binds its session to
    ``meta.user``, and afterwards that user has at most ``max_sessions`` live sessions.
    ``refuse``: when the user already has that many others, nothing is written
    (``SessionLimitReached``); otherwise the least recently used others are deleted."""

    max_sessions: int
    refuse: bool = False

    def evictions(self, others: Iterable[tuple[int, str]]) -> list[str]:
        """Which of the user's other live sessions (``(last_seen, digest)`` pairs) go so
        the one being written fits: the least recently used first, the digest breaking
        ties. Raises ``SessionLimitReached`` instead when ``refuse``. A store calls it
        inside whatever makes its count and its write one atomic step."""
        ordered = sorted(others)
        excess = len(ordered) - (self.max_sessions - 1)
        if excess <= 0:
            return []
        if self.refuse:
            raise SessionLimitReached(self.max_sessions)
        return [digest for _, digest in ordered[:excess]]


class Write(NamedTuple):
    """One conditional save.

    ``create``: the record must not exist yet. Otherwise it must still exist (a session
    deleted or rotated meanwhile is never brought back). ``rotated_from``: a create that
    replaces that record, atomically, and only if it still exists (``regenerate()`` racing a
    logout must not bring the session back under a new ID). ``replace``: the record's items
    become exactly ``items``; otherwise ``items`` are merged in and ``removed`` deleted, so
    concurrent requests that change different keys both survive.
    """

    digest: str
    items: Mapping[str, str]
    removed: frozenset[str]
    meta: RecordMeta
    ttl: float
    create: bool = False
    replace: bool = False
    rotated_from: str | None = None
    previous_user: str | None = None
    #: set when this write binds the session to ``meta.user`` under
    #: ``max_sessions_per_user``: the engine then calls ``Store.save_limited``
    limit: SessionLimit | None = None
    #: for a merge: the keys of ``items`` the stored record did not hold when it was read
    #: (new to it, or removed and set again: a dict puts both last), so a store that keeps
    #: the key order beside the data appends exactly those. ``None``: not known (a store
    #: may then append every key of ``items``)
    new_keys: frozenset[str] | None = None

    def items_over(self, current: Mapping[str, str]) -> dict[str, str]:
        """The record's items once this write lands on ``current`` (a store that cannot
        merge on its server merges here): exactly ``items`` for a replace, otherwise
        ``current`` without ``removed``, with ``items`` over it."""
        if self.replace:
            return dict(self.items)
        merged = {k: v for k, v in current.items() if k not in self.removed}
        merged.update(self.items)
        return merged


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A session as shown in a device list: a handle, never the ID."""

    handle: str
    user: str | None
    created: float
    last_seen: float
    #: "Chrome on Windows": what the session's browser said it was when last saved (a coarse
    #: label from its User-Agent, never the header itself); None when it sent none
    device: str | None = None

    @classmethod
    def of(cls, digest: str, meta: RecordMeta) -> SessionInfo:
        """The device-list entry of a stored session (its handle, never the digest)."""
        return cls(handle(digest), meta.user, meta.created, meta.last_seen, meta.device)


def in_order(items: dict[str, str], names: Any) -> dict[str, str]:
    """``items`` in the order ``names`` (the session's key order, as a store kept it beside
    data that keeps none: a Redis HASH, PostgreSQL ``jsonb``) lists them. Names it does not
    list (added by a concurrent merge, or written by a release that kept no order) follow,
    in the data's own order; listed names the data lacks are ignored."""
    if type(names) is not list:
        raise ValueError("malformed key order")
    if names == list(items):  # often already so: nothing to do
        return items
    ordered = {name: items[name] for name in names if type(name) is str and name in items}
    if len(ordered) < len(items):
        ordered.update((k, v) for k, v in items.items() if k not in ordered)
    return ordered
