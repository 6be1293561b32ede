"""Fresh reads in Starlette and FastAPI (``@fresh``, ``fresh_session``, ``FreshSession``)
against a real Redis with the local cache: a marked route reads Redis, an unmarked one is
served by the cache (tests/fresh_routes.py says how the two are told apart)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import Depends, FastAPI, Request
from sessionkit_asgi import FreshSession, SessionDep, SessionMiddleware, fresh, fresh_session, loops
from starlette.applications import Starlette
from starlette.endpoints import HTTPEndpoint
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.routing import Route

from sessionkit import FreshOrderError, Store
from tests import servers
from tests.asgi.apps import KEY, client
from tests.fresh_routes import (
    Counting,
    cached_redis,
    counts,
    delete_behind,
    delta,
    edit_behind,
    silent_redis,
)

pytestmark = pytest.mark.anyio


async def login(request: Any) -> JSONResponse:
    request.session["role"] = request.query_params["role"]
    return JSONResponse({})


async def read(request: Any) -> JSONResponse:
    return JSONResponse({"role": request.session.get("role")})


@fresh
async def fresh_read(request: Any) -> JSONResponse:
    return JSONResponse({"role": request.session.get("role")})


class Account(HTTPEndpoint):
    @fresh
    async def get(self, request: Any) -> JSONResponse:
        return JSONResponse({"role": request.session.get("role")})


async def changes_then_fresh(request: Any) -> JSONResponse:
    request.session["seen"] = True  # what a middleware or hook changing it first does
    await fresh_session(request)
    return JSONResponse({})


def starlette_app(store: Store) -> Starlette:
    routes = [
        Route("/login", login), Route("/read", read), Route("/fresh", fresh_read),
        Route("/account", Account), Route("/changes-then-fresh", changes_then_fresh),
    ]  # fmt: skip
    middleware = [Middleware(SessionMiddleware, secret_key=KEY, store=store)]
    return Starlette(routes=routes, middleware=middleware)


def fastapi_app(store: Store) -> FastAPI:
    app = FastAPI()
    app.add_middleware(SessionMiddleware, secret_key=KEY, store=store)

    @app.get("/login")
    async def log_in(role: str, session: SessionDep) -> dict[str, str]:
        session["role"] = role
        return {}

    @app.get("/read")
    async def plain(session: SessionDep) -> dict[str, Any]:
        return {"role": session.get("role")}

    @app.get("/fresh")
    async def marked(session: FreshSession) -> dict[str, Any]:
        return {"role": session.get("role")}

    @app.get("/fresh-dependency", dependencies=[Depends(fresh_session)])
    async def by_dependency(request: Request) -> dict[str, Any]:
        return {"role": request.session.get("role")}

    return app


@contextlib.asynccontextmanager
async def closing(store: Store) -> AsyncIterator[None]:
    """httpx's in-process transport runs no lifespan: the test closes the store."""
    try:
        yield
    finally:
        await loops.aclose(store)  # on the loop its async connections belong to


STARLETTE = ["/fresh", "/account"]
FASTAPI = ["/fresh", "/fresh-dependency"]
#: each app with its marked routes
BOTH_APPS = pytest.mark.parametrize(
    ("make", "marked"), [(starlette_app, STARLETTE), (fastapi_app, FASTAPI)],
    ids=["starlette", "fastapi"],
)


@BOTH_APPS
async def test_a_marked_route_reads_redis_and_an_unmarked_one_the_cache(
    redis_server: servers.Server, make: Any, marked: list[str]
) -> None:
    store = cached_redis(redis_server.port)
    async with client(make(store)) as http, closing(store):
        await http.get("/login", params={"role": "admin"})
        await http.get("/read")  # the miss after our own write: cached now
        before = counts(store)
        assert (await http.get("/read")).json() == {"role": "admin"}
        assert delta(before, counts(store)) == {"hits": 1, "misses": 0, "fresh": 0}
        for path in marked:
            before = counts(store)
            assert (await http.get(path)).json() == {"role": "admin"}
            # the middleware's read before routing is a hit; the view's is Redis's own
            assert delta(before, counts(store)) == {"hits": 1, "misses": 0, "fresh": 1}, path


@BOTH_APPS
async def test_a_marked_route_sees_a_change_the_cache_did_not_hear_of(
    redis_server: servers.Server, make: Any, marked: list[str]
) -> None:
    store = silent_redis(redis_server.port)
    async with client(make(store)) as http, closing(store):
        await http.get("/login", params={"role": "admin"})
        await http.get("/read")
        seen = "admin"
        for n, path in enumerate(marked):
            edit_behind(store, redis_server.port, "role", f'"user{n}"')
            assert (await http.get("/read")).json() == {"role": seen}  # the cached copy
            assert (await http.get(path)).json() == {"role": f"user{n}"}, path
            seen = f"user{n}"  # the fresh read refilled the cache


@pytest.mark.parametrize(("make", "path"), [(starlette_app, p) for p in STARLETTE]
                         + [(fastapi_app, p) for p in FASTAPI])  # fmt: skip
async def test_a_marked_route_sees_a_logout_the_cache_did_not_hear_of(
    redis_server: servers.Server, make: Any, path: str
) -> None:
    store = silent_redis(redis_server.port)
    async with client(make(store)) as http, closing(store):
        await http.get("/login", params={"role": "admin"})
        await http.get("/read")
        delete_behind(store, redis_server.port)
        assert (await http.get("/read")).json() == {"role": "admin"}  # the cached copy
        assert (await http.get(path)).json() == {"role": None}


async def test_without_a_cache_a_marked_route_reads_once() -> None:
    store = Counting()
    async with client(starlette_app(store)) as http:
        await http.get("/login", params={"role": "admin"})
        loads = store.loads
        assert (await http.get("/fresh")).json() == {"role": "admin"}
        assert store.loads == loads + 1


async def test_a_session_changed_before_the_fresh_read_is_refused(
    redis_server: servers.Server,
) -> None:
    store = cached_redis(redis_server.port)
    async with client(starlette_app(store)) as http, closing(store):
        await http.get("/login", params={"role": "admin"})
        with pytest.raises(FreshOrderError, match="keys 'seen'"):
            await http.get("/changes-then-fresh")


def test_fresh_needs_an_async_endpoint() -> None:
    with pytest.raises(TypeError, match="@fresh needs an async endpoint"):
        fresh(lambda request: None)  # type: ignore[arg-type]
