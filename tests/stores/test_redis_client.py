"""RedisStore on redis-py's public path, against real servers: what a tracer hooked on
``execute_command`` sees, bounded pools under a burst, the application's own clients,
fail-fast timeouts, a wrong service on the port, and a reply lost after a write was applied
(redis-py retries the command on a new connection: the write must be safe to apply twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio

from sessionkit import SessionConfig, SessionEngine
from sessionkit.errors import ConfigError, LockTimeout, StoreError, StoreUnavailable
from sessionkit.ids import digest, new_id
from sessionkit.stores.base import RecordMeta, Write
from sessionkit.stores.redis import RedisStore
from sessionkit.stores.redis.scripts import CREATE_SCRIPT, ROTATE_OUT_SCRIPT
from sessionkit.stores.redis.url import parse
from sessionkit.testing import Browser, FakeClock
from tests import servers
from tests.stores.test_redis import unique_prefix

KEY = "redis-client-key-0123456789-abcdefghijklmnopqrstuvwxyz"


def new_digest() -> str:
    return digest(new_id())


def create(key: str, clock: FakeClock, user: str | None = None, **items: str) -> Write:
    meta = RecordMeta(created=int(clock.now), last_seen=int(clock.now), user=user)
    return Write(key, items, frozenset(), meta, 60.0, create=True, replace=True)


def update(key: str, clock: FakeClock, user: str | None = None, **items: str) -> Write:
    meta = RecordMeta(created=int(clock.now), last_seen=int(clock.now), user=user)
    return Write(key, items, frozenset(), meta, 60.0, previous_user=user)


@pytest.fixture
def url(redis_server: servers.Server) -> str:
    return f"redis://127.0.0.1:{redis_server.port}/0"


# -- a tracer hooked on execute_command ----------------------------------------------------
@pytest.fixture
def traced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What OpenTelemetry's, Sentry's and ddtrace's redis integrations do: wrap the client
    classes' ``execute_command`` and record each command's name."""
    seen: list[str] = []
    for cls in (redis.Redis, redis.cluster.RedisCluster):
        original = cls.execute_command

        def wrapped(self: Any, *args: Any, _original: Any = original, **kw: Any) -> Any:
            seen.append(str(args[0]).upper())
            return _original(self, *args, **kw)

        monkeypatch.setattr(cls, "execute_command", wrapped)
    for acls in (redis.asyncio.Redis, redis.asyncio.cluster.RedisCluster):
        aoriginal = acls.execute_command

        async def awrapped(self: Any, *args: Any, _original: Any = aoriginal, **kw: Any) -> Any:
            seen.append(str(args[0]).upper())
            return await _original(self, *args, **kw)

        monkeypatch.setattr(acls, "execute_command", awrapped)
    return seen


SESSION_COMMANDS = ["EVALSHA", "HGETALL", "EVALSHA", "EVALSHA", "EVALSHA", "EVALSHA", "EVALSHA"]


@pytest.mark.parametrize("where", ["single", "cluster"])
def test_a_tracer_sees_every_session_command(
    where: str, request: pytest.FixtureRequest, clock: FakeClock, traced: list[str]
) -> None:
    if where == "single":
        target = request.getfixturevalue("url")
    else:
        nodes = request.getfixturevalue("redis_cluster")
        target = "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in nodes)
    store = RedisStore.from_url(target, prefix=unique_prefix(), clock=clock)
    key = new_digest()
    store.load(key)  # connect and load the scripts
    traced.clear()
    assert store.save(create(key, clock, a='"1"'))
    assert store.load(key) is not None
    assert store.save(update(key, clock, b='"2"'))
    assert store.touch(key, int(clock.now) + 1, 60.0)
    with store.lock(key, wait=1):  # take, release
        pass
    store.delete(key)
    assert traced == SESSION_COMMANDS
    store.close()

    async def main() -> None:
        astore = RedisStore.from_url(target, prefix=unique_prefix(), clock=clock)
        await astore.aload(key)
        traced.clear()
        assert await astore.asave(create(key, clock, a='"1"'))
        assert await astore.aload(key) is not None
        assert await astore.asave(update(key, clock, b='"2"'))
        assert await astore.atouch(key, int(clock.now) + 1, 60.0)
        async with astore.alock(key, wait=1):
            pass
        await astore.adelete(key)
        assert traced == SESSION_COMMANDS
        await astore.aclose()

    asyncio.run(main())


