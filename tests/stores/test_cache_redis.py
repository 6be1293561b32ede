"""The local cache in front of a real Redis: coherence across processes and after faults,
round trips, bounded memory, and the store contract with the cache in the way."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from sessionkit import SessionConfig, SessionEngine
from sessionkit.cli import build_group
from sessionkit.errors import ConfigError
from sessionkit.ids import digest, new_id
from sessionkit.stores import open_store
from sessionkit.stores.base import Record, RecordMeta, Store, Write
from sessionkit.stores.cache import CachingStore, InvalidationSource, LocalCache
from sessionkit.stores.fallback import FallbackStore
from sessionkit.stores.memory import MemoryStore
from sessionkit.stores.redis import RedisStore
from sessionkit.stores.redis.tracking import RedisTracking
from sessionkit.testing import (
    Browser,
    ChallengeConformance,
    FakeClock,
    LockConformance,
    ResealConformance,
    ScanConformance,
    ServerStoreConformance,
    SessionLimitConformance,
    UserIndexConformance,
)
from tests import servers
from tests.stores.test_redis import round_trips, unique_prefix
from tests.stores.test_redis_tls import tls_redis

KEY = "cache-tests-key-0123456789-abcdefghijklmnopqrstuvwxyz"


def cached_store(
    port: int, prefix: str | None = None, bounds: str = "1000",
    stats: tuple[float, float] | None = None,
) -> CachingStore:  # fmt: skip
    """``stats``: the source's ``stats_interval`` and ``stats_expiry`` (the defaults: 5 s
    and 15 s)."""
    store = open_store(f"redis://127.0.0.1:{port}/0?prefix={prefix or unique_prefix()}"
                       f"&cache={bounds}&socket_timeout=1")  # fmt: skip
    assert isinstance(store, CachingStore)
    if stats is not None:
        assert isinstance(store.source, RedisTracking)
        store.source.stats_interval, store.source.stats_expiry = stats
    assert store.source.wait_live(5.0)
    return store


@pytest.fixture
def store(redis_server: servers.Server) -> Iterator[CachingStore]:
    store = cached_store(redis_server.port)
    yield store
    store.close()


@pytest.fixture
def raw(redis_server: servers.Server) -> Iterator[redis.Redis]:
    client = redis.Redis(port=redis_server.port)
    yield client
    client.close()


def meta() -> RecordMeta:
    now = int(time.time())
    return RecordMeta(created=now, last_seen=now)


def create(store: Store, **items: str) -> str:
    key = digest(new_id())
    assert store.save(Write(key, items, frozenset(), meta(), 60.0, create=True, replace=True))
    return key


def warm(store: CachingStore, key: str) -> Record:
    """Read ``key`` until it is served from the cache."""
    hits = store.cache.stats.hits
    for _ in range(200):
        record = store.load(key)
        if store.cache.stats.hits > hits:
            assert record is not None
            return record
        time.sleep(0.005)
    raise AssertionError("never cached")


def redis_key(store: CachingStore, key: str) -> str:
    inner = store.store
    assert isinstance(inner, RedisStore)
    return inner.key(key)


def sent(round_trips: list[str]) -> list[str]:
    """The round trips to Redis but the invalidation connection's health checks."""
    return [name for name in round_trips if name != "PING"]


def unpublished(store: CachingStore) -> CachingStore:
    """``store`` publishing no counters for ``sessionkit stats``: that round trip is the
    listener thread's, every few seconds, never a request's, and a test counting a
    request's round trips would see it."""
    assert isinstance(store.source, RedisTracking)
    store.source.stats_interval = None
    return store


__all__ = ["round_trips", "tls_redis"]  # fixtures, from the Redis tests


# -- hits and round trips -----------------------------------------------------------------
def test_a_hit_costs_no_round_trip(store: CachingStore, round_trips: list[str]) -> None:
    unpublished(store)
    key = create(store, a="1")
    warm(store, key)
    del round_trips[:]
    for _ in range(100):
        record = store.load(key)
        assert record is not None and record.items == {"a": "1"}
    assert sent(round_trips) == []


