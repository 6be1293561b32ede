"""The sessions API mounted in Starlette (``sessions_app``) and FastAPI (``sessions_router``),
on stores with a user index (memory, file, SQLite, Redis), on asyncio and trio."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sessionkit_asgi import SessionMiddleware, get_session, sessions_app, sessions_router
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from sessionkit import Store, open_store
from tests.asgi.apps import KEY, client
from tests.conftest import store_url

pytestmark = pytest.mark.anyio
INDEXED = ["memory", "file", "sqlite", "redis"]
SAME = {"Sec-Fetch-Site": "same-origin"}


def is_staff(request: Request) -> bool:
    return get_session(request).get("staff") is True


async def login(request: Request) -> Response:
    session = get_session(request)
    session.bind_user(request.query_params["user"])
    session["staff"] = request.query_params.get("staff") == "yes"
    return JSONResponse({"user": session.user_id})


async def whoami(request: Request) -> Response:
    return JSONResponse({"user": get_session(request).user_id})


def starlette_app(store: Store) -> Any:
    routes = [
        Route("/login", login),
        Route("/whoami", whoami),
        Mount("/sessions", app=sessions_app(staff=is_staff)),
    ]
    return Starlette(routes=routes, middleware=[Middleware(SessionMiddleware, secret_key=KEY,
                                                           store=store)])  # fmt: skip


def fastapi_app(store: Store) -> Any:
    app = FastAPI()
    app.add_middleware(SessionMiddleware, secret_key=KEY, store=store)
    app.add_route("/login", login)
    app.add_route("/whoami", whoami)

    async def staff_check(request: Request) -> bool:  # an async check works too
        return is_staff(request)

    app.include_router(sessions_router(staff=staff_check), prefix="/sessions")
    return app


APPS: dict[str, Callable[[Store], Any]] = {"starlette": starlette_app, "fastapi": fastapi_app}


@pytest.fixture(params=INDEXED)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    opened = open_store(store_url(request.param, tmp_path, request))
    opened.create_schema()
    return opened


@pytest.fixture(params=sorted(APPS))
def app(request: pytest.FixtureRequest, store: Store) -> Any:
    return APPS[request.param](store)


@contextlib.asynccontextmanager
async def browsers(app: Any, store: Store, *users: str) -> AsyncIterator[list[httpx.AsyncClient]]:
    """One signed-in client per user name (``name:staff`` for staff)."""
    async with contextlib.AsyncExitStack() as stack:
        clients = []
        for user in users:
            http = await stack.enter_async_context(client(app))
            name, _, staff = user.partition(":")
            params = {"user": name, "staff": "yes" if staff else "no"}
            assert (await http.get("/login", params=params)).json() == {"user": name}
            clients.append(http)
        try:
            yield clients
        finally:
            await store.aclose()  # its asyncio connections belong to this test's loop


async def handle_of(http: httpx.AsyncClient) -> str:
    rows = (await http.get("/sessions/")).json()["sessions"]
    return str(next(r["handle"] for r in rows if r["current"]))


async def who(http: httpx.AsyncClient) -> str | None:
    user: str | None = (await http.get("/whoami")).json()["user"]
    return user


async def test_list_and_revoke_my_other_session(app: Any, store: Store) -> None:
    async with browsers(app, store, "alice", "alice", "bob") as (phone, laptop, _bob):
        response = await laptop.get("/sessions/")
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["content-type"] == "application/json"
        rows = response.json()["sessions"]
        assert len(rows) == 2 and sum(r["current"] for r in rows) == 1
        assert laptop.cookies["session"].split(".")[0] not in response.text
        other = await handle_of(phone)
        revoked = await laptop.delete(f"/sessions/{other}", headers=SAME)
        assert revoked.json() == {"revoked": 1, "current": False}
        assert await who(phone) is None  # that client's next request is anonymous
        assert await who(laptop) == "alice"


async def test_revoking_my_own_session_logs_me_out(app: Any, store: Store) -> None:
    async with browsers(app, store, "alice") as (laptop,):
        mine = await handle_of(laptop)
        response = await laptop.delete(f"/sessions/{mine}", headers=SAME)
        assert response.json() == {"revoked": 1, "current": True}
        assert "max-age=0" in response.headers["set-cookie"].lower()
        assert await who(laptop) is None


async def test_revoke_others_and_extend(app: Any, store: Store) -> None:
    async with browsers(app, store, "alice", "alice", "alice") as (a, b, c):
        response = await c.post("/sessions/revoke-others", headers=SAME)
        assert response.json() == {"revoked": 2}
        assert (await who(a), await who(b), await who(c)) == (None, None, "alice")
        extended = await c.post("/sessions/extend", json={"seconds": 600}, headers=SAME)
        assert extended.status_code == 200 and extended.json()["seconds"] == 600
        assert "max-age=600" in extended.headers["set-cookie"].lower()
        bad = await c.post("/sessions/extend", content=b"{nope", headers=SAME)
        assert (bad.status_code, bad.json()["error"]) == (400, "bad_json")


async def test_bad_handles_are_404_and_revoke_nothing(app: Any, store: Store) -> None:
    async with browsers(app, store, "alice", "bob") as (alice, bob):
        bobs = await handle_of(bob)
        for path in (f"/sessions/{bobs}", "/sessions/0123456789abcdef", "/sessions/nope"):
            response = await alice.delete(path, headers=SAME)
            assert response.status_code == 404, path
            assert response.json()["error"] == "not_found"
        assert await who(bob) == "bob"


async def test_forged_staff_calls_are_403(app: Any, store: Store) -> None:
    async with browsers(app, store, "alice", "bob") as (alice, bob):
        bobs = await handle_of(bob)
        calls = [
            alice.get("/sessions/users/bob"),
            alice.delete(f"/sessions/users/bob/{bobs}", headers=SAME),
            alice.post("/sessions/users/bob/revoke-all", headers=SAME),
        ]
        for pending in calls:
            response = await pending
            assert (response.status_code, response.json()["error"]) == (403, "forbidden")
        assert await who(bob) == "bob"


async def test_staff_list_and_revoke(app: Any, store: Store) -> None:
    async with browsers(app, store, "root:staff", "bob", "bob") as (root, bob1, bob2):
        listed = (await root.get("/sessions/users/bob")).json()
        assert listed["user"] == "bob" and len(listed["sessions"]) == 2
        one = await handle_of(bob1)
        response = await root.delete(f"/sessions/users/bob/{one}", headers=SAME)
        assert response.json() == {"revoked": 1, "current": False}
        assert (await who(bob1), await who(bob2)) == (None, "bob")
        every = await root.post("/sessions/users/bob/revoke-all", headers=SAME)
        assert every.json() == {"revoked": 1, "current": False}
        assert (await who(bob2), await who(root)) == (None, "root")


@pytest.mark.parametrize(
    "headers",
    [{}, {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
     {"Origin": "https://evil.example"}, {"Origin": "https://testserver"}],
)  # fmt: skip
async def test_cross_site_calls_are_403_and_revoke_nothing(
    app: Any, store: Store, headers: dict[str, str]
) -> None:
    async with browsers(app, store, "alice", "alice") as (phone, laptop):
        other = await handle_of(phone)
        for response in [
            await laptop.delete(f"/sessions/{other}", headers=headers),
            await laptop.post("/sessions/revoke-others", headers=headers),
        ]:
            assert (response.status_code, response.json()["error"]) == (403, "cross_site")
        assert await who(phone) == "alice"
        ok = await laptop.delete(f"/sessions/{other}", headers={"Origin": "http://testserver"})
        assert ok.status_code == 200


async def test_not_signed_in_is_401(app: Any, store: Store) -> None:
    async with client(app) as anonymous:
        response = await anonymous.get("/sessions/")
        assert (response.status_code, response.json()["error"]) == (401, "not_signed_in")
    await store.aclose()


async def test_the_cookie_store_answers_501(anyio_backend: str) -> None:
    for make in APPS.values():
        store = open_store("cookie://")
        async with browsers(make(store), store, "alice") as (alice,):
            response = await alice.get("/sessions/")
            assert response.status_code == 501
            assert "no per-user index" in response.json()["detail"]


def test_the_openapi_schema_documents_the_api() -> None:
    schema = fastapi_app(open_store("memory://")).openapi()
    paths = schema["paths"]
    assert set(paths) >= {
        "/sessions/", "/sessions/revoke-others", "/sessions/extend", "/sessions/{handle}",
        "/sessions/users/{user}", "/sessions/users/{user}/{handle}",
        "/sessions/users/{user}/revoke-all",
    }  # fmt: skip
    listed = paths["/sessions/"]["get"]["responses"]["200"]["content"]["application/json"]
    assert listed["schema"] == {"$ref": "#/components/schemas/SessionList"}
    row = schema["components"]["schemas"]["SessionRow"]["properties"]
    assert set(row) == {"handle", "device", "created", "last_seen", "current"}
    extend = paths["/sessions/extend"]["post"]
    assert "seconds" in extend["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert "403" in paths["/sessions/{handle}"]["delete"]["responses"]
