"""max_sessions_per_user on every store with a user index, against the real servers.

20 parallel logins of one user with a limit of 3 leave exactly 3 live sessions; the others
are dead server-side (their cookie is anonymous at once) and each eviction is an event.
With ``session_limit_policy="refuse"``, exactly 3 of 20 parallel logins land and the others
get ``SessionLimitReached``, leaving their pre-login session as it was.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sessionkit import (
    ConfigError,
    Event,
    EventKind,
    Failure,
    SessionConfig,
    SessionEngine,
    SessionLimitReached,
    open_store,
)
from sessionkit.testing import Browser, FakeClock
from tests import servers
from tests.conftest import KEY, dynamodb_url

STORES = ["memory", "file", "sqlite", "postgresql", "redis", "redis-cluster", "dynamodb"]
LIMIT = 3
LOGINS = 20


def _url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "memory":
        return "memory://"
    if kind == "file":
        return f"file://{tmp_path / 'sessions'}?fsync=false"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'sessions.sqlite3'}"
    if kind == "postgresql":
        pg: servers.Postgres = request.getfixturevalue("postgres_server")
        return f"{pg.url}?table=s_{secrets.token_hex(6)}"
    if kind == "dynamodb":  # moto's emulator (tests/servers.py), a table of its own
        return dynamodb_url(request.getfixturevalue("moto_server"))
    prefix = f"t{secrets.token_hex(6)}:"
    if kind == "redis":
        server: servers.Server = request.getfixturevalue("redis_server")
        return f"redis://127.0.0.1:{server.port}/0?prefix={prefix}"
    nodes: list[servers.Server] = request.getfixturevalue("redis_cluster")
    hosts = ",".join(f"127.0.0.1:{n.port}" for n in nodes)
    return f"redis+cluster://{hosts}?prefix={prefix}"


@pytest.fixture(params=STORES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return _url(request.param, tmp_path, request)


def _engine(url: str, clock: Any = None, **settings: Any) -> SessionEngine:
    settings.setdefault("max_sessions_per_user", LIMIT)
    store = open_store(url) if clock is None else open_store(url, clock=clock)
    store.create_schema()
    config = SessionConfig(secret_key=KEY, store=store, **settings)
    return SessionEngine(config, clock=clock) if clock is not None else SessionEngine(config)


@pytest.fixture
def make(store_url: str) -> Iterator[Any]:
    made: list[SessionEngine] = []

    def build(clock: Any = None, **settings: Any) -> SessionEngine:
        engine = _engine(store_url, clock, **settings)
        made.append(engine)
        return engine

    yield build
    for engine in made:
        engine.store.close()


def _arrive(browser: Browser) -> None:
    """An anonymous visit that stores something: the pre-login session."""
    browser.visit(lambda s: s.__setitem__("cart", [1]))


def _logged_in(browser: Browser) -> bool:
    return bool(browser.visit(lambda s: s.user_id).result == "alice")


def _evictions(engine: SessionEngine) -> list[Event]:
    seen: list[Event] = []
    engine.events.subscribe(seen.append, [EventKind.SESSION_EVICTED])
    return seen


def _parallel_logins(engine: SessionEngine, browsers: list[Browser]) -> list[BaseException]:
    """Every browser logs in at the same moment, each from its own thread."""
    start = threading.Barrier(len(browsers))
    errors: list[BaseException] = []

    def login(browser: Browser) -> None:
        start.wait()
        try:
            browser.visit(lambda s: s.bind_user("alice"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=login, args=(b,)) for b in browsers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return errors


def test_20_parallel_logins_leave_exactly_3(make: Any) -> None:
    engine = make()
    evicted = _evictions(engine)
    browsers = [Browser(engine) for _ in range(LOGINS)]
    for browser in browsers:
        _arrive(browser)
    assert _parallel_logins(engine, browsers) == []
    live = engine.store.user_sessions("alice")
    assert len(live) == LIMIT
    assert len(evicted) == LOGINS - LIMIT  # an event per eviction, with the handle only
    evicted_handles = {e.handle for e in evicted}
    assert not evicted_handles & {s.handle for s in live}
    assert all(e.detail["user"] == "alice" and e.detail["max_sessions"] == LIMIT for e in evicted)
    # the evicted cookies are dead server-side: their next request is anonymous
    still = [b for b in browsers if _logged_in(b)]
    assert len(still) == LIMIT
    assert len(engine.store.user_sessions("alice")) == LIMIT


def test_20_parallel_async_logins_leave_exactly_3(make: Any) -> None:
    engine = make()
    loop = asyncio.new_event_loop()
    try:
        browsers = [Browser(engine, "async", loop=loop) for _ in range(LOGINS)]
        for browser in browsers:
            _arrive(browser)

        async def all_login() -> None:
            await asyncio.gather(*(b.avisit(lambda s: s.bind_user("alice")) for b in browsers))

        loop.run_until_complete(all_login())
        assert len(loop.run_until_complete(engine.store.auser_sessions("alice"))) == LIMIT
        assert sum(_logged_in(b) for b in browsers) == LIMIT
    finally:
        loop.run_until_complete(engine.store.aclose())
        loop.close()


def test_refuse_parallel_lets_exactly_3_in(make: Any) -> None:
    engine = make(session_limit_policy="refuse")
    browsers = [Browser(engine) for _ in range(LOGINS)]
    for browser in browsers:
        _arrive(browser)
    errors = _parallel_logins(engine, browsers)
    assert len(errors) == LOGINS - LIMIT
    assert all(isinstance(e, SessionLimitReached) for e in errors)
    assert len(engine.store.user_sessions("alice")) == LIMIT
    assert sum(_logged_in(b) for b in browsers) == LIMIT


def test_refuse_the_4th_login_and_keep_the_first_3(make: Any) -> None:
    engine = make(session_limit_policy="refuse")
    refused: list[Event] = []
    engine.events.subscribe(refused.append, [EventKind.LOGIN_REFUSED])
    first = [Browser(engine) for _ in range(LIMIT)]
    for browser in first:
        browser.visit(lambda s: s.bind_user("alice"))
    fourth = Browser(engine)
    _arrive(fourth)
    before = fourth.cookie
    with pytest.raises(SessionLimitReached, match="max_sessions_per_user=3") as caught:
        fourth.visit(lambda s: s.bind_user("alice"))
    assert caught.value.max_sessions == LIMIT
    assert engine.policy(Failure.SESSION_LIMIT).status == 409
    assert [e.handle for e in refused] == [caught.value.handle]
    assert all(_logged_in(b) for b in first)
    # the refused browser is still its anonymous self, data and all
    fourth.cookie = before
    assert fourth.visit(lambda s: (s.user_id, s.get("cart"))).result == (None, [1])
    # a bound session saved again is not a new login: nothing is refused
    first[0].visit(lambda s: s.__setitem__("x", 1))
    assert len(engine.store.user_sessions("alice")) == LIMIT


def test_evicts_the_least_recently_used(make: Any) -> None:
    clock = FakeClock()
    engine = make(clock, touch_interval=0)
    evicted = _evictions(engine)
    a, b, c, d = (Browser(engine) for _ in range(4))
    handles = {}
    for browser in (a, b, c):  # logins at t, t+10, t+20
        handles[browser] = browser.visit(lambda s: s.bind_user("alice")).session.handle
        clock.advance(10)
    a.visit(lambda s: s.get("x"))  # a, the oldest login, is used again: b is now the LRU
    clock.advance(10)
    d.visit(lambda s: s.bind_user("alice"))
    assert [e.handle for e in evicted] == [handles[b]]
    assert not _logged_in(b)
    assert all(_logged_in(x) for x in (a, c, d))


def test_same_user_rotation_and_other_users_do_not_count(make: Any) -> None:
    engine = make()
    evicted = _evictions(engine)
    browsers = [Browser(engine) for _ in range(LIMIT)]
    for browser in browsers:
        browser.visit(lambda s: s.bind_user("alice"))
    browsers[0].visit(lambda s: s.regenerate())  # same user, new ID: still 3
    browsers[1].visit(lambda s: s.bind_user("alice"))  # logging in again as herself
    Browser(engine).visit(lambda s: s.bind_user("bob"))
    assert evicted == []
    assert all(_logged_in(b) for b in browsers)


def test_bind_without_regenerate_counts_too(make: Any) -> None:
    engine = make()
    browsers = [Browser(engine) for _ in range(LIMIT + 2)]
    for browser in browsers:
        _arrive(browser)
        browser.visit(lambda s: s.bind_user("alice", regenerate=False))
    assert len(engine.store.user_sessions("alice")) == LIMIT
    assert sum(_logged_in(b) for b in browsers) == LIMIT


@pytest.mark.parametrize("value", [0, -1, 2.5, True, "3"])
def test_the_setting_is_a_positive_int(value: object) -> None:
    with pytest.raises(ConfigError, match="max_sessions_per_user"):
        SessionConfig(secret_key=KEY, store="memory://", max_sessions_per_user=value)  # type: ignore[arg-type]


def test_the_policy_is_checked() -> None:
    with pytest.raises(ConfigError, match="'evict_oldest' or 'refuse'"):
        SessionConfig(secret_key=KEY, store="memory://", session_limit_policy="lifo")  # type: ignore[arg-type]


def test_memcached_is_refused_at_start_up() -> None:
    with pytest.raises(ConfigError, match=r"memcached:// keeps no per-user index.*memory://"):
        SessionConfig(secret_key=KEY, store="memcached://127.0.0.1:1", max_sessions_per_user=3)


@pytest.mark.parametrize("store", ["cookie://", "memcached://127.0.0.1:1"])
def test_the_engine_refuses_a_store_without_a_user_index(store: str) -> None:
    """The config alone cannot tell: its default ``cookie://`` may stand for a store object
    given to the engine. The engine checks the store it really uses."""
    config = SessionConfig(secret_key=KEY, max_sessions_per_user=3)
    scheme = store.partition("://")[0]
    with pytest.raises(ConfigError, match=rf"{scheme}:// keeps no per-user index.*file:///"):
        SessionEngine(config, store=open_store(store))


def test_a_store_object_given_to_the_engine_is_what_counts() -> None:
    config = SessionConfig(secret_key=KEY, max_sessions_per_user=3)  # store: the default
    assert SessionEngine(config, store=open_store("memory://")).config.max_sessions_per_user == 3