def test_a_changing_request_on_a_hit_costs_one_round_trip(
    store: CachingStore, round_trips: list[str]
) -> None:
    unpublished(store)
    engine = SessionEngine(SessionConfig(secret_key=KEY), store=store)
    browser = Browser(engine)
    browser.visit(lambda s: s.__setitem__("n", 1))
    browser.visit(lambda s: s["n"])  # the miss after our own write
    browser.visit(lambda s: s["n"])
    assert store.cache.stats.hits >= 1
    del round_trips[:]
    for n in range(2, 7):  # a hit, then the save, written through: the next one hits too
        browser.visit(lambda s: s.__setitem__("n", s["n"] + 1))
        assert sent(round_trips) == ["MULTI"], n  # one packet: MULTI, EVALSHA, HDEL, EXEC
        del round_trips[:]
    assert browser.visit(lambda s: s["n"]).result == 6
    assert sent(round_trips) == []
    assert store.cache.stats.written == 5


def test_async_hits(store: CachingStore) -> None:
    key = create(store, a="1")

    async def main() -> list[Record | None]:
        try:
            got = [await store.aload(key) for _ in range(20)]
            await store.asave(Write(key, {"a": "2"}, frozenset(), meta(), 60.0))
            got.append(await store.aload(key))
            return got
        finally:
            await store.store.aclose()

    got = asyncio.run(main())
    assert store.cache.stats.hits >= 18
    assert got[-1] is not None and got[-1].items == {"a": "2"}


def test_under_trio(store: CachingStore, raw: redis.Redis) -> None:
    """Nothing in the cache needs asyncio: a hit awaits nothing, the invalidation socket is
    drained without an event loop, misses go wherever the wrapped store goes (here the sync
    store, in trio's worker threads)."""
    import trio

    key = create(store, a="1")
    warm(store, key)

    async def main() -> tuple[Record | None, Record | None]:
        hit = await store.aload(key)
        raw.hset(redis_key(store, key), "d:a", "2")
        after = await trio.to_thread.run_sync(store.load, key)
        return hit, after

    hit, after = trio.run(main)
    assert hit is not None and hit.items == {"a": "1"}
    assert after is not None and after.items == {"a": "2"}


# -- coherence across processes and behind the cache's back -------------------------------
SECOND_PROCESS = """
import sys
from sessionkit.stores import open_store
from sessionkit.stores.base import RecordMeta, Write
store = open_store(sys.argv[1])
action, key = sys.argv[2], sys.argv[3]
if action == "save":
    store.save(Write(key, {"a": '"other"'}, frozenset(), RecordMeta(1, 1), 60.0))
else:
    store.delete(key)
store.close()
"""


@pytest.mark.parametrize("action", ["save", "delete"])
def test_another_process_writes_and_the_next_read_sees_it(
    redis_server: servers.Server, action: str
) -> None:
    prefix = unique_prefix()
    store = cached_store(redis_server.port, prefix)
    try:
        key = create(store, a='"mine"')
        warm(store, key)
        url = f"redis://127.0.0.1:{redis_server.port}/0?prefix={prefix}"
        subprocess.run([sys.executable, "-c", textwrap.dedent(SECOND_PROCESS), url, action,
                        key], check=True, timeout=60)  # fmt: skip
        record = store.load(key)  # at once: no sleep, no retry
        if action == "save":
            assert record is not None and record.items["a"] == '"other"'
        else:
            assert record is None
    finally:
        store.close()


@pytest.mark.parametrize("how", ["hset", "del", "expire", "flushdb"])
def test_redis_cli_behind_the_cache(
    store: CachingStore, redis_server: servers.Server, how: str
) -> None:
    key = create(store, a="1")
    warm(store, key)
    name = redis_key(store, key)
    argv = {
        "hset": ["HSET", name, "d:a", "2"],
        "del": ["DEL", name],
        "expire": ["PEXPIRE", name, "1"],
        "flushdb": ["FLUSHDB"],
    }[how]
    subprocess.run(["redis-cli", "-p", str(redis_server.port), *argv], check=True,
                   capture_output=True, timeout=30)  # fmt: skip
    if how == "expire":
        time.sleep(0.05)  # Redis expires the key (lazily or actively) and says so
    if how == "flushdb":  # Redis 7.0 may send a flush's message a few ms after its reply
        deadline = time.monotonic() + 1.0
        while store.cache.stats.flushes == 0 and time.monotonic() < deadline:
            store.source.sync()
            time.sleep(0.001)
    record = store.load(key)
    if how == "hset":
        assert record is not None and record.items == {"a": "2"}
    else:
        assert record is None


