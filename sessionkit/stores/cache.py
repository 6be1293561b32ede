"""A coherent local cache in front of any store: ``CachingStore(store, source)``.

The cache keeps recently read records in process memory, each with its version, and serves
a repeated read with no round trip. It stays coherent because an ``InvalidationSource``
tells it which records changed anywhere (Redis client tracking:
``sessionkit.stores.redis.tracking``); the
engine and the adapters do not know it is there, except for ``Store.load_fresh``, which a
security-sensitive route asks for (``SessionEngine.open(..., fresh=True)``).

The rules that keep a cached read from being staler than a request already in flight:

- **drain before serving**: every hit first asks the source to apply every invalidation that
  has already reached the process (a non-blocking read of its socket), so no background
  thread that has not run yet decides whether a record is current;
- **pending fills**: a miss marks its digest as pending *before* the read is sent; an
  invalidation that arrives for a pending digest poisons it, and the read's result is then
  returned but not kept (the reply and the invalidation travel on different connections and
  can cross: Redis's client-side caching documentation describes this race);
- **flush on any doubt**: when the source cannot vouch for the stream of invalidations (its
  connection dropped or was killed, the server restarted or flushed, a health check went
  unanswered, the process forked), the whole cache is dropped and every read goes to the
  store until the source is back;
- **write-through, only when provably exact**: a merge into a cached record is sent by the
  source (``InvalidationSource.save``) on a connection whose own changes it does not
  report, and the source answers with the version it wrote. Only when that is the cached
  version + 1 did the merge land on exactly the cached record, so the cache installs
  (cached record + this write), unless an invalidation or a flush arrived for the digest
  since the write began; it also poisons the fills in flight for that digest, which may
  have read the record before the write. Anything else (a mismatch, a write that did not
  land, a source that cannot, deletes, touches, creates, ``max_sessions_per_user``) drops
  the record, so a later read fetches what the server holds.

Bounded by entries and by an estimate of the bytes the records hold; the least recently
used record goes first. ``stats()`` counts hits, misses, invalidations and flushes; each
process publishes them to its store for ``sessionkit stats`` (``published_counters``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from sessionkit.doctor import Finding
from sessionkit.errors import ConfigError
from sessionkit.stores.base import Record, RecordMeta, SessionInfo, Store, Write, mask_url

if TYPE_CHECKING:
    from sessionkit.audit import AuditSink

log = logging.getLogger("sessionkit")

#: The defaults of ``?cache=on`` (see docs/stores/cache.md for the measurement behind them).
DEFAULT_ENTRIES = 10_000
DEFAULT_BYTES = 32 * 1024 * 1024

# A record's estimated footprint: its fixed objects (the Record, its meta tuple, the items
# dict, the cache entry) and per item the key and value strings and the dict slot. Measured
# with tracemalloc on CPython 3.11 (tests/stores/test_cache.py keeps it honest).
_RECORD_OVERHEAD = 600
_ITEM_OVERHEAD = 150

_CAPABILITIES = (
    "client_side", "supports_user_index", "supports_lock", "supports_sweep", "supports_scan",
    "supports_session_limit", "supports_reseal", "supports_challenges",
)  # fmt: skip


def record_size(record: Record) -> int:
    """Estimated bytes ``record`` occupies in the cache."""
    items, meta = record.items, record.meta
    strings = (meta.user, meta.fingerprint, meta.device, meta.dbsc)
    return (
        _RECORD_OVERHEAD + _ITEM_OVERHEAD * len(items) + sum(map(len, items))
        + sum(map(len, items.values())) + sum(len(s) for s in strings if s is not None)
        + 16 * (len(meta.flash_new) + len(meta.flash_old))
    )  # fmt: skip


class InvalidationSource:
    """Tells a ``LocalCache`` which records changed elsewhere.

    ``sync()`` runs before every cached read: it applies (``cache.invalidate``/
    ``cache.flush``) every invalidation that has already reached the process, without
    blocking, and returns whether the cache may serve hits now (``False``: the stream of
    invalidations cannot be trusted at the moment; the source has flushed the cache and
    reads go to the store). Another backend (PostgreSQL ``LISTEN/NOTIFY``, ...) plugs in
    by implementing these three methods."""

    @property
    def writes_through(self) -> bool:
        """Whether ``save`` may write through now (so an async save does not leave the
        event loop for a source that would decline anyway)."""
        return False

    def attach(self, cache: LocalCache) -> None:
        raise NotImplementedError

    def sync(self) -> bool:
        raise NotImplementedError

    def wait_live(self, timeout: float = 5.0) -> bool:
        """Start listening now and wait (at most ``timeout`` seconds) until hits may be
        served; ``False`` if that did not happen in time."""
        return self.sync()

    def close(self) -> None:
        """Stop listening (the cache is then flushed and serves nothing)."""

    def save(self, store: Store, write: Write) -> int | None:
        """Apply ``write`` (a merge into an existing record of ``store``) so that this
        source reports every change to its record made *after* it, and none made by it;
        return the record's version after it, or ``0`` when its condition failed (nothing
        written). ``None``: this source cannot (busy, not live, not its kind of store); the
        cache then saves through ``store`` and drops its copy. The default cannot."""
        return None


@dataclass(slots=True)
class CacheStats:
    hits: int = 0
    misses: int = 0
    bypassed: int = 0  # reads sent to the store because the source was not live
    fresh: int = 0  # reads that asked for a fresh record (load_fresh)
    fills: int = 0
    discarded: int = 0  # fills poisoned by an invalidation that crossed them
    invalidations: int = 0  # digests invalidated by the source
    evictions: int = 0  # dropped to stay within the bounds
    flushes: int = 0
    written: int = 0  # records written through after our own save (no re-read needed)


class _Pending:
    """Reads in flight for one digest; ``poisoned`` once an invalidation crossed them."""

    __slots__ = ("count", "generation")

    def __init__(self) -> None:
        self.count = 0
        self.generation = 0


class LocalCache:
    """A lock-protected LRU of records by digest, with the pending-fill protocol.

    ``begin(digest)`` before reading from the store returns a ticket; ``finish(ticket,
    record)`` keeps the record only if no invalidation for that digest and no flush came in
    between. Thread-safe; every method is short and never does I/O."""

    def __init__(self, entries: int = DEFAULT_ENTRIES, max_bytes: int = DEFAULT_BYTES) -> None:
        if entries < 1 or max_bytes < 1:
            raise ValueError("a cache needs room for at least one record")
        self.max_entries = entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self.stats = CacheStats()
        self._entries: OrderedDict[str, tuple[Record, int]] = OrderedDict()
        self._pending: dict[str, _Pending] = {}
        self._epoch = 0  # bumped by every flush: a fill that spans one is discarded
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, digest: str) -> Record | None:
        """The cached record (counted as a hit), or ``None`` (a miss)."""
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None:
                self.stats.misses += 1
                return None
            self._entries.move_to_end(digest)
            self.stats.hits += 1
            return entry[0]

    def begin(self, digest: str) -> tuple[str, int, int]:
        with self._lock:
            pending = self._pending.get(digest)
            if pending is None:
                pending = self._pending[digest] = _Pending()
            pending.count += 1
            return digest, pending.generation, self._epoch

    def finish(self, ticket: tuple[str, int, int], record: Record | None) -> bool:
        """End a fill; ``True`` when ``record`` was kept."""
        digest, generation, epoch = ticket
        with self._lock:
            pending = self._pending[digest]
            clean = pending.generation == generation and epoch == self._epoch
            pending.count -= 1
            if not pending.count:
                del self._pending[digest]
            if not clean:
                self.stats.discarded += 1
                return False
            if record is None:  # nothing to keep (the next read asks again)
                return False
            if self._install(digest, record):
                self.stats.fills += 1
                return True
            return False

    def _install(self, digest: str, record: Record) -> bool:
        """Keep ``record`` (the caller holds the lock), dropping the least recently used."""
        size = record_size(record)
        old = self._entries.pop(digest, None)
        if old is not None:
            self.bytes -= old[1]
        if size > self.max_bytes:
            return False
        self._entries[digest] = (record, size)
        self.bytes += size
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            _, (_, dropped) = self._entries.popitem(last=False)
            self.bytes -= dropped
            self.stats.evictions += 1
        return True

    def begin_write(self, digest: str) -> tuple[tuple[str, int, int], Record] | None:
        """Before our own write to a cached record: a ticket and the cached record (the
        write's base), or ``None`` when nothing is cached (no write-through then)."""
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None:
                return None
            pending = self._pending.get(digest)
            if pending is None:
                pending = self._pending[digest] = _Pending()
            pending.count += 1
            return (digest, pending.generation, self._epoch), entry[0]

    def finish_write(self, ticket: tuple[str, int, int], record: Record | None) -> bool:
        """After our own write: keep ``record`` (what the server now holds, or ``None``:
        not known) unless an invalidation or a flush came since ``begin_write``; drop
        the copy otherwise. Either way the fills in flight for the digest are poisoned:
        they may have read the record before our write, and its change is not announced
        to us. ``True`` when ``record`` was kept."""
        digest, generation, epoch = ticket
        with self._lock:
            pending = self._pending[digest]
            clean = pending.generation == generation and epoch == self._epoch
            pending.generation += 1
            pending.count -= 1
            if not pending.count:
                del self._pending[digest]
            if clean and record is not None and self._install(digest, record):
                self.stats.written += 1
                return True
            old = self._entries.pop(digest, None)
            if old is not None:
                self.bytes -= old[1]
            return False

    def invalidate(self, digest: str) -> None:
        """``digest`` changed: drop it, and poison the reads of it in flight."""
        with self._lock:
            self.stats.invalidations += 1
            entry = self._entries.pop(digest, None)
            if entry is not None:
                self.bytes -= entry[1]
            pending = self._pending.get(digest)
            if pending is not None:
                pending.generation += 1

    def counters(self) -> dict[str, int]:
        """The counters (``CacheStats``), and what the cache holds now with its bounds."""
        with self._lock:
            counts = asdict(self.stats)
            counts.update(entries=len(self._entries), bytes=self.bytes,
                          max_entries=self.max_entries, max_bytes=self.max_bytes)  # fmt: skip
        return counts

    def flush(self, reason: str) -> None:
        """Drop everything, and poison every read in flight."""
        with self._lock:
            self._entries.clear()
            self.bytes = 0
            self._epoch += 1
            self.stats.flushes += 1
        log.info("sessionkit cache flushed: %s", reason)


class CachingStore(Store):
    """``store`` with a ``LocalCache`` in front, kept coherent by ``source``.

    Reads (``load``/``aload``) are served from the cache when the source is live and the
    record is there; everything else goes to ``store``, and our own writes drop the record
    they change. Capabilities (locks, user index, sweeping, scan) are ``store``'s own."""

    caches_reads = True

    def __init__(
        self,
        store: Store,
        source: InvalidationSource,
        *,
        entries: int = DEFAULT_ENTRIES,
        max_bytes: int = DEFAULT_BYTES,
    ) -> None:
        self.store = store
        self.source = source
        self.cache = LocalCache(entries, max_bytes)
        self.url = store.url
        for flag in _CAPABILITIES:  # the wrapped store's, per instance
            setattr(self, flag, getattr(store, flag))
        source.attach(self.cache)

    # -- reads -----------------------------------------------------------------------------
    def load(self, digest: str) -> Record | None:
        cache = self.cache
        if not self.source.sync():
            cache.stats.bypassed += 1
            return self.store.load(digest)
        record = cache.get(digest)
        return record if record is not None else self._fill(digest)

    def load_fresh(self, digest: str) -> Record | None:
        self.cache.stats.fresh += 1
        if not self.source.sync():
            return self.store.load(digest)
        return self._fill(digest)

    def _fill(self, digest: str) -> Record | None:
        ticket = self.cache.begin(digest)
        record = None
        try:
            record = self.store.load(digest)
        finally:  # a failed read ends its fill too (with nothing to keep)
            self.source.sync()  # apply what crossed the reply before deciding to keep it
            self.cache.finish(ticket, record)
        return record

    async def aload(self, digest: str) -> Record | None:
        cache = self.cache
        if not self.source.sync():
            cache.stats.bypassed += 1
            return await self.store.aload(digest)
        record = cache.get(digest)
        return record if record is not None else await self._afill(digest)

    async def aload_fresh(self, digest: str) -> Record | None:
        self.cache.stats.fresh += 1
        if not self.source.sync():
            return await self.store.aload(digest)
        return await self._afill(digest)

    async def _afill(self, digest: str) -> Record | None:
        ticket = self.cache.begin(digest)
        record = None
        try:
            record = await self.store.aload(digest)
        finally:
            self.source.sync()
            self.cache.finish(ticket, record)
        return record

    # -- writes: through the source when that is exact, else the store's and our copy goes --
    def save(self, write: Write) -> bool:
        if _mergeable(write):
            begun = self.cache.begin_write(write.digest)
            if begun is not None:
                ticket, base = begun
                record = None
                try:
                    version = self.source.save(self.store, write)
                    if version is None:  # the source cannot: the store's own way
                        return self.store.save(write)
                    if version == base.version + 1:  # merged into exactly our copy
                        record = Record(write.items_over(base.items), write.meta, version)
                    return version > 0
                finally:  # apply what arrived with the reply, then decide
                    self.source.sync()
                    self.cache.finish_write(ticket, record)
        try:
            return self.store.save(write)
        finally:  # even a failed save may have landed (a lost reply)
            self._dropped(write)

    async def asave(self, write: Write) -> bool:
        if _mergeable(write) and self.source.writes_through:
            begun = self.cache.begin_write(write.digest)
            if begun is not None:
                ticket, base = begun
                record = None
                try:  # the source's connection is a blocking one: off the event loop
                    version = await asyncio.to_thread(self.source.save, self.store, write)
                    if version is None:
                        return await self.store.asave(write)
                    if version == base.version + 1:
                        record = Record(write.items_over(base.items), write.meta, version)
                    return version > 0
                finally:
                    self.source.sync()
                    self.cache.finish_write(ticket, record)
        try:
            return await self.store.asave(write)
        finally:
            self._dropped(write)

    def save_limited(self, write: Write) -> list[str] | None:
        evicted: list[str] | None = None
        try:
            evicted = self.store.save_limited(write)
            return evicted
        finally:
            self._dropped(write)
            for digest in evicted or ():  # dead at once here; elsewhere by invalidation
                self.cache.invalidate(digest)

    async def asave_limited(self, write: Write) -> list[str] | None:
        evicted: list[str] | None = None
        try:
            evicted = await self.store.asave_limited(write)
            return evicted
        finally:
            self._dropped(write)
            for digest in evicted or ():
                self.cache.invalidate(digest)

    def _dropped(self, write: Write) -> None:
        self.cache.invalidate(write.digest)
        if write.rotated_from is not None:
            self.cache.invalidate(write.rotated_from)

    def delete(self, digest: str) -> None:
        try:
            self.store.delete(digest)
        finally:
            self.cache.invalidate(digest)

    async def adelete(self, digest: str) -> None:
        try:
            await self.store.adelete(digest)
        finally:
            self.cache.invalidate(digest)

    def touch(self, digest: str, last_seen: int, ttl: float) -> bool:
        try:
            return self.store.touch(digest, last_seen, ttl)
        finally:
            self.cache.invalidate(digest)

    async def atouch(self, digest: str, last_seen: int, ttl: float) -> bool:
        try:
            return await self.store.atouch(digest, last_seen, ttl)
        finally:
            self.cache.invalidate(digest)

    # -- capabilities: the store's own (the sessions they delete reach us as invalidations) --
    def user_sessions(self, user: str) -> list[SessionInfo]:
        return self.store.user_sessions(user)

    def revoke_user(self, user: str, *, keep: str | None = None) -> int:
        return self.store.revoke_user(user, keep=keep)

    def user_digests(self, user: str) -> list[str]:
        return self.store.user_digests(user)

    def revoke_handle(self, user: str, handle: str) -> bool:
        return self.store.revoke_handle(user, handle)

    async def auser_sessions(self, user: str) -> list[SessionInfo]:
        return await self.store.auser_sessions(user)

    async def arevoke_user(self, user: str, *, keep: str | None = None) -> int:
        return await self.store.arevoke_user(user, keep=keep)

    async def arevoke_handle(self, user: str, handle: str) -> bool:
        return await self.store.arevoke_handle(user, handle)

    # one-use challenges are never cached: straight to the store
    def put_challenge(self, key: str, value: str, ttl: float) -> None:
        self.store.put_challenge(key, value, ttl)

    def take_challenge(self, key: str) -> str | None:
        return self.store.take_challenge(key)

    async def aput_challenge(self, key: str, value: str, ttl: float) -> None:
        await self.store.aput_challenge(key, value, ttl)

    async def atake_challenge(self, key: str) -> str | None:
        return await self.store.atake_challenge(key)

    def lock(self, digest: str, *, ttl: float = 30.0, wait: float = 10.0) -> Any:
        return self.store.lock(digest, ttl=ttl, wait=wait)

    def alock(self, digest: str, *, ttl: float = 30.0, wait: float = 10.0) -> Any:
        return self.store.alock(digest, ttl=ttl, wait=wait)

    def delete_expired(self, progress: Callable[[int], None] | None = None) -> int:
        return self.store.delete_expired(progress)

    def scan(self) -> Iterator[RecordMeta]:
        return self.store.scan()

    def reseal(self, digest: str, pairs: Mapping[str, tuple[str, str]]) -> int:
        try:
            return self.store.reseal(digest, pairs)
        finally:  # a re-seal changes the stored texts: our copy (and theirs) goes
            self.cache.invalidate(digest)

    async def areseal(self, digest: str, pairs: Mapping[str, tuple[str, str]]) -> int:
        try:
            return await self.store.areseal(digest, pairs)
        finally:
            self.cache.invalidate(digest)

    def scan_digests(self) -> Iterator[str]:
        return self.store.scan_digests()

    def server_version(self) -> str | None:
        return self.store.server_version()

    def diagnostics(
        self, *, fix: bool = False, progress: Callable[[int], None] | None = None
    ) -> list[Finding]:
        return self.store.diagnostics(fix=fix, progress=progress)

    async def aserver_version(self) -> str | None:
        return await self.store.aserver_version()

    def create_schema(self) -> bool:
        return self.store.create_schema()

    def audit_sink(self) -> AuditSink | None:
        return self.store.audit_sink()

    def close(self) -> None:
        self.source.close()
        self.cache.flush("store closed")
        self.store.close()

    async def aclose(self) -> None:
        self.source.close()
        self.cache.flush("store closed")
        await self.store.aclose()

    def stats(self) -> dict[str, int]:
        """This process's counters, and what the cache holds now (``sessionkit stats``
        shows every process's: ``published_counters``)."""
        return self.cache.counters()

    def __repr__(self) -> str:
        return f"<CachingStore {mask_url(self.url)} over {type(self.store).__name__}>"


def _mergeable(write: Write) -> bool:
    """A write whose result the cache can compute from its copy: a plain merge (or
    replace) into an existing record, no rotation, no session limit, no key both set and
    removed."""
    return (
        not write.create and write.limit is None and write.rotated_from is None
        and write.removed.isdisjoint(write.items)
    )  # fmt: skip


# -- ?cache= on a store URL -------------------------------------------------------------------
_UNITS = {"": 1, "b": 1, "kb": 1024, "k": 1024, "mb": 1024**2, "m": 1024**2, "gb": 1024**3,
          "g": 1024**3}  # fmt: skip


def parse_cache_option(url: str, value: str) -> tuple[int, int] | None:
    """``cache=on`` (the defaults), ``off``, ``<entries>`` or ``<entries>,<bytes>`` (bytes
    may end in KB, MB or GB): the bounds, or ``None`` for off."""
    text = value.strip().lower()
    if text in ("off", "false", "no", "0"):
        return None
    if text in ("on", "true", "yes", "1", ""):
        return DEFAULT_ENTRIES, DEFAULT_BYTES
    count, _, size = text.partition(",")
    try:
        entries = int(count)
        number = size.rstrip("kmgb")
        max_bytes = DEFAULT_BYTES if not size else int(float(number) * _UNITS[size[len(number) :]])
    except (ValueError, KeyError):
        max_bytes = entries = 0
    if entries < 1 or max_bytes < 1:
        raise ConfigError(
            "store", f"{mask_url(url)!r}: cache must be on, off, <entries> or "
                     f"<entries>,<size> (e.g. 10000,32MB), not {value!r}",
        )  # fmt: skip
    return entries, max_bytes


def split_cache_option(url: str) -> tuple[str, str | None]:
    """``url`` without its ``cache=`` query option (the rest kept as written), and that
    option's last value."""
    from urllib.parse import parse_qsl, urlsplit, urlunsplit

    parts = urlsplit(url)
    kept, chosen = [], None
    for piece in parts.query.split("&"):
        pair = parse_qsl(piece, keep_blank_values=True)
        if pair and pair[0][0] == "cache":
            chosen = pair[0][1]
        elif piece:
            kept.append(piece)
    if chosen is None:
        return url, None
    return urlunsplit(parts._replace(query="&".join(kept))), chosen


def cached(store: Store, url: str, option: str, client: Any = None) -> Store:
    """``store`` behind a ``CachingStore`` as ``option`` (a ``cache=`` value) says, with the
    invalidation source its kind of store has. A store without one is refused: a cache
    nobody invalidates would serve logged-out sessions. ``client``: the sync redis-py
    client the store was given, if any (the source then connects as it does)."""
    bounds = parse_cache_option(url, option)
    if bounds is None:
        return store
    source = invalidation_source_for(store, url, client)
    return CachingStore(store, source, entries=bounds[0], max_bytes=bounds[1])


#: The counters ``total_counters`` adds up over processes.
SUMMED = (*(f.name for f in fields(CacheStats)), "entries", "bytes")


def published_counters(store: Store) -> list[dict[str, Any]] | None:
    """The cache counters every live process using ``store`` (its Redis server and
    prefix) has published, one dict per process (``host``, ``pid``, ``published``, and
    what ``CachingStore.stats()`` returns there): what ``sessionkit stats`` shows. An empty
    list when no process publishes; ``None`` when this kind of store has no cache."""
    from sessionkit.stores.fallback import FallbackStore

    while isinstance(store, CachingStore | FallbackStore):  # to the store they front
        store = store.store if isinstance(store, CachingStore) else store.primary
    try:
        from sessionkit.stores.redis import tracking as redis_tracking
    except ImportError:  # redis-py is not installed: no store a cache can front
        return None
    return redis_tracking.published(store)


def total_counters(processes: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``SUMMED`` counters added up, and the hit rate (hits over hits and misses;
    ``None`` before any read)."""
    total: dict[str, Any] = {name: sum(int(p.get(name, 0)) for p in processes) for name in SUMMED}
    total["hit_rate"] = hit_rate(total)
    return total


def hit_rate(counts: Mapping[str, Any]) -> float | None:
    """Hits over hits and misses, of one process's counters or a total (``None`` before
    any read)."""
    hits, misses = int(counts.get("hits", 0)), int(counts.get("misses", 0))
    return hits / (hits + misses) if hits + misses else None


def invalidation_source_for(store: Store, url: str, client: Any = None) -> InvalidationSource:
    from sessionkit.stores.redis import tracking as redis_tracking

    source = redis_tracking.source_for(store, client)
    if source is None:
        raise ConfigError(
            "store", f"{mask_url(url)!r}: cache= needs an invalidation source, and "
                     f"{type(store).__name__} has none (a Redis server or Sentinel does; a "
                     "Cluster does not, see docs/stores/cache.md)",
        )  # fmt: skip
    return source
