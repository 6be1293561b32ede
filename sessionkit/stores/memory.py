"""MemoryStore: sessions in this process's memory, bounded, for development and tests.

Bounded by ``max_sessions`` with least-recently-used eviction, so a flood of new sessions
cannot exhaust memory (Litestar #5085). One lock guards the map; every operation is a few
dictionary steps, so the async flavour calls straight through without a thread hop.
Sessions vanish with the process and are not shared between worker processes.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping

from sessionkit.audit import MemoryAuditSink
from sessionkit.errors import ConfigError
from sessionkit.ids import handle
from sessionkit.records import Record, RecordMeta, SessionInfo, Write
from sessionkit.stores.base import PollingLocks, Store, query_options, require_digests

#: How many locks may lapse unclaimed before ``_try_lock`` prunes the expired ones.
_LOCK_SWEEP = 256


class MemoryStore(PollingLocks, Store):
    supports_user_index = True
    supports_lock = True
    supports_sweep = True
    supports_scan = True
    supports_session_limit = True
    supports_reseal = True
    supports_challenges = True

    def __init__(
        self, max_sessions: int = 10_000, *, clock: Callable[[], float] = time.time
    ) -> None:
        if max_sessions < 1:
            raise ConfigError("max_sessions", "must be at least 1")
        self.max_sessions = max_sessions
        self.url = f"memory://?max_sessions={max_sessions}"
        self._clock = clock
        self._records: OrderedDict[str, tuple[Record, float]] = OrderedDict()
        self._users: dict[str, set[str]] = {}
        self._locks: dict[str, tuple[str, float]] = {}
        self._challenges: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._lock_sweep_at = _LOCK_SWEEP  # amortised: a sweep at most per doubling
        self._mutex = threading.Lock()

    @classmethod
    def from_url(cls, url: str, **options: object) -> MemoryStore:
        for name, value in query_options(url, {"max_sessions": int}).items():
            options.setdefault(name, value)
        return cls(**options)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self._records)

    def audit_sink(self) -> MemoryAuditSink:
        """The audit trail of this process (``audit="store"``), kept beside the sessions."""
        sink = self.__dict__.get("_audit")
        if sink is None:
            sink = self.__dict__.setdefault("_audit", MemoryAuditSink())
        return sink  # type: ignore[no-any-return]

    # -- protocol --------------------------------------------------------------------------
    def load(self, digest: str) -> Record | None:
        with self._mutex:
            entry = self._records.get(digest)
            if entry is None:
                return None
            if entry[1] <= self._clock():
                self._drop(digest)
                return None
            self._records.move_to_end(digest)
            return entry[0]

    def save(self, write: Write) -> bool:
        with self._mutex:
            return self._save_held(write, self._clock())

    def save_limited(self, write: Write) -> list[str] | None:
        """Count, write and evict under the one mutex every operation takes."""
        assert write.limit is not None and write.meta.user is not None
        now = self._clock()
        with self._mutex:
            skip = (write.digest, write.rotated_from)
            others = []
            for digest in self._users.get(write.meta.user, ()):
                record, expires = self._records[digest]
                if digest not in skip and expires > now:
                    others.append((record.meta.last_seen, digest))
            evicted = write.limit.evictions(others)
            if not self._save_held(write, now):
                return None
            for digest in evicted:
                self._drop(digest)
            return evicted

    async def asave_limited(self, write: Write) -> list[str] | None:
        return self.save_limited(write)

    def _save_held(self, write: Write, now: float) -> bool:
        """``save``; the caller holds the mutex."""
        entry = self._records.get(write.digest)
        if entry is not None and entry[1] <= now:
            self._drop(write.digest)
            entry = None
        if write.create:
            if entry is not None:
                return False
            if write.rotated_from is not None:
                old = self._records.get(write.rotated_from)
                if old is None or old[1] <= now:
                    return False
                self._drop(write.rotated_from)
            items = dict(write.items)
            version = 1
        else:
            if entry is None:
                return False
            current = entry[0]
            items = write.items_over(current.items)
            version = current.version + 1
            self._unindex(write.digest, current.meta.user)
        self._records[write.digest] = (Record(items, write.meta, version), now + write.ttl)
        self._records.move_to_end(write.digest)
        if write.meta.user is not None:
            self._users.setdefault(write.meta.user, set()).add(write.digest)
        while len(self._records) > self.max_sessions:
            oldest = next(iter(self._records))
            self._drop(oldest)
        return True

    def delete(self, digest: str) -> None:
        with self._mutex:
            self._drop(digest)

    def touch(self, digest: str, last_seen: int, ttl: float) -> bool:
        now = self._clock()
        with self._mutex:
            entry = self._records.get(digest)
            if entry is None or entry[1] <= now:
                return False
            record = entry[0]
            meta = record.meta._replace(last_seen=last_seen)
            self._records[digest] = (record._replace(meta=meta), now + ttl)
            self._records.move_to_end(digest)
            return True

    async def aload(self, digest: str) -> Record | None:
        return self.load(digest)

    async def asave(self, write: Write) -> bool:
        return self.save(write)

    async def adelete(self, digest: str) -> None:
        self.delete(digest)

    async def atouch(self, digest: str, last_seen: int, ttl: float) -> bool:
        return self.touch(digest, last_seen, ttl)

    # -- capabilities ----------------------------------------------------------------------
    def user_sessions(self, user: str) -> list[SessionInfo]:
        now = self._clock()
        with self._mutex:
            out = []
            for digest in sorted(self._users.get(user, ())):
                record, expires = self._records[digest]
                if expires > now:
                    out.append(SessionInfo.of(digest, record.meta))
            return out

    def user_digests(self, user: str) -> list[str]:
        with self._mutex:
            return sorted(self._users.get(user, ()))

    def revoke_user(self, user: str, *, keep: str | None = None) -> int:
        with self._mutex:
            doomed = [d for d in self._users.get(user, ()) if d != keep]
            for digest in doomed:
                self._drop(digest)
            return len(doomed)

    def revoke_handle(self, user: str, handle_: str) -> bool:
        with self._mutex:
            for digest in list(self._users.get(user, ())):
                if handle(digest) == handle_:
                    self._drop(digest)
                    return True
            return False

    async def auser_sessions(self, user: str) -> list[SessionInfo]:
        return self.user_sessions(user)

    async def arevoke_user(self, user: str, *, keep: str | None = None) -> int:
        return self.revoke_user(user, keep=keep)

    async def arevoke_handle(self, user: str, handle: str) -> bool:
        return self.revoke_handle(user, handle)

    def delete_expired(self, progress: Callable[[int], None] | None = None) -> int:
        now = self._clock()
        with self._mutex:
            doomed = [d for d, (_, expires) in self._records.items() if expires <= now]
            for digest in doomed:
                self._drop(digest)
        if progress is not None:
            progress(len(doomed))
        return len(doomed)

    def scan(self) -> Iterator[RecordMeta]:
        with self._mutex:
            metas = [record.meta for record, _ in self._records.values()]
        yield from metas

    def scan_digests(self) -> Iterator[str]:
        with self._mutex:
            digests = list(self._records)
        yield from digests

    def reseal(self, digest: str, pairs: Mapping[str, tuple[str, str]]) -> int:
        """Compare and replace under the one mutex every operation takes."""
        with self._mutex:
            entry = self._records.get(digest)
            if entry is None or entry[1] <= self._clock():
                return 0
            record, expires = entry
            items = record.items
            same = {k: new for k, (old, new) in pairs.items() if items.get(k) == old}
            if same:
                self._records[digest] = (record._replace(items={**items, **same}), expires)
            return len(same)

    async def areseal(self, digest: str, pairs: Mapping[str, tuple[str, str]]) -> int:
        return self.reseal(digest, pairs)

    # -- one-use challenges (DBSC) ---------------------------------------------------------
    def put_challenge(self, key: str, value: str, ttl: float) -> None:
        require_digests("MemoryStore.put_challenge", key)
        now = self._clock()
        with self._mutex:
            challenges = self._challenges
            challenges[key] = (value, now + ttl)
            challenges.move_to_end(key)
            while len(challenges) > self.max_sessions:  # bounded like the sessions
                challenges.popitem(last=False)

    def take_challenge(self, key: str) -> str | None:
        require_digests("MemoryStore.take_challenge", key)
        with self._mutex:  # the mutex makes the read and the removal one step
            entry = self._challenges.pop(key, None)
        if entry is None or entry[1] <= self._clock():
            return None
        return entry[0]

    async def aput_challenge(self, key: str, value: str, ttl: float) -> None:
        self.put_challenge(key, value, ttl)

    async def atake_challenge(self, key: str) -> str | None:
        return self.take_challenge(key)

    def _try_lock(self, digest: str, token: str, ttl: float) -> bool:
        now = self._clock()
        with self._mutex:
            held = self._locks.get(digest)
            if held is not None and held[1] > now:
                return False
            locks = self._locks
            if len(locks) >= self._lock_sweep_at:  # holders that died never unlock: prune
                for key in [k for k, (_, until) in locks.items() if until <= now]:
                    del locks[key]
                self._lock_sweep_at = max(_LOCK_SWEEP, 2 * len(locks))
            locks[digest] = (token, now + ttl)
            return True

    def _unlock(self, digest: str, token: str) -> None:
        with self._mutex:
            held = self._locks.get(digest)
            if held is not None and held[0] == token:
                del self._locks[digest]

    # -- internals (caller holds the mutex) ------------------------------------------------
    def _drop(self, digest: str) -> None:
        entry = self._records.pop(digest, None)
        if entry is not None:
            self._unindex(digest, entry[0].meta.user)

    def _unindex(self, digest: str, user: str | None) -> None:
        if user is not None:
            members = self._users.get(user)
            if members is not None:
                members.discard(digest)
                if not members:
                    del self._users[user]