def test_killing_the_invalidation_connection(store: CachingStore, raw: redis.Redis) -> None:
    source = store.source
    assert isinstance(source, RedisTracking)
    key = create(store, a="1")
    warm(store, key)
    raw.client_kill_filter(_id=str(source.client_id))
    raw.hset(redis_key(store, key), "d:a", "2")  # a change nobody will tell us about
    record = store.load(key)
    assert record is not None and record.items == {"a": "2"}
    assert source.wait_live(5.0) and source.connects == 2  # back, with tracking on again
    assert store.cache.stats.flushes >= 1  # (the listener may still be flushing before that)
    warm(store, key)
    raw.hset(redis_key(store, key), "d:a", "3")
    assert store.load(key).items == {"a": "3"}  # type: ignore[union-attr]


def test_a_restarted_redis(clock: FakeClock) -> None:
    server = servers.redis_server(name="redis-cache-restart")
    try:
        store = cached_store(server.port)
        key = create(store, a="1")
        warm(store, key)
        server.stop()
        server.start()
        assert store.load(key) is None  # the restart lost it (no persistence): not served
        raw = redis.Redis(port=server.port)
        key = create(store, a="1")
        assert store.source.wait_live(5.0)
        warm(store, key)
        raw.hset(redis_key(store, key), "d:a", "2")
        assert store.load(key).items == {"a": "2"}  # type: ignore[union-attr]
        raw.close()
        store.close()
    finally:
        server.close()


def test_an_invalidation_that_crosses_a_read_poisons_its_fill(
    redis_server: servers.Server, raw: redis.Redis
) -> None:
    """The documented race: the read's reply is old, the invalidation for a write that
    came right after it arrives before the reply is handled. The old record is returned
    (it was current when read) but never kept."""

    class Crossing(RedisStore):
        def load(self, digest_: str) -> Record | None:
            record = super().load(digest_)
            raw.hset(self.key(digest_), "d:a", "2")  # lands after our read
            time.sleep(0.02)  # ... and its invalidation reaches us before we go on
            return record

    prefix = unique_prefix()
    inner = Crossing.from_url(f"redis://127.0.0.1:{redis_server.port}/0", prefix=prefix)
    source = RedisTracking.for_client(redis.Redis(port=redis_server.port), prefix)
    store = CachingStore(inner, source)
    try:
        assert source.wait_live()
        key = create(store, a="1")
        assert store.load(key).items == {"a": "1"}  # type: ignore[union-attr]
        assert store.cache.stats.discarded == 1 and len(store.cache) == 0
    finally:
        store.close()


def test_default_tracking_mode_forgets_a_key_after_our_own_noloop_write(
    redis_server: servers.Server, raw: redis.Redis
) -> None:
    """Why the source uses broadcast mode: with REDIRECT ... NOLOOP, a connection that
    writes a key it tracks stops tracking it, so a record written through after our own
    save would never be invalidated (Redis 7.0)."""
    import redis.connection

    connection: Any = redis.connection.Connection
    listener, data = (connection(port=redis_server.port, protocol=2) for _ in range(2))
    try:
        listener.send_command("CLIENT", "ID")
        listener_id = listener.read_response()
        listener.send_command("SUBSCRIBE", "__redis__:invalidate")
        listener.read_response()
        data.send_command("CLIENT", "TRACKING", "ON", "REDIRECT", listener_id, "NOLOOP")
        data.read_response()
        raw.set("noloop-probe", "1")
        data.send_command("GET", "noloop-probe")
        data.read_response()  # tracked now
        data.send_command("SET", "noloop-probe", "2")
        data.read_response()  # our own write: no message (NOLOOP), and no longer tracked
        raw.set("noloop-probe", "3")  # another client's write ...
        time.sleep(0.05)
        assert not listener.can_read(timeout=0)  # ... is never announced
    finally:
        listener.disconnect()
        data.disconnect()


