"""LocalCache on its own: the pending-fill protocol, flushes, bounds and LRU order (the
coherence tests against a real Redis are in test_cache_redis.py)."""

from __future__ import annotations

import pytest

from sessionkit.errors import ConfigError
from sessionkit.stores.base import Record, RecordMeta
from sessionkit.stores.cache import (
    DEFAULT_BYTES,
    DEFAULT_ENTRIES,
    LocalCache,
    parse_cache_option,
    record_size,
    split_cache_option,
)


def record(text: str = "1") -> Record:
    return Record({"a": text}, RecordMeta(1, 1), 1)


def fill(cache: LocalCache, digest: str, value: Record) -> bool:
    return cache.finish(cache.begin(digest), value)


def test_a_fill_is_kept_unless_an_invalidation_or_a_flush_crossed_it() -> None:
    cache = LocalCache()
    assert fill(cache, "a", record()) and cache.get("a") == record()
    ticket = cache.begin("b")
    cache.invalidate("b")
    assert not cache.finish(ticket, record()) and cache.get("b") is None
    ticket = cache.begin("c")
    cache.flush("test")
    assert not cache.finish(ticket, record()) and cache.get("c") is None
    assert cache.stats.discarded == 2


def test_an_invalidation_of_another_digest_does_not_poison() -> None:
    cache = LocalCache()
    ticket = cache.begin("a")
    cache.invalidate("b")
    assert cache.finish(ticket, record())


def test_two_fills_in_flight_for_one_digest() -> None:
    cache = LocalCache()
    first, second = cache.begin("a"), cache.begin("a")
    cache.invalidate("a")  # poisons both
    third = cache.begin("a")  # began after the invalidation: its read is newer
    assert not cache.finish(first, record("old"))
    assert cache.finish(third, record("new"))
    assert not cache.finish(second, record("old"))
    assert cache.get("a") == record("new")


def test_nothing_kept_for_a_missing_record_or_a_flushed_cache() -> None:
    cache = LocalCache()
    assert not fill(cache, "a", None)  # type: ignore[arg-type]
    fill(cache, "b", record())
    cache.flush("test")
    assert len(cache) == 0 and cache.bytes == 0


def test_bounds_by_entries_and_bytes_drop_the_least_recently_used() -> None:
    cache = LocalCache(entries=3)
    for name in "abc":
        fill(cache, name, record())
    cache.get("a")  # now the most recently used
    fill(cache, "d", record())
    assert cache.get("b") is None and cache.get("a") is not None and len(cache) == 3
    size = record_size(record())
    small = LocalCache(entries=100, max_bytes=2 * size)
    for name in "abc":
        fill(small, name, record())
    assert len(small) == 2 and small.bytes <= 2 * size and small.stats.evictions == 1
    assert not fill(LocalCache(max_bytes=size - 1), "x", record())  # too big to keep at all


def test_cache_option_values() -> None:
    assert parse_cache_option("x", "on") == (DEFAULT_ENTRIES, DEFAULT_BYTES)
    assert parse_cache_option("x", "off") is None
    assert parse_cache_option("x", "500") == (500, DEFAULT_BYTES)
    assert parse_cache_option("x", "500,64KB") == (500, 64 * 1024)
    assert parse_cache_option("x", "500,1.5mb") == (500, int(1.5 * 1024 * 1024))
    for bad in ("many", "-1", "5,lots", "5,0"):
        with pytest.raises(ConfigError):
            parse_cache_option("x", bad)
    url = "redis://h/0?prefix=a%3Ab:&cache=on&socket_timeout=1"
    assert split_cache_option(url) == ("redis://h/0?prefix=a%3Ab:&socket_timeout=1", "on")
    assert split_cache_option("redis://h/0") == ("redis://h/0", None)
