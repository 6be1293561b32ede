"""What the adapters' fresh-route tests share: a real Redis behind the local cache.

Two ways to tell a fresh read from a cached one:

- ``cached_redis``: ``?cache=on``, as deployed. Redis announces every write (broadcast
  tracking), so a cached read is never stale here; ``store.stats()`` tells the reads apart
  (``fresh`` counts the reads that went past the cache, ``hits`` the ones it served).
- ``silent_redis``: the same cache with a source that hears nothing, so a change made in
  Redis behind its back (``edit_behind``) stays in the cached copy: a route that answers
  the new value read Redis itself.
"""

from __future__ import annotations

import secrets

import redis

from sessionkit.stores import open_store
from sessionkit.stores.base import Record
from sessionkit.stores.cache import CachingStore, InvalidationSource, LocalCache
from sessionkit.stores.memory import MemoryStore
from sessionkit.stores.redis import RedisStore


class Silent(InvalidationSource):
    """Hears nothing: the cache keeps serving what it read."""

    def attach(self, cache: LocalCache) -> None:
        pass

    def sync(self) -> bool:
        return True


class Counting(MemoryStore):
    """A store without a cache that counts its reads."""

    def __init__(self) -> None:
        super().__init__()
        self.loads = 0

    def load(self, digest: str) -> Record | None:
        self.loads += 1
        return super().load(digest)

    async def aload(self, digest: str) -> Record | None:
        return self.load(digest)


def prefix() -> str:
    return f"fresh{secrets.token_hex(4)}:"


def cached_redis(port: int) -> CachingStore:
    store = open_store(f"redis://127.0.0.1:{port}/0?prefix={prefix()}&cache=on")
    assert isinstance(store, CachingStore)
    assert store.source.wait_live(5.0)
    return store


def silent_redis(port: int) -> CachingStore:
    inner = RedisStore.from_url(f"redis://127.0.0.1:{port}/0", prefix=prefix())
    return CachingStore(inner, Silent())


def edit_behind(store: CachingStore, port: int, name: str, value: str) -> None:
    """Set session key ``name`` to ``value`` (JSON) in the one record under ``store``'s
    prefix, straight in Redis (``redis-cli HSET``)."""
    inner = store.store
    assert isinstance(inner, RedisStore)
    raw = redis.Redis(port=port)
    try:
        keys = raw.keys(f"{inner.prefix}{{*")  # the session hashes (not locks, indexes)
        assert len(keys) == 1, keys
        raw.hset(keys[0], f"d:{name}", value)
    finally:
        raw.close()


def delete_behind(store: CachingStore, port: int) -> None:
    """Delete the one session under ``store``'s prefix straight in Redis (``redis-cli
    DEL``: what a logout elsewhere does, unannounced to a silent cache)."""
    inner = store.store
    assert isinstance(inner, RedisStore)
    raw = redis.Redis(port=port)
    try:
        (key,) = raw.keys(f"{inner.prefix}{{*")
        assert raw.delete(key) == 1
    finally:
        raw.close()


def counts(store: CachingStore) -> dict[str, int]:
    stats = store.stats()
    return {name: stats[name] for name in ("hits", "misses", "fresh")}


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before[name] for name in before}
