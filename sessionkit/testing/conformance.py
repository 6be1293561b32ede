"""The store conformance suite: every store, ours or a third party's, proves the same contract.

Subclass the classes that match what your store declares, give them a ``make_store`` and
let pytest collect them; each test runs in the ``sync`` and the ``async`` flavour::

    from sessionkit.testing import StoreConformance, ServerStoreConformance

    class TestMyStore(ServerStoreConformance):
        def make_store(self, clock):
            return MyStore("myscheme://127.0.0.1:1234", clock=clock)

``StoreConformance`` checks what any store must do seen through the engine (round trips,
lazy loading, expiry, rotation, flash, tampering). ``ServerStoreConformance`` adds the
invariants a server-side store keeps: no resurrection, key-level merge, expiry from the
record, corrupted records, nothing created by reads. ``UserIndexConformance``,
``LockConformance``, ``SweepConformance``, ``SessionLimitConformance``
(``max_sessions_per_user``) and ``ResealConformance`` (``Store.reseal``, and
``scan_digests`` where the store can scan) cover the optional capabilities; a store that
declares a capability but is not tested for it fails ``test_declared_capabilities_are_tested``.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any, cast

import pytest

from sessionkit.client import ClientInfo
from sessionkit.config import SessionConfig
from sessionkit.engine import SessionEngine
from sessionkit.errors import LockTimeout, SessionLimitReached, StoreError
from sessionkit.events import Event, EventKind
from sessionkit.ids import digest, handle
from sessionkit.session import Session
from sessionkit.stores.base import RecordMeta, Store, Write
from sessionkit.testing.browser import Browser, Flavour
from sessionkit.testing.clock import FakeClock

KEY = "conformance-key-0123456789-abcdefghijklmnopqrstuvwxyz"
OLD_KEY = "conformance-old-key-9876543210-zyxwvutsrqponmlkjihgfedcba"
IDLE, ABSOLUTE, TOUCH = 600.0, 3600.0, 60.0


class CountingStore(Store):
    """Wraps a store and records its calls (``load``, ``aload``...), to prove which
    requests do no I/O and which flavour did the I/O."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.calls: list[str] = []
        self.client_side = inner.client_side  # type: ignore[misc]
        self.url = inner.url

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def load(self, digest: str) -> Any:
        self.calls.append("load")
        return self.inner.load(digest)

    def save(self, write: Write) -> bool:
        self.calls.append("save")
        return self.inner.save(write)

    def delete(self, digest: str) -> None:
        self.calls.append("delete")
        self.inner.delete(digest)

    def touch(self, digest: str, last_seen: int, ttl: float) -> bool:
        self.calls.append("touch")
        return self.inner.touch(digest, last_seen, ttl)

    async def aload(self, digest: str) -> Any:
        self.calls.append("aload")
        return await self.inner.aload(digest)

    async def asave(self, write: Write) -> bool:
        self.calls.append("asave")
        return await self.inner.asave(write)

    async def adelete(self, digest: str) -> None:
        self.calls.append("adelete")
        await self.inner.adelete(digest)

    async def atouch(self, digest: str, last_seen: int, ttl: float) -> bool:
        self.calls.append("atouch")
        return await self.inner.atouch(digest, last_seen, ttl)


def _set(key: str, value: Any) -> Any:
    return lambda s: s.__setitem__(key, value)


def _steps(*views: Callable[[Session], Any]) -> Callable[[Session], Any]:
    """One view made of several steps; it returns what the last step returns."""

    def view(session: Session) -> Any:
        result = None
        for step in views:
            result = step(session)
        return result

    return view


def _snapshot(session: Session) -> dict[str, Any]:
    return dict(session.items())


