"""Engine decisions that the conformance suite does not reach: bad cookies, size, errors."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sessionkit import (
    ClientInfo,
    ConfigError,
    EventKind,
    Session,
    SessionDataError,
    SessionEngine,
    SessionTooLarge,
    Store,
    StoreUnavailable,
    open_store,
)
from sessionkit.crypto import b64encode
from sessionkit.expiry import max_age as cookie_max_age
from sessionkit.testing import Browser, FakeClock
from tests.conftest import make_engine

STORES = ["memory://", "cookie://"]


def cookie_of(browser: Browser) -> str:
    assert browser.cookie is not None
    return browser.cookie


@pytest.fixture(params=STORES)
def signed_in(request: pytest.FixtureRequest, clock: FakeClock) -> Browser:
    browser = Browser(make_engine(clock, store=request.param))
    browser.visit(lambda s: s.update(user="alice", cart=[1, 2]))
    return browser


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_single_changed_byte_is_rejected(signed_in: Browser, data: st.DataObject) -> None:
    """SECURITY 8: flipping any byte gives an empty session and an event, never an error."""
    value = cookie_of(signed_in)
    position = data.draw(st.integers(0, len(value) - 1))
    # (";" first would empty the cookie: no cookie at all, which is not a tampered one)
    replacement = data.draw(
        st.characters(codec="ascii").filter(
            lambda c: c != value[position] and not (position == 0 and c == ";")
        )
    )
    events: list[Any] = []
    unsubscribe = signed_in.engine.events.subscribe(events.append)
    try:
        thief = signed_in.fork()
        thief.cookie = value[:position] + replacement + value[position + 1 :]
        visit = thief.visit(lambda s: dict(s))
    finally:
        unsubscribe()
    assert visit.result == {}
    assert [e.kind for e in events if e.kind is EventKind.COOKIE_REJECTED]


@pytest.mark.parametrize(
    "bad",
    [
        "..",
        "../../etc/passwd",
        "x" * 10_000,
        "\x00",
        "' OR 1=1 --",
        "é" * 50,
        '"quoted"',
        "1" + "A" * 30,
        "A" * 43 + "." + "é" * 22,
        "A" * 43 + "." + "A" * 22,
    ],
)
@pytest.mark.parametrize("store", STORES)
def test_malformed_cookies_never_reach_the_store(bad: str, store: str, clock: FakeClock) -> None:
    """SECURITY 4: no 500, no store lookup, the cookie is cleared."""
    engine = make_engine(clock, store=store)
    calls: list[str] = []
    engine.store.load = lambda digest: calls.append(digest)  # type: ignore[method-assign]
    session = engine.open(f"session={bad}")
    assert dict(session) == {} and session.new
    plan = engine.commit(session)
    assert calls == []
    assert plan.set_cookie is not None and "Max-Age=0" in plan.set_cookie
    assert ("Vary", "Cookie") in plan.headers() and plan.varies
    untouched = engine.open(f"session={bad}")  # nobody reads it; the cookie is still
    cleared = engine.commit(untouched)  # cleared, so the response depends on the Cookie
    assert not untouched.accessed and cleared.set_cookie is not None
    assert ("Vary", "Cookie") in cleared.headers() and cleared.varies


def test_nameless_cookie_cannot_smuggle_a_session(signed_in: Browser) -> None:
    """SECURITY 20: ``=session=<valid>`` is not our cookie."""
    engine = signed_in.engine
    session = engine.open(f"=session={cookie_of(signed_in)}", signed_in.client)
    assert dict(session) == {}
    session = engine.open(f"other=1; =session={cookie_of(signed_in)}; xsession=1", signed_in.client)
    assert dict(session) == {}
    session = engine.open(f"other=1; session={cookie_of(signed_in)}", signed_in.client)
    assert session["user"] == "alice"  # the control: the same value under our name works


def test_duplicate_cookies(signed_in: Browser) -> None:
    engine = signed_in.engine
    value = cookie_of(signed_in)
    same = engine.open(f"session={value}; session={value}", signed_in.client)
    assert same["user"] == "alice"
    other = Browser(engine)
    other.visit(lambda s: s.__setitem__("user", "mallory"))
    mixed = engine.open(f"session={cookie_of(other)}; session={value}", signed_in.client)
    assert dict(mixed) == {}  # ambiguous: neither is trusted


def test_cookie_store_refuses_to_send_an_oversize_cookie(clock: FakeClock) -> None:
    """SECURITY 11."""
    browser = Browser(make_engine(clock, store="cookie://"))
    with pytest.raises(SessionTooLarge, match=r"\d+ bytes.*server-side store"):
        browser.visit(lambda s: s.__setitem__("blob", "x" * 5000))
    assert browser.cookie is None


def test_cookie_store_size_limit_is_configurable(clock: FakeClock) -> None:
    browser = Browser(make_engine(clock, store="cookie://", max_cookie_size=512))
    browser.visit(lambda s: s.__setitem__("blob", "x" * 100))
    with pytest.raises(SessionTooLarge) as caught:
        browser.visit(lambda s: s.__setitem__("blob", "x" * 600))
    assert caught.value.limit == 512 and caught.value.size > 512
    assert browser.visit(lambda s: s["blob"]).result == "x" * 100  # old cookie intact


def test_authentic_but_foreign_payload_is_rejected(clock: FakeClock) -> None:
    engine = make_engine(clock, store="cookie://")
    events: list[Any] = []
    engine.events.subscribe(events.append)
    for prefix in ("1", "2"):  # authentic under either format, but not a session
        sealed = engine.keyring.seal(b'{"not": "a session"}', engine._associated[prefix])
        session = engine.open(f"session={prefix}" + b64encode(sealed))
        assert dict(session) == {}
        assert events[-1].kind is EventKind.COOKIE_REJECTED and "format" in events[-1].reason


def test_cookie_from_another_cookie_name_is_rejected(clock: FakeClock) -> None:
    first = Browser(make_engine(clock, store="cookie://", cookie_name="a"))
    first.visit(lambda s: s.__setitem__("x", 1))
    second = make_engine(clock, store="cookie://", cookie_name="b")
    assert dict(second.open(f"b={first.cookie}")) == {}


def test_unserializable_value_fails_at_commit_with_a_clear_error(browser: Browser) -> None:
    with pytest.raises(SessionDataError, match="never pickles"):
        browser.visit(lambda s: s.__setitem__("obj", object()))


class Model:
    """Something an app might try to store (a model instance)."""


_REFUSED = (
    "cannot store a tests.core.test_engine.Model in the session: sessionkit stores JSON "
    "plus datetime, date, time, timedelta, UUID, Decimal, bytes, tuple, set and markup, and "
    "never pickles. Store a plain representation instead (e.g. its id)."
)


@pytest.mark.parametrize("store", STORES)
@pytest.mark.parametrize(
    "how",
    [
        lambda s: s.__setitem__("user", Model()),
        lambda s: s.setdefault("user", Model()),
        lambda s: s.update(user=Model()),
        lambda s: s.__setitem__("user", {"profile": [1, Model()]}),
    ],
    ids=["setitem", "setdefault", "update", "nested"],
)
def test_an_unserializable_value_is_refused_where_it_is_stored_naming_the_key(
    store: str, how: Callable[[Session], Any], clock: FakeClock
) -> None:
    """Issue 14: at ``session[key] = value`` (the view's line is in the traceback, the
    session is left as it was), not later in the middleware's commit."""
    engine = make_engine(clock, store=store)
    session = engine.open(None)
    session["kept"] = 1
    with pytest.raises(SessionDataError) as caught:
        how(session)
    assert str(caught.value) == "session['user']: " + _REFUSED
    assert dict(session) == {"kept": 1}
    frames = [frame.name for frame in traceback.extract_tb(caught.value.__traceback__)]
    assert "<lambda>" in frames and "commit" not in frames
    engine.run(engine.commit(session))  # what was stored before is still saved


