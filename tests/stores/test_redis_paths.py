"""RedisStore's fast paths and their fallbacks, on real servers.

The UPDATE script's common case (existing keys, same user, index coverage still good) is
HMGET + HSET + PEXPIRE and nothing else; every other case (removed keys, a touch's
last-seen, a user change, a lapsed coverage mark, replace) takes its branch in the same
script and round trip. Commands go through redis-py's ``execute_command``, so its
guarantees hold (retry after a restart, timeouts, no stale replies after an interrupted
read, fork safety, thread safety, pool limits); the store adds the script cache refill.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sessionkit.errors import StoreUnavailable
from sessionkit.ids import digest, handle, new_id
from sessionkit.stores.base import RecordMeta, Write
from sessionkit.stores.redis import RedisStore
from sessionkit.testing import FakeClock
from tests import servers
from tests.stores import test_redis
from tests.stores.test_redis import unique_prefix

round_trips = test_redis.round_trips  # the fixture: every packet redis-py sends, by command

FAST = "socket_timeout=0.3&socket_connect_timeout=0.3"


def new_digest() -> str:
    return digest(new_id())


def meta(clock: FakeClock, user: str | None = None, seen: int = 0) -> RecordMeta:
    return RecordMeta(int(clock.now), int(clock.now) + seen, user=user)


def create(key: str, clock: FakeClock, user: str | None = None, **items: str) -> Write:
    return Write(key, items, frozenset(), meta(clock, user), 60.0, create=True, replace=True)


def update(
    key: str, clock: FakeClock, user: str | None = None, *, removed: frozenset[str] = frozenset(),
    previous_user: str | None = None, seen: int = 0, **items: str,
) -> Write:  # fmt: skip
    return Write(key, items, removed, meta(clock, user, seen), 60.0, previous_user=previous_user)


@pytest.fixture(params=["single", "cluster"])
def where(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(where: str, request: pytest.FixtureRequest, clock: FakeClock) -> Iterator[RedisStore]:
    if where == "single":
        url = f"redis://127.0.0.1:{request.getfixturevalue('redis_server').port}/0"
    else:
        nodes = request.getfixturevalue("redis_cluster")
        url = "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in nodes)
    made = RedisStore.from_url(url, prefix=unique_prefix(), clock=clock)
    yield made
    made.close()


@pytest.fixture
def single(redis_server: servers.Server, clock: FakeClock) -> Iterator[RedisStore]:
    made = RedisStore.from_url(
        f"redis://127.0.0.1:{redis_server.port}/0?{FAST}", prefix=unique_prefix(), clock=clock
    )
    yield made
    made.close()


def script_calls(client: Any, action: Any) -> dict[str, int]:
    """The commands Redis executed while ``action`` ran (INFO commandstats), by name."""
    client.config_resetstat()
    action()
    stats = client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): int(entry["calls"])
        for name, entry in stats.items()
        if name not in ("cmdstat_config|resetstat", "cmdstat_info")
    }


# -- the UPDATE fast path ------------------------------------------------------------------
def test_an_update_is_hmget_hset_pexpire(single: RedisStore, clock: FakeClock) -> None:
    key, raw = new_digest(), single._client()
    assert single.save(create(key, clock, user="ann", a="1"))
    assert single.save(update(key, clock, "ann", previous_user="ann", a="2"))  # script cached
    calls = script_calls(raw, lambda: single.save(update(key, clock, "ann", previous_user="ann",
                                                         a="3")))  # fmt: skip
    assert calls == {"evalsha": 1, "hmget": 1, "hset": 1, "pexpire": 1}
    record = single.load(key)
    assert record is not None and dict(record.items) == {"a": "3"} and record.version == 3


def test_removed_keys_and_a_touch_add_one_hdel(single: RedisStore, clock: FakeClock) -> None:
    key, raw = new_digest(), single._client()
    assert single.save(create(key, clock, a="1", b="2"))
    assert single.touch(key, int(clock.now) + 100, 60.0)
    calls = script_calls(raw, lambda: single.save(update(key, clock, seen=200, c="3")))
    assert calls["hdel"] == 1  # the touch's last-seen goes: the new metadata is newer
    record = single.load(key)
    assert record is not None and record.meta.last_seen == int(clock.now) + 200
    assert raw.hexists(single.key(key), "t") == 0
    calls = script_calls(raw, lambda: single.save(update(key, clock, removed=frozenset({"a"}))))
    assert calls["hdel"] == 1
    record = single.load(key)
    assert record is not None and dict(record.items) == {"b": "2", "c": "3"}


def test_the_user_index_is_left_alone_while_covered(single: RedisStore, clock: FakeClock) -> None:
    key, raw = new_digest(), single._client()
    index = single.index_key("ann")
    assert single.save(create(key, clock, user="ann", a="1"))
    assert 110_000 < raw.pttl(index) <= 120_000  # twice the session's TTL
    raw.srem(index, key)  # damage the index behind the store's back ...
    calls = script_calls(raw, lambda: single.save(update(key, clock, "ann", previous_user="ann")))
    assert "sadd" not in calls and raw.sismember(index, key) == 0  # ... covered: no upkeep
    raw.hset(single.key(key), "x", "0")  # the coverage mark lapses (or an old record: no x)
    calls = script_calls(raw, lambda: single.save(update(key, clock, "ann", previous_user="ann")))
    assert calls["sadd"] == 1 and raw.sismember(index, key) == 1  # listed again
    assert int(raw.hget(single.key(key), "x") or 0) > time.time() * 1000 + 60_000
    assert [info.handle for info in single.user_sessions("ann")] == [handle(key)]


def test_a_user_change_the_engine_did_not_see_still_moves_the_index(
    store: RedisStore, clock: FakeClock
) -> None:
    """Another request re-bound the session meanwhile: the record says ann, this save (and
    the engine that made it) says ben all along. The script trusts the record."""
    key = new_digest()
    assert store.save(create(key, clock, user="ann", a="1"))
    assert store.save(update(key, clock, "ben", previous_user="ben", a="2"))
    assert store.user_sessions("ann") == []
    assert [info.handle for info in store.user_sessions("ben")] == [handle(key)]
    raw = store._client()
    assert raw.hget(store.key(key), "u") == store.index_key("ben").encode()
    assert raw.sismember(store.index_key("ann"), key) == 0


def test_logging_out_without_a_new_id_leaves_the_index(store: RedisStore, clock: FakeClock) -> None:
    key, raw = new_digest(), None
    assert store.save(create(key, clock, user="ann", a="1"))
    assert store.save(update(key, clock, None, previous_user="ann", removed=frozenset({"a"})))
    raw = store._client()
    assert raw.hmget(store.key(key), "u", "x") == [None, None]
    assert raw.sismember(store.index_key("ann"), key) == 0
    record = store.load(key)
    assert record is not None and record.meta.user is None and dict(record.items) == {}


def test_replace_keeps_the_user_index(store: RedisStore, clock: FakeClock) -> None:
    key = new_digest()
    assert store.save(create(key, clock, user="ann", a="1", b="2"))
    replace = update(key, clock, "ann", previous_user="ann", z="9")._replace(replace=True)
    assert store.save(replace)
    record = store.load(key)
    assert record is not None and dict(record.items) == {"z": "9"} and record.version == 2
    assert [info.handle for info in store.user_sessions("ann")] == [handle(key)]
    assert store._client().hget(store.key(key), "u") == store.index_key("ann").encode()


def test_an_update_never_resurrects(store: RedisStore, clock: FakeClock) -> None:
    key = new_digest()
    assert store.save(create(key, clock, user="ann", a="1"))
    store.delete(key)
    assert store.save(update(key, clock, "ann", previous_user="ann", a="2")) is False
    assert store.load(key) is None and store.user_sessions("ann") == []


def test_cluster_update_round_trips(
    redis_cluster: list[servers.Server], clock: FakeClock, round_trips: list[str]
) -> None:
    """On a Cluster the index lives in another slot: an update sends index commands only
    when the script asks (user moved, coverage lapsed), never on the common path."""
    url = "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in redis_cluster)
    store = RedisStore.from_url(url, prefix=unique_prefix(), clock=clock)
    key = new_digest()
    assert store.save(create(new_digest(), clock, user="ben", a="1"))  # warm: connections
    assert store.save(create(key, clock, user="ann", a="1"))
    round_trips.clear()
    assert store.save(update(key, clock, "ann", previous_user="ann", a="2"))
    assert round_trips == ["EVALSHA"]
    round_trips.clear()
    assert store.save(update(key, clock, "ben", previous_user="ann", a="3"))
    assert round_trips == ["EVALSHA", "SREM", "EVALSHA"]  # leave ann's index, join ben's
    assert handle(key) in [info.handle for info in store.user_sessions("ben")]
    assert store.user_sessions("ann") == []
    store.close()


# -- redis-py's path ------------------------------------------------------------------------------
def test_a_flushed_script_cache_is_refilled(single: RedisStore, clock: FakeClock) -> None:
    key = new_digest()
    assert single.save(create(key, clock, a="1"))
    single._client().script_flush()
    assert single.save(update(key, clock, a="2"))  # NOSCRIPT → EVAL, same round trip count
    assert single.touch(key, int(clock.now) + 1, 60.0)
    record = single.load(key)
    assert record is not None and dict(record.items) == {"a": "2"}


def test_threads_share_a_store(single: RedisStore, clock: FakeClock) -> None:
    keys = [new_digest() for _ in range(8)]
    for n, key in enumerate(keys):
        assert single.save(create(key, clock, n=str(n)))
    wrong: list[str] = []

    def work(n: int, key: str) -> None:
        for i in range(100):
            assert single.save(update(key, clock, n=str(n), i=str(i)))
            record = single.load(key)
            if record is None or record.items["n"] != str(n) or record.items["i"] != str(i):
                wrong.append(f"{n}/{i}: {record}")

    threads = [threading.Thread(target=work, args=(n, key)) for n, key in enumerate(keys)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []


def test_a_forked_child_uses_its_own_connections(single: RedisStore, clock: FakeClock) -> None:
    key = new_digest()
    assert single.save(create(key, clock, a="parent"))
    assert single.load(key) is not None  # the parent holds an idle connection now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        try:
            child = single.load(key)
            ok = child is not None and dict(child.items) == {"a": "parent"}
            ok = ok and single.save(update(key, clock, a="child"))
            os.write(write, b"ok" if ok else b"bad")
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    assert os.read(read, 10) == b"ok"
    os.close(read)
    record = single.load(key)  # and the parent's connection was not disturbed
    assert record is not None and dict(record.items) == {"a": "child"}


# -- a server that hangs: timeouts, and no stale replies afterwards -------------------------
def hang(server: servers.Server) -> None:
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGSTOP)


def resume(server: servers.Server) -> None:
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGCONT)


def test_a_hung_server_times_out_and_its_late_reply_is_never_read(
    redis_server: servers.Server, single: RedisStore, clock: FakeClock
) -> None:
    first, second = new_digest(), new_digest()
    assert single.save(create(first, clock, who="first"))
    assert single.save(create(second, clock, who="second"))
    hang(redis_server)
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            single.load(first)
        assert time.monotonic() - started < 3  # 0.3 s a try, one retry, a short backoff
    finally:
        resume(redis_server)
    record = single.load(second)  # the queued reply for `first` must not answer this
    assert record is not None and record.items["who"] == "second"


def test_async_timeouts_and_cancellation_leave_no_stale_replies(
    redis_server: servers.Server, single: RedisStore, clock: FakeClock
) -> None:
    first, second, third = new_digest(), new_digest(), new_digest()
    for key, who in ((first, "first"), (second, "second"), (third, "third")):
        assert single.save(create(key, clock, who=who))

    async def main() -> None:
        assert await single.aload(first) is not None  # connect on this loop
        hang(redis_server)
        try:
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                await single.aload(first)
            assert time.monotonic() - started < 3
            pending = asyncio.ensure_future(single.aload(second))
            await asyncio.sleep(0.05)
            pending.cancel()  # a request cancelled while waiting for its reply
            with pytest.raises(asyncio.CancelledError):
                await pending
        finally:
            resume(redis_server)
        for _ in range(3):  # every idle connection answers its own question
            record = await single.aload(third)
            assert record is not None and record.items["who"] == "third"
        await single.aclose()

    asyncio.run(main())