def test_threads_never_read_what_another_process_replaced(
    store: CachingStore, redis_server: servers.Server
) -> None:
    import threading

    key = create(store, n="0")
    writer = RedisStore.from_url(f"redis://127.0.0.1:{redis_server.port}/0",
                                 prefix=store.store.prefix)  # type: ignore[attr-defined]  # fmt: skip
    done = threading.Event()
    stale: list[tuple[int, int]] = []
    latest = [0]

    def reader() -> None:
        while not done.is_set():
            floor = latest[0]  # written before the save returned: the next read must see it
            record = store.load(key)
            assert record is not None
            if int(record.items["n"]) < floor:
                stale.append((int(record.items["n"]), floor))

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for thread in threads:
        thread.start()
    for n in range(1, 201):
        writer.save(Write(key, {"n": str(n)}, frozenset(), meta(), 60.0))
        latest[0] = n
    done.set()
    for thread in threads:
        thread.join()
    writer.close()
    assert stale == []
    assert store.cache.stats.hits > 0


def test_a_forked_child_never_reads_its_parents_invalidations(
    store: CachingStore, raw: redis.Redis
) -> None:
    import multiprocessing

    key = create(store, a="1")
    warm(store, key)
    name = redis_key(store, key)

    def child(queue: Any) -> None:
        raw.hset(name, "d:a", "2")  # (the child's copy of the parent's cache has a=1)
        record = store.load(key)
        live = store.source.wait_live(5.0)
        raw.hset(name, "d:a", "3")
        again = store.load(key)
        queue.put((record.items["a"] if record else None, live,
                   again.items["a"] if again else None, store.stats()["hits"]))  # fmt: skip

    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    process = context.Process(target=child, args=(queue,))
    process.start()
    got = queue.get(timeout=30)
    process.join(timeout=30)
    assert store.stats()["hits"] >= 1  # the parent's, which the child publishes not as its own
    assert got == ("2", True, "3", 0)
    assert store.load(key).items == {"a": "3"}  # type: ignore[union-attr]  # the parent's own


def test_behind_sentinel(redis_server: servers.Server, raw: redis.Redis) -> None:
    from tests.stores.test_redis_sentinel import sentinel_server

    sentinel = sentinel_server(redis_server.port)
    try:
        url = f"redis+sentinel://127.0.0.1:{sentinel.port}/sessions/0?prefix={unique_prefix()}"
        store = open_store(url + "&cache=on")
        assert isinstance(store, CachingStore) and store.source.wait_live(5.0)
        key = create(store, a="1")
        warm(store, key)
        raw.hset(redis_key(store, key), "d:a", "2")
        assert store.load(key).items == {"a": "2"}  # type: ignore[union-attr]
        store.close()
    finally:
        sentinel.close()


# -- fresh reads ---------------------------------------------------------------------------
class Silent(InvalidationSource):
    """A source that never hears anything: the cache then serves what it has."""

    def attach(self, cache: LocalCache) -> None:
        pass

    def sync(self) -> bool:
        return True


def test_a_fresh_read_goes_past_the_cache(redis_server: servers.Server, raw: redis.Redis) -> None:
    inner = RedisStore.from_url(f"redis://127.0.0.1:{redis_server.port}/0",
                                prefix=unique_prefix())  # fmt: skip
    store = CachingStore(inner, Silent())
    engine = SessionEngine(SessionConfig(secret_key=KEY), store=store)
    browser = Browser(engine)
    browser.visit(lambda s: s.__setitem__("role", "admin"))
    browser.visit(lambda s: s["role"])  # cached now
    cookie = browser.cookie_header
    (name,) = [k.decode() if isinstance(k, bytes) else k for k in raw.keys(f"{inner.prefix}*")]
    raw.hset(name, "d:role", '"user"')  # unannounced (the Silent source)
    stale = engine.open(cookie, browser.client)["role"]
    assert stale == "admin"  # the copy a silent source leaves, as this test intends
    assert engine.open(cookie, browser.client, fresh=True)["role"] == "user"
    session = engine.open(cookie, browser.client)
    assert engine.require_fresh(session) and session["role"] == "user"
    assert engine.require_fresh(session)  # loaded fresh: still true
    cached = engine.open(cookie, browser.client)
    assert cached["role"] == "user"  # (the fresh read refilled the cache)
    assert not engine.require_fresh(cached)  # loaded from the cache: too late, and it says so
    assert engine.require_fresh(engine.open(None, browser.client))  # no session: nothing stale

    async def afresh() -> object:
        try:
            late = engine.open(cookie, browser.client, fresh=True)
            await engine.aload(late)
            return late["role"]
        finally:
            await inner.aclose()  # on the loop its async connections belong to

    raw.hset(name, "d:role", '"guest"')  # unannounced again
    assert engine.open(cookie, browser.client)["role"] == "user"  # the cache's copy
    assert asyncio.run(afresh()) == "guest"
    inner.close()