@pytest.mark.parametrize("store", STORES)
def test_a_value_changed_in_place_is_refused_at_commit_naming_the_key(
    store: str, clock: FakeClock
) -> None:
    engine = make_engine(clock, store=store)
    session = engine.open(None)
    session["cart"] = []
    session["cart"].append(Model())  # no __setitem__ sees this: found at the save
    with pytest.raises(SessionDataError) as caught:
        engine.run(engine.commit(session))
    assert str(caught.value) == (
        "session['cart']: " + _REFUSED + " (found when the session was saved, so the "
        "traceback shows the save, not the view: a value stored earlier was changed in "
        "place, e.g. session['cart'].append(...))"
    )


@pytest.mark.parametrize("store", STORES)
def test_secure_flag_follows_https(store: str, clock: FakeClock) -> None:
    browser = Browser(make_engine(clock, store=store), client=ClientInfo("1.2.3.4", "ua", True))
    visit = browser.visit(lambda s: s.__setitem__("a", 1))
    assert visit.set_cookie is not None and "; Secure" in visit.set_cookie
    plain = Browser(make_engine(clock, store=store))
    assert "Secure" not in (plain.visit(lambda s: s.__setitem__("a", 1)).set_cookie or "")


def test_host_prefix_cookie_round_trip(clock: FakeClock) -> None:
    engine = make_engine(clock, cookie_name="__Host-sid", cookie_secure=True)
    browser = Browser(engine)
    visit = browser.visit(lambda s: s.__setitem__("a", 1))
    header = visit.set_cookie or ""
    assert header.startswith("__Host-sid=") and "Path=/" in header and "Domain" not in header
    assert "Secure" in header
    assert browser.visit(lambda s: s["a"]).result == 1


