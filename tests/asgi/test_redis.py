"""The ASGI middleware on a real Redis server: the lifecycle, the route lock, a server that
goes down mid-run (503, then recovery)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterator

import pytest
import redis

from sessionkit import Store, open_store
from tests import servers
from tests.asgi.apps import TestClient, client
from tests.asgi.concurrently import gather
from tests.asgi.test_middleware import make_app

pytestmark = pytest.mark.anyio


@contextlib.asynccontextmanager
async def closing(store: Store) -> AsyncIterator[None]:
    """httpx's in-process transport runs no lifespan, so the test closes the store (whose
    asyncio connections belong to this test's event loop) itself."""
    try:
        yield
    finally:
        await store.aclose()


@pytest.fixture
def url(redis_server: servers.Server) -> Iterator[str]:
    url = f"redis://127.0.0.1:{redis_server.port}/0"
    yield url
    redis.Redis.from_url(url).flushdb()


async def test_lifecycle_on_redis(url: str) -> None:
    store = open_store(url)
    async with client(make_app(store=store)) as http, closing(store):
        assert (await http.get("/get")).json() == {}
        await http.get("/set", params={"a": "1"})
        assert (await http.get("/get")).json() == {"a": "1"}
        before = http.cookies["session"]
        await http.get("/login", params={"user": "ada"})
        assert (await http.get("/get")).json() == {"a": "1", "user": "ada"}
        captured = http.cookies["session"]
        http.cookies.clear()
        assert (await http.get("/get", headers={"Cookie": f"session={before}"})).json() == {}
        http.cookies.set("session", captured)
        await http.get("/logout")
        assert (await http.get("/get", headers={"Cookie": f"session={captured}"})).json() == {}


async def test_fifty_locked_increments_on_redis(url: str) -> None:
    store = open_store(url)
    async with client(make_app(store=store)) as http, closing(store):
        await http.get("/set", params={"start": "yes"})
        results = await gather(*(http.get("/locked-inc") for _ in range(50)))
        assert sorted(r.json()["n"] for r in results) == list(range(1, 51))
        assert (await http.get("/get")).json()["n"] == 50


def test_redis_down_answers_503_then_recovers(
    url: str, redis_server: servers.Server, caplog: pytest.LogCaptureFixture
) -> None:
    with TestClient(make_app(store=url)) as http:
        http.get("/set", params={"a": "1"})
        redis_server.stop()
        try:
            with caplog.at_level(logging.ERROR, "sessionkit.asgi"):
                down = http.get("/get")
            assert down.status_code == 503
            assert f"127.0.0.1:{redis_server.port}" in caplog.text
        finally:
            redis_server.start()
        # a fresh connection after the restart; the data is gone with the server's memory
        for _ in range(50):
            response = http.get("/get")
            if response.status_code == 200:
                break
        assert response.status_code == 200
