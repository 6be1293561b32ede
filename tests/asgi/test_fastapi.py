"""FastAPI: the typed session dependency, the locked one, and WebSockets, in-process."""

from __future__ import annotations

import os
import subprocess
import sys
import typing
from pathlib import Path

import anyio
import pytest
from fastapi import FastAPI
from sessionkit_asgi import SessionDep

from sessionkit import Session, SessionNotLoaded
from tests.asgi.apps import KEY, TestClient, client
from tests.asgi.concurrently import Background, gather
from tests.asgi.fastapi_app import create_app

pytestmark = pytest.mark.anyio


async def test_session_dependency_is_the_typed_session() -> None:
    assert typing.get_args(SessionDep)[0] is Session
    async with client(create_app("memory://", KEY)) as http:
        assert (await http.get("/read")).json()["new"] is True
        await http.get("/write", params={"value": "hello"})
        body = (await http.get("/read")).json()
        assert body["value"] == "hello" and body["new"] is False
        assert (await http.post("/login", params={"user": "ada"})).json() == {"user": "ada"}


async def test_locked_dependency_serialises_fifty_increments() -> None:
    async with client(create_app("memory://", KEY)) as http:
        await http.get("/write", params={"value": "x"})
        results = await gather(*(http.post("/count") for _ in range(50)))
        assert sorted(r.json()["n"] for r in results) == list(range(1, 51))


async def test_locked_dependency_answers_its_status_when_the_wait_runs_out() -> None:
    async with client(create_app("memory://", KEY)) as http, anyio.create_task_group() as tg:
        await http.get("/write", params={"value": "x"})
        slow = Background(tg, http.post("/count-slow"))
        await anyio.sleep(0.1)
        refused = await http.post("/count-quick")
        assert refused.status_code == 409
        assert "is locked by another request" in refused.json()["detail"]
        assert (await slow.result()).json() == {"n": 1}
        assert (await http.post("/count-quick")).json() == {"n": 2}


def test_websocket_dependency_sees_the_handshake_session() -> None:
    with TestClient(create_app("memory://", KEY)) as http:
        http.get("/write", params={"value": "hi"})
        with http.websocket_connect("/ws") as socket:
            assert socket.receive_json() == {"value": "hi"}


async def test_dependency_without_the_middleware_says_what_to_do() -> None:
    app = FastAPI()

    @app.get("/")
    async def view(session: SessionDep) -> dict[str, str]:
        return {}

    async with client(app) as http:
        with pytest.raises(SessionNotLoaded, match=r"add sessionkit_asgi\.SessionMiddleware"):
            await http.get("/")


def test_the_fastapi_helpers_without_fastapi_name_the_extra() -> None:
    """A Starlette app installed with the starlette extra only: the middleware imports, and
    the FastAPI helpers say which extra brings FastAPI (a fresh interpreter without it)."""
    code = (
        "import sys\n"
        "sys.modules['fastapi'] = None  # as if not installed\n"
        "from sessionkit_asgi import SessionMiddleware, sessions_app\n"
        "try:\n"
        "    from sessionkit_asgi import sessions_router\n"
        "except ModuleNotFoundError as exc:\n"
        "    print(exc.name, exc)\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{root / 'adapters'}"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.startswith("fastapi sessionkit_asgi.sessions_router is a FastAPI helper")
    assert "pip install 'sessionkit[fastapi]'" in done.stdout