def test_browser_session_touch_writes_the_store_but_sends_no_cookie(clock: FakeClock) -> None:
    engine = make_engine(clock, browser_session=True)
    browser = Browser(engine)
    first = browser.visit(lambda s: s.__setitem__("a", 1))
    assert "Max-Age" not in (first.set_cookie or "")
    clock.advance(120)
    visit = browser.visit(lambda s: s["a"])
    assert visit.plan.touch is not None and visit.set_cookie is None


def test_cookie_store_regenerate_changes_the_handle(clock: FakeClock) -> None:
    browser = Browser(make_engine(clock, store="cookie://"))
    browser.visit(lambda s: s.__setitem__("a", 1))
    before = browser.visit(lambda s: s.handle).result
    browser.visit(lambda s: s.regenerate())
    after = browser.visit(lambda s: s.handle).result
    assert before and after and before != after


def test_session_metadata_is_exposed(clock: FakeClock, browser: Browser) -> None:
    browser.visit(lambda s: s.__setitem__("a", 1))
    created = browser.visit(lambda s: s.created).result
    clock.advance(100)
    seen = browser.visit(lambda s: (s.created, s.last_seen, s.expires)).result
    assert seen[0] == created and seen[1] is not None
    assert seen[2] is not None and seen[2] > seen[1]


# -- stores by URL, and stores that are down ----------------------------------------------


def test_unknown_store_url_is_a_config_error() -> None:
    available = r"available: cookie://, dynamodb://, file://, memcached://, memory://"
    with pytest.raises(ConfigError, match=r"nope://u:\*\*\*@h.*" + available):
        open_store("nope://u:secret@h")


def test_memory_store_url_options() -> None:
    store = open_store("memory://?max_sessions=5")
    assert store.max_sessions == 5  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="max_sessions"):
        open_store("memory://?max_sessions=lots")
    with pytest.raises(ConfigError, match="unknown option 'max_session'"):
        open_store("memory://?max_session=5")  # a typo is an error, not an unbounded store
    # one parser for every store's options: a repeated option keeps its last value
    assert open_store("memory://?max_sessions=5&max_sessions=10").max_sessions == 10  # type: ignore[attr-defined]


class DownStore(Store):
    url = "redis://user:hunter2@10.0.0.1:6379/0"

    def load(self, digest: str) -> None:
        raise StoreUnavailable(self.url, ConnectionRefusedError("connection refused"))

    def save(self, write: Any) -> bool:
        raise StoreUnavailable(self.url, ConnectionRefusedError("connection refused"))


def test_store_down_raises_a_clear_error_and_loses_nothing(clock: FakeClock) -> None:
    good = make_engine(clock)
    browser = Browser(good)
    browser.visit(lambda s: s.__setitem__("a", 1))
    engine = SessionEngine(good.config, store=DownStore(), clock=clock)
    events: list[Any] = []
    engine.events.subscribe(events.append, kinds=[EventKind.STORE_ERROR])
    session = engine.open(browser.cookie_header, browser.client)
    with pytest.raises(StoreUnavailable) as caught:
        session.get("a")
    message = str(caught.value)
    assert "hunter2" not in message and "***" in message and "connection refused" in message
    assert not session.loaded  # the next use tries again rather than seeing an empty session
    assert len(events) == 1
    fresh = engine.open(None)
    fresh["a"] = 1
    with pytest.raises(StoreUnavailable):
        engine.run(engine.commit(fresh))


