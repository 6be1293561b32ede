"""A small FastAPI app on sessionkit, used in-process and under a real uvicorn.

``uvicorn tests.asgi.fastapi_app:app`` reads its store URL and secret key from the
environment (``SESSIONKIT_STORE``, ``SESSIONKIT_SECRET_KEY``).
"""

from __future__ import annotations

import os
from typing import Annotated, Any

import anyio
from fastapi import Depends, FastAPI, WebSocket
from sessionkit_asgi import LockedSession, SessionDep, SessionMiddleware, locked_session

from sessionkit import Session


def create_app(
    store: Any = None, secret_key: str | None = None, *, locks: bool | None = None, **options: Any
) -> FastAPI:
    """``locks``: add the locked routes (``/count``...); by default only on a store that can
    lock, since on the cookie store the app would refuse to start with them."""
    app = FastAPI()
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret_key or os.environ["SESSIONKIT_SECRET_KEY"],
        store=store,
        **options,
    )

    @app.get("/write")
    async def write(value: str, session: SessionDep) -> dict[str, Any]:
        session["value"] = value
        return {"pid": os.getpid()}

    @app.get("/read")
    async def read(session: SessionDep) -> dict[str, Any]:
        return {"value": session.get("value"), "pid": os.getpid(), "new": session.new}

    @app.post("/login")
    async def login(user: str, session: SessionDep) -> dict[str, Any]:
        session.bind_user(user)
        return {"user": session.user_id}

    if locks is None:
        locks = store not in (None, "cookie://")
    if locks:
        add_locked_routes(app)

    @app.websocket("/ws")
    async def socket(websocket: WebSocket, session: SessionDep) -> None:
        await websocket.accept()
        await websocket.send_json({"value": session.get("value")})
        await websocket.close()

    return app


def add_locked_routes(app: FastAPI) -> None:
    @app.post("/count")
    async def count(session: LockedSession) -> dict[str, int]:
        session["n"] = session.get("n", 0) + 1
        return {"n": session["n"]}

    @app.post("/count-slow")
    async def count_slow(session: LockedSession) -> dict[str, int]:
        await anyio.sleep(0.3)
        session["n"] = session.get("n", 0) + 1
        return {"n": session["n"]}

    @app.post("/count-quick")
    async def count_quick(
        session: Annotated[Session, Depends(locked_session(wait=0.05, status_code=409))],
    ) -> dict[str, int]:
        session["n"] = session.get("n", 0) + 1
        return {"n": session["n"]}


app = (
    create_app(os.environ.get("SESSIONKIT_STORE"))
    if "SESSIONKIT_SECRET_KEY" in os.environ
    else None
)
