"""The three settings Flask's semantics need, at the core: ``refresh_each_request``,
``cookie_expires`` and ``clear_unverified_cookie`` (defaults keep the old behaviour)."""

from __future__ import annotations

from email.utils import parsedate_to_datetime

from sessionkit.testing import FakeClock
from tests.conftest import make_engine


def _persistent_cookie(engine: object) -> str:
    session = engine.open(None)  # type: ignore[attr-defined]
    session["a"] = 1
    session.set_expiry(3600)
    plan = engine.commit(session)  # type: ignore[attr-defined]
    engine.run(plan)  # type: ignore[attr-defined]
    return plan.set_cookie.split(";")[0].partition("=")[2]  # type: ignore[no-any-return]


def test_refresh_each_request_resends_a_persistent_cookie_untouched() -> None:
    for store in ("memory://", "cookie://"):
        clock = FakeClock()
        plain = make_engine(clock, store=store)
        refreshing = make_engine(clock, store=store, refresh_each_request=True)
        refreshing.store = plain.store  # one store, two policies
        value = _persistent_cookie(plain)
        clock.advance(5)  # within touch_interval: no store write either way
        for engine, sent in ((plain, False), (refreshing, True)):
            session = engine.open(f"session={value}")
            session.load()  # what the adapter does for an untouched session
            plan = engine.commit(session)
            assert (plan.set_cookie is not None) is sent, store
            assert plan.touch is None and plan.write is None
            if sent:
                assert ("Vary", "Cookie") in plan.headers()


def test_cookie_expires_adds_expires_beside_max_age() -> None:
    clock = FakeClock()
    engine = make_engine(clock, cookie_expires=True)
    session = engine.open(None)
    session["a"] = 1
    session.set_expiry(3600)
    header = engine.commit(session).set_cookie
    assert header is not None and "Max-Age=" in header
    expires = header.split("Expires=")[1].split(";")[0]
    assert parsedate_to_datetime(expires).timestamp() == int(clock() + 3600)
    session = make_engine(clock).open(None)
    session["a"] = 1
    session.set_expiry(3600)
    assert "Expires=" not in (make_engine(clock).commit(session).set_cookie or "")


def test_an_unverified_cookie_is_cleared_unless_configured_otherwise() -> None:
    forged = "session=" + "A" * 43 + "." + "A" * 22
    clearing = make_engine()
    assert clearing.commit(clearing.open(forged)).set_cookie is not None
    keeping = make_engine(clear_unverified_cookie=False)
    session = keeping.open(forged)
    assert dict(session) == {}
    assert keeping.commit(session).set_cookie is None