# -- a small pool under a burst ------------------------------------------------------------
def test_a_burst_never_exhausts_a_small_pool(url: str, clock: FakeClock) -> None:
    store = RedisStore.from_url(f"{url}?max_connections=2", prefix=unique_prefix(), clock=clock)
    keys = [new_digest() for _ in range(8)]
    failures: list[BaseException] = []

    def work(key: str) -> None:
        try:
            for i in range(30):
                assert store.save(create(key, clock, user="ann", i=str(i)) if i == 0
                                  else update(key, clock, user="ann", i=str(i)))  # fmt: skip
                assert store.load(key) is not None
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(key,)) for key in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    pool = store._client().connection_pool
    assert len(pool._connections) <= 2  # never more than the limit
    # later locks and listings still find a connection
    with store.lock(keys[0], wait=1):
        assert len(store.user_sessions("ann")) == len(keys)
    assert store.revoke_user("ann") == len(keys)
    store.close()

    async def main() -> None:
        astore = RedisStore.from_url(f"{url}?max_connections=2", prefix=unique_prefix())
        akeys = [new_digest() for _ in range(10)]
        assert all(await asyncio.gather(*(astore.asave(create(k, clock, user="ben", a="1"))
                                          for k in akeys)))  # fmt: skip
        async with astore.alock(akeys[0], wait=1):
            assert len(await astore.auser_sessions("ben")) == len(akeys)
        await astore.aclose()

    asyncio.run(main())


# -- the application's own clients ---------------------------------------------------------
def test_an_application_client_is_used_as_it_is(url: str, clock: FakeClock) -> None:
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    client = redis.Redis(port=port, client_name="the-app")
    store = RedisStore(client=client, prefix=unique_prefix())
    assert repr(store) == f"<RedisStore redis://localhost:{port}/0>"
    engine = SessionEngine(SessionConfig(secret_key=KEY), store=store, clock=clock)
    browser = Browser(engine)
    browser.visit(lambda s: s.bind_user("ann"))
    browser.visit(lambda s: s.__setitem__("n", 1))
    assert browser.visit(lambda s: s["n"]).result == 1
    names = {entry["name"] for entry in client.client_list()}
    assert "the-app" in names  # our commands ran on the application's connections
    assert len(store.user_sessions("ann")) == 1

    async def main() -> None:  # no async client given: the sync one, in worker threads
        abrowser = Browser(engine, "async", loop=asyncio.get_running_loop())
        abrowser.cookie = browser.cookie
        assert (await abrowser.avisit(lambda s: s["n"])).result == 1
        assert len(await store.auser_sessions("ann")) == 1

    asyncio.run(main())
    store.close()
    assert client.ping()  # close() leaves the application's client open
    client.close()


def test_an_application_async_client(url: str, clock: FakeClock) -> None:
    port = int(url.rsplit(":", 1)[1].split("/")[0])

    async def main() -> None:
        aclient = redis.asyncio.Redis(port=port)
        store = RedisStore(async_client=aclient, prefix=unique_prefix())
        key = new_digest()
        assert await store.asave(create(key, clock, a='"1"'))
        record = await store.aload(key)
        assert record is not None and dict(record.items) == {"a": '"1"'}
        async with store.alock(key, wait=1):
            pass
        with pytest.raises(StoreError, match="client="):
            store.load(key)  # no sync client to use
        await store.aclose()
        assert await aclient.ping()
        await aclient.aclose()

    asyncio.run(main())


def test_clients_are_also_accepted_with_a_url(url: str, clock: FakeClock) -> None:
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    client = redis.Redis(port=port)
    store = RedisStore.from_url("redis://ignored:1/0?prefix=app:", client=client)
    key = new_digest()
    assert store.save(create(key, clock, a="1")) and store.load(key) is not None
    assert client.exists(f"app:{{{key}}}") == 1
    assert "ignored" not in repr(store) and f":{port}/0" in repr(store)
    assert asyncio.run(store.aload(key)) is not None  # the sync client, in a thread
    store.close()
    client.close()


def test_a_decoding_client_is_refused() -> None:
    with pytest.raises(ConfigError, match="decode_responses"):
        RedisStore(client=redis.Redis(decode_responses=True))


# -- fail fast -----------------------------------------------------------------------------
def test_defaults_fail_fast() -> None:
    target = parse("redis://h")
    assert (target.socket_timeout, target.socket_connect_timeout, target.retries) == (1, 1, 1)
    client, _ = target.sync_client()
    retry = client.connection_pool.connection_kwargs["retry"]
    assert retry._retries == 1
    assert redis.exceptions.TimeoutError not in retry._supported_errors
    client.close()


def hang(server: servers.Server) -> None:
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGSTOP)


def resume(server: servers.Server) -> None:
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGCONT)


