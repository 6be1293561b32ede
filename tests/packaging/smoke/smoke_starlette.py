"""``sessionkit[starlette]``: a Starlette app with sessionkit's middleware, through its
lifespan and real ASGI requests: the session is written, read back and changed by an async
and a sync endpoint, on the cookie store and on a server-side store."""

from __future__ import annotations

import asyncio

from smokelib import KEY, TMP, Jar, asgi_request, main, read_back, with_lifespan


def app_on(store: str) -> object:
    from sessionkit_asgi import SessionMiddleware
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def count(request: Request) -> PlainTextResponse:
        request.session["n"] = request.session.get("n", 0) + 1
        return PlainTextResponse(str(request.session["n"]))

    def count_sync(request: Request) -> PlainTextResponse:  # run in Starlette's threadpool
        request.session["n"] = request.session.get("n", 0) + 1
        return PlainTextResponse(str(request.session["n"]))

    return Starlette(
        routes=[Route("/", count), Route("/sync", count_sync)],
        middleware=[Middleware(SessionMiddleware, secret_key=KEY, store=store)],
    )


async def visit(app: object) -> None:
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
