"""The store contract: records keyed by ID digest, and the writes the engine asks for.

A store moves bytes and enforces the invariants that need its server: conditional writes
(no resurrection), key-level merge, native expiry. Every decision about cookies, expiry,
rotation and fingerprints has already been made by the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple
from urllib.parse import parse_qs, urlsplit

from sessionkit import serialization
from sessionkit.errors import ConfigError, LockTimeout, StoreError
from sessionkit.events import security_log
from sessionkit.ids import handle, is_digest


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

    def to_list(self) -> list[Any]:
        """Positional and plain JSON: ``[version, created, last_seen, idle, browser, until,
        user, fingerprint, flash_new, flash_old, device]``. Readers also take the first ten
        alone (records written before ``device`` existed)."""
        return [serialization.FORMAT_VERSION, *self]  # JSON writes the flash tuples as arrays

    @classmethod
    def from_list(cls, raw: Any, last_seen: int | None = None) -> RecordMeta:
        """Metadata out of a stored record, every field's type checked. ``last_seen``, when
        the store keeps it apart (a touch moves only that), replaces the list's."""
        if type(raw) is not list or len(raw) not in _META_LENGTHS or raw[0] != _FORMAT:
            raise ValueError("not a sessionkit v1 record")
        _, created, seen, idle, browser, until, user, fingerprint, flash_new, flash_old = raw[:10]
        device = raw[10] if len(raw) == 11 else None
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
        ):
            raise ValueError("malformed record metadata")
        return _new_meta(cls, (
            created, seen, idle, browser, until, user, fingerprint, tuple(flash_new),
            tuple(flash_old), device,
        ))  # fmt: skip

    @classmethod
    def from_sealed_list(cls, raw: Any) -> RecordMeta:
        """Metadata out of an AEAD-authenticated cookie. Only a holder of our key can have
        written it, so the layout is checked (format version, length, timestamps) but not
        every optional field's type, which ``from_list`` checks for server-side records."""
        if type(raw) is not list or len(raw) not in _META_LENGTHS or raw[0] != _FORMAT:
            raise ValueError("not a sessionkit v1 record")
        if type(raw[1]) is not int or type(raw[2]) is not int:
            raise ValueError("malformed record metadata")
        # tuple.__new__: no keyword handling and no length check, on every request
        return _new_meta(cls, (raw[1], raw[2], raw[3], raw[4], raw[5], raw[6], raw[7],
                               tuple(raw[8]), tuple(raw[9]),
                               raw[10] if len(raw) == 11 else None))  # fmt: skip


_new_meta = tuple.__new__
_FORMAT = serialization.FORMAT_VERSION
_META_LENGTHS = frozenset({10, 11})  # without and with ``device``


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


