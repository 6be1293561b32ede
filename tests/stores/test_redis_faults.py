"""RedisStore when Redis is down, comes back, or was never there; and its URLs."""

from __future__ import annotations

import asyncio

import pytest
import redis

from sessionkit import SessionConfig, SessionEngine
from sessionkit.errors import ConfigError, StoreUnavailable
from sessionkit.events import EventKind
from sessionkit.ids import digest, new_id
from sessionkit.stores import open_store
from sessionkit.stores.base import RecordMeta, Write
from sessionkit.stores.redis import RedisStore
from sessionkit.stores.redis.url import parse
from sessionkit.testing import Browser, FakeClock
from tests import servers

KEY = "redis-fault-key-0123456789-abcdefghijklmnopqrstuvwxyz"
FAST = "socket_timeout=0.5&socket_connect_timeout=0.5"


def create(key: str, clock: FakeClock) -> Write:
    meta = RecordMeta(created=int(clock.now), last_seen=int(clock.now))
    return Write(key, {"a": "1"}, frozenset(), meta, 60.0, create=True, replace=True)


# -- down, then up again -------------------------------------------------------------------
def test_sync_store_survives_a_restart(redis_server: servers.Server, clock: FakeClock) -> None:
    store = RedisStore.from_url(
        f"redis://127.0.0.1:{redis_server.port}/0?{FAST}&prefix=fault-sync:", clock=clock
    )
    engine = SessionEngine(SessionConfig(secret_key=KEY), store=store, clock=clock)
    seen: list[EventKind] = []
    engine.events.subscribe(lambda e: seen.append(e.kind))
    browser = Browser(engine)
    browser.visit(lambda s: s.__setitem__("a", 1))
    key = digest(new_id())
    redis_server.stop()
    try:
        with pytest.raises(StoreUnavailable) as caught:
            browser.visit(lambda s: s.get("a"))
        assert isinstance(caught.value.cause, redis.ConnectionError)
        assert EventKind.STORE_ERROR in seen
        for call in (lambda: store.save(create(key, clock)), lambda: store.load(key),
                     lambda: store.touch(key, 1, 60.0), lambda: store.delete(key),
                     lambda: store.user_sessions("u"), lambda: list(store.scan())):  # fmt: skip
            with pytest.raises(StoreUnavailable):
                call()
        with pytest.raises(StoreUnavailable), store.lock(key, wait=0.1):
            pass  # pragma: no cover
    finally:
        redis_server.start()
    # the same store object works again (scripts are re-sent: the restart emptied the cache)
    assert store.save(create(key, clock))
    assert store.load(key) is not None
    assert browser.visit(lambda s: s.get("a")).result is None  # data died with the server
    browser.visit(lambda s: s.__setitem__("b", 2))
    assert browser.visit(lambda s: dict(s)).result == {"b": 2}
    store.close()


def test_async_store_survives_a_restart(redis_server: servers.Server, clock: FakeClock) -> None:
    store = RedisStore.from_url(
        f"redis://127.0.0.1:{redis_server.port}/0?{FAST}&prefix=fault-async:", clock=clock
    )
    key = digest(new_id())

    async def main() -> None:
        assert await store.asave(create(key, clock))
        redis_server.stop()
        try:
            with pytest.raises(StoreUnavailable):
                await store.aload(key)
            with pytest.raises(StoreUnavailable):
                await store.asave(create(key, clock))
            with pytest.raises(StoreUnavailable):
                await store.atouch(key, 1, 60.0)
            with pytest.raises(StoreUnavailable):
                await store.adelete(key)
            with pytest.raises(StoreUnavailable):
                await store.auser_sessions("u")
            with pytest.raises(StoreUnavailable):
                async with store.alock(key, wait=0.1):
                    pass  # pragma: no cover
        finally:
            redis_server.start()
        assert await store.aload(key) is None
        assert await store.asave(create(key, clock))
        assert await store.aload(key) is not None
        await store.aclose()

    asyncio.run(main())


