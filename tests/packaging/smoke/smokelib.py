"""Helpers for the smoke scripts, which run inside a fresh venv that holds the built wheel
with one extra and nothing else: no pytest, no httpx, no test client of a framework that
the extra does not bring. So requests go through each framework's real WSGI or ASGI entry
point, driven by the few lines below."""

from __future__ import annotations

import asyncio
import os
import sys
import sysconfig
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

KEY = "smoke-test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
TMP = Path(os.environ.get("SMOKE_TMP", "."))


def check_installed() -> None:
    """The sessionkit under test is the wheel in this venv, not a source tree on the path."""
    import sessionkit

    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    where = Path(sessionkit.__file__).resolve()
    assert site in where.parents, f"sessionkit imported from {where}, not from {site}"
    from importlib.metadata import version

    assert version("sessionkit") == sessionkit.__version__, "two versions of one release"


def cookie_from(headers: Iterable[tuple[str, str]], name: str) -> str:
    """The ``Cookie`` request header a browser would send back after these response headers."""
    for header, raw in headers:
        value = raw.strip()
        if header.lower() == "set-cookie" and value.startswith(f"{name}="):
            pair = value.split(";", 1)[0]
            assert pair != f"{name}=", f"the session cookie was deleted: {value}"
            return pair
    raise AssertionError(f"no Set-Cookie for {name!r} in {list(headers)}")


# -- the core alone, sync and async -------------------------------------------------------
def core_roundtrip(engine: Any) -> None:
    """Write a session, read it back, change it, end it: what an adapter does per request."""
    name = engine.config.cookie_name
    session = engine.open(None)
    session["n"] = 1
    plan = engine.commit(session, 200)
    engine.run(plan)
    cookie = cookie_from(plan.headers(), name)
    again = engine.open(cookie)
    assert again["n"] == 1, dict(again)
    again["n"] = 2
    plan = engine.commit(again, 200)
    engine.run(plan)
    cookie = _maybe_new(plan.headers(), name, cookie)
    third = engine.open(cookie)
    assert third["n"] == 2
    third.invalidate()
    engine.run(engine.commit(third, 200))


async def acore_roundtrip(engine: Any) -> None:
    name = engine.config.cookie_name
    session = engine.open(None)
    session["n"] = 1
    plan = engine.commit(session, 200)
    await engine.arun(plan)
    cookie = cookie_from(plan.headers(), name)
    again = engine.open(cookie)
    await engine.aload(again)
    assert again["n"] == 1, dict(again)
    again["n"] = 2
    plan = engine.commit(again, 200)
    await engine.arun(plan)
    cookie = _maybe_new(plan.headers(), name, cookie)
    third = engine.open(cookie)
    await engine.aload(third)
    assert third["n"] == 2
    third.invalidate()
    await engine.arun(engine.commit(third, 200))


def _maybe_new(headers: Iterable[tuple[str, str]], name: str, old: str) -> str:
    try:
        return cookie_from(headers, name)
    except AssertionError:
        return old  # a server-side store re-sends no cookie when only the data changed


def server_store_roundtrip(url: str) -> None:
    """The core on a server-side store: sync and async requests, and each capability the
    store declares (a user's session list and revocation, a lock, the sweep)."""
    from sessionkit import SessionConfig, SessionEngine

    engine = SessionEngine(SessionConfig(secret_key=KEY, store=url))
    store = engine.store
    try:
        core_roundtrip(engine)
        session = engine.open(None)
        session["x"] = 1
        session.bind_user("alice")
        plan = engine.commit(session, 200)
        engine.run(plan)
        cookie = cookie_from(plan.headers(), engine.config.cookie_name)
        if store.supports_lock:
            held = engine.open(cookie)
            with engine.lock(held, ttl=5, wait=2):
                held["y"] = 2
                engine.run(engine.commit(held, 200))
        if store.supports_user_index:
            assert [info.user for info in store.user_sessions("alice")] == ["alice"]
            assert store.revoke_user("alice") == 1
            assert store.user_sessions("alice") == []
        if store.supports_sweep:
            assert store.delete_expired() >= 0
    finally:
        store.close()
    engine = SessionEngine(SessionConfig(secret_key=KEY, store=url))

    async def run_async() -> None:
        store = engine.store
        try:
            await acore_roundtrip(engine)
            session = engine.open(None)
            session["x"] = 1
            session.bind_user("bob")
            plan = engine.commit(session, 200)
            await engine.arun(plan)
            cookie = cookie_from(plan.headers(), engine.config.cookie_name)
            if store.supports_lock:
                held = engine.open(cookie)
                async with engine.alock(held, ttl=5, wait=2):
                    await engine.aload(held)
                    held["y"] = 2
                    await engine.arun(engine.commit(held, 200))
            if store.supports_user_index:
                assert len(await store.auser_sessions("bob")) == 1
                assert await store.arevoke_user("bob") == 1
        finally:
            await store.aclose()

    asyncio.run(run_async())