class Store:
    """Base class of every store. Subclasses implement the sync methods; the async flavour
    defaults to running them in a worker thread, and stores with a native async client
    override it. Optional capabilities are declared by the ``supports_*`` flags."""

    client_side: ClassVar[bool] = False
    supports_user_index: ClassVar[bool] = False
    supports_lock: ClassVar[bool] = False
    supports_sweep: ClassVar[bool] = False
    supports_scan: ClassVar[bool] = False
    url: str = ""

    # -- the protocol --------------------------------------------------------------------
    def load(self, digest: str) -> Record | None:
        raise NotImplementedError

    def save(self, write: Write) -> bool:
        """Apply ``write``; ``False`` when its condition failed (nothing was written)."""
        raise NotImplementedError

    def delete(self, digest: str) -> None:
        raise NotImplementedError

    def touch(self, digest: str, last_seen: int, ttl: float) -> bool:
        """Record a read-only visit; ``False`` when the record is gone."""
        raise NotImplementedError

    async def aload(self, digest: str) -> Record | None:
        return await asyncio.to_thread(self.load, digest)

    def load_fresh(self, digest: str) -> Record | None:
        """``load``, from the store itself even when a cache sits in front of it (a route
        that must see a logout the very moment it lands). A plain store just loads."""
        return self.load(digest)

    async def aload_fresh(self, digest: str) -> Record | None:
        return await self.aload(digest)

    async def asave(self, write: Write) -> bool:
        return await asyncio.to_thread(self.save, write)

    async def adelete(self, digest: str) -> None:
        await asyncio.to_thread(self.delete, digest)

    async def atouch(self, digest: str, last_seen: int, ttl: float) -> bool:
        return await asyncio.to_thread(self.touch, digest, last_seen, ttl)

    # -- optional capabilities -----------------------------------------------------------
    def user_sessions(self, user: str) -> list[SessionInfo]:
        raise StoreError(f"{type(self).__name__} does not keep a per-user index")

    def revoke_user(self, user: str, *, keep: str | None = None) -> int:
        """Delete every session of ``user`` except the one whose digest is ``keep``."""
        raise StoreError(f"{type(self).__name__} does not keep a per-user index")

    def revoke_handle(self, user: str, handle: str) -> bool:
        raise StoreError(f"{type(self).__name__} does not keep a per-user index")

    async def auser_sessions(self, user: str) -> list[SessionInfo]:
        return await asyncio.to_thread(self.user_sessions, user)

    async def arevoke_user(self, user: str, *, keep: str | None = None) -> int:
        return await asyncio.to_thread(lambda: self.revoke_user(user, keep=keep))

    async def arevoke_handle(self, user: str, handle: str) -> bool:
        return await asyncio.to_thread(self.revoke_handle, user, handle)

    def lock(
        self, digest: str, *, ttl: float = 30.0, wait: float = 10.0
    ) -> contextlib.AbstractContextManager[None]:
        raise StoreError(f"{type(self).__name__} does not support locks")

    def alock(
        self, digest: str, *, ttl: float = 30.0, wait: float = 10.0
    ) -> contextlib.AbstractAsyncContextManager[None]:
        raise StoreError(f"{type(self).__name__} does not support locks")

    def delete_expired(self, progress: Callable[[int], None] | None = None) -> int:
        """Remove expired records; ``progress`` is called with running totals."""
        raise StoreError(f"{type(self).__name__} cannot sweep expired sessions")

    def scan(self) -> Iterator[RecordMeta]:
        """The metadata of every stored session, live or not yet swept (for ``stats``).
        Records that cannot be decoded are skipped."""
        raise StoreError(f"{type(self).__name__} cannot enumerate its sessions")

    def create_schema(self) -> bool:
        """Create tables or directories ahead of first use; ``False``: nothing to create."""
        return False

    def close(self) -> None:
        """Release connections; the store must not be used afterwards."""

    async def aclose(self) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {mask_url(self.url)}>"


# Helpers shared by stores ----------------------------------------------------------------


class PollingLocks:
    """``lock``/``alock`` for stores whose lock is "try to take it; if taken, poll until
    the wait runs out". A store mixes this in before ``Store`` and provides ``_try_lock``
    (take the lock for ``token`` unless someone else holds a live one) and ``_unlock``
    (release it only if ``token`` still holds it). The async flavour calls
    ``_atry_lock``/``_aunlock``, by default the sync ones (override them when those block).

    A waiter polls every ``lock_poll`` seconds; with ``lock_poll_max`` set, the pause doubles
    up to it (a store whose every try is a network round trip), never past the deadline."""

    lock_poll: ClassVar[float] = 0.002
    lock_poll_max: ClassVar[float | None] = None

    def _lock_token(self, digest: str) -> str:
        require_digests(f"{type(self).__name__}.lock", digest)
        return secrets.token_hex(16)

    def _try_lock(self, digest: str, token: str, ttl: float) -> bool:
        raise NotImplementedError

    def _unlock(self, digest: str, token: str) -> None:
        raise NotImplementedError

    async def _atry_lock(self, digest: str, token: str, ttl: float) -> bool:
        return self._try_lock(digest, token, ttl)

    async def _aunlock(self, digest: str, token: str) -> None:
        self._unlock(digest, token)

    @contextlib.contextmanager
    def lock(self, digest: str, *, ttl: float = 30.0, wait: float = 10.0) -> Iterator[None]:
        token = self._lock_token(digest)
        deadline, pause = time.monotonic() + wait, self.lock_poll
        while not self._try_lock(digest, token, ttl):
            left = deadline - time.monotonic()
            if left <= 0:
                raise LockTimeout(handle(digest), wait)
            time.sleep(min(pause, left))
            pause = self._next_pause(pause)
        try:
            yield
        finally:
            self._unlock(digest, token)

    def _next_pause(self, pause: float) -> float:
        return pause if self.lock_poll_max is None else min(pause * 2, self.lock_poll_max)

    @contextlib.asynccontextmanager
    async def alock(
        self, digest: str, *, ttl: float = 30.0, wait: float = 10.0
    ) -> AsyncIterator[None]:
        token = self._lock_token(digest)
        deadline, pause = time.monotonic() + wait, self.lock_poll
        while not await self._atry_lock(digest, token, ttl):
            left = deadline - time.monotonic()
            if left <= 0:
                raise LockTimeout(handle(digest), wait)
            await asyncio.sleep(min(pause, left))
            pause = self._next_pause(pause)
        try:
            yield
        finally:
            await self._aunlock(digest, token)


