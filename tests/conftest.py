from __future__ import annotations

from collections.abc import Iterator

import pytest

from sessionkit import SessionConfig, SessionEngine
from sessionkit.testing import Browser, FakeClock
from tests import servers

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


# -- real servers, one set per test process (xdist workers each get their own) ------------
@pytest.fixture(scope="session")
def redis_server() -> Iterator[servers.Server]:
    server = servers.redis_server()
    yield server
    server.close()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[list[servers.Server]]:
    nodes = servers.redis_cluster()
    yield nodes
    for node in nodes:
        node.close()


@pytest.fixture(scope="session")
def memcached_server() -> Iterator[servers.Server]:
    server = servers.memcached_server()
    yield server
    server.close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[servers.Postgres]:
    server = servers.postgres_server()
    yield server
    server.close()
