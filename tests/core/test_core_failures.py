"""Core bugs from issue 13: each test failed before its fix."""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path
from typing import Any

import pytest

from sessionkit import MemoryStore, SessionDataError, SessionEngine, StoreUnavailable
from sessionkit.ids import digest
from sessionkit.testing import Browser, FakeClock
from tests.conftest import make_engine


class FlakyAsyncStore(MemoryStore):
    """Its async load fails (the store is down); its sync load records that it was used,
    which on an event loop would be blocking I/O."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sync_loads = 0
        self.down = False

    def load(self, digest: str) -> Any:
        self.sync_loads += 1
        return super().load(digest)

    async def aload(self, digest: str) -> Any:
        if self.down:
            raise StoreUnavailable("memory://", "simulated outage")
        return super().load(digest)


def test_a_failed_aload_never_falls_back_to_the_blocking_loader(clock: FakeClock) -> None:
    store = FlakyAsyncStore(clock=clock)
    engine = make_engine(clock, store=store)
    browser = Browser(engine, "sync")
    browser.visit(lambda s: s.__setitem__("a", 1))
    store.sync_loads = 0
    store.down = True
    session = engine.open(browser.cookie_header, browser.client)
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(StoreUnavailable):
            loop.run_until_complete(engine.aload(session))
        with pytest.raises(StoreUnavailable, match="simulated outage"):
            session.get("a")  # e.g. a view on the event loop: no sync I/O
        assert store.sync_loads == 0
        store.down = False
        loop.run_until_complete(engine.aload(session))  # the async retry still works
    finally:
        loop.close()
    assert session["a"] == 1 and store.sync_loads == 0


@pytest.mark.parametrize("store", ["memory://", "cookie://", "sqlite", "file"])
@pytest.mark.parametrize(
    ("key", "value"), [("q", "\ud800"), ("q", ["ok", {"deep": "\udfff"}]), ("\ud800", 1)]
)
def test_a_lone_surrogate_is_refused_in_the_core_naming_the_key(
    store: str, key: str, value: Any, clock: FakeClock, tmp_path: Path
) -> None:
    url = {"sqlite": f"sqlite:///{tmp_path}/s.db", "file": f"file://{tmp_path}/f"}.get(store, store)
    engine: SessionEngine = make_engine(clock, store=url)
    engine.store.create_schema()
    assert json.loads('{"q":"\\ud800"}')["q"] == "\ud800"  # where such strings come from
    session = engine.open(None)
    session["ok"] = "fine"
    session[key] = value
    with pytest.raises(SessionDataError, match=repr(key).replace("\\", "\\\\")):
        engine.run(engine.commit(session))
    engine.store.close()


def test_memory_locks_of_dead_holders_are_pruned(clock: FakeClock) -> None:
    store = MemoryStore(clock=clock)
    for _ in range(2000):  # holders that die without unlocking
        store.lock(digest(secrets.token_urlsafe(32)), ttl=1, wait=0).__enter__()
    clock.advance(5)
    with store.lock(digest(secrets.token_urlsafe(32)), ttl=1, wait=0):
        pass
    assert len(store._locks) < 300  # bounded: not one entry per holder that ever died
