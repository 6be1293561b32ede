"""Read-only degraded mode (``fallback=``): the switching, its log lines and events, what
is refused and what is served, health(), sync and async. The primary here is a memory
store that can be "taken down"; the fallback reads the same records (a replica that is
never behind) and fails the test if anything writes to it."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sessionkit import (
    ConfigError,
    Event,
    EventBus,
    EventKind,
    Failure,
    MemoryStore,
    SessionConfig,
    SessionEngine,
    StoreReadOnly,
    StoreUnavailable,
)
from sessionkit.failures import failure_of
from sessionkit.records import Record, Write
from sessionkit.stores.base import Store
from sessionkit.stores.fallback import FallbackStore
from sessionkit.testing import Browser, FakeClock
from tests.conftest import KEY


class Downable(Store):
    """``records`` behind a switch: while ``down``, every call raises ``StoreUnavailable``
    (after ``delay`` seconds: a connect timeout). Counts the calls that reached it."""

    supports_user_index = supports_lock = supports_session_limit = True

    def __init__(self, records: MemoryStore, url: str = "redis://primary:6379/0") -> None:
        self.records, self.url = records, url
        self.down = False
        self.delay = 0.0
        self.calls = 0

    def _check(self) -> None:
        self.calls += 1
        if self.down:
            if self.delay:
                time.sleep(self.delay)
            raise StoreUnavailable(self.url, "Connection refused")

    def load(self, digest: str) -> Record | None:
        self._check()
        return self.records.load(digest)

    def save(self, write: Write) -> bool:
        self._check()
        return self.records.save(write)

    def save_limited(self, write: Write) -> list[str] | None:
        self._check()
        return self.records.save_limited(write)

    def delete(self, digest: str) -> None:
        self._check()
        self.records.delete(digest)

    def touch(self, digest: str, last_seen: int, ttl: float) -> bool:
        self._check()
        return self.records.touch(digest, last_seen, ttl)

    def lock(self, digest: str, *, ttl: float = 30.0, wait: float = 10.0) -> Any:
        self._check()
        return self.records.lock(digest, ttl=ttl, wait=wait)

    def revoke_user(self, user: str, *, keep: str | None = None) -> int:
        self._check()
        return self.records.revoke_user(user, keep=keep)

    def user_digests(self, user: str) -> list[str]:
        self._check()
        return self.records.user_digests(user)


class Replica(Store):
    """Reads ``records``; any write fails the test (the fallback is never written)."""

    def __init__(self, records: MemoryStore) -> None:
        self.records, self.url = records, "redis://replica:6379/0"
        self.down = False
        self.reads = 0
        self.behind: dict[str, Record] = {}  # what it still shows, not having caught up

    def load(self, digest: str) -> Record | None:
        if self.down:
            raise StoreUnavailable(self.url, "Connection refused")
        self.reads += 1
        return self.behind.get(digest) or self.records.load(digest)

    def _written(self, *_: Any, **__: Any) -> Any:
        raise AssertionError("the fallback was written to")

    save = delete = touch = save_limited = revoke_user = revoke_handle = _written


class Setup:
    def __init__(self, flavour: str = "sync", interval: float = 5.0) -> None:
        records = MemoryStore()
        self.primary, self.replica = Downable(records), Replica(records)
        self.monotonic = FakeClock(1000.0)
        self.events: list[Event] = []
        bus = EventBus()
        bus.subscribe(self.events.append)
        self.store = FallbackStore(
            self.primary, self.replica, probe_interval=interval, events=bus,
            clock=self.monotonic,
        )  # fmt: skip
        config = SessionConfig(secret_key=KEY, store="memory://")
        self.engine = SessionEngine(config, store=self.store, events=bus)
        self.flavour = flavour
        self.loop = asyncio.new_event_loop() if flavour == "async" else None

    def browser(self) -> Browser:
        return Browser(self.engine, self.flavour, loop=self.loop)  # type: ignore[arg-type]

    def close(self) -> None:
        if self.loop is not None:
            self.loop.close()

    def kinds(self) -> list[EventKind]:
        return [e.kind for e in self.events if e.kind.value.startswith("store_")]


def login(browser: Browser, user: str = "alice") -> None:
    def view(session: Any) -> None:
        session["user"] = user
        session["n"] = 0
        session.bind_user(user)

    browser.visit(view)
    assert browser.cookie is not None


def read(browser: Browser) -> dict[str, Any]:
    return dict(browser.visit(lambda s: dict(s)).result)


@pytest.fixture(params=["sync", "async"])
def setup(request: pytest.FixtureRequest) -> Iterator[Setup]:
    made = Setup(request.param)
    yield made
    made.close()


def test_no_outage_never_touches_the_fallback(setup: Setup) -> None:
    browser = setup.browser()
    login(browser)
    for _ in range(5):
        assert read(browser)["user"] == "alice"
    assert setup.replica.reads == 0
    assert setup.store.mode == "primary"
    assert setup.store.stats()["to_fallback"] == 0
    assert setup.engine.health().mode == "primary"


def test_an_outage_serves_reads_from_the_fallback_and_refuses_changes(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    browser = setup.browser()
    login(browser)
    setup.primary.down = True
    caplog.set_level(logging.INFO, "sessionkit")
    for _ in range(10):
        assert read(browser) == {"user": "alice", "n": 0}
    with pytest.raises(StoreReadOnly) as raised:
        browser.visit(lambda s: s.__setitem__("n", 1))
    assert failure_of(raised.value) is Failure.READ_ONLY
    message = str(raised.value)
    assert "redis://primary:6379/0" in message and "redis://replica:6379/0" in message
    assert "nothing was changed" in message
    switched = [r for r in caplog.records if "fallback" in r.getMessage()]
    assert len(switched) == 1 and switched[0].levelno == logging.WARNING, caplog.text
    assert setup.kinds().count(EventKind.STORE_FALLBACK) == 1
    assert EventKind.STORE_READ_ONLY in setup.kinds()  # the refused save, for the metrics
    stats = setup.store.stats()
    assert stats["mode"] == "read_only" and stats["since"] is not None
    assert stats["to_fallback"] == 1 and stats["fallback_reads"] >= 10
    assert stats["refused"] == 1
    # the primary still holds what it held: the refused change is not there
    setup.primary.down = False
    setup.monotonic.advance(5)
    assert read(browser)["n"] == 0


def test_each_kind_of_change_is_refused(setup: Setup) -> None:
    browser = setup.browser()
    login(browser)
    setup.primary.down = True
    assert read(browser)["user"] == "alice"  # switched over

    def regenerate(session: Any) -> None:
        session.regenerate()

    def logout(session: Any) -> None:
        session.invalidate()

    def new_login(session: Any) -> None:
        session["user"] = "bob"
        session.bind_user("bob")

    for view in (regenerate, logout):
        with pytest.raises(StoreReadOnly):
            browser.visit(view)
    with pytest.raises(StoreReadOnly):
        setup.browser().visit(new_login)  # a new visitor logging in
    with pytest.raises(StoreReadOnly):
        setup.store.revoke_user("alice")
    session = setup.engine.open(browser.cookie_header, browser.client)
    with pytest.raises(StoreReadOnly), setup.engine.lock(session):
        pass
    assert setup.store.stats()["refused"] == 5
    # a logout refused is not a logout: the session is still there when the primary is back
    setup.primary.down = False
    setup.monotonic.advance(5)
    assert read(browser)["user"] == "alice"


def test_a_logout_before_the_outage_stays_a_logout(setup: Setup) -> None:
    browser = setup.browser()
    login(browser)
    stolen = browser.fork()
    browser.visit(lambda s: s.invalidate())
    setup.primary.down = True
    assert read(stolen) == {}  # served by the fallback: gone there too
    setup.primary.down = False
    setup.monotonic.advance(5)
    assert read(stolen) == {}


def test_a_touch_is_skipped_and_the_session_keeps_its_recorded_expiry(setup: Setup) -> None:
    clock = FakeClock()
    setup.engine.clock = clock
    browser = setup.browser()
    login(browser)
    setup.primary.down = True
    clock.advance(120)  # past touch_interval: this read would record a visit
    assert read(browser)["user"] == "alice"
    stats = setup.store.stats()
    assert stats["touches_skipped"] == 1 and stats["refused"] == 0


def test_the_primary_is_tried_once_per_probe_interval(setup: Setup) -> None:
    browser = setup.browser()
    login(browser)
    setup.primary.down = True
    assert read(browser)
    calls = setup.primary.calls
    for _ in range(20):
        read(browser)
    assert setup.primary.calls == calls  # within the interval: never tried
    setup.monotonic.advance(5)
    for _ in range(20):
        read(browser)
    assert setup.primary.calls == calls + 1  # one probe, which failed
    assert setup.store.stats()["probes"] == 1
    assert setup.store.stats()["probe_failures"] == 1
    assert setup.store.mode == "read_only"


def test_it_switches_back_when_a_probe_succeeds(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    browser = setup.browser()
    login(browser)
    setup.primary.down = True
    read(browser)
    setup.primary.down = False
    caplog.set_level(logging.INFO, "sessionkit")
    read(browser)
    assert setup.store.stats()["mode"] == "read_only"  # not before the interval
    setup.monotonic.advance(5)
    for n in range(1, 4):
        browser.visit(lambda s, n=n: s.__setitem__("n", n))  # type: ignore[misc]
    assert read(browser)["n"] == 3
    back = [r for r in caplog.records if "is back after" in r.getMessage()]
    assert len(back) == 1, caplog.text
    assert setup.kinds().count(EventKind.STORE_RECOVERED) == 1
    assert setup.store.stats()["to_primary"] == 1
    assert setup.store.mode == "primary"
    assert setup.engine.health().mode == "primary"


def test_flapping_is_logged_once_per_switch(setup: Setup, caplog: pytest.LogCaptureFixture) -> None:
    browser = setup.browser()
    login(browser)
    caplog.set_level(logging.INFO, "sessionkit")
    for _ in range(3):
        setup.primary.down = True
        for _ in range(5):
            read(browser)
        setup.primary.down = False
        setup.monotonic.advance(5)
        for _ in range(5):
            read(browser)
    kinds = setup.kinds()
    assert kinds.count(EventKind.STORE_FALLBACK) == kinds.count(EventKind.STORE_RECOVERED) == 3
    assert (
        len([r for r in caplog.records if "reading sessions from the fallback" in r.message]) == 3
    )
    assert len([r for r in caplog.records if "is back after" in r.message]) == 3


def test_both_down_is_the_store_down_failure(setup: Setup) -> None:
    browser = setup.browser()
    login(browser)
    setup.primary.down = setup.replica.down = True
    with pytest.raises(StoreUnavailable) as raised:
        read(browser)
    assert failure_of(raised.value) is Failure.STORE_DOWN
    found = setup.engine.health()
    assert not found.ok and found.mode == "read_only"
    assert found.fallback is not None and not found.fallback.ok


def test_health_shows_the_mode_and_both_stores() -> None:
    setup = Setup()
    found = setup.engine.health()
    assert found.ok and found.mode == "primary" and found.store == "redis://primary:6379/0"
    assert found.fallback is not None and found.fallback.store == "redis://replica:6379/0"
    setup.primary.down = True
    found = setup.engine.health()  # the health route's probe switches over, too
    assert found.ok and found.mode == "read_only" and found.error is not None
    assert found.as_dict()["fallback"]["ok"] is True
    assert setup.store.mode == "read_only"
    setup.primary.down = False
    assert asyncio.run(setup.engine.ahealth()).mode == "primary"
    assert setup.kinds() == [EventKind.STORE_FALLBACK, EventKind.STORE_RECOVERED]


def test_a_switch_made_by_health_names_the_store_once(caplog: pytest.LogCaptureFixture) -> None:
    """``sessionkit health`` and a health route switch over too: the line they log says what
    the store said, not the probe's whole message inside another one."""
    setup = Setup()
    setup.primary.down = True
    caplog.set_level(logging.WARNING, "sessionkit")
    assert setup.engine.health().mode == "read_only"
    (line,) = [r.getMessage() for r in caplog.records if "reading sessions from" in r.message]
    assert line.startswith(
        "sessionkit: session store redis://primary:6379/0 is unavailable (Connection refused. "
    ), line
    assert line.count("is unavailable") == 1
    (switched,) = [e for e in setup.events if e.kind is EventKind.STORE_FALLBACK]
    assert switched.detail["cause"].startswith("Connection refused")


