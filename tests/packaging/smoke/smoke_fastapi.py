"""``sessionkit[fastapi]``: a FastAPI app with sessionkit's middleware and ``SessionDep``,
async and sync endpoints, through its lifespan and real ASGI requests."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from sessionkit_asgi import SessionDep, SessionMiddleware
from smokelib import KEY, TMP, Jar, asgi_request, main, read_back, with_lifespan


def app_on(store: str) -> Any:  # FastAPI reads SessionDep from the module's globals
    app = FastAPI()
    app.add_middleware(SessionMiddleware, secret_key=KEY, store=store)

    @app.get("/", response_class=PlainTextResponse)
    async def count(session: SessionDep) -> str:
        session["n"] = session.get("n", 0) + 1
        return str(session["n"])

    @app.get("/sync", response_class=PlainTextResponse)
    def count_sync(session: SessionDep) -> str:
        session["n"] = session.get("n", 0) + 1
        return str(session["n"])

    return app


async def visit(app: Any) -> None:
    async def run() -> None:
        jar = Jar("session")
        seen = [jar.keep(await asgi_request(app, path, jar.cookie)) for path in ("/", "/sync", "/")]
        read_back(seen, [b"1", b"2", b"3"])

    await with_lifespan(app, run)


def check() -> None:
    for store in ("cookie://", f"file://{TMP / 'sessions'}"):
        asyncio.run(visit(app_on(store)))


if __name__ == "__main__":
    main(check)