# -- bounds --------------------------------------------------------------------------------
def test_memory_stays_within_the_bound_under_a_flood(redis_server: servers.Server) -> None:
    import gc
    import tracemalloc

    store = cached_store(redis_server.port, bounds="200,256KB")
    try:
        keys = [create(store, a='"' + "x" * 300 + '"', b="2") for _ in range(1500)]
        gc.collect()  # what earlier tests left behind is not ours to count
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        peak_entries = peak_bytes = 0
        for key in keys:
            store.load(key)
            peak_entries = max(peak_entries, len(store.cache))
            peak_bytes = max(peak_bytes, store.cache.bytes)
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        assert peak_entries <= 200 and peak_bytes <= 256 * 1024
        assert store.cache.stats.evictions >= 1500 - 200
        grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
        # what the records really take is within the estimate the bound counts
        assert grown <= 256 * 1024 + 128 * 1024, grown  # allocator noise under pytest -n
    finally:
        store.close()


def test_a_hit_never_returns_more_than_one_store_round_trip_old_after_own_writes(
    store: CachingStore,
) -> None:
    key = create(store, a="1")
    warm(store, key)
    store.save(Write(key, {"b": "2"}, frozenset(), meta(), 60.0))
    assert store.load(key).items == {"a": "1", "b": "2"}  # type: ignore[union-attr]
    seen = int(time.time()) + 5  # (once: the clock may tick a second in between)
    store.touch(key, seen, 60.0)
    assert store.load(key).meta.last_seen == seen  # type: ignore[union-attr]
    store.delete(key)
    assert store.load(key) is None


# -- configuration -------------------------------------------------------------------------
def test_cache_option(redis_server: servers.Server, redis_cluster: list[servers.Server]) -> None:
    base = f"redis://127.0.0.1:{redis_server.port}/0?prefix=opt:"
    plain = open_store(base + "&cache=off")
    assert isinstance(plain, RedisStore)
    on = open_store(base + "&cache=on")
    assert isinstance(on, CachingStore) and on.cache.max_entries == 10_000
    assert on.url == base and on.supports_lock and on.supports_user_index
    sized = open_store(base + "&cache=500,2MB")
    assert isinstance(sized, CachingStore)
    assert (sized.cache.max_entries, sized.cache.max_bytes) == (500, 2 * 1024 * 1024)
    for bad in ("lots", "0,1MB", "10,1XB", "-5"):
        with pytest.raises(ConfigError, match="cache must be"):
            open_store(base + f"&cache={bad}")
    nodes = ",".join(f"127.0.0.1:{n.port}" for n in redis_cluster)
    with pytest.raises(ConfigError, match="Cluster"):
        open_store(f"redis+cluster://{nodes}?cache=on")
    with pytest.raises(ConfigError, match="invalidation source"):
        open_store("memory://?cache=on")
    for each in (plain, on, sized):
        each.close()


# -- the store contract, with the cache in the way -----------------------------------------
class TestCachedRedisConformance(
    ServerStoreConformance,
    ChallengeConformance,
    UserIndexConformance,
    LockConformance,
    ScanConformance,
    ResealConformance,
    SessionLimitConformance,
):
    @pytest.fixture(autouse=True)
    def _server(self, redis_server: servers.Server) -> None:
        self.port = redis_server.port

    def make_store(self, clock: FakeClock) -> Any:
        return cached_store(self.port)