def test_a_stalled_server_costs_one_timeout(
    redis_server: servers.Server, url: str, clock: FakeClock
) -> None:
    store = RedisStore.from_url(f"{url}?socket_timeout=0.4", prefix=unique_prefix())
    key = new_digest()
    assert store.save(create(key, clock, a="1"))

    async def aload() -> None:
        try:
            await store.aload(key)
        finally:
            await store.aclose()

    hang(redis_server)
    try:
        calls: list[Callable[[], object]] = [lambda: store.load(key), lambda: asyncio.run(aload())]
        for call in calls:
            started = time.monotonic()
            with pytest.raises(StoreUnavailable) as caught:
                call()
            spent = time.monotonic() - started
            assert isinstance(caught.value.cause, redis.exceptions.TimeoutError)
            assert spent < 0.75, spent  # one 0.4 s wait: a timeout is not retried
    finally:
        resume(redis_server)
    assert store.load(key) is not None
    store.close()


# -- a wrong service on the port -----------------------------------------------------------
class _Quiet(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_an_http_server_on_the_redis_port(http_port: int, clock: FakeClock) -> None:
    store = RedisStore.from_url(f"redis://:s3cret@127.0.0.1:{http_port}/0")
    engine = SessionEngine(SessionConfig(secret_key=KEY), store=store, clock=clock)
    key = new_digest()
    for call in (lambda: store.load(key), lambda: store.save(create(key, clock, a="1")),
                 lambda: Browser(engine).visit(lambda s: s.__setitem__("a", 1))):  # fmt: skip
        with pytest.raises(StoreUnavailable) as caught:
            call()
        message = str(caught.value)
        assert "does not speak the Redis protocol" in message and "HTTP" in message
        assert ":***@127.0.0.1" in message and "s3cret" not in message

    async def main() -> None:
        with pytest.raises(StoreUnavailable, match="does not speak the Redis protocol"):
            await store.aload(key)
        await store.aclose()

    asyncio.run(main())
    store.close()


# -- a reply lost after the write was applied ----------------------------------------------
class ReplyEater:
    """A loopback TCP proxy to Redis that, once armed with a marker, lets the next command
    containing it through, swallows that command's reply and closes the client's connection
    (as a network failure or a proxy restart would): the write is applied, the client sees
    a broken connection, and redis-py retries the command on a new one."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.marker: bytes | None = None
        self.eaten = 0
        self.sockets: list[socket.socket] = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream))
            self.sockets += (client, server)
            doomed = threading.Event()
            threading.Thread(target=self._up, args=(client, server, doomed), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client, doomed), daemon=True).start()

    def _up(self, client: socket.socket, server: socket.socket, doomed: threading.Event) -> None:
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                if self.marker is not None and self.marker in data:
                    self.marker = None
                    doomed.set()
                server.sendall(data)

    def _down(self, server: socket.socket, client: socket.socket, doomed: threading.Event) -> None:
        with contextlib.suppress(OSError):
            while data := server.recv(65536):
                if doomed.is_set():
                    self.eaten += 1
                    client.shutdown(socket.SHUT_RDWR)
                    client.close()
                    server.close()
                    return
                client.sendall(data)
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        for each in self.sockets:
            each.close()


@pytest.fixture
def eater(redis_server: servers.Server) -> Iterator[ReplyEater]:
    proxy = ReplyEater(redis_server.port)
    yield proxy
    proxy.close()


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_lost_reply_never_turns_a_login_into_a_logout(
    flavour: str, eater: ReplyEater, clock: FakeClock
) -> None:
    store = RedisStore.from_url(f"redis://127.0.0.1:{eater.port}/0", prefix=unique_prefix())
    engine = SessionEngine(SessionConfig(secret_key=KEY), store=store, clock=clock)

    async def scenario() -> None:
        loop = asyncio.get_running_loop() if flavour == "async" else None
        browser = Browser(engine, "async" if flavour == "async" else "sync", loop=loop)

        async def visit(view: Any) -> Any:
            if flavour == "async":
                return await browser.avisit(view)
            return await asyncio.to_thread(browser.visit, view)

        await visit(lambda s: s.__setitem__("cart", [1, 2]))
        before = browser.cookie
        eater.marker = CREATE_SCRIPT.sha.encode()  # the login's CREATE: applied, reply lost
        login = await visit(lambda s: s.bind_user("ann"))
        assert eater.eaten == 1
        assert not login.plan.conflict
        assert browser.cookie is not None and browser.cookie != before  # a new ID, not a logout
        after = await visit(lambda s: (s.user_id, s.get("cart")))
        assert after.result == ("ann", [1, 2])
        assert len(store.user_sessions("ann")) == 1
        await store.aclose()

    asyncio.run(scenario())
    store.close()


def test_create_accepts_its_own_record_only(url: str, clock: FakeClock) -> None:
    """The script itself: a second run with the same nonce succeeds, another nonce does not."""
    store = RedisStore.from_url(url, prefix=unique_prefix())
    call = store._client().execute_command
    key = new_digest()
    keys, args = store._create_args(create(key, clock, a="1"), "nonce-1")
    assert CREATE_SCRIPT.run(call, keys, args) == 1
    assert CREATE_SCRIPT.run(call, keys, args) == 1  # the same write, retried
    keys, args = store._create_args(create(key, clock, a="2"), "nonce-2")
    assert CREATE_SCRIPT.run(call, keys, args) == 0  # someone else's: taken
    record = store.load(key)
    assert record is not None and dict(record.items) == {"a": "1"}
    store.close()


def test_a_cluster_rotation_retried_after_a_lost_reply(
    redis_cluster: list[servers.Server], clock: FakeClock
) -> None:
    url = "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in redis_cluster)
    store = RedisStore.from_url(url, prefix=unique_prefix())
    call = store._client().execute_command
    old, new = new_digest(), new_digest()
    assert store.save(create(old, clock, user="ann", a="1"))
    assert ROTATE_OUT_SCRIPT.run(call, [store.key(old)], ["n1"])[0] == 1
    assert ROTATE_OUT_SCRIPT.run(call, [store.key(old)], ["n1"])[0] == 1  # retried: still ours
    assert ROTATE_OUT_SCRIPT.run(call, [store.key(old)], ["n2"])[0] == 0  # another writer
    assert store.load(old) is None  # the tombstone reads as no session, silently
    assert store.save(update(old, clock, a="2")) is False  # and is never written to
    rotation = create(new, clock, user="ann", a="1")._replace(rotated_from=old)
    assert store.save(rotation) is False  # the old one is gone: no resurrection
    store.close()


# -- locks: a short lease, renewed while held; late attempts take nothing -------------------
def test_a_held_lock_is_renewed_beyond_its_lease(url: str) -> None:
    store = RedisStore.from_url(url, prefix=unique_prefix())
    other = RedisStore.from_url(url, prefix=store.prefix)
    store.lock_lease = 0.3
    key = new_digest()
    raw = store._client()
    with store.lock(key, ttl=10, wait=0.1):
        assert 0 < raw.pttl(store.lock_key(key)) <= 300  # the lease, not the ttl
        time.sleep(0.9)  # three leases: renewed meanwhile
        with pytest.raises(LockTimeout), other.lock(key, wait=0.1):
            pass  # pragma: no cover
    with other.lock(key, wait=0.1):  # released at once
        pass

    async def main() -> None:
        async with store.alock(key, ttl=10, wait=0.1):
            await asyncio.sleep(0.9)
            assert raw.exists(store.lock_key(key)) == 1
            with pytest.raises(LockTimeout):
                async with other.alock(key, wait=0.1):
                    pass  # pragma: no cover
        assert raw.exists(store.lock_key(key)) == 0
        await store.aclose()
        await other.aclose()

    asyncio.run(main())
    store.close()
    other.close()


def test_a_dead_holder_blocks_for_one_lease_not_the_ttl(url: str) -> None:
    store = RedisStore.from_url(url, prefix=unique_prefix())
    key = new_digest()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child holds the lock until it is killed
        try:
            child = RedisStore.from_url(url, prefix=store.prefix)
            with child.lock(key, ttl=30, wait=1):
                os.write(write, b"held")
                time.sleep(60)
        finally:
            os._exit(0)
    os.close(write)
    assert os.read(read, 4) == b"held"
    os.close(read)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    started = time.monotonic()
    with store.lock(key, wait=10):
        waited = time.monotonic() - started
    assert waited < store.lock_lease + 1  # one lease (5 s), not the 30 s ttl
    store.close()


def test_a_lock_attempt_run_after_its_caller_gave_up_takes_nothing(
    redis_server: servers.Server, url: str
) -> None:
    store = RedisStore.from_url(f"{url}?socket_timeout=0.4", prefix=unique_prefix())
    key = new_digest()
    store.load(key)  # connected, scripts loaded
    raw = redis.Redis(port=redis_server.port)
    hang(redis_server)
    try:
        with pytest.raises(StoreUnavailable), store.lock(key, ttl=30, wait=0.2):
            pass  # pragma: no cover
        time.sleep(1.5)  # the stall outlasts the caller's wait (and a second's allowance)
    finally:
        resume(redis_server)
    time.sleep(0.2)  # Redis works through its backlog, the queued attempt included
    assert raw.exists(store.lock_key(key)) == 0
    with store.lock(key, wait=0.5):  # free at once
        pass
    raw.close()
    store.close()
