"""Test apps shared by the ASGI tests: one Starlette app whose routes exercise the session,
built around either Starlette's own SessionMiddleware or ours, and small client helpers."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

with warnings.catch_warnings():  # starlette nags to swap httpx for httpx2 on import
    warnings.simplefilter("ignore")
    from starlette import testclient

from sessionkit_asgi import locked


class TestClient(testclient.TestClient):
    """Starlette's TestClient, which also closes its lifespan streams on leaving ``with``.

    Starlette 0.37's left them open (later versions close them themselves); anyio reports
    an unclosed memory stream as a ResourceWarning when it is garbage collected, which then
    fails whichever test happens to be running (warnings are errors here).
    """

    def __exit__(self, *args: Any) -> None:
        try:
            super().__exit__(*args)
        finally:
            for stapled in (getattr(self, "stream_send", None),
                            getattr(self, "stream_receive", None)):  # fmt: skip
                if stapled is not None:
                    stapled.send_stream.close()
                    stapled.receive_stream.close()


KEY = "asgi-tests-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0.0.0 Safari/537.36"

#: What background tasks saw, for the streaming/background test.
background_log: list[Any] = []


async def set_values(request: Request) -> Response:
    for key, value in request.query_params.items():
        request.session[key] = value
    return JSONResponse(dict(request.session))


async def get_values(request: Request) -> Response:
    return JSONResponse(dict(request.session))


async def clear(request: Request) -> Response:
    request.session.clear()
    return PlainTextResponse("cleared")


async def untouched(request: Request) -> Response:
    return PlainTextResponse("no session here")


async def increment(request: Request) -> Response:
    value = request.session.get("n", 0)
    await anyio.sleep(0.001)  # room for another request to interleave
    request.session["n"] = value + 1
    return JSONResponse({"n": value + 1})


@locked(wait=20.0)
async def locked_increment(request: Request) -> Response:
    return await increment(request)


async def fail(request: Request) -> Response:
    request.session["doomed"] = "yes"
    return PlainTextResponse("boom", status_code=500)


async def crash(request: Request) -> Response:
    request.session["doomed"] = "yes"
    raise RuntimeError("view crashed")


async def stream(request: Request) -> Response:
    request.session["streamed"] = "yes"

    async def chunks() -> AsyncIterator[bytes]:
        for number in range(3):
            await anyio.sleep(0)
            yield f"chunk{number};".encode()

    def after() -> None:
        background_log.append(dict(request.session))
        request.session["from_background"] = "lost"  # after the response: never saved

    return StreamingResponse(chunks(), background=BackgroundTask(after))


async def vary_accept(request: Request) -> Response:
    request.session.get("x")
    return PlainTextResponse("v", headers={"Vary": "Accept", "Cache-Control": "public"})


async def big(request: Request) -> Response:
    request.session["blob"] = "x" * int(request.query_params.get("size", "5000"))
    return PlainTextResponse("big")


async def socket(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json(dict(websocket.session))
    websocket.session["from_socket"] = "not saved"
    await websocket.close()


ROUTES = [
    Route("/set", set_values),
    Route("/get", get_values),
    Route("/clear", clear),
    Route("/untouched", untouched),
    Route("/inc", increment),
    Route("/locked-inc", locked_increment),
    Route("/fail", fail),
    Route("/crash", crash),
    Route("/stream", stream),
    Route("/vary", vary_accept),
    Route("/big", big),
    Route("/static/app.css", untouched),
    Route("/static/session.css", get_values),
    WebSocketRoute("/ws", socket),
]


#: ROUTES without the locked one: an app that runs its lifespan on the cookie store (which
#: cannot lock) must not have it, or the startup is refused.
LOCK_FREE = [route for route in ROUTES if getattr(route, "path", "") != "/locked-inc"]


def make_app(middleware: Any, routes: list[Any] | None = None, **options: Any) -> Starlette:
    """The test app behind ``middleware`` (ours or Starlette's) configured with ``options``."""
    options.setdefault("secret_key", KEY)
    return Starlette(routes=routes or ROUTES, middleware=[Middleware(middleware, **options)])


def client(
    app: Any, base_url: str = "http://testserver", *, peer: str = "203.0.113.7",
    root_path: str = "", **kwargs: Any,
) -> httpx.AsyncClient:  # fmt: skip
    """An httpx client calling ``app`` in-process (no server), from address ``peer``."""
    kwargs.setdefault("headers", {"User-Agent": UA})
    transport = httpx.ASGITransport(app=app, client=(peer, 4711), root_path=root_path)
    return httpx.AsyncClient(transport=transport, base_url=base_url, **kwargs)


def set_cookie(response: httpx.Response) -> dict[str, Any] | None:
    """The response's (one) Set-Cookie as a dict: ``name``, ``value`` and each attribute
    lower-cased (flags map to True, SameSite's value lower-cased); None when absent."""
    values = response.headers.get_list("set-cookie")
    if not values:
        return None
    assert len(values) == 1, values
    first, *attributes = (part.strip() for part in values[0].split(";"))
    name, _, value = first.partition("=")
    parsed: dict[str, Any] = {"name": name, "value": value}
    for attribute in attributes:
        key, sep, arg = attribute.partition("=")
        parsed[key.lower()] = arg if sep else True
    if "samesite" in parsed:
        parsed["samesite"] = parsed["samesite"].lower()
    return parsed


__all__ = ["KEY", "LOCK_FREE", "UA", "TestClient", "client", "make_app", "set_cookie"]
