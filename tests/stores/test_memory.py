"""MemoryStore specifics: the bound, eviction order, and thread safety."""

from __future__ import annotations

import threading

from sessionkit import MemoryStore, RecordMeta, Write
from sessionkit.ids import digest, new_id
from sessionkit.testing import Browser, FakeClock
from tests.conftest import make_engine


def write(key: str, clock: FakeClock, **items: str) -> Write:
    meta = RecordMeta(created=int(clock.now), last_seen=int(clock.now))
    return Write(key, items, frozenset(), meta, 600.0, create=True, replace=True)


def test_bounded_with_least_recently_used_eviction(clock: FakeClock) -> None:
    store = MemoryStore(max_sessions=3, clock=clock)
    keys = [digest(new_id()) for _ in range(4)]
    for key in keys[:3]:
        assert store.save(write(key, clock, a="1"))
    assert store.load(keys[0]) is not None  # keys[0] is now the most recently used
    store.save(write(keys[3], clock, a="1"))
    assert len(store) == 3
    assert store.load(keys[1]) is None  # the least recently used went
    assert all(store.load(k) is not None for k in (keys[0], keys[2], keys[3]))


def test_a_flood_of_sessions_stays_bounded(clock: FakeClock) -> None:
    engine = make_engine(clock, store="memory://?max_sessions=50")
    for _ in range(500):
        Browser(engine).visit(lambda s: s.__setitem__("a", 1))
    assert len(engine.store) == 50  # type: ignore[arg-type]


def test_concurrent_threads_never_lose_a_key(clock: FakeClock) -> None:
    engine = make_engine(clock)
    browser = Browser(engine)
    browser.visit(lambda s: s.__setitem__("start", 0))

    def worker(n: int) -> None:
        Browser(engine).visit(lambda s: s.__setitem__("x", n))  # unrelated sessions
        twin = browser.fork()
        twin.visit(lambda s: s.__setitem__(f"k{n}", n))  # different keys, same session

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    data = browser.visit(lambda s: dict(s)).result
    assert data == {"start": 0, **{f"k{n}": n for n in range(40)}}
    assert len(engine.store) == 41  # type: ignore[arg-type]


def test_expired_records_vanish_on_load(clock: FakeClock) -> None:
    store = MemoryStore(clock=clock)
    key = digest(new_id())
    store.save(write(key, clock, a="1"))
    clock.advance(601)
    assert store.load(key) is None and len(store) == 0
