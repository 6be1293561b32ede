"""``engine.require_fresh(session, reload=True)``: what the adapters' fresh-route markers
call. A session read through a local cache before the demand is read again from the store
(never served from the cache); one already changed is refused; without a cache nothing is
read twice.

The cache here hears nothing (``Silent``), so a change made in the wrapped store behind its
back stays unseen by a cached read: the honest way to tell a cached read from a fresh one."""

from __future__ import annotations

import asyncio

import pytest

from sessionkit import FreshOrderError, SessionConfig, SessionEngine
from sessionkit.ids import digest
from sessionkit.stores.base import Write
from sessionkit.stores.cache import CachingStore
from sessionkit.stores.memory import MemoryStore
from sessionkit.testing import Browser
from tests.fresh_routes import Counting, Silent

KEY = "fresh-tests-key-0123456789-abcdefghijklmnopqrstuvwxyz"
OLD_KEY = "fresh-tests-old-key-0123456789-abcdefghijklmnopqrstu"


def behind_the_cache(store: CachingStore, cookie: str, **items: str) -> None:
    """Change the record in the wrapped store, unannounced (JSON-encoded values)."""
    key = digest(cookie.split("=", 1)[1].partition(".")[0])
    record = store.store.load(key)
    assert record is not None
    assert store.store.save(Write(key, items, frozenset(), record.meta, 60.0))


@pytest.fixture
def cached() -> tuple[SessionEngine, CachingStore, Browser]:
    store = CachingStore(MemoryStore(), Silent())
    engine = SessionEngine(SessionConfig(secret_key=KEY), store=store)
    browser = Browser(engine)
    browser.visit(lambda s: s.__setitem__("role", "admin"))
    browser.visit(lambda s: s["role"])  # in the cache now
    assert browser.cookie_header is not None
    behind_the_cache(store, browser.cookie_header, role='"user"')
    return engine, store, browser


def test_a_session_read_from_the_cache_is_read_again_from_the_store(
    cached: tuple[SessionEngine, CachingStore, Browser],
) -> None:
    engine, store, browser = cached
    session = engine.open(browser.cookie_header, browser.client)
    assert session["role"] == "admin"  # the cache's copy
    assert not engine.require_fresh(session)  # without reload: too late, and it says so
    assert session["role"] == "admin"
    fresh = store.cache.stats.fresh
    assert engine.require_fresh(session, reload=True)
    assert not session.loaded
    assert session["role"] == "user"  # the store's own
    assert store.cache.stats.fresh == fresh + 1
    assert engine.require_fresh(session, reload=True)  # fresh now: nothing more to read
    assert store.cache.stats.fresh == fresh + 1


def test_the_async_reread(cached: tuple[SessionEngine, CachingStore, Browser]) -> None:
    engine, _, browser = cached

    async def view() -> object:
        session = engine.open(browser.cookie_header, browser.client)
        await engine.aload(session)
        assert session["role"] == "admin"
        assert engine.require_fresh(session, reload=True)
        await engine.aload(session)
        return session["role"]

    assert asyncio.run(view()) == "user"


def test_a_session_changed_on_a_cached_read_is_refused(
    cached: tuple[SessionEngine, CachingStore, Browser],
) -> None:
    engine, _, browser = cached
    session = engine.open(browser.cookie_header, browser.client)
    session["cart"] = 1
    with pytest.raises(FreshOrderError, match=r"changed \(keys 'cart'\).*demand it first"):
        engine.require_fresh(session, reload=True)
    assert session["cart"] == 1  # nothing was dropped


def test_marked_before_the_load_reads_once_from_the_store(
    cached: tuple[SessionEngine, CachingStore, Browser],
) -> None:
    engine, store, browser = cached
    hits = store.cache.stats.hits
    session = engine.open(browser.cookie_header, browser.client)
    assert engine.require_fresh(session, reload=True)
    assert session["role"] == "user"
    assert store.cache.stats.hits == hits  # the cache was not asked


def test_without_a_cache_a_loaded_session_is_not_read_again() -> None:
    store = Counting()
    engine = SessionEngine(SessionConfig(secret_key=KEY), store=store)
    browser = Browser(engine)
    browser.visit(lambda s: s.__setitem__("role", "admin"))
    session = engine.open(browser.cookie_header, browser.client)
    assert session["role"] == "admin"
    loads = store.loads
    assert engine.require_fresh(session, reload=True)  # every read of this store is fresh
    assert session.loaded and session["role"] == "admin"
    assert store.loads == loads
    session["role"] = "user"
    assert engine.require_fresh(session, reload=True)  # and nothing to refuse


def test_the_flags_a_load_sets_are_not_a_change() -> None:
    """A fingerprint made under an older key is rewritten by the load (the session reads as
    modified): a fresh demand reads it again rather than refusing it, and so does a lock."""
    store = CachingStore(MemoryStore(), Silent())
    old = SessionEngine(SessionConfig(secret_key=OLD_KEY), store=store)
    browser = Browser(old)
    browser.visit(lambda s: s.__setitem__("role", "admin"))
    engine = SessionEngine(SessionConfig(secret_key=[KEY, OLD_KEY]), store=store)
    session = engine.open(browser.cookie_header, browser.client)
    assert session["role"] == "admin" and session.modified  # the rewrite under the new key
    assert engine.require_fresh(session, reload=True)
    assert session["role"] == "admin" and session.modified
    with engine.lock(session):  # read again under the lock, not refused either
        assert session["role"] == "admin"


def test_a_session_found_gone_is_not_read_again() -> None:
    """The cache keeps no misses: a session the store did not have was the store's own
    answer, so a fresh demand reads nothing more (and emits nothing twice)."""
    inner = Counting()
    store = CachingStore(inner, Silent())
    engine = SessionEngine(SessionConfig(secret_key=KEY), store=store)
    browser = Browser(engine)
    browser.visit(lambda s: s.__setitem__("role", "admin"))
    cookie = browser.cookie_header
    browser.visit(lambda s: s.invalidate())
    gone = engine.open(cookie, browser.client)
    assert gone.new and inner.loads  # read: nothing there
    loads = inner.loads
    assert engine.require_fresh(gone, reload=True)
    assert gone.loaded and gone.new and inner.loads == loads