def test_a_down_primary_costs_one_timeout_per_interval_not_per_request() -> None:
    """While one request probes a primary that hangs, the others are served at once."""
    setup = Setup(interval=0.0)
    browser = setup.browser()
    login(browser)
    setup.primary.down = True
    read(browser)  # switched over
    setup.primary.delay = 0.5
    prober = threading.Thread(target=read, args=(browser,))
    prober.start()
    time.sleep(0.05)  # the prober is waiting on the primary now
    started = time.perf_counter()
    for _ in range(20):
        assert read(browser)["user"] == "alice"
    assert time.perf_counter() - started < 0.4
    prober.join()
    assert setup.store.stats()["probes"] == 1


def test_refused_answers_are_the_read_only_policy() -> None:
    setup = Setup()
    setup.primary.down = True
    with pytest.raises(StoreReadOnly) as raised:
        setup.browser().visit(lambda s: s.__setitem__("a", 1))
    policy = setup.engine.refuse(raised.value, "GET /x")
    assert policy is not None and policy.failure is Failure.READ_ONLY
    assert policy.status == 503
    assert dict(policy.headers)["Retry-After"] == "5"
    assert "read-only" in policy.body


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"store": "redis://a/0", "fallback": "cookie://"}, "cannot be a fallback"),
        ({"store": "redis://a/0", "fallback": "redis://a/0"}, "same URL"),
        ({"store": "redis://a/0", "fallback": "replica"}, "not a store URL"),
        ({"store": "cookie://?x=1", "fallback": "redis://a/0"}, "needs no fallback"),
        ({"store": "redis://a/0", "fallback_probe_interval": 0}, "positive"),
    ],
)
def test_settings_that_cannot_work_are_refused(settings: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        SessionConfig(secret_key=KEY, **settings)


def test_a_cookie_store_engine_refuses_a_fallback() -> None:
    config = SessionConfig(secret_key=KEY, fallback="memory://")
    with pytest.raises(ConfigError, match="needs no fallback"):
        SessionEngine(config)  # store: the default cookie://


def test_fallback_by_url_builds_the_wrapper() -> None:
    config = SessionConfig(secret_key=KEY, store="memory://", fallback="memory://?max_sessions=5",
                           fallback_probe_interval=2)  # fmt: skip
    engine = SessionEngine(config)
    assert isinstance(engine.store, FallbackStore)
    assert engine.store.probe_interval == 2.0
    assert engine.store.events is engine.events
    assert engine.store.supports_session_limit


def test_async_probe_runs_once_with_many_concurrent_requests() -> None:
    setup = Setup("async", interval=0.0)
    browser = setup.browser()
    login(browser)
    setup.primary.down = True
    read(browser)
    setup.primary.delay = 0.2

    async def many() -> list[Any]:
        async def one() -> Any:
            session = setup.engine.open(browser.cookie_header, browser.client)
            await setup.engine.aload(session)
            return dict(session)

        return await asyncio.gather(*(one() for _ in range(10)))

    try:
        assert all(r["user"] == "alice" for r in asyncio.run(many()))
    finally:
        setup.close()
    # sync Downable's delay blocks the loop in the prober; every other read went to the fallback
    assert setup.store.stats()["probes"] <= 2


def lagging_logout(setup: Setup, lag: float | None) -> tuple[Browser, float]:
    """Log a session out while the replica still shows it for ``lag`` seconds (``None``:
    for good); returns the stolen copy of its cookie and how long the logout took."""
    browser = setup.browser()
    login(browser)
    stolen = browser.fork()
    found = setup.engine.digest_of(browser.begin())
    assert found is not None
    record = setup.replica.records.load(found)
    assert record is not None
    setup.replica.behind[found] = record
    if lag is not None:
        threading.Timer(lag, setup.replica.behind.clear).start()
    started = time.perf_counter()
    browser.visit(lambda s: s.invalidate())
    return stolen, time.perf_counter() - started


def test_a_logout_waits_until_the_replica_has_it(setup: Setup) -> None:
    stolen, took = lagging_logout(setup, 0.1)
    assert took >= 0.1
    setup.primary.down = True  # the primary fails right after the logout
    assert read(stolen) == {}
    assert setup.store.stats()["unconfirmed"] == 0


def test_a_replica_that_does_not_catch_up_is_reported(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    setup.store.confirm_timeout = 0.1
    stolen, took = lagging_logout(setup, None)
    assert 0.1 <= took < 1
    assert setup.store.stats()["unconfirmed"] == 1
    assert "not yet gone from the fallback" in caplog.text
    # what the warning is about: were the primary to fail now, the replica would serve it
    setup.primary.down = True
    assert read(stolen)["user"] == "alice"


def test_a_broken_fallback_never_fails_a_logout_on_the_primary(setup: Setup) -> None:
    """The confirmation reads the fallback; whatever it raises (a standby refusing a
    statement, a bug), the primary's logout stands and is reported."""
    browser = setup.browser()
    login(browser)
    stolen = browser.fork()

    def broken(digest: str) -> Record | None:
        raise RuntimeError("cannot execute CREATE TABLE in a read-only transaction")

    setup.replica.load = broken  # type: ignore[method-assign]
    assert browser.visit(lambda s: s.invalidate()).saved
    assert read(stolen) == {}
    assert setup.store.stats()["unconfirmed"] == 1


def test_log_out_everywhere_waits_for_the_replica_too(setup: Setup) -> None:
    phone, laptop = setup.browser(), setup.browser()
    login(phone)
    login(laptop)
    for browser in (phone, laptop):  # the replica is behind on both sessions
        found = setup.engine.digest_of(browser.begin())
        assert found is not None
        record = setup.replica.records.load(found)
        assert record is not None
        setup.replica.behind[found] = record
    threading.Timer(0.1, setup.replica.behind.clear).start()
    started = time.perf_counter()
    assert setup.store.revoke_user("alice") == 2
    assert time.perf_counter() - started >= 0.1
    setup.primary.down = True
    assert read(phone) == {} and read(laptop) == {}
    assert setup.store.stats()["unconfirmed"] == 0


def test_the_async_lock_is_refused_while_read_only() -> None:
    setup = Setup("async")
    try:
        browser = setup.browser()
        login(browser)
        setup.primary.down = True
        read(browser)

        async def locked() -> None:
            session = setup.engine.open(browser.cookie_header, browser.client)
            async with setup.engine.alock(session):
                raise AssertionError("the lock was taken")

        with pytest.raises(StoreReadOnly):
            asyncio.run(locked())
    finally:
        setup.close()


def test_the_audit_trail_is_the_primarys() -> None:
    primary, replica = MemoryStore(), MemoryStore()
    config = SessionConfig(secret_key=KEY, store="memory://", audit="store")
    engine = SessionEngine(config, store=FallbackStore(primary, replica))
    login(Browser(engine))
    assert engine.audit is not None and engine.audit.flush()
    assert [e.kind for e in primary.audit_sink().entries("alice")] == ["login"]
    assert replica.audit_sink().entries("alice") == []