def test_over_tls(tls_redis: tuple[int, Path]) -> None:
    """rediss://: the invalidation connection uses the store's TLS settings (and redis-py's
    own readiness check rather than a poll of the raw socket)."""
    port, ca = tls_redis
    url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca}&prefix={unique_prefix()}"
    store = open_store(url + "&cache=on")
    assert isinstance(store, CachingStore) and store.source.wait_live(5.0)
    key = create(store, a="1")
    warm(store, key)
    other = open_store(url)
    other.save(Write(key, {"a": "2"}, frozenset(), meta(), 60.0))
    assert store.load(key).items == {"a": "2"}  # type: ignore[union-attr]
    other.close()
    store.close()


# -- max_sessions_per_user ---------------------------------------------------------------
def test_an_evicted_session_is_dead_in_every_local_cache(redis_server: servers.Server) -> None:
    """A login on one process evicts a session another process has cached: that process's
    next read of it is anonymous (the eviction deletes the key; tracking invalidates it)."""
    prefix = unique_prefix()
    here, there = cached_store(redis_server.port, prefix), cached_store(redis_server.port, prefix)
    try:
        config = SessionConfig(secret_key=KEY, store=here, max_sessions_per_user=1)
        engine_here = SessionEngine(config)
        engine_there = SessionEngine(config.replace(store=there))
        laptop = Browser(engine_there)
        laptop.visit(lambda s: s.bind_user("alice"))
        assert laptop.visit(lambda s: s.user_id).result == "alice"  # cached there now
        Browser(engine_here).visit(lambda s: s.bind_user("alice"))  # evicts the laptop's
        assert laptop.visit(lambda s: s.user_id).result is None
        assert len(here.user_sessions("alice")) == 1
    finally:
        here.close()
        there.close()


# -- the counters `sessionkit stats` shows ---------------------------------------------------
PUBLISHER = """
import json, sys, time
from sessionkit.ids import digest, new_id
from sessionkit.stores import open_store
from sessionkit.stores.base import RecordMeta, Write
store = open_store(sys.argv[1])
store.source.stats_interval, store.source.stats_expiry = 0.02, float(sys.argv[2])
assert store.source.wait_live(10.0)
key, now = digest(new_id()), int(time.time())
store.save(Write(key, {"a": "1"}, frozenset(), RecordMeta(now, now), 60.0, create=True))
while store.stats()["hits"] < 7:
    store.load(key)
for _ in range(3):
    store.load(digest(new_id()))  # misses: no such session
print(json.dumps(store.stats()), flush=True)
sys.stdin.read()  # its listener thread publishes until the test is done with it
"""


def stats_command(url: str, *options: str) -> str:
    """``sessionkit stats URL`` as an operator runs it: another process's view (the
    command's store makes no cache of its own)."""
    result = CliRunner().invoke(build_group(), ["stats", url, *options])
    assert result.exit_code == 0, result.output
    return result.output


def cache_rows(url: str) -> dict[int, dict[str, Any]]:
    """The published processes, by pid (one host here)."""
    report = json.loads(stats_command(url, "--json"))
    return {row["pid"]: row for row in report["caches"]["processes"]}