DOCUMENT_VERSION = 1


def reject_record(digest: str, reason: str) -> None:
    """Log a stored record that cannot be read as a session (the caller then reads it as
    "no session"): one line on the ``sessionkit.security`` logger, with the handle only."""
    security_log.warning("sessionkit record_rejected: %s (session %s)", reason, handle(digest))


def encode_document(record: Record, expires_at: float, kind: str) -> bytes:
    """A whole record as one JSON document (stores that keep one value per session: files,
    memcached). ``data`` holds each key's tagged-JSON text unchanged; ``kind`` names the
    store, so one store never mistakes another's document for its own."""
    document = {
        "format": kind, "v": DOCUMENT_VERSION, "meta": record.meta.to_list(),
        "data": dict(record.items), "version": record.version, "expires_at": expires_at,
    }  # fmt: skip
    return serialization.dumps_plain_bytes(document)


def decode_document(raw: bytes, kind: str) -> tuple[Record, float]:
    """Parse what ``encode_document`` wrote, all or nothing: ``ValueError`` for anything
    that is not exactly a ``kind`` document (the caller reads that as "no session").

    Parsed by ``serialization.loads_plain`` (orjson only where it is exact, so the outcome
    never depends on whether orjson is there), never untagged: ``data``'s keys are the
    user's session keys."""
    return _document_fields(serialization.loads_plain(raw), kind)


def _document_fields(document: Any, kind: str) -> tuple[Record, float]:
    if type(document) is not dict or document.get("format") != kind:
        raise ValueError(f"not a {kind} record")
    if document.get("v") != DOCUMENT_VERSION:
        raise ValueError(f"unknown record format version {document.get('v')!r}")
    meta = RecordMeta.from_list(document.get("meta"))
    data, version = document.get("data"), document.get("version")
    expires_at = document.get("expires_at")
    if type(data) is not dict or not all(type(v) is str for v in data.values()):
        raise ValueError("malformed record data")
    if type(version) is not int or type(expires_at) not in (int, float):
        raise ValueError("malformed record version or expiry")
    return Record(data, meta, version), float(expires_at)  # type: ignore[arg-type]


_PASSWORD_RE = re.compile(r"(?P<head>[a-z0-9+.-]+://[^:/@]*:)(?P<password>[^@]*)(?=@)", re.I)


def mask_url(url: str) -> str:
    """``redis://user:secret@host`` → ``redis://user:***@host``."""
    return _PASSWORD_RE.sub(lambda m: m.group("head") + "***", url)


_TRUE, _FALSE = frozenset({"1", "true", "yes", "on"}), frozenset({"0", "false", "no", "off"})


def parse_flag(text: str) -> bool:
    """``true``/``false`` (also 1/0, yes/no, on/off) from a URL; ``ValueError`` otherwise."""
    lowered = text.lower()
    if lowered not in _TRUE | _FALSE:
        raise ValueError(f"{text!r} is not true or false")
    return lowered in _TRUE


def query_options(url: str, kinds: Mapping[str, type]) -> dict[str, Any]:
    """The ``?name=value`` options of a store URL, each converted by its kind in ``kinds``
    (``int``, ``float``, ``bool`` or ``str``). A repeated name keeps its last value; a name
    not in ``kinds`` or a value of the wrong kind is a ``ConfigError`` that names it, so a
    typo never leaves a store silently unconfigured."""
    options: dict[str, Any] = {}
    for name, values in parse_qs(urlsplit(url).query, keep_blank_values=True).items():
        kind = kinds.get(name)
        if kind is None:
            known = ", ".join(sorted(kinds)) or "none"
            raise ConfigError("store", f"{mask_url(url)!r}: unknown option {name!r} "
                                       f"(known: {known})")  # fmt: skip
        try:
            options[name] = parse_flag(values[-1]) if kind is bool else kind(values[-1])
        except ValueError:
            what = (
                "true or false"
                if kind is bool
                else "a number"
                if kind in (int, float)
                else kind.__name__
            )
            raise ConfigError(
                "store", f"{mask_url(url)!r}: {name} must be {what}, not {values[-1]!r}"
            ) from None
    return options


def require_digests(what: str, *digests: str | None) -> None:
    """``ValueError`` unless every given digest (``None`` skipped) has the shape
    ``ids.digest`` makes: stores that turn digests into file names or keys never take
    anything else from a caller."""
    for value in digests:
        if value is not None and not is_digest(value):
            raise ValueError(f"{what}: digests must be 64 lowercase hex characters")
