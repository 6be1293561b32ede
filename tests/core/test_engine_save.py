"""``SessionEngine.save``: commit and run outside a request (a framework's standalone session
object), and the decisions it shares with ``commit``."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sessionkit.testing import FakeClock
from tests.conftest import make_engine


def test_save_stores_an_empty_session_and_can_save_again() -> None:
    engine = make_engine(FakeClock())
    session = engine.open(None)
    plan = engine.save(session)
    assert not plan.conflict and plan.write is not None and plan.write.create
    key = plan.cookie_value
    assert key and len(engine.store) == 1
    session["a"] = 1
    again = engine.save(session)
    assert again.write is not None and not again.write.create  # an update, not a new ID
    assert again.cookie_value == key and len(engine.store) == 1
    reread = engine.open(f"session={key}")
    engine.load(reread)
    assert dict(reread.items()) == {"a": 1}


def test_save_after_a_delete_elsewhere_is_a_conflict_and_writes_nothing() -> None:
    engine = make_engine(FakeClock())
    session = engine.open(None)
    session["a"] = 1
    engine.save(session)
    engine.store.delete(engine.digest_of(session))  # a logout in another process
    session["a"] = 2
    assert engine.save(session).conflict
    assert len(engine.store) == 0


def test_a_new_session_expiring_in_the_past_is_never_written() -> None:
    """A request that sets an expiry already past on a new session stores nothing (before,
    the write went out with a negative TTL)."""
    clock = FakeClock()
    engine = make_engine(clock)
    session = engine.open(None)
    session["a"] = 1
    session.set_expiry(datetime.fromtimestamp(clock() - 10, tz=timezone.utc))
    plan = engine.commit(session)
    assert plan.write is None and plan.set_cookie is None


def test_expiry_if_saved_follows_the_session_and_the_config() -> None:
    clock = FakeClock()
    engine = make_engine(clock, idle_timeout=600, absolute_timeout=3600)
    session = engine.open(None)
    now = clock()
    assert engine.expiry_if_saved(session, now) == now + 600
    session.set_expiry(timedelta(seconds=10))
    assert engine.expiry_if_saved(session, now) == now + 10
    session.set_expiry(0)
    assert engine.browser_session_of(session)
    session.set_expiry(None)
    assert not engine.browser_session_of(session)
