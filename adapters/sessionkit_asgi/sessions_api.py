"""The sessions API as a Starlette router: ``Mount("/sessions", app=sessions_app(...))``.

Behind ``SessionMiddleware`` on a store with a user index. Starlette has no CSRF of its
own, so a state-changing call must be same-origin by its ``Sec-Fetch-Site`` or ``Origin``
header (``sessionkit.same_origin``). ``staff`` decides who may use the ``/users/...``
routes: a callable taking the request, sync or async; by default nobody.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, Router

from sessionkit import ApiResponse, Caller, SessionsAPI, same_origin
from sessionkit_asgi.access import get_engine, get_session
from sessionkit_asgi.loops import asyncio_running

StaffCheck = Callable[[Request], bool | Awaitable[bool]]
#: Every method reaches the core, which answers 405 (with ``Allow``) for the wrong one.
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def nobody(request: Request) -> bool:
    """The default staff check: no one is staff until the app says who is."""
    return False


async def is_staff(check: StaffCheck, request: Request) -> bool:
    verdict = check(request)
    if inspect.isawaitable(verdict):
        verdict = await verdict
    return verdict is True


def request_origin_ok(request: Request) -> bool:
    """``same_origin`` for a Starlette request (its host and scheme, as the server saw
    them: behind a proxy, run the server with its proxy-headers option)."""
    host = request.headers.get("host") or request.url.netloc
    return same_origin(request.method, request.headers, host, request.url.scheme)


async def answer(request: Request, path: str, *, staff: StaffCheck = nobody) -> ApiResponse:
    """Run one API call for ``request`` (``path`` relative to the mount) and apply its
    effect to the request's session."""
    session = get_session(request)
    engine = get_engine(request)
    api = SessionsAPI(engine)
    call = functools.partial(
        api.dispatch, request.method, path, await request.body(), Caller.of(session, engine),
        staff=await is_staff(staff, request), trusted_origin=request_origin_ok(request),
    )  # fmt: skip
    if asyncio_running():
        response = await api.adispatch(*call.args, **call.keywords)
    else:  # trio: the stores' async clients speak asyncio only
        response = await anyio.to_thread.run_sync(call)
    response.apply(session)
    return response


def to_response(response: ApiResponse, method: str) -> Response:
    body = b"" if method == "HEAD" else response.json()
    return Response(body, response.status, headers=response.headers)


def sessions_app(*, staff: StaffCheck = nobody) -> Router:
    """A router to mount: ``Mount("/sessions", app=sessions_app(staff=is_admin))``."""

    async def endpoint(request: Request) -> Response:
        path = "/" + str(request.path_params.get("path", ""))
        return to_response(await answer(request, path, staff=staff), request.method)

    return Router(
        routes=[
            Route("/", endpoint, methods=METHODS),
            Route("/{path:path}", endpoint, methods=METHODS),
        ]
    )
