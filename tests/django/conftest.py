"""Django for tests/django only: settings are configured when this directory is collected,
from the test project's settings module, so the rest of the suite never sees Django.
(pytest-django is installed for its ``db`` fixture; it picks the configuration up.)"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import django
import pytest
from django.conf import settings

from sessionkit import SessionEngine, open_store
from sessionkit.testing import FakeClock
from tests.conftest import store_url
from tests.django.project import settings as project_settings

if not settings.configured:
    settings.configure(
        **{
            name: getattr(project_settings, name)
            for name in dir(project_settings)
            if name.isupper()
        }
    )
    django.setup()

from sessionkit_django import conf, use_engine

#: Stores every adapter test runs on (real servers for Redis and memcached).
STORES = ["memory", "cookie", "file", "sqlite", "redis", "memcached"]
#: Server-side stores with a per-user index (login binding, revocation).
INDEXED = ["memory", "file", "sqlite", "redis"]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=__import__("time").time())


EngineFactory = Callable[..., SessionEngine]


@pytest.fixture
def make_sk(
    tmp_path: Path, request: pytest.FixtureRequest, clock: FakeClock
) -> Iterator[EngineFactory]:
    """Install an engine built from the Django settings plus ``overrides``, on a store
    of the given kind with the fake clock; restored at the end of the test."""
    stack: list[object] = []
    engines: list[SessionEngine] = []

    def make(kind: str = "memory", **overrides: object) -> SessionEngine:
        url = store_url(kind, tmp_path, request)
        store = open_store(url, clock=clock) if kind != "cookie" else open_store(url)
        store.create_schema()
        config = conf.build_config({"STORE": store, **overrides})
        engine = SessionEngine(config, store=store, clock=clock)
        context = use_engine(engine)
        context.__enter__()
        stack.append(context)
        engines.append(engine)
        return engine

    make.engines = engines  # type: ignore[attr-defined]
    yield make
    for context in reversed(stack):
        context.__exit__(None, None, None)  # type: ignore[attr-defined]
    for engine in engines:
        engine.store.close()


@pytest.fixture(params=STORES)
def sk(request: pytest.FixtureRequest, make_sk: EngineFactory) -> SessionEngine:
    """The engine for one store kind (the test runs once per kind)."""
    return make_sk(request.param)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def aclosing(make_sk: EngineFactory) -> AsyncIterator[None]:
    """Async tests: close the stores' async clients on the loop that opened them."""
    yield
    for engine in make_sk.engines:  # type: ignore[attr-defined]
        await engine.store.aclose()
