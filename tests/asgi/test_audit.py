"""The audit trail through the ASGI middleware, on real Redis and SQLite: a login in a
Starlette view is an entry (read back by a route, off the event loop), and a flood of
forged cookies is recorded only up to the rate limit."""

from __future__ import annotations

from pathlib import Path

import anyio.to_thread
import pytest
from sessionkit_asgi import SessionMiddleware, get_engine, get_session
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from tests.asgi.apps import KEY, UA, client
from tests.conftest import store_url

pytestmark = pytest.mark.anyio


async def login(request: Request) -> PlainTextResponse:
    get_session(request).bind_user(request.path_params["user"])
    return PlainTextResponse("ok")


async def logout(request: Request) -> PlainTextResponse:
    get_session(request).invalidate()
    return PlainTextResponse("ok")


async def read(request: Request) -> PlainTextResponse:
    return PlainTextResponse(str(get_session(request).get("a")))


async def trail(request: Request) -> JSONResponse:
    user = request.query_params.get("user")
    # off the event loop: asyncio (aaudit_entries) or trio alike, through anyio
    entries = await anyio.to_thread.run_sync(get_engine(request).audit_entries, user)
    return JSONResponse([entry.as_dict() for entry in entries])


def app_on(url: str, **options: object) -> Starlette:
    routes = [Route("/login/{user}", login), Route("/logout", logout), Route("/read", read),
              Route("/audit", trail)]  # fmt: skip
    middleware = Middleware(SessionMiddleware, secret_key=KEY, store=url, audit="store", **options)  # type: ignore[arg-type]
    return Starlette(routes=routes, middleware=[middleware])


@pytest.fixture(params=["redis", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return store_url(request.param, tmp_path, request)


async def test_a_login_and_a_logout_are_entries(url: str) -> None:
    app = app_on(url)
    async with client(app) as browser:
        assert (await browser.get("/login/alice")).status_code == 200
        handle_cookie = browser.cookies["session"]
        assert (await browser.get("/logout")).status_code == 200
        entries = (await browser.get("/audit", params={"user": "alice"})).json()
    assert [e["kind"] for e in entries] == ["login", "logout"]
    first = entries[0]
    assert first["user"] == "alice" and first["actor"] == "user"
    assert first["network"] == "203.0.113.0/24" and first["device"]
    assert first["device"] in UA or " on " in first["device"]
    assert handle_cookie.partition(".")[0] not in str(entries)  # never the session ID
    assert entries[0]["handle"] == entries[1]["handle"]


async def test_a_flood_of_forged_cookies_is_rate_limited(url: str) -> None:
    app = app_on(url, audit_rejections_per_minute=10)
    async with client(app) as browser:
        for n in range(60):
            forged = {"Cookie": f"session={'A' * 43}.{n:022d}"}
            assert (await browser.get("/read", headers=forged)).status_code == 200
        entries = (await browser.get("/audit")).json()  # the entries of no user
    assert len(entries) == 10
    assert {e["kind"] for e in entries} == {"cookie_rejected"}