class StoreConformance:
    """What every store must do, seen through the engine, in both flavours."""

    # -- to be provided by the subclass ----------------------------------------------------
    def make_store(self, clock: FakeClock) -> Store:
        raise NotImplementedError("subclasses return a fresh, empty store here")

    # -- fixtures --------------------------------------------------------------------------
    @pytest.fixture(params=["sync", "async"])
    def flavour(self, request: pytest.FixtureRequest) -> Flavour:
        value: Flavour = request.param
        return value

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    def loop(self) -> Iterator[asyncio.AbstractEventLoop]:
        loop = asyncio.new_event_loop()
        yield loop
        loop.close()

    @pytest.fixture
    def store(self, clock: FakeClock, loop: asyncio.AbstractEventLoop) -> Iterator[Store]:
        store = self.make_store(clock)
        yield store
        loop.run_until_complete(store.aclose())

    @pytest.fixture
    def events(self) -> list[Event]:
        return []

    @pytest.fixture
    def engine(self, store: Store, clock: FakeClock, events: list[Event]) -> SessionEngine:
        return self.engine_for(store, clock, events)

    @pytest.fixture
    def browser(
        self, engine: SessionEngine, flavour: Flavour, loop: asyncio.AbstractEventLoop
    ) -> Browser:
        return Browser(engine, flavour, loop=loop)

    def engine_for(
        self, store: Store, clock: FakeClock, events: list[Event] | None = None, **settings: Any
    ) -> SessionEngine:
        settings.setdefault("secret_key", KEY)
        settings.setdefault("idle_timeout", IDLE)
        settings.setdefault("absolute_timeout", ABSOLUTE)
        settings.setdefault("touch_interval", TOUCH)
        engine = SessionEngine(SessionConfig(**settings), store=store, clock=clock)
        if events is not None:
            engine.events.subscribe(events.append)
        return engine

    # -- capability bookkeeping ------------------------------------------------------------
    def test_declared_capabilities_are_tested(self, store: Store) -> None:
        for flag, suite in (
            ("supports_user_index", UserIndexConformance),
            ("supports_lock", LockConformance),
            ("supports_sweep", SweepConformance),
            ("supports_scan", ScanConformance),
            ("supports_session_limit", SessionLimitConformance),
            ("supports_reseal", ResealConformance),
            ("supports_challenges", ChallengeConformance),
        ):
            if getattr(store, flag):
                assert isinstance(self, suite), (
                    f"{flag} is declared but {suite.__name__} is not run"
                )
        if not store.client_side:
            assert isinstance(self, ServerStoreConformance)

    # -- round trips -----------------------------------------------------------------------
    def test_round_trip_of_every_supported_type(self, browser: Browser) -> None:
        value = {
            "n": 1, "f": 1.5, "s": "héllo", "none": None, "list": [1, [2, 3]],
            "tuple": (1, "a"), "bytes": b"\x00\xff", "set": {1, 2},
            "when": datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
            "tag_lookalike": {" t": 1},
        }  # fmt: skip
        browser.visit(lambda s: s.update(value))
        assert browser.visit(_snapshot).result == value

    def test_key_order_survives_round_trips(self, browser: Browser) -> None:
        """A session is a dict: its keys come back in insertion order from every store,
        after a first save, a merge of new keys, a removal and a change in place, so that
        ``popitem()`` removes what it would remove from a dict."""
        # "m" holds more than 64 bytes, and a changed key is merged into a record whose
        # store may keep no order (Redis then keeps the hash as a table, in hash order)
        expected = {"z": 1, "a": 2, "m": "m" * 100}
        browser.visit(lambda s: s.update(expected))
        assert list(browser.visit(_snapshot).result) == ["z", "a", "m"]

        def change(s: Session) -> None:
            for key in ("y", "b", "x", "c"):  # new keys, in an order no hash would pick
                s[key] = key
            del s["a"]
            s["z"] = 9  # a change in place keeps its position

        browser.visit(change)
        expected = {"z": 9, "m": "m" * 100, "y": "y", "b": "b", "x": "x", "c": "c"}
        assert list(browser.visit(_snapshot).result.items()) == list(expected.items())
        assert browser.visit(lambda s: s.popitem()).result == ("c", "c")
        assert list(browser.visit(_snapshot).result) == ["z", "m", "y", "b", "x"]

    def test_untouched_request_costs_nothing(
        self, store: Store, clock: FakeClock, flavour: Flavour, loop: asyncio.AbstractEventLoop
    ) -> None:
        counting = CountingStore(store)
        browser = Browser(self.engine_for(counting, clock), flavour, loop=loop)
        browser.visit(_set("a", 1))
        if not store.client_side:
            assert ("asave" if flavour == "async" else "save") in counting.calls
        counting.calls.clear()
        visit = browser.visit(lambda s: None)  # the view never looks at the session
        # async adapters fetch a validly signed session before the view (as the ASGI
        # middleware does); sync ones load lazily, so an untouched request does no I/O
        preload = ["aload"] if flavour == "async" and not store.client_side else []
        assert counting.calls == preload
        assert visit.plan.headers() == [] and not visit.plan.has_io

    def test_empty_session_stores_nothing_and_sets_no_cookie(
        self, store: Store, clock: FakeClock, flavour: Flavour, loop: asyncio.AbstractEventLoop
    ) -> None:
        counting = CountingStore(store)
        browser = Browser(self.engine_for(counting, clock), flavour, loop=loop)
        visit = browser.visit(lambda s: s.get("user"))
        assert visit.set_cookie is None
        assert ("Vary", "Cookie") in visit.plan.headers()
        assert counting.calls == []

    def test_changes_persist_and_only_changes_are_written(self, browser: Browser) -> None:
        browser.visit(lambda s: s.update(a=1, b=2))
        visit = browser.visit(_set("b", 3))
        assert visit.saved
        if browser.engine.store.client_side:  # the whole session travels in the cookie
            assert visit.plan.write is None and visit.set_cookie is not None
        else:
            assert visit.plan.write is not None
            assert set(visit.plan.write.items) == {"b"}
        assert browser.visit(_snapshot).result == {"a": 1, "b": 3}

    def test_nested_mutation_is_saved(self, browser: Browser) -> None:
        browser.visit(_set("cart", {"items": []}))
        browser.visit(lambda s: s["cart"]["items"].append("book"))
        browser.visit(lambda s: s.setdefault("tags", []).append("x"))
        assert browser.visit(_snapshot).result == {"cart": {"items": ["book"]}, "tags": ["x"]}

    def test_delete_pop_and_clear_persist(self, browser: Browser) -> None:
        browser.visit(lambda s: s.update(a=1, b=2, c=3))
        browser.visit(_steps(lambda s: s.__delitem__("a"), lambda s: s.pop("b")))
        assert browser.visit(_snapshot).result == {"c": 3}
        browser.visit(_steps(lambda s: s.clear(), _set("d", 4)))
        assert browser.visit(_snapshot).result == {"d": 4}

    def test_emptied_session_clears_the_cookie(self, browser: Browser) -> None:
        browser.visit(_set("a", 1))
        old = browser.cookie_header
        visit = browser.visit(lambda s: s.clear())
        assert visit.set_cookie is not None and "Max-Age=0" in visit.set_cookie
        assert browser.cookie is None
        if not browser.engine.store.client_side:
            replay = browser.fork()
            replay.cookie = old.partition("=")[2] if old else None
            assert replay.visit(_snapshot).result == {}

    def test_read_only_request_is_touched_only_after_the_interval(
        self, browser: Browser, clock: FakeClock
    ) -> None:
        browser.visit(_set("a", 1))
        clock.advance(TOUCH / 2)
        assert browser.visit(_snapshot).set_cookie is None
        clock.advance(TOUCH)
        touched = browser.visit(_snapshot)
        assert touched.set_cookie is not None and "Max-Age=600" in touched.set_cookie

    def test_5xx_saves_nothing(self, browser: Browser) -> None:
        browser.visit(_set("a", 1))
        visit = browser.visit(_set("a", 2), status=500)
        assert visit.set_cookie is None and not visit.plan.has_io
        assert browser.visit(_snapshot).result == {"a": 1}

    def test_response_headers(self, browser: Browser) -> None:
        visit = browser.visit(_set("a", 1))
        headers = visit.plan.headers()
        assert ("Vary", "Cookie") in headers and ("Cache-Control", "private") in headers
        cookie = visit.set_cookie or ""
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie

    # -- regeneration, invalidation --------------------------------------------------------
    def test_regenerate_keeps_data_under_a_new_cookie(self, browser: Browser) -> None:
        browser.visit(_set("a", 1))
        before = browser.cookie
        browser.visit(lambda s: s.regenerate())
        assert browser.cookie is not None and browser.cookie != before
        assert browser.visit(_snapshot).result == {"a": 1}

    def test_invalidate_discards_data(self, browser: Browser, events: list[Event]) -> None:
        browser.visit(_set("a", 1))
        visit = browser.visit(lambda s: s.invalidate())
        assert visit.set_cookie is not None and browser.cookie is None
        assert browser.visit(_snapshot).result == {}
        assert EventKind.INVALIDATED in {e.kind for e in events}

    def test_values_set_after_invalidate_start_a_new_session(self, browser: Browser) -> None:
        browser.visit(_set("a", 1))
        before = browser.cookie
        browser.visit(_steps(lambda s: s.invalidate(), lambda s: s.flash("msg", "bye")))
        assert browser.cookie not in (None, before)
        assert browser.visit(_snapshot).result == {"msg": "bye"}

    def test_bind_user_rotates_the_id(self, browser: Browser) -> None:
        browser.visit(_set("cart", [1]))
        before = browser.cookie
        browser.visit(lambda s: s.bind_user(42))
        assert browser.cookie != before
        assert browser.visit(lambda s: (s.user_id, dict(s))).result == ("42", {"cart": [1]})

    # -- expiry ----------------------------------------------------------------------------
    def test_idle_timeout(self, browser: Browser, clock: FakeClock, events: list[Event]) -> None:
        browser.visit(_set("a", 1))
        clock.advance(IDLE - 1)
        assert browser.visit(_snapshot).result == {"a": 1}  # touched: idle restarts
        clock.advance(IDLE - 1)
        assert browser.visit(_snapshot).result == {"a": 1}
        clock.advance(IDLE + 1)
        replayed = browser.cookie
        assert browser.visit(_snapshot).result == {}
        if browser.engine.store.client_side:  # a server may drop it by TTL before we look
            assert EventKind.EXPIRED in {e.kind for e in events}
        stale = browser.fork()
        stale.cookie = replayed  # a cookie the browser kept past its time is still dead
        assert stale.visit(_snapshot).result == {}

    def test_absolute_timeout_beats_activity(self, browser: Browser, clock: FakeClock) -> None:
        browser.visit(_set("a", 1))
        for _ in range(int(ABSOLUTE // (IDLE / 2)) - 1):
            clock.advance(IDLE / 2)
            assert browser.visit(lambda s: s.__setitem__("n", s.get("n", 0) + 1)).saved
        clock.advance(IDLE / 2 + 1)
        assert browser.visit(_snapshot).result == {}

    def test_remember_me_outlives_the_idle_timeout(
        self, browser: Browser, clock: FakeClock
    ) -> None:
        browser.visit(_steps(_set("a", 1), lambda s: s.set_expiry(timedelta(seconds=3000))))
        clock.advance(IDLE * 2)
        visit = browser.visit(_snapshot)
        assert visit.result == {"a": 1}
        clock.advance(3001)
        assert browser.visit(_snapshot).result == {}

    def test_browser_session_cookie_has_no_max_age(self, browser: Browser) -> None:
        visit = browser.visit(_steps(_set("a", 1), lambda s: s.set_expiry(0)))
        assert visit.set_cookie is not None and "Max-Age" not in visit.set_cookie
        assert browser.visit(_snapshot).result == {"a": 1}

    def test_expiry_at_a_fixed_moment(self, browser: Browser, clock: FakeClock) -> None:
        until = datetime.fromtimestamp(clock.now + 100, tz=timezone.utc)
        browser.visit(_steps(_set("a", 1), lambda s: s.set_expiry(until)))
        clock.advance(99)
        assert browser.visit(lambda s: s.expires).result == until
        clock.advance(2)
        assert browser.visit(_snapshot).result == {}

    # -- flash -----------------------------------------------------------------------------
    def test_flash_lives_for_the_next_request_only(self, browser: Browser) -> None:
        browser.visit(lambda s: s.flash("msg", "saved"))
        assert browser.visit(lambda s: s.get("msg")).result == "saved"
        assert browser.visit(lambda s: s.get("msg")).result is None

    def test_flash_survives_requests_that_do_not_use_the_session(self, browser: Browser) -> None:
        browser.visit(_steps(_set("a", 1), lambda s: s.flash("msg", "hi")))
        browser.visit(None)
        assert browser.visit(lambda s: s.get("msg")).result == "hi"

    def test_now_reflash_and_keep(self, browser: Browser) -> None:
        assert browser.visit(_steps(lambda s: s.now("x", 1), lambda s: s.get("x"))).result == 1
        assert browser.visit(lambda s: s.get("x")).result is None
        browser.visit(_steps(lambda s: s.flash("a", 1), lambda s: s.flash("b", 2)))
        browser.visit(lambda s: s.reflash())
        browser.visit(lambda s: s.keep("b"))
        assert browser.visit(_snapshot).result == {"b": 2}
        assert browser.visit(_snapshot).result == {}

    # -- cookies ---------------------------------------------------------------------------
    def test_tampered_cookie_gives_an_empty_session(
        self, browser: Browser, events: list[Event]
    ) -> None:
        browser.visit(_set("a", 1))
        assert browser.cookie is not None
        for position in (0, len(browser.cookie) // 2, len(browser.cookie) - 1):
            thief = browser.fork()
            char = browser.cookie[position]
            thief.cookie = (
                browser.cookie[:position]
                + ("B" if char == "A" else "A")
                + browser.cookie[position + 1 :]
            )
            visit = thief.visit(_snapshot)
            assert visit.result == {}
            assert visit.set_cookie is not None and "Max-Age=0" in visit.set_cookie
        assert EventKind.COOKIE_REJECTED in {e.kind for e in events}

    def test_key_rotation(
        self, store: Store, clock: FakeClock, flavour: Flavour, loop: asyncio.AbstractEventLoop
    ) -> None:
        old = Browser(self.engine_for(store, clock, secret_key=OLD_KEY), flavour, loop=loop)
        old.visit(_set("a", 1))
        rotated = old.fork()
        rotated.engine = self.engine_for(store, clock, secret_key=[KEY, OLD_KEY])
        visit = rotated.visit(_snapshot)
        assert visit.result == {"a": 1}
        assert visit.set_cookie is not None and rotated.cookie != old.cookie  # re-issued
        retired = rotated.fork()
        retired.engine = self.engine_for(store, clock, secret_key=KEY)
        assert retired.visit(_snapshot).result == {"a": 1}  # the re-issued cookie is current
        old.engine = retired.engine
        assert old.visit(_snapshot).result == {}  # the old-key cookie is now refused

    def test_fingerprint_mismatch_invalidates_by_default(
        self, browser: Browser, events: list[Event]
    ) -> None:
        browser.visit(_set("a", 1))
        thief = browser.fork(client=ClientInfo("198.51.100.1", "curl/8.0"))
        assert thief.visit(_snapshot).result == {}
        assert EventKind.FINGERPRINT_MISMATCH in {e.kind for e in events}
        browser.client = ClientInfo(
            browser.client.remote_addr, browser.client.user_agent.replace("126.0.0.0", "127.0.1.2")
        )
        if not browser.engine.store.client_side:
            assert browser.visit(_snapshot).result == {}  # the stolen session was killed
        else:
            assert browser.visit(_snapshot).result == {"a": 1}  # a browser update is fine

    def test_fingerprint_policy_log_keeps_the_session(
        self, store: Store, clock: FakeClock, flavour: Flavour, loop: asyncio.AbstractEventLoop
    ) -> None:
        events: list[Event] = []
        engine = self.engine_for(store, clock, events, fingerprint_action="log")
        browser = Browser(engine, flavour, loop=loop)
        browser.visit(_set("a", 1))
        thief = browser.fork(client=ClientInfo("198.51.100.1", "curl/8.0"))
        assert thief.visit(_snapshot).result == {"a": 1}
        assert [e.kind for e in events].count(EventKind.FINGERPRINT_MISMATCH) == 1

    def test_fingerprint_policy_regenerate_moves_the_session(
        self, store: Store, clock: FakeClock, flavour: Flavour, loop: asyncio.AbstractEventLoop
    ) -> None:
        engine = self.engine_for(store, clock, fingerprint_action="regenerate")
        browser = Browser(engine, flavour, loop=loop)
        browser.visit(_set("a", 1))
        moved = browser.fork(client=ClientInfo("198.51.100.1", "Firefox/130.0"))
        visit = moved.visit(_snapshot)
        assert visit.result == {"a": 1} and moved.cookie != browser.cookie
        assert moved.visit(_snapshot).result == {"a": 1}  # no second mismatch


class ServerStoreConformance(StoreConformance):
    """Invariants of a store that keeps sessions on a server."""

    def test_store_level_conditions(self, store: Store, clock: FakeClock, loop: Any) -> None:
        meta = RecordMeta(created=int(clock.now), last_seen=int(clock.now))
        key = digest(secrets.token_urlsafe(32))
        create = Write(key, {"a": "1"}, frozenset(), meta, 60.0, create=True, replace=True)
        update = Write(key, {"b": "2"}, frozenset(), meta, 60.0)
        assert store.save(update) is False  # nothing to update: no resurrection
        assert store.load(key) is None
        assert store.save(create) is True
        assert store.save(create) is False  # create never overwrites
        assert loop.run_until_complete(store.asave(update)) is True
        record = loop.run_until_complete(store.aload(key))
        assert record is not None and dict(record.items) == {"a": "1", "b": "2"}
        assert store.touch(key, int(clock.now) + 1, 60.0) is True
        store.delete(key)
        assert store.touch(key, int(clock.now) + 2, 60.0) is False
        assert store.load(key) is None

    def test_forged_and_unknown_cookies_create_nothing(
        self, store: Store, clock: FakeClock, flavour: Flavour, loop: Any
    ) -> None:
        counting = CountingStore(store)
        engine = self.engine_for(counting, clock)
        for _ in range(200):
            forged = Browser(engine, flavour, loop=loop)
            forged.cookie = secrets.token_urlsafe(32) + "." + secrets.token_urlsafe(16)
            assert forged.visit(_snapshot).result == {}
        assert counting.calls == []  # a forged cookie never reaches the store
        other = self.engine_for(store, clock, secret_key=OLD_KEY)
        ghost = Browser(other, flavour, loop=loop)
        ghost.visit(_set("a", 1))
        gone = ghost.cookie
        ghost.visit(lambda s: s.invalidate())  # now a properly signed ID the store lacks
        replay = Browser(other, flavour, loop=loop)
        replay.cookie = gone
        visit = replay.visit(_set("x", 1))
        assert replay.cookie != gone  # strict IDs: a fresh ID, never the presented one
        assert visit.plan.write is not None and visit.plan.write.create

    def test_no_resurrection_after_logout(self, browser: Browser, events: list[Event]) -> None:
        browser.visit(_set("a", 1))
        slow = browser.begin()  # a slow request is in flight...
        browser.visit(lambda s: s.invalidate())  # ...when the user logs out elsewhere
        slow["a"] = 2
        visit = browser.fork().finish(slow)
        assert visit.saved is False and visit.plan.conflict
        assert visit.set_cookie is not None and "Max-Age=0" in visit.set_cookie
        revived = browser.fork()
        revived.cookie = slow._ctx.cookie
        assert revived.visit(_snapshot).result == {}
        assert EventKind.SAVE_CONFLICT in {e.kind for e in events}

    def test_regenerate_racing_logout_does_not_resurrect(self, browser: Browser) -> None:
        browser.visit(_steps(_set("a", 1), lambda s: s.bind_user("u1", regenerate=False)))
        slow = browser.begin()
        browser.visit(lambda s: s.invalidate())
        slow.regenerate()
        visit = browser.fork().finish(slow)
        assert visit.saved is False
        assert browser.engine.store.load(visit.session._ctx.digest) is None

    def test_concurrent_changes_to_different_keys_both_survive(self, browser: Browser) -> None:
        browser.visit(lambda s: s.update(a=0, b=0))
        first, second = browser.begin(), browser.fork().begin()
        first["a"] = 1
        second["b"] = 2
        browser.finish(first)
        browser.fork().finish(second)
        assert browser.visit(_snapshot).result == {"a": 1, "b": 2}

    def test_expiry_is_enforced_from_the_record(
        self, store: Store, browser: Browser, clock: FakeClock, events: list[Event]
    ) -> None:
        browser.visit(_set("a", 1))
        session_digest = browser.visit(lambda s: s._ctx.digest).result
        stale = RecordMeta(created=int(clock.now - ABSOLUTE - 1), last_seen=int(clock.now))
        # the backend is told to keep it for a day; the record says it is past its time
        assert store.save(Write(session_digest, {}, frozenset(), stale, 86400.0))
        assert browser.visit(_snapshot).result == {}
        assert EventKind.EXPIRED in {e.kind for e in events}

    def test_corrupted_record_reads_as_no_session(
        self, store: Store, browser: Browser, clock: FakeClock, events: list[Event]
    ) -> None:
        browser.visit(_set("a", 1))
        session_digest = browser.visit(lambda s: s._ctx.digest).result
        meta = RecordMeta(created=int(clock.now), last_seen=int(clock.now))
        store.save(Write(session_digest, {"a": "{not json"}, frozenset(), meta, 600.0))
        assert browser.visit(_snapshot).result == {}
        assert EventKind.RECORD_REJECTED in {e.kind for e in events}

    def test_store_does_not_hold_raw_ids(self, browser: Browser, store: Store) -> None:
        browser.visit(_set("a", 1))
        session_id = (browser.cookie or "").partition(".")[0]
        assert store.load(session_id) is None
        assert store.load(digest(session_id)) is not None


class SessionLimitConformance:
    """``max_sessions_per_user`` (``Store.save_limited``): a login over the limit evicts the
    user's least recently used session, or with ``"refuse"`` writes nothing. (That the count
    is atomic under parallel logins is the store's own test: it needs real concurrency.)"""

    def test_a_login_over_the_limit_evicts_the_least_recently_used(
        self, store: Store, clock: FakeClock, flavour: Flavour, loop: Any
    ) -> None:
        events: list[Event] = []
        suite = cast(StoreConformance, self)  # mixed into a StoreConformance subclass
        engine = suite.engine_for(store, clock, events, max_sessions_per_user=2, touch_interval=0)
        first, second, third = (Browser(engine, flavour, loop=loop) for _ in range(3))
        handles = []
        for browser in (first, second):
            handles.append(browser.visit(lambda s: s.bind_user("erin")).session.handle)
            clock.advance(10)
        first.visit(lambda s: s.get("x"))  # used again: second is now the least recent
        clock.advance(10)
        third.visit(lambda s: s.bind_user("erin"))
        evicted = [e for e in events if e.kind is EventKind.SESSION_EVICTED]
        assert [e.handle for e in evicted] == [handles[1]]
        assert second.visit(lambda s: s.user_id).result is None  # dead server-side
        assert first.visit(lambda s: s.user_id).result == "erin"
        assert len(store.user_sessions("erin")) == 2
        clock.advance(10)
        third.visit(lambda s: s.get("x"))  # used again: first is now the least recent
        clock.advance(10)
        second.visit(lambda s: s.bind_user("erin"))  # logs back in, evicting first
        assert first.visit(lambda s: s.user_id).result is None
        assert third.visit(lambda s: s.user_id).result == "erin"

    def test_refuse_writes_nothing(
        self, store: Store, clock: FakeClock, flavour: Flavour, loop: Any
    ) -> None:
        suite = cast(StoreConformance, self)
        engine = suite.engine_for(
            store, clock, max_sessions_per_user=1, session_limit_policy="refuse"
        )
        first, second = Browser(engine, flavour, loop=loop), Browser(engine, flavour, loop=loop)
        first.visit(lambda s: s.bind_user("finn"))
        second.visit(lambda s: s.__setitem__("cart", 1))
        kept = second.cookie
        with pytest.raises(SessionLimitReached):
            second.visit(lambda s: s.bind_user("finn"))
        second.cookie = kept
        assert second.visit(lambda s: (s.user_id, s.get("cart"))).result == (None, 1)
        assert first.visit(lambda s: s.user_id).result == "finn"
        assert len(store.user_sessions("finn")) == 1
        Browser(engine, flavour, loop=loop).visit(lambda s: s.bind_user("gail"))  # others: fine


class UserIndexConformance:
    """Per-user listing and revocation (log out everywhere)."""

    def test_list_and_revoke_a_users_sessions(
        self, engine: SessionEngine, flavour: Flavour, loop: Any
    ) -> None:
        store = engine.store
        laptop, phone, other = (Browser(engine, flavour, loop=loop) for _ in range(3))
        laptop.visit(lambda s: s.bind_user("alice"))
        phone.visit(lambda s: s.bind_user("alice"))
        other.visit(lambda s: s.bind_user("bob"))
        listed = store.user_sessions("alice")
        assert len(listed) == 2
        cookies = {laptop.cookie, phone.cookie}
        for info in listed:
            assert len(info.handle) == 16 and all(info.handle not in (c or "") for c in cookies)
        laptop_digest = laptop.visit(lambda s: s._ctx.digest).result
        assert loop.run_until_complete(store.arevoke_user("alice", keep=laptop_digest)) == 1
        assert phone.visit(_snapshot).result == {}
        assert laptop.visit(lambda s: s.user_id).result == "alice"
        assert [i.handle for i in store.user_sessions("alice")] == [handle(laptop_digest)]
        assert store.revoke_handle("alice", handle(laptop_digest)) is True
        assert laptop.visit(lambda s: s.user_id).result is None
        assert store.user_sessions("alice") == []
        assert len(store.user_sessions("bob")) == 1

    def test_the_list_names_each_sessions_device(
        self, engine: SessionEngine, flavour: Flavour, loop: Any
    ) -> None:
        """A device list says what each session is ("Firefox on Linux"), from the browser
        that last saved it; the User-Agent header itself is never stored."""
        firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"
        iphone = (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
        )
        for agent in (firefox, iphone):
            client = ClientInfo("192.0.2.7", agent)
            Browser(engine, flavour, client=client, loop=loop).visit(lambda s: s.bind_user("dora"))
        listed = engine.store.user_sessions("dora")
        assert sorted(str(i.device) for i in listed) == ["Firefox on Linux", "Safari on iOS"]
        assert all(i.user == "dora" for i in listed)

    def test_logout_and_rotation_keep_the_index_exact(
        self, engine: SessionEngine, flavour: Flavour, loop: Any
    ) -> None:
        browser = Browser(engine, flavour, loop=loop)
        browser.visit(lambda s: s.bind_user("carol"))
        browser.visit(lambda s: s.regenerate())
        assert len(engine.store.user_sessions("carol")) == 1
        browser.visit(lambda s: s.invalidate())
        assert engine.store.user_sessions("carol") == []


class LockConformance:
    """Locks that serialise the requests of one session."""

    def test_lock_excludes_and_times_out(self, store: Store) -> None:
        key = digest(secrets.token_urlsafe(32))
        with store.lock(key, ttl=5, wait=1):
            with pytest.raises(LockTimeout), store.lock(key, ttl=5, wait=0.05):
                pass  # pragma: no cover
        with store.lock(key, ttl=5, wait=0.05):
            pass  # released: free again

    def test_fifty_locked_increments_end_at_fifty(self, store: Store) -> None:
        key = digest(secrets.token_urlsafe(32))
        counter = {"n": 0}

        def bump() -> None:
            for _ in range(5):
                with store.lock(key, ttl=5, wait=10):
                    n = counter["n"]
                    threading.Event().wait(0.0005)
                    counter["n"] = n + 1

        threads = [threading.Thread(target=bump) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert counter["n"] == 50

    def test_async_lock(self, store: Store, loop: asyncio.AbstractEventLoop) -> None:
        key = digest(secrets.token_urlsafe(32))
        counter = {"n": 0}

        async def bump() -> None:
            async with store.alock(key, ttl=5, wait=10):
                n = counter["n"]
                await asyncio.sleep(0.001)
                counter["n"] = n + 1

        async def main() -> list[BaseException | None]:
            # every attempt runs to its end: a timeout must not leave the others pending on
            # a loop that stops (their cleanup would then fail in a later test)
            return await asyncio.gather(*(bump() for _ in range(50)), return_exceptions=True)

        failures = [r for r in loop.run_until_complete(main()) if r is not None]
        assert not failures, failures[0]
        assert counter["n"] == 50

    def test_a_crashed_holder_expires(self, store: Store, clock: FakeClock) -> None:
        key = digest(secrets.token_urlsafe(32))
        crashed = store.lock(key, ttl=0.3, wait=0.1)
        crashed.__enter__()  # never released (the reference keeps a generator from cleaning up)
        with pytest.raises(LockTimeout):
            with store.lock(key, ttl=0.3, wait=0.05):
                pass  # pragma: no cover
        clock.advance(1)  # stores on the fake clock see the lock lapse now...
        with store.lock(key, ttl=5.0, wait=2.0):  # ...servers with real TTLs within 0.3 s
            crashed.__exit__(None, None, None)  # the stale holder wakes up and lets go...
            with pytest.raises(LockTimeout):  # ...which must not free the new holder's lock
                with store.lock(key, ttl=0.3, wait=0.05):
                    pass  # pragma: no cover


class SweepConformance:
    """Removing expired sessions in bulk."""

    def test_sweep_removes_only_expired(
        self, engine: SessionEngine, clock: FakeClock, flavour: Flavour, loop: Any
    ) -> None:
        for _ in range(5):
            Browser(engine, flavour, loop=loop).visit(_set("a", 1))
        clock.advance(IDLE / 2)
        fresh = Browser(engine, flavour, loop=loop)
        fresh.visit(_set("a", 1))
        clock.advance(IDLE / 2 + 1)
        seen: list[int] = []
        assert engine.store.delete_expired(progress=seen.append) == 5
        assert seen and seen[-1] == 5
        assert fresh.visit(_snapshot).result == {"a": 1}


class ScanConformance:
    """Enumerating the stored sessions' metadata (``sessionkit stats``)."""

    def test_scan_sees_every_stored_session(
        self, engine: SessionEngine, flavour: Flavour, loop: Any
    ) -> None:
        Browser(engine, flavour, loop=loop).visit(_set("x", 1))
        Browser(engine, flavour, loop=loop).visit(lambda s: s.bind_user("a"))
        Browser(engine, flavour, loop=loop).visit(lambda s: s.bind_user("b"))
        metas = list(engine.store.scan())
        assert sorted(m.user or "" for m in metas) == ["", "a", "b"]
        assert all(isinstance(m, RecordMeta) for m in metas)


class ResealConformance:
    """``Store.reseal``: a compare-and-set per value that re-encodes a record in place
    (``encrypt_records`` after a key rotation, ``sessionkit rekey``), never overwriting a
    value changed meanwhile; and ``scan_digests`` where the store declares ``supports_scan``."""

    def _stored(
        self, store: Store, clock: FakeClock, items: dict[str, str], ttl: float = 600.0
    ) -> str:
        key = digest(secrets.token_urlsafe(32))
        meta = RecordMeta(created=int(clock.now), last_seen=int(clock.now), user=None)
        assert store.save(Write(key, items, frozenset(), meta, ttl, create=True, replace=True))
        return key

    def _reseal(
        self, store: Store, flavour: Flavour, loop: Any, key: str, pairs: dict[str, tuple[str, str]]
    ) -> int:
        if flavour == "async":
            return int(loop.run_until_complete(store.areseal(key, pairs)))
        return store.reseal(key, pairs)

    def test_reseal_replaces_exactly_the_values_that_still_match(
        self, store: Store, clock: FakeClock, flavour: Flavour, loop: Any
    ) -> None:
        items = {"z": '"one"', "a": '"two"', "m": '"three"', "q": '"four"'}
        key = self._stored(store, clock, items)
        before = store.load(key)
        assert before is not None
        pairs = {
            "a": ('"two"', '"TWO"'),  # still stored: replaced
            "m": ('"three"', '"THREE"'),  # still stored: replaced
            "q": ('"changed meanwhile"', '"FOUR"'),  # no longer stored: left alone
            "absent": ('"x"', '"y"'),  # not in the record: never added
        }
        assert self._reseal(store, flavour, loop, key, pairs) == 2
        after = store.load(key)
        assert after is not None
        assert list(after.items.items()) == [
            ("z", '"one"'), ("a", '"TWO"'), ("m", '"THREE"'), ("q", '"four"'),
        ]  # fmt: skip
        assert after.meta == before.meta and after.version == before.version
        assert self._reseal(store, flavour, loop, key, pairs) == 0  # done: nothing matches

    def test_reseal_of_a_gone_or_expired_record_writes_nothing(
        self, store: Store, clock: FakeClock, flavour: Flavour, loop: Any
    ) -> None:
        unknown = digest(secrets.token_urlsafe(32))
        assert self._reseal(store, flavour, loop, unknown, {"a": ('"1"', '"2"')}) == 0
        assert store.load(unknown) is None  # nothing created
        deleted = self._stored(store, clock, {"a": '"1"'})
        store.delete(deleted)
        assert self._reseal(store, flavour, loop, deleted, {"a": ('"1"', '"2"')}) == 0
        assert store.load(deleted) is None
        expired = self._stored(store, clock, {"a": '"1"'}, ttl=0.05)
        clock.advance(1)
        time.sleep(0.1)  # a server with its own clock (Redis) expires it by that
        assert self._reseal(store, flavour, loop, expired, {"a": ('"1"', '"2"')}) == 0
        assert store.load(expired) is None

    def test_a_concurrent_change_wins_over_the_reseal(
        self, store: Store, clock: FakeClock, flavour: Flavour, loop: Any
    ) -> None:
        """The store level: a re-seal computed from a read made before another request
        changed the value finds the new value and leaves it."""
        key = self._stored(store, clock, {"k": '"old"', "j": '"0"'})
        read = store.load(key)
        assert read is not None
        meta = RecordMeta(created=int(clock.now), last_seen=int(clock.now))
        assert store.save(Write(key, {"k": '"new"'}, frozenset(), meta, 600.0))  # request B
        pairs = {k: (v, v.upper()) for k, v in read.items.items()}  # from the earlier read
        assert self._reseal(store, flavour, loop, key, pairs) == 1  # "j" only
        after = store.load(key)
        assert after is not None and dict(after.items) == {"k": '"new"', "j": '"0"'}

    def test_after_a_key_rotation_a_concurrent_change_survives(
        self, store: Store, clock: FakeClock, flavour: Flavour, loop: Any
    ) -> None:
        """The engine level: request A loads a session sealed under the old key, B changes
        ``k``, then A changes only ``j``. ``k`` is B's; and once A is done every value is
        sealed under the new key (the old key can go)."""
        suite = cast(StoreConformance, self)
        old = suite.engine_for(store, clock, secret_key=OLD_KEY, encrypt_records=True)
        rotated = suite.engine_for(store, clock, secret_key=[KEY, OLD_KEY], encrypt_records=True)
        browser = Browser(old, flavour, loop=loop)
        browser.visit(lambda s: s.update(k="original", j=0, kept="kept"))
        browser.engine = rotated
        tab_a, tab_b = browser.begin(), browser.fork().begin()
        tab_b["k"] = "from b"
        assert browser.fork().finish(tab_b).saved
        tab_a["j"] = 1
        assert browser.finish(tab_a).saved
        browser.engine = suite.engine_for(store, clock, secret_key=KEY, encrypt_records=True)
        assert browser.visit(_snapshot).result == {"k": "from b", "j": 1, "kept": "kept"}

    def test_scan_digests_sees_every_stored_session(
        self, engine: SessionEngine, flavour: Flavour, loop: Any
    ) -> None:
        if not engine.store.supports_scan:
            with pytest.raises(StoreError):
                list(engine.store.scan_digests())
            return
        browsers = [Browser(engine, flavour, loop=loop) for _ in range(3)]
        for browser in browsers:
            browser.visit(_set("x", 1))
        expected = sorted(str(engine.digest_of(b.begin())) for b in browsers)
        assert sorted(engine.store.scan_digests()) == expected


class ChallengeConformance:
    """One-use values with a TTL (DBSC challenges): a take is atomic, so of any number of
    concurrent takers exactly one gets the value; and the device-bound key a record
    carries (``RecordMeta.dbsc``) survives the store."""

    def test_put_then_take_once(self, store: Store, loop: asyncio.AbstractEventLoop) -> None:
        key = digest(secrets.token_urlsafe(32))
        assert store.take_challenge(key) is None  # never put
        store.put_challenge(key, "r:some-session", 60)
        assert store.take_challenge(key) == "r:some-session"
        assert store.take_challenge(key) is None  # used
        other = digest(secrets.token_urlsafe(32))
        loop.run_until_complete(store.aput_challenge(other, "f:x", 60))
        assert loop.run_until_complete(store.atake_challenge(other)) == "f:x"
        assert loop.run_until_complete(store.atake_challenge(other)) is None

    def test_expired_challenge_is_gone(self, store: Store, clock: FakeClock) -> None:
        key = digest(secrets.token_urlsafe(32))
        store.put_challenge(key, "r:s", 0.3)
        clock.advance(5)  # stores on the fake clock see it lapse now...
        threading.Event().wait(0.4)  # ...servers with real TTLs within 0.3 s
        assert store.take_challenge(key) is None

    def test_concurrent_takers_one_winner(self, store: Store) -> None:
        for _ in range(3):
            key = digest(secrets.token_urlsafe(32))
            store.put_challenge(key, "r:s", 60)
            got: list[str | None] = []
            start = threading.Barrier(12)

            def take(start: threading.Barrier = start, key: str = key,
                     got: list[str | None] = got) -> None:  # fmt: skip
                start.wait()
                got.append(store.take_challenge(key))

            threads = [threading.Thread(target=take) for _ in range(12)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert got.count("r:s") == 1 and got.count(None) == 11

    def test_bound_key_survives_the_store(
        self, store: Store, clock: FakeClock, loop: asyncio.AbstractEventLoop
    ) -> None:
        key = digest(secrets.token_urlsafe(32))
        bound = '{"alg":"ES256","id":"abc","jwk":{"crv":"P-256","kty":"EC","x":"x","y":"y"}}'
        now = int(clock())
        meta = RecordMeta(created=now, last_seen=now, user="u", dbsc=bound)
        assert store.save(Write(key, {"a": "1"}, frozenset(), meta, 600, create=True))
        loaded = store.load(key)
        assert loaded is not None and loaded.meta.dbsc == bound
        loaded = loop.run_until_complete(store.aload(key))
        assert loaded is not None and loaded.meta.dbsc == bound