def eventually(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll ``check`` (the listener threads publish in the background) until it holds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_sessionkit_stats_shows_each_live_processs_cache(
    redis_server: servers.Server, raw: redis.Redis
) -> None:
    prefix = unique_prefix()
    url = f"redis://127.0.0.1:{redis_server.port}/0?prefix={prefix}"
    assert "local caches: no process is publishing" in stats_command(url)
    assert cache_rows(url) == {}
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(PUBLISHER), url + "&cache=on", "0.5"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    here = cached_store(redis_server.port, prefix, stats=(0.02, 60.0))
    try:
        assert child.stdout is not None
        theirs = json.loads(child.stdout.readline())
        key = create(here, a="1")
        warm(here, key)
        here.load(digest(new_id()))  # a miss
        ours = here.stats()
        expected = {child.pid: theirs, os.getpid(): ours}

        def published_what_they_counted() -> bool:
            rows = cache_rows(url)
            return rows.keys() == expected.keys() and all(
                (rows[pid]["hits"], rows[pid]["misses"]) == (c["hits"], c["misses"])
                for pid, c in expected.items()
            )

        eventually(published_what_they_counted, "both processes publish their counters")
        # the app's own store as the adapters' commands get it: cached, behind a fallback
        apps = FallbackStore(open_store(url + "&cache=on"), MemoryStore())
        result = CliRunner().invoke(build_group(lambda: apps), ["stats", "--json"])
        shown = json.loads(result.output)["caches"]["processes"]
        assert {row["pid"] for row in shown} == expected.keys()
        text = stats_command(url)
        assert "local caches: 2 processes publishing" in text
        for pid, counts in expected.items():
            (line,) = [line for line in text.splitlines() if f" pid {pid} " in line]
            assert line.split()[3:5] == [str(counts["hits"]), str(counts["misses"])], text
        hits = theirs["hits"] + ours["hits"]
        misses = theirs["misses"] + ours["misses"]
        (total,) = [line.split() for line in text.splitlines() if line.split()[0] == "total"]
        assert total[1:4] == [str(hits), str(misses), f"{hits / (hits + misses):.1%}"], text
        report = json.loads(stats_command(url, "--json"))["caches"]["total"]
        assert (report["hits"], report["misses"]) == (hits, misses)
        assert report["hit_rate"] == hits / (hits + misses)

        field = f"{socket.gethostname()}:{child.pid}:1"
        assert raw.hexists(f"{prefix}cache:stats", field)
        child.kill()  # it stops publishing without a word (a crash, an OOM kill)
        child.wait(timeout=30)
        eventually(lambda: child.pid not in cache_rows(url), "a dead process vanishes")
        assert os.getpid() in cache_rows(url)  # the live one stays
        eventually(lambda: not raw.hexists(f"{prefix}cache:stats", field),
                   "a live process's publication drops the dead one's field")  # fmt: skip
        assert raw.pttl(f"{prefix}cache:stats") > 0  # gone when every process has stopped
    finally:
        child.kill()
        child.communicate(timeout=30)  # (and closes its pipes)
        here.close()


def test_publishing_leaves_the_cache_warm(store: CachingStore, raw: redis.Redis) -> None:
    """A publication is no invalidation: after several, the cached record is still there
    and served as a hit."""
    assert isinstance(store.source, RedisTracking)
    store.source.stats_interval = 0.01
    key = create(store, a="1")
    warm(store, key)
    before = store.stats()
    name = f"{store.store.prefix}cache:stats"  # type: ignore[attr-defined]
    stamps: set[bytes] = set()

    def published_thrice() -> bool:
        stamps.update(value.split(b" ")[0] for value in raw.hvals(name))
        return len(stamps) >= 3

    eventually(published_thrice, "the listener thread publishes every stats_interval")
    assert store.load(key) is not None
    after = store.stats()
    assert after["hits"] == before["hits"] + 1 and after["misses"] == before["misses"]
    assert (after["invalidations"], after["flushes"]) == (before["invalidations"], 0)


def test_a_refused_publication_is_logged_once_and_the_cache_carries_on(
    redis_server: servers.Server, raw: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """A key of another type stands in for a full Redis under noeviction or an ACL that
    forbids the write: the script fails, and nothing else does."""
    prefix = unique_prefix()
    raw.set(f"{prefix}cache:stats", "not a hash")
    caplog.set_level(logging.WARNING, logger="sessionkit")
    store = cached_store(redis_server.port, prefix, stats=(0.01, 60.0))
    try:
        eventually(lambda: "cannot publish its counters" in caplog.text, "a warning")
        key = create(store, a="1")
        warm(store, key)
        source = store.source
        assert isinstance(source, RedisTracking)
        assert source.live and source.connects == 1 and store.stats()["flushes"] == 0
        assert caplog.text.count("cannot publish its counters") == 1
        url = f"redis://127.0.0.1:{redis_server.port}/0?prefix={prefix}"
        assert "no process is publishing" in stats_command(url)
    finally:
        store.close()
