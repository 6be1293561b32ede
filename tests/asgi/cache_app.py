"""A Starlette app on sessionkit with the local cache, for the multi-worker coherence test
(tests/asgi/test_cache_workers.py) and benchmark (benchmarks/bench_cache_http.py).

``uvicorn tests.asgi.cache_app:app`` reads its store URL (``redis://...?cache=on``) and
secret key from the environment (``SESSIONKIT_STORE``, ``SESSIONKIT_SECRET_KEY``). Every
response names the process that served it.
"""

from __future__ import annotations

import os
from typing import Any

from sessionkit_asgi import SessionMiddleware
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sessionkit import Session
from sessionkit.stores import open_store

store: Any = open_store(os.environ["SESSIONKIT_STORE"])
PID = os.getpid()


def session_of(request: Request) -> Session:
    session: Session = request.scope["session"]
    return session


async def read(request: Request) -> JSONResponse:
    session = session_of(request)
    return JSONResponse({"pid": PID, "n": session.get("n"), "user": session.user_id})


async def write(request: Request) -> JSONResponse:
    session_of(request)["n"] = int(request.query_params["n"])
    return JSONResponse({"pid": PID})


async def login(request: Request) -> JSONResponse:
    session = session_of(request)
    session.bind_user(request.query_params["user"])
    session["n"] = 0
    return JSONResponse({"pid": PID})


async def logout(request: Request) -> JSONResponse:
    session_of(request).invalidate()
    return JSONResponse({"pid": PID})


async def revoke_all(request: Request) -> JSONResponse:
    revoked = await store.arevoke_user(request.query_params["user"])
    return JSONResponse({"pid": PID, "revoked": revoked})


async def stats(request: Request) -> JSONResponse:
    counts = store.stats() if hasattr(store, "cache") else {}
    return JSONResponse({"pid": PID, **counts})


app = Starlette(
    routes=[
        Route("/read", read), Route("/write", write), Route("/login", login),
        Route("/logout", logout), Route("/revoke-all", revoke_all), Route("/stats", stats),
    ],
    middleware=[Middleware(SessionMiddleware, store=store,
                           secret_key=os.environ["SESSIONKIT_SECRET_KEY"])],
)  # fmt: skip