def test_security_events_are_logged(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    engine = make_engine(clock)
    with caplog.at_level(logging.WARNING, logger="sessionkit.security"):
        engine.open("session=forged.value")
    assert "cookie_rejected" in caplog.text


def test_a_failing_subscriber_does_not_break_the_request(
    browser: Browser, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: Any) -> None:
        raise RuntimeError("boom")

    unsubscribe = browser.engine.events.subscribe(broken)
    visit = browser.visit(lambda s: s.__setitem__("a", 1))
    assert visit.saved and "boom" in caplog.text
    unsubscribe()
    caplog.clear()
    browser.visit(lambda s: s.__setitem__("a", 2))
    assert "boom" not in caplog.text


def test_events_never_carry_the_session_id(browser: Browser) -> None:
    """SECURITY 13."""
    seen: list[Any] = []
    browser.engine.events.subscribe(seen.append)
    browser.visit(lambda s: s.__setitem__("a", 1))
    browser.visit(lambda s: s.regenerate())
    session_id = cookie_of(browser).partition(".")[0]
    assert seen
    for event in seen:
        assert session_id not in repr(event)
        assert event.handle is None or len(event.handle) == 16


def test_client_info_believes_forwarded_for_only_from_trusted_proxies(clock: FakeClock) -> None:
    """SECURITY 18: a forged X-Forwarded-For from an untrusted peer changes nothing."""
    plain = make_engine(clock)
    assert plain.client("203.0.113.9", forwarded_for="1.2.3.4").remote_addr == "203.0.113.9"
    proxied = make_engine(clock, trusted_proxies=["10.0.0.0/8"])
    via_proxy = proxied.client("10.0.0.5", "ua", secure=True, forwarded_for="6.6.6.6, 1.2.3.4")
    assert via_proxy == ClientInfo("1.2.3.4", "ua", True)
    assert proxied.client("203.0.113.9", forwarded_for="1.2.3.4").remote_addr == "203.0.113.9"


def test_ip_binding_survives_a_move_within_the_network(clock: FakeClock) -> None:
    engine = make_engine(clock, fingerprint_ip=True)
    browser = Browser(engine, client=ClientInfo("198.51.100.10", "Firefox/130.0"))
    browser.visit(lambda s: s.__setitem__("a", 1))
    moved = browser.fork(client=ClientInfo("198.51.100.77", "Firefox/131.0"))
    assert moved.visit(lambda s: dict(s)).result == {"a": 1}
    elsewhere = browser.fork(client=ClientInfo("192.0.2.1", "Firefox/130.0"))
    assert elsewhere.visit(lambda s: dict(s)).result == {}


@pytest.mark.parametrize("store", STORES)
def test_a_value_that_contains_itself_is_a_clear_error(store: str, clock: FakeClock) -> None:
    loop: list[Any] = []
    loop.append(loop)
    browser = Browser(make_engine(clock, store=store))
    with pytest.raises(SessionDataError, match="contains itself"):
        browser.visit(lambda s: s.__setitem__("loop", loop))


def test_engine_lock_serialises_one_sessions_requests(clock: FakeClock) -> None:
    from sessionkit import LockTimeout

    engine = make_engine(clock)
    browser = Browser(engine)
    browser.visit(lambda s: s.__setitem__("n", 0))
    first = engine.open(browser.cookie_header, browser.client)
    with engine.lock(first, wait=1):
        second = engine.open(browser.cookie_header, browser.client)
        with pytest.raises(LockTimeout), engine.lock(second, wait=0.05):
            pass  # pragma: no cover
        other = Browser(engine)
        other.visit(lambda s: s.__setitem__("n", 0))
        unrelated = engine.open(other.cookie_header, other.client)
        with engine.lock(unrelated, wait=0.05):  # another session is not blocked
            pass
    fresh = engine.open(None)
    with engine.lock(fresh), engine.lock(engine.open(None)):  # no cookie: nothing to race
        pass


def test_cookie_store_refuses_locks_with_a_clear_error(clock: FakeClock) -> None:
    from sessionkit import StoreError

    engine = make_engine(clock, store="cookie://")
    with pytest.raises(StoreError, match="cannot lock sessions"):
        engine.lock(engine.open(None))


def test_revoke_others_keeps_only_this_session(clock: FakeClock) -> None:
    import asyncio

    engine = make_engine(clock)
    laptop, phone, tablet, stranger = (Browser(engine) for _ in range(4))
    for device in (laptop, phone, tablet):
        device.visit(lambda s: s.bind_user("alice"))
    stranger.visit(lambda s: s.bind_user("bob"))
    assert laptop.visit(engine.revoke_others).result == 2
    assert laptop.visit(lambda s: s.user_id).result == "alice"
    assert phone.visit(lambda s: s.user_id).result is None
    assert tablet.visit(lambda s: s.user_id).result is None
    assert stranger.visit(lambda s: s.user_id).result == "bob"
    anonymous = Browser(engine)
    assert anonymous.visit(engine.revoke_others).result == 0
    session = engine.open(laptop.cookie_header, laptop.client)  # pending: async loads it
    assert asyncio.run(engine.arevoke_others(session)) == 0
    assert session.user_id == "alice"


def test_every_store_url_accepts_a_clock(clock: FakeClock) -> None:
    for url in ("cookie://", "memory://"):
        assert open_store(url, clock=clock).url.startswith(url)


def test_a_cookie_session_plans_no_store_deletes_whoever_listens(clock: FakeClock) -> None:
    """Naming a cookie session in an event (its handle) must not turn it into a stored
    record's key: invalidating it plans no delete and no I/O, with or without subscribers."""
    for listening in (False, True):
        browser = Browser(make_engine(clock, store="cookie://"))
        if listening:
            browser.engine.events.subscribe(lambda event: None)
        browser.visit(lambda s: s.update(a=1))
        for change in (lambda s: s.invalidate(), lambda s: s.clear()):
            visit = browser.fork().visit(lambda s, change=change: (s.get("a"), change(s)))
            assert visit.plan.deletes == [] and not visit.plan.has_io


def test_a_missing_client_library_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from sessionkit import stores

    monkeypatch.setitem(stores._REGISTRY, "memcached", ("no_such_client_lib", "X", "memcached"))
    with pytest.raises(ConfigError, match=r"pip install 'sessionkit\[memcached\]'"):
        open_store("memcached://cache")
    monkeypatch.setitem(stores._REGISTRY, "acme", ("no_such_acme_store", "AcmeStore", None))
    with pytest.raises(ConfigError, match="provides 'no_such_acme_store'") as raised:
        open_store("acme://somewhere")
    assert "sessionkit[" not in str(raised.value)  # not ours to install: no redis hint


@pytest.mark.parametrize("store", STORES)
def test_max_age_is_the_configured_age_when_the_clock_has_a_fraction(store: str) -> None:
    """Starlette's max_age=14*24*3600 gives Max-Age=1209600, not 1209599 (issue 12)."""
    age = 14 * 24 * 3600
    clock = FakeClock(1_800_000_000.75)
    browser = Browser(make_engine(clock, store=store, idle_timeout=age, absolute_timeout=age))
    visit = browser.visit(lambda s: s.update(a=1))
    assert visit.set_cookie is not None and f"Max-Age={age};" in visit.set_cookie
    clock.advance(3600)
    visit = browser.visit(lambda s: s.update(b=2))  # the absolute deadline now binds
    assert visit.set_cookie is not None and f"Max-Age={age - 3600};" in visit.set_cookie


def test_max_age_rounds_up_so_a_live_session_is_never_told_to_delete_itself() -> None:
    assert cookie_max_age(1_000.0, 999.6) == 1
    assert cookie_max_age(1_000.0, 1_000.0) == 0
    assert cookie_max_age(1_000.0, 1_003.0) == 0


@pytest.mark.parametrize("store", STORES)
def test_an_ephemeral_session_sends_max_age_0_stores_nothing_and_ignores_replays(
    store: str, clock: FakeClock
) -> None:
    """ephemeral (Starlette's max_age <= 0): the cookie goes out with Max-Age=0, no record
    is written, and the cookie sent back opens an empty session (issue 12/13: decided in
    the core, not in the ASGI adapter)."""
    engine = make_engine(clock, store=store, ephemeral=True)
    browser = Browser(engine)
    visit = browser.visit(lambda s: s.update(a=1))
    assert visit.set_cookie is not None and "; Max-Age=0;" in visit.set_cookie
    assert visit.plan.write is None
    replay = engine.open(f"session={visit.set_cookie.split(';')[0].partition('=')[2]}")
    assert replay.loaded and dict(replay) == {}  # the cookie was not even looked at
    assert engine.commit(replay).set_cookie is None  # nothing to clear: it was never kept


def test_an_emptied_cookie_is_no_cookie_not_a_tampered_one(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """What a client keeps of a deleted cookie (Django's test client after ``logout()``
    sends ``sessionid=""``) is no session, with no security event and nothing to clear."""
    engine = make_engine(clock)
    with caplog.at_level(logging.WARNING, logger="sessionkit.security"):
        for header in ("session=", 'session=""', "other=1; session="):
            session = engine.open(header)
            assert dict(session) == {} and session.new
            plan = engine.commit(session)
            assert plan.set_cookie is None
    assert caplog.records == []
