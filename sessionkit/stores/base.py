"""The store contract: records keyed by ID digest, and the writes the engine asks for.

A store moves bytes and enforces the invariants that need its server: conditional writes
(no resurrection), key-level merge, native expiry. Every decision about cookies, expiry,
rotation and fingerprints has already been made by the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from sessionkit import serialization
from sessionkit.errors import LockTimeout, StoreError
from sessionkit.events import security_log
from sessionkit.ids import handle, is_digest

if TYPE_CHECKING:
    from sessionkit.audit import AuditSink
    from sessionkit.doctor import Finding

# Record, RecordMeta, SessionInfo and Write live in sessionkit.records (the core's module
# the stores import); re-exported here, where stores and users have always found them.
from sessionkit.records import Record as Record
from sessionkit.records import RecordMeta as RecordMeta
from sessionkit.records import SessionInfo as SessionInfo
from sessionkit.records import Write as Write

# Re-exported: stores (and third-party ones) import these from here.
from sessionkit.urls import mask_url as mask_url
from sessionkit.urls import parse_flag as parse_flag
from sessionkit.urls import query_options as query_options


class Store:
    """Base class of every store. Subclasses implement the sync methods; the async flavour
    defaults to running them in a worker thread, and stores with a native async client
    override it. Optional capabilities are declared by the ``supports_*`` flags."""

    client_side: ClassVar[bool] = False
    supports_user_index: ClassVar[bool] = False
    supports_lock: ClassVar[bool] = False
    supports_sweep: ClassVar[bool] = False
    supports_scan: ClassVar[bool] = False
    #: ``save_limited`` keeps ``max_sessions_per_user`` atomically (needs the user index)
    supports_session_limit: ClassVar[bool] = False
    #: ``reseal`` re-encodes stored values in place, compare-and-set per key (the engine
    #: re-seals values under an older key with it; ``sessionkit rekey`` too, with
    #: ``scan_digests``)
    supports_reseal: ClassVar[bool] = False
    #: ``put_challenge``/``take_challenge``: one-use values with a TTL (DBSC challenges)
    supports_challenges: ClassVar[bool] = False
    #: reads may be served from a copy in this process (``CachingStore``); ``load_fresh``
    #: goes past it. ``False``: every read is the store's own, so every read is fresh
    caches_reads: ClassVar[bool] = False
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
    def save_limited(self, write: Write) -> list[str] | None:
        """Apply ``write``, which binds its session to ``write.meta.user``, keeping that user
        within ``write.limit`` in the same atomic step: count the user's other live sessions
        (never the written one, nor the one it rotates away from), then refuse
        (``SessionLimitReached``, nothing written) or write and delete the least recently
        used others (``SessionLimit.evictions``). Returns the evicted digests, or ``None``
        when the write's own condition failed (nothing written, nothing evicted)."""
        raise StoreError(f"{type(self).__name__} does not keep a per-user index")

    async def asave_limited(self, write: Write) -> list[str] | None:
        return await asyncio.to_thread(self.save_limited, write)

    def user_sessions(self, user: str) -> list[SessionInfo]:
        raise StoreError(f"{type(self).__name__} does not keep a per-user index")

    def revoke_user(self, user: str, *, keep: str | None = None) -> int:
        """Delete every session of ``user`` except the one whose digest is ``keep``."""
        raise StoreError(f"{type(self).__name__} does not keep a per-user index")

    def revoke_handle(self, user: str, handle: str) -> bool:
        raise StoreError(f"{type(self).__name__} does not keep a per-user index")

    def user_digests(self, user: str) -> list[str]:
        """The record keys the user index lists for ``user`` (for an export: what the
        index says, each to be loaded and checked; never shown: handles are for that)."""
        raise StoreError(f"{type(self).__name__} does not keep a per-user index")

    async def auser_sessions(self, user: str) -> list[SessionInfo]:
        return await asyncio.to_thread(self.user_sessions, user)

    async def arevoke_user(self, user: str, *, keep: str | None = None) -> int:
        return await asyncio.to_thread(lambda: self.revoke_user(user, keep=keep))

    async def arevoke_handle(self, user: str, handle: str) -> bool:
        return await asyncio.to_thread(self.revoke_handle, user, handle)

    def put_challenge(self, key: str, value: str, ttl: float) -> None:
        """Keep ``value`` under ``key`` (a digest: ``ids.digest`` of the challenge) for
        ``ttl`` seconds, for one ``take_challenge`` (``sessionkit.dbsc``)."""
        raise StoreError(f"{type(self).__name__} does not keep one-use challenges")

    def take_challenge(self, key: str) -> str | None:
        """The value put under ``key``, removed in the same atomic step, so of any number
        of concurrent callers exactly one gets it; ``None`` when it was never put, was
        taken already, or its TTL passed."""
        raise StoreError(f"{type(self).__name__} does not keep one-use challenges")

    async def aput_challenge(self, key: str, value: str, ttl: float) -> None:
        await asyncio.to_thread(self.put_challenge, key, value, ttl)

    async def atake_challenge(self, key: str) -> str | None:
        return await asyncio.to_thread(self.take_challenge, key)

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

    def reseal(self, digest: str, pairs: Mapping[str, tuple[str, str]]) -> int:
        """For each ``key: (old, new)`` of ``pairs``, store the text ``new`` under ``key``
        only if the record still holds exactly ``old`` there, all in one atomic step per
        record; nothing else of the record changes (metadata, version, expiry, other keys,
        key order). Returns how many values were replaced: 0 for a record that is gone or
        expired. A value changed meanwhile is left as it is: this is how a re-encoding
        (``encrypt_records`` after a key rotation) never overwrites a concurrent change."""
        raise StoreError(f"{type(self).__name__} cannot re-seal values in place")

    async def areseal(self, digest: str, pairs: Mapping[str, tuple[str, str]]) -> int:
        return await asyncio.to_thread(self.reseal, digest, pairs)

    def scan_digests(self) -> Iterator[str]:
        """The digest of every stored record, live or not yet swept, each once (records
        written during the scan may or may not be seen): what ``sessionkit rekey`` walks."""
        raise StoreError(f"{type(self).__name__} cannot enumerate its sessions")

    def server_version(self) -> str | None:
        """The store server's version, for ``engine.health()``; ``None`` where there is no
        server (memory, files) or it does not say."""
        return None

    async def aserver_version(self) -> str | None:
        return await asyncio.to_thread(self.server_version)

    def diagnostics(
        self, *, fix: bool = False, progress: Callable[[int], None] | None = None
    ) -> list[Finding]:
        """This store's own checks for ``sessionkit doctor`` (``sessionkit.doctor``): none
        by default. ``fix``: repair what can be, in bounded chunks, calling ``progress``
        with the running count."""
        return []

    def create_schema(self) -> bool:
        """Create tables or directories ahead of first use; ``False``: nothing to create."""
        return False

    def audit_sink(self) -> AuditSink | None:
        """Where ``audit="store"`` writes the audit trail (``sessionkit.audit``): the same
        object on every call; ``None`` for a store that keeps none."""
        return None

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


def require_digests(what: str, *digests: str | None) -> None:
    """``ValueError`` unless every given digest (``None`` skipped) has the shape
    ``ids.digest`` makes: stores that turn digests into file names or keys never take
    anything else from a caller."""
    for value in digests:
        if value is not None and not is_digest(value):
            raise ValueError(f"{what}: digests must be 64 lowercase hex characters")
