"""A FastAPI app as docs/asgi.md's quick start builds it; ``uvicorn
tests.acceptance.fastapi_app:app`` reads its settings from ``ACCEPTANCE_SESSION_OPTIONS``
(JSON keyword arguments for the middleware), so a test can start it with a fatal one."""

from __future__ import annotations

import json
import os
from typing import Any

from fastapi import FastAPI
from sessionkit_asgi import LockedSession, SessionDep, SessionMiddleware


def create_app(*, locked_route: bool = False, **options: Any) -> FastAPI:
    app = FastAPI()
    app.add_middleware(SessionMiddleware, **options)

    @app.post("/login")
    async def login(user: str, session: SessionDep) -> dict[str, str]:
        session.bind_user(user)  # a login: new session ID, listed under the user
        return {"user": user}

    @app.get("/")
    async def index(session: SessionDep) -> dict[str, Any]:
        session["visits"] = session.get("visits", 0) + 1
        return {"visits": session["visits"], "user": session.user_id}

    if locked_route:

        @app.post("/checkout")
        async def checkout(session: LockedSession) -> dict[str, int]:
            session["orders"] = session.get("orders", 0) + 1
            return {"orders": session["orders"]}

    return app


app = create_app(**json.loads(os.environ.get("ACCEPTANCE_SESSION_OPTIONS", "{}") or "{}"))
