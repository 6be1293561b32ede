"""The app the fallback load test runs under uvicorn (tests/asgi/test_fallback_uvicorn.py).

``uvicorn tests.asgi.fallback_app:app`` reads ``SESSIONKIT_SECRET_KEY``,
``SESSIONKIT_STORE``, ``SESSIONKIT_FALLBACK`` and ``SESSIONKIT_FALLBACK_PROBE_INTERVAL``.
"""

from __future__ import annotations

import logging
import os

from sessionkit_asgi import SessionMiddleware, get_engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

# each line names its worker: the test matches every worker's switch over with its switch back
logging.basicConfig(level=logging.WARNING, format="[pid %(process)d] %(message)s")


async def login(request: Request) -> JSONResponse:
    session = request.session
    session["user"] = request.query_params["user"]
    session["n"] = 0
    session.bind_user(request.query_params["user"])  # type: ignore[attr-defined]
    return JSONResponse({"ok": True})


async def write(request: Request) -> JSONResponse:
    session = request.session
    if "user" not in session:
        return JSONResponse({"error": "not logged in"}, status_code=401)
    session["n"] = int(request.query_params["n"])
    return JSONResponse({"ok": True})


async def read(request: Request) -> JSONResponse:
    session = request.session
    return JSONResponse({"user": session.get("user"), "n": session.get("n")})


async def logout(request: Request) -> JSONResponse:
    request.session.invalidate()  # type: ignore[attr-defined]
    return JSONResponse({"ok": True})


async def health(request: Request) -> JSONResponse:
    found = await get_engine(request).ahealth()
    return JSONResponse(
        {**found.as_dict(), "pid": os.getpid()}, status_code=200 if found.ok else 503
    )


app = Starlette(
    routes=[
        Route("/login", login, methods=["POST"]),
        Route("/write", write, methods=["POST"]),
        Route("/read", read),
        Route("/logout", logout, methods=["POST"]),
        Route("/healthz", health),
    ]
)
app.add_middleware(
    SessionMiddleware,
    secret_key=os.environ["SESSIONKIT_SECRET_KEY"],
    store=os.environ["SESSIONKIT_STORE"],
    fallback=os.environ["SESSIONKIT_FALLBACK"],
    fallback_probe_interval=float(os.environ.get("SESSIONKIT_FALLBACK_PROBE_INTERVAL", "5")),
    exclude_paths=["/healthz"],
)