# -- WSGI and ASGI without a test client ----------------------------------------------------
Response = tuple[int, list[tuple[str, str]], bytes]


def wsgi_request(app: Callable[..., Any], path: str, cookie: str | None = None) -> Response:
    from wsgiref.util import setup_testing_defaults

    environ: dict[str, Any] = {"PATH_INFO": path, "REQUEST_METHOD": "GET"}
    if cookie:
        environ["HTTP_COOKIE"] = cookie
    setup_testing_defaults(environ)
    environ["SERVER_NAME"] = "testserver"
    environ["HTTP_HOST"] = "testserver"
    started: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        started[:] = [int(status.split()[0]), headers]
        return lambda data: None

    chunks = app(environ, start_response)
    try:
        body = b"".join(chunks)
    finally:
        getattr(chunks, "close", lambda: None)()
    return started[0], list(started[1]), body


async def asgi_request(app: Any, path: str, cookie: str | None = None) -> Response:
    headers = [(b"host", b"testserver")]
    if cookie:
        headers.append((b"cookie", cookie.encode("latin-1")))
    scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1", "method": "GET", "scheme": "http", "path": path,
        "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
        "client": ("127.0.0.1", 40000), "server": ("testserver", 80), "state": {},
    }  # fmt: skip
    sent_body = False
    done = asyncio.Event()
    status, out, body = 0, [], bytearray()

    async def receive() -> dict[str, Any]:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            out.extend((k.decode("latin-1"), v.decode("latin-1")) for k, v in message["headers"])
        elif message["type"] == "http.response.body":
            body.extend(message.get("body", b""))
            if not message.get("more_body"):
                done.set()

    await app(scope, receive, send)
    done.set()
    return status, out, bytes(body)


async def with_lifespan(app: Any, run: Callable[[], Awaitable[None]]) -> None:
    """``run()`` between the app's lifespan startup and shutdown, as uvicorn does."""
    events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await events.put({"type": "lifespan.startup"})
    task = asyncio.ensure_future(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, events.get, replies.put)
    )
    reply = await replies.get()
    assert reply["type"] == "lifespan.startup.complete", reply
    try:
        await run()
    finally:
        await events.put({"type": "lifespan.shutdown"})
        reply = await replies.get()
        assert reply["type"] == "lifespan.shutdown.complete", reply
        await task


class Jar:
    """One cookie, kept as a browser keeps it: every ``Set-Cookie`` replaces it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.cookie: str | None = None

    def keep(self, response: Response) -> Response:
        for header, raw in response[1]:
            value = raw.strip()  # Django's WSGI handler sends " name=value; ..." (browsers allow)
            if header.lower() == "set-cookie" and value.startswith(f"{self.name}="):
                pair = value.split(";", 1)[0]
                self.cookie = None if pair == f"{self.name}=" else pair
        return response


def read_back(responses: list[Response], want: list[bytes]) -> None:
    """Each response is a 200 whose body is the expected counter value."""
    got = [(status, body) for status, _, body in responses]
    assert got == [(200, value) for value in want], got


def main(check: Callable[[], None]) -> None:
    check_installed()
    check()
    print(f"{Path(sys.argv[0]).stem}: ok")
