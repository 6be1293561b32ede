"""A fatal setting stops the app before it serves (issue 14): at construction where the
middleware is built eagerly, at the lifespan startup where Starlette/FastAPI build it on
their first call, so uvicorn exits instead of answering 500s; and FastAPI's 503 is JSON."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, Depends, FastAPI
from sessionkit_asgi import LockedSession, SessionMiddleware, locked_session
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sessionkit import ConfigError, LocksUnsupported
from tests.asgi.apps import KEY, TestClient
from tests.asgi.test_middleware import FlakyStore

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]
FATAL = [
    pytest.param({"secret_key": "changeme"}, "secret key", id="weak-key"),
    pytest.param({"secret_key": KEY, "store": "rdis://localhost:6379/0"}, "rdis", id="scheme"),
]


@pytest.mark.parametrize(("settings", "said"), FATAL)
def test_built_eagerly_it_refuses_at_construction(settings: dict[str, Any], said: str) -> None:
    with pytest.raises(ConfigError, match=said):
        SessionMiddleware(Starlette(), **settings)


async def lifespan_messages(app: Any) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    incoming = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive() -> dict[str, Any]:
        return next(incoming)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    try:
        await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    except ConfigError:  # raised after startup.failed, as Starlette's router does
        assert sent and sent[-1]["type"] == "lifespan.startup.failed"
    return sent


@pytest.mark.parametrize("framework", [Starlette, FastAPI])
@pytest.mark.parametrize(("settings", "said"), FATAL)
async def test_built_lazily_the_lifespan_startup_fails(
    framework: type[Starlette], settings: dict[str, Any], said: str
) -> None:
    app = framework(middleware=[Middleware(SessionMiddleware, **settings)])
    sent = await lifespan_messages(app)
    assert sent[0]["type"] == "lifespan.startup.failed"
    assert said in sent[0]["message"] and "sessionkit" in sent[0]["message"]


@pytest.mark.parametrize(("settings", "said"), FATAL)
def test_without_lifespan_every_request_raises_the_setting(
    settings: dict[str, Any], said: str
) -> None:
    app = Starlette(middleware=[Middleware(SessionMiddleware, **settings)])
    with pytest.raises(ConfigError, match=said):
        TestClient(app).get("/")


@pytest.mark.parametrize(
    ("env", "said"),
    [({"SESSIONKIT_SECRET_KEY": "changeme"}, "secret key"),
     ({"SESSIONKIT_SECRET_KEY": KEY, "SESSIONKIT_STORE": "rdis://localhost/0"}, "rdis")],
)  # fmt: skip
def test_uvicorn_refuses_to_start(env: dict[str, str], said: str) -> None:
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONKIT_")}
    proc = subprocess.run(
        [sys.executable, "-m", "uvicorn", "tests.asgi.fastapi_app:app", "--port", "0"],
        cwd=ROOT, env={**run_env, **env}, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "Application startup failed" in output and said in output
    assert "Application startup complete" not in output


def down_app(framework: type[Starlette], **options: Any) -> tuple[Starlette, FlakyStore]:
    store = FlakyStore()

    async def get(request: Request) -> JSONResponse:
        return JSONResponse(dict(request.session))

    async def put(request: Request) -> JSONResponse:
        request.session["a"] = "1"
        return JSONResponse({})

    app = framework(
        routes=[Route("/get", get), Route("/put", put)],
        middleware=[Middleware(SessionMiddleware, secret_key=KEY, store=store, **options)],
    )
    return app, store


@pytest.mark.parametrize(
    ("framework", "options", "accept", "json_body"),
    [
        (FastAPI, {}, "*/*", True),
        (Starlette, {}, "*/*", False),
        (Starlette, {}, "application/json", True),
        (FastAPI, {"store_error_body": "text"}, "*/*", False),
        (Starlette, {"store_error_body": "json"}, "text/html", True),
    ],
)
def test_the_503_body_speaks_the_apps_language(
    framework: type[Starlette], options: dict[str, Any], accept: str, json_body: bool
) -> None:
    app, store = down_app(framework, **options)
    with TestClient(app) as http:
        http.get("/put")
        store.down = True
        answer = http.get("/get", headers={"Accept": accept})
    assert answer.status_code == 503
    if json_body:
        assert answer.headers["content-type"] == "application/json"
        assert "session store" in answer.json()["detail"]
    else:
        assert answer.headers["content-type"].startswith("text/plain")
        assert "session store" in answer.text


# -- a locked route on a store that cannot lock (issue 14) ----------------------------------
def locked_apps() -> list[Any]:
    """A Starlette app with an ``@locked`` endpoint under a Mount, and a FastAPI app with a
    ``LockedSession`` dependency, both on the cookie store."""
    from sessionkit_asgi import locked
    from starlette.routing import Mount

    @locked
    async def checkout(request: Request) -> JSONResponse:
        return JSONResponse({})

    starlette = Starlette(
        routes=[Mount("/shop", routes=[Route("/checkout", checkout, methods=["POST"])])],
        middleware=[Middleware(SessionMiddleware, secret_key=KEY)],
    )
    fastapi = FastAPI()
    fastapi.add_middleware(SessionMiddleware, secret_key=KEY, store="cookie://")
    router = APIRouter()

    @router.post("/count")
    async def count(session: LockedSession) -> dict[str, int]:
        return {}

    fastapi.include_router(router, prefix="/api")
    guarded = APIRouter(dependencies=[Depends(locked_session())])  # every route locks

    @guarded.post("/pay")
    async def pay() -> dict[str, int]:
        return {}

    fastapi.include_router(guarded, prefix="/cart")
    return [
        pytest.param(
            starlette, "POST /shop/checkout (locked_apps.<locals>.checkout)", id="starlette"
        ),
        pytest.param(
            fastapi,
            "POST /api/count (locked_apps.<locals>.count), "
            "POST /cart/pay (locked_apps.<locals>.pay)",
            id="fastapi",
        ),
    ]


LOCKS_SAID = (
    "sessionkit setting 'store': the store cookie:// cannot lock sessions, but these routes "
    "take the session lock: {route}. Locks need a server-side store (memory://, redis://, "
    "sqlite:///, postgresql://, file:/// or memcached://): set one, or remove the lock from "
    "these routes."
)


@pytest.mark.parametrize(("app", "route"), locked_apps())
async def test_a_locked_route_on_the_cookie_store_refuses_the_startup(app: Any, route: str) -> None:
    sent = await lifespan_messages(app)
    assert sent == [
        {
            "type": "lifespan.startup.failed",
            "message": "sessionkit: " + LOCKS_SAID.format(route=route),
        }
    ]


@pytest.mark.parametrize(("app", "route"), locked_apps())
def test_a_locked_route_on_the_cookie_store_fails_the_test_clients_startup(
    app: Any, route: str
) -> None:
    with pytest.raises(LocksUnsupported) as raised, TestClient(app):
        pass
    assert str(raised.value) == LOCKS_SAID.format(route=route)
    assert isinstance(raised.value, ConfigError)


def test_without_lifespan_the_locked_route_refuses_every_request_alike() -> None:
    """No lifespan ran (a bare TestClient): the locked route answers the same error with
    or without a session cookie, not only once the browser has a session."""
    app = locked_apps()[0].values[0]
    http = TestClient(app)
    for _ in range(2):
        with pytest.raises(
            LocksUnsupported, match=r"these routes take the session lock: POST /shop/checkout\."
        ):
            http.post("/shop/checkout")


def test_a_locked_route_on_a_store_that_locks_starts() -> None:
    from sessionkit_asgi import locked

    @locked
    async def checkout(request: Request) -> JSONResponse:
        request.session["paid"] = True
        return JSONResponse({})

    app = Starlette(
        routes=[Route("/checkout", checkout)],
        middleware=[Middleware(SessionMiddleware, secret_key=KEY, store="memory://")],
    )
    with TestClient(app) as http:
        assert http.get("/checkout").status_code == 200


def test_a_mounted_app_with_its_own_lockable_store_is_not_refused() -> None:
    """The outer middleware is on the cookie store; the mounted app's locked route runs on
    its own middleware's memory store, so the outer startup has nothing to refuse."""
    from sessionkit_asgi import locked
    from starlette.routing import Mount

    @locked
    async def checkout(request: Request) -> JSONResponse:
        request.session["paid"] = True
        return JSONResponse({"paid": True})

    shop = Starlette(
        routes=[Route("/checkout", checkout)],
        middleware=[Middleware(SessionMiddleware, secret_key=KEY, store="memory://")],
    )
    app = Starlette(
        routes=[Mount("/shop", app=shop)],
        middleware=[Middleware(SessionMiddleware, secret_key=KEY)],
    )
    with TestClient(app) as http:
        assert http.get("/shop/checkout").json() == {"paid": True}


def test_a_locked_method_of_an_http_endpoint_is_found() -> None:
    from sessionkit_asgi import locked
    from sessionkit_asgi.routes import locked_routes
    from starlette.endpoints import HTTPEndpoint

    class Cart(HTTPEndpoint):
        async def get(self, request: Request) -> JSONResponse:
            return JSONResponse({})

        @locked
        async def post(self, request: Request) -> JSONResponse:
            return JSONResponse({})

    class Plain(HTTPEndpoint):
        async def get(self, request: Request) -> JSONResponse:
            return JSONResponse({})

    app = Starlette(routes=[Route("/cart", Cart), Route("/plain", Plain)])
    assert [entry.split(" (")[0] for entry in locked_routes(app)] == ["/cart"]
