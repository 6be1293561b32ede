from __future__ import annotations

import pytest

from sessionkit import SessionConfig, SessionEngine
from sessionkit.testing import Browser, FakeClock

KEY = "tests-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_engine(clock: FakeClock | None = None, **settings: object) -> SessionEngine:
    settings.setdefault("secret_key", KEY)
    store = settings.pop("store", "memory://")
    config = SessionConfig(store=store, **settings)  # type: ignore[arg-type]
    engine = SessionEngine(config, clock=clock or FakeClock())
    if hasattr(engine.store, "_clock") and clock is not None:
        engine.store._clock = clock
    return engine


@pytest.fixture
def engine(clock: FakeClock) -> SessionEngine:
    return make_engine(clock)


@pytest.fixture
def browser(engine: SessionEngine) -> Browser:
    return Browser(engine)