@pytest.mark.parametrize(
    "url",
    [
        "redis://ann:s3cret@127.0.0.1:{port}/0",
        "redis+cluster://ann:s3cret@127.0.0.1:{port}",
        "redis+sentinel://ann:s3cret@127.0.0.1:{port}/mymaster",
    ],
    ids=["single", "cluster", "sentinel"],
)
def test_a_redis_that_is_not_there(url: str, clock: FakeClock) -> None:
    nowhere = url.format(port=servers.free_port()) + ("&" if "?" in url else "?") + FAST
    store = RedisStore.from_url(nowhere, clock=clock)
    assert "s3cret" not in repr(store) and "***" in repr(store)
    key = digest(new_id())
    with pytest.raises(StoreUnavailable) as caught:
        store.load(key)
    assert "s3cret" not in str(caught.value) and "ann:***@" in str(caught.value)
    with pytest.raises(StoreUnavailable):
        store.save(create(key, clock))

    async def main() -> None:
        with pytest.raises(StoreUnavailable) as caught:
            await store.aload(key)
        assert "s3cret" not in str(caught.value)
        await store.aclose()

    asyncio.run(main())


# -- URLs ----------------------------------------------------------------------------------
def test_url_forms() -> None:
    plain = parse("redis://localhost")
    assert (plain.kind, plain.nodes, plain.db, plain.ssl, plain.prefix) == (
        "single", (("localhost", 6379),), 0, False, "sessionkit:",
    )  # fmt: skip
    tls = parse("rediss://default:pw@cache.internal:6380/2?ssl_cert_reqs=none&prefix=app:")
    assert (tls.kind, tls.ssl, tls.db, tls.username, tls.password) == (
        "single", True, 2, "default", "pw",
    )  # fmt: skip
    assert tls.prefix == "app:" and tls.options == {"ssl_cert_reqs": "none"}
    cluster = parse("rediss+cluster://:pw@a:7000,b:7001,[::1]:7002?socket_timeout=1.5")
    assert cluster.kind == "cluster" and cluster.ssl and cluster.password == "pw"
    assert cluster.nodes == (("a", 7000), ("b", 7001), ("::1", 7002))
    assert cluster.socket_timeout == 1.5
    sentinel = parse("redis+sentinel://s1,s2:26380/mymaster/3?sentinel_password=x&retries=2")
    assert sentinel.kind == "sentinel" and sentinel.service == "mymaster" and sentinel.db == 3
    assert sentinel.nodes == (("s1", 26379), ("s2", 26380))
    assert sentinel.options == {"sentinel_password": "x"} and sentinel.retries == 2
    assert parse("redis://h?prefix=a:", prefix="b:").prefix == "b:"  # keywords win


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis://h?prefx=a", "unknown option"),
        ("redis://h?socket_timeout=soon", "must be a number"),
        ("redis://h/x", "db must be a number"),
        ("redis://h:port", "port must be a number"),
        ("redis://a,b", "several hosts"),
        ("redis+cluster://a/1", "only database 0"),
        ("redis+sentinel://a", "name the monitored service"),
        ("redis://h?ssl_cert_reqs=none", "need a rediss"),
        ("redis://h?prefix={x}", "must not contain"),
        ("rediss://h?ssl_check_hostname=maybe", "must be true or false"),
        ("redis://h?record_format=3", "record_format must be one of"),
    ],
)
def test_bad_urls_are_refused_at_start_up(url: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        RedisStore.from_url(url)


def test_password_is_masked_in_config_errors() -> None:
    with pytest.raises(ConfigError) as caught:
        open_store("redis://ann:s3cret@h?bogus=1")
    assert "s3cret" not in str(caught.value) and "***" in str(caught.value)


def test_clients_follow_the_url() -> None:
    tls = parse("rediss://h:6380/1?ssl_cert_reqs=none&ssl_check_hostname=false")
    client, _ = tls.sync_client()
    kwargs = client.connection_pool.connection_kwargs
    assert client.connection_pool.connection_class is redis.SSLConnection
    assert kwargs["ssl_cert_reqs"] == "none" and kwargs["ssl_check_hostname"] is False
    assert kwargs["db"] == 1 and kwargs["socket_timeout"] == 1.0  # fail-fast default
    client.close()
    sentinel, _ = parse("redis+sentinel://:pw@s1:26379/mymaster/2").sync_client()
    assert sentinel.connection_pool.service_name == "mymaster"
    assert sentinel.connection_pool.connection_kwargs["db"] == 2
    assert sentinel.connection_pool.connection_kwargs["password"] == "pw"
