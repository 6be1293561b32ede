"""The failure table in docs/failures.md, checked against all three adapters.

The table is parsed here, so the docs and the adapters cannot drift apart: every row is
provoked for real (a closed port for a store that is down, a lock held by another holder,
the record deleted mid-request, a session too large for its cookie, a forged cookie) under
Django, Flask and Starlette, and each answer must be the status and headers the row says.
It lives under tests/django because Django's settings are configured there.
"""

from __future__ import annotations

import re
import socket
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import flask
import pytest
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.test import Client as DjangoClient
from django.test import override_settings
from django.urls import path as django_path
from sessionkit_asgi import SessionMiddleware
from sessionkit_asgi import locked as asgi_locked
from sessionkit_django import conf, use_engine
from sessionkit_django.middleware import session_lock
from sessionkit_flask import SessionKit
from sessionkit_flask import locked as flask_locked
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from sessionkit import Failure, SessionConfig, SessionEngine, Store, open_store
from sessionkit.ids import digest, new_id
from sessionkit.stores.fallback import FallbackStore
from tests.asgi.apps import TestClient

DOCS = Path(__file__).resolve().parents[2] / "docs" / "failures.md"
FRAMEWORKS = ("Django", "Flask", "Starlette / FastAPI")
KEY = "failure-table-key-0123456789abcdef0123456789abcdef"


@dataclass(frozen=True)
class Row:
    failure: Failure
    status: dict[str, int | None]  # per framework; None: the view's own response
    exact: dict[str, str]  # header -> value
    contains: dict[str, str]  # header -> a fragment of its value


def table() -> list[Row]:
    lines = [line for line in DOCS.read_text().splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = []
    for line in lines[2:]:
        cells = dict(zip(header, (c.strip() for c in line.strip("|").split("|")), strict=True))
        status: dict[str, int | None] = {}
        for framework in FRAMEWORKS:
            found = re.fullmatch(r"(\d{3})|the view's response", cells[framework])
            assert found, f'{cells[framework]!r}: write a status or "the view\'s response"'
            status[framework] = int(found[1]) if found[1] else None
        exact: dict[str, str] = {}
        contains: dict[str, str] = {}
        last = ""
        for token in re.findall(r"`([^`]+)`", cells["Headers"]):
            name, sep, value = token.partition(": ")
            if sep:
                exact[name] = value
            elif "=" in token:
                contains[last] = token  # `Set-Cookie` with `Max-Age=0`
            else:
                last = token
        rows.append(Row(Failure(cells["Name"].strip("`")), status, exact, contains))
    return rows


def test_the_table_names_every_failure_once() -> None:
    assert sorted(r.failure.value for r in table()) == sorted(f.value for f in Failure)


# -- one small app per framework, the same five routes -----------------------------------
#   /set       store something (gives the test a session and its cookie)
#   /read      read the session
#   /locked    a locked view that waits 50 ms for the lock
#   /conflict  read, then delete this session's record behind its back, then change it
#   /big       put 5000 bytes in the session
#   /login     bind the session to "alice" (a login), remembering her name in "a"
BIG = "x" * 5000
Answer = tuple[int, dict[str, str]]


def _sid(cookie: str | None) -> str:
    assert cookie is not None
    return cookie.partition(".")[0]


class Harness:
    """Runs the routes above under one framework, on one store."""

    name: str
    cookie_name = "session"

    def __init__(self, store: Store, **settings: Any) -> None:
        self.store = store

    def get(self, path: str, cookie: str | None = None) -> Answer:
        raise NotImplementedError

    def close(self) -> None:
        pass


class DjangoHarness(Harness):
    name = "Django"
    cookie_name = "sessionid"

    def __init__(self, store: Store, **settings: Any) -> None:
        super().__init__(store)
        config = {"STORE": store, **{k.upper(): v for k, v in settings.items()}}
        self.engine = SessionEngine(conf.build_config(config), store=store)
        # on the cookie store, a locked view stops the middleware from loading
        urls = __name__ if store.supports_lock else _LOCK_FREE.__name__
        self._settings = override_settings(ROOT_URLCONF=urls, DEBUG=False)
        self._settings.enable()
        self._use = use_engine(self.engine)
        self._use.__enter__()

    def get(self, path: str, cookie: str | None = None) -> Answer:
        client = DjangoClient(raise_request_exception=False)
        if cookie is not None:
            client.cookies[self.cookie_name] = cookie
        response = client.get(path)
        headers = dict(response.items())
        morsel = response.cookies.get(self.cookie_name)
        if morsel is not None:
            headers["Set-Cookie"] = morsel.OutputString()
        return response.status_code, headers

    def close(self) -> None:
        self._use.__exit__(None, None, None)
        self._settings.disable()


def _django_set(request: HttpRequest) -> HttpResponse:
    request.session["a"] = "1"
    return HttpResponse("ok")


def _django_read(request: HttpRequest) -> HttpResponse:
    return HttpResponse(str(request.session.get("a")))


@session_lock(wait=0.05)
def _django_locked(request: HttpRequest) -> HttpResponse:
    request.session["locked"] = "yes"
    return HttpResponse("ok")


def _django_conflict(request: HttpRequest) -> HttpResponse:
    request.session.get("a")
    store = conf.engines().request.store
    store.delete(digest(_sid(request.COOKIES.get("sessionid"))))
    request.session["b"] = "2"
    return HttpResponse("ok")


def _django_big(request: HttpRequest) -> HttpResponse:
    request.session["big"] = BIG
    return HttpResponse("ok")


def _django_login(request: HttpRequest) -> HttpResponse:
    request.session["a"] = "alice"
    request.session.bind_user("alice", regenerate=True)
    return HttpResponse("ok")


urlpatterns = [
    django_path("login", _django_login),
    django_path("set", _django_set),
    django_path("read", _django_read),
    django_path("locked", _django_locked),
    django_path("conflict", _django_conflict),
    django_path("big", _django_big),
]
_LOCK_FREE = types.ModuleType(f"{__name__}_lock_free")
_LOCK_FREE.urlpatterns = [p for p in urlpatterns if str(p.pattern) != "locked"]  # type: ignore[attr-defined]
sys.modules[_LOCK_FREE.__name__] = _LOCK_FREE


class FlaskHarness(Harness):
    name = "Flask"

    def __init__(self, store: Store, **settings: Any) -> None:
        super().__init__(store)
        app = flask.Flask(__name__)
        app.config.update({f"SESSIONKIT_{k.upper()}": v for k, v in settings.items()})
        # Flask's own default leaves a cookie that does not verify alone (docs/failures.md says
        # so under the table); the table's row is the cleared cookie the other two send.
        app.config.update(SECRET_KEY=KEY, SESSIONKIT_STORE=store,
                          SESSIONKIT_CLEAR_UNVERIFIED_COOKIE=True)  # fmt: skip
        SessionKit(app)
        session = flask.session

        @app.get("/set")
        def set_() -> str:
            session["a"] = "1"
            return "ok"

        @app.get("/read")
        def read() -> str:
            return str(session.get("a"))

        if store.supports_lock:  # on the cookie store, a locked view stops the app

            @app.get("/locked")
            @flask_locked(wait=0.05)
            def locked_() -> str:
                session["locked"] = "yes"
                return "ok"

        @app.get("/conflict")
        def conflict() -> str:
            session.get("a")
            store.delete(digest(_sid(flask.request.cookies.get("session"))))
            session["b"] = "2"
            return "ok"

        @app.get("/big")
        def big() -> str:
            session["big"] = BIG
            return "ok"

        @app.get("/login")
        def login() -> str:
            session["a"] = "alice"
            session.bind_user("alice")  # type: ignore[attr-defined]
            return "ok"

        self.app = app

    def get(self, path: str, cookie: str | None = None) -> Answer:
        client = self.app.test_client()
        if cookie is not None:
            client.set_cookie("session", cookie)
        response = client.get(path)
        return response.status_code, dict(response.headers.items())


class StarletteHarness(Harness):
    name = "Starlette / FastAPI"

    def __init__(self, store: Store, **settings: Any) -> None:
        super().__init__(store)

        async def login(request: Request) -> PlainTextResponse:
            request.session["a"] = "alice"
            request.session.bind_user("alice")  # type: ignore[attr-defined]
            return PlainTextResponse("ok")

        async def set_(request: Request) -> PlainTextResponse:
            request.session["a"] = "1"
            return PlainTextResponse("ok")

        async def read(request: Request) -> PlainTextResponse:
            return PlainTextResponse(str(request.session.get("a")))

        @asgi_locked(wait=0.05)
        async def locked_(request: Request) -> PlainTextResponse:
            request.session["locked"] = "yes"
            return PlainTextResponse("ok")

        async def conflict(request: Request) -> PlainTextResponse:
            request.session.get("a")
            store.delete(digest(_sid(request.cookies.get("session"))))
            request.session["b"] = "2"
            return PlainTextResponse("ok")

        async def big(request: Request) -> PlainTextResponse:
            request.session["big"] = BIG
            return PlainTextResponse("ok")

        app = Starlette(routes=[
            Route("/set", set_), Route("/read", read), Route("/conflict", conflict),
            Route("/big", big), Route("/login", login),
            # on the cookie store, a locked route stops the app
            *([Route("/locked", locked_)] if store.supports_lock else []),
        ])  # fmt: skip
        app.add_middleware(SessionMiddleware, secret_key=KEY, store=store, **settings)
        self.client = TestClient(app, raise_server_exceptions=False)

    def get(self, path: str, cookie: str | None = None) -> Answer:
        self.client.cookies.clear()
        headers = {"Cookie": f"session={cookie}"} if cookie is not None else {}
        response = self.client.get(path, headers=headers)
        return response.status_code, dict(response.headers.items())


HARNESSES: dict[str, Callable[..., Harness]] = {
    "Django": DjangoHarness, "Flask": FlaskHarness, "Starlette / FastAPI": StarletteHarness,
}  # fmt: skip


def _cookie_of(answer: Answer, name: str) -> str:
    header = {k.lower(): v for k, v in answer[1].items()}["set-cookie"]
    found = re.search(rf"{name}=([^;]*)", header)
    assert found, header
    return found[1]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def provoke(failure: Failure, make: Callable[..., Harness]) -> Iterator[Answer]:
    """Yield the framework's answer to ``failure``, provoked for real."""
    if failure is Failure.SESSION_LIMIT:  # a second login of a user allowed one session
        harness = make(
            open_store("memory://"), max_sessions_per_user=1, session_limit_policy="refuse"
        )
        try:
            assert harness.get("/login")[0] == 200
            yield harness.get("/login")
        finally:
            harness.close()
        return
    if failure is Failure.READ_ONLY:  # a primary that is down, a fallback that reads
        harness = make(read_only_store())
        try:
            yield harness.get("/set")  # a new session: refused
            yield harness.get("/login")  # a login: refused
        finally:
            harness.close()
        return
    if failure is Failure.STORE_DOWN:
        store = open_store(f"redis://127.0.0.1:{_closed_port()}/0?socket_timeout=0.5")
        harness = make(store)
        try:
            sid_cookie = harness_signed_cookie(harness)
            yield harness.get("/read", sid_cookie)  # the load fails
            yield harness.get("/set")  # the save fails
        finally:
            harness.close()
        return
    store = open_store("cookie://" if failure is Failure.TOO_LARGE else "memory://")
    harness = make(store)
    try:
        if failure is Failure.TOO_LARGE:
            yield harness.get("/big")
        elif failure is Failure.COOKIE_REJECTED:
            yield harness.get("/read", "forged.cookie")
        else:
            cookie = _cookie_of(harness.get("/set"), harness.cookie_name)
            if failure is Failure.CONFLICT:
                yield harness.get("/conflict", cookie)
            else:
                with store.lock(digest(_sid(cookie)), ttl=5, wait=0):
                    yield harness.get("/locked", cookie)
    finally:
        harness.close()


def read_only_store(replica: Store | None = None) -> FallbackStore:
    """A Redis primary that is down (a closed port), with ``replica`` (or an empty memory
    store) as its fallback: reads are served, changes refused with ``StoreReadOnly``."""
    primary = open_store(f"redis://127.0.0.1:{_closed_port()}/0?socket_timeout=0.5")
    return FallbackStore(primary, replica or open_store("memory://"))


def test_read_only_mode_serves_reads_alike_in_every_framework() -> None:
    """A session the fallback holds is read (200) and a change to it refused (the row's
    503) under all three frameworks."""
    answers = {}
    for framework, make in HARNESSES.items():
        replica = open_store("memory://")
        harness = make(read_only_store(replica))
        key = settings.SECRET_KEY if framework == "Django" else KEY
        engine = SessionEngine(
            SessionConfig(secret_key=key, cookie_name=harness.cookie_name), store=replica
        )
        session = engine.open(None)
        session["a"] = "from the replica"
        engine.save(session)
        cookie = engine.cookie_of(session)
        try:
            read = harness.get("/read", cookie)
            changed = harness.get("/set", cookie)
        finally:
            harness.close()
        retry = {k.lower(): v for k, v in changed[1].items()}.get("retry-after")
        answers[framework] = (read[0], changed[0], retry)
    assert answers == dict.fromkeys(FRAMEWORKS, (200, 503, "5"))


def harness_signed_cookie(harness: Harness) -> str:
    """A validly signed cookie for an ID the store never saw: it makes the adapter load."""
    key = settings.SECRET_KEY if harness.name == "Django" else KEY
    config = SessionConfig(secret_key=key, cookie_name=harness.cookie_name)
    return SessionEngine(config).sign(new_id())


@pytest.mark.parametrize("row", table(), ids=lambda r: r.failure.value)
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_each_framework_answers_as_the_table_says(row: Row, framework: str) -> None:
    answers = list(provoke(row.failure, HARNESSES[framework]))
    assert answers
    for status, raw in answers:
        headers = {k.lower(): v for k, v in raw.items()}
        expected = row.status[framework]
        assert status == (200 if expected is None else expected), (framework, raw)
        for name, value in row.exact.items():
            assert headers.get(name.lower()) == value, (framework, name, raw)
        for name, fragment in row.contains.items():
            assert fragment in headers.get(name.lower(), ""), (framework, name, raw)


def test_a_configured_status_reaches_every_framework() -> None:
    """``failure_status`` is the one place: each adapter answers what it says."""
    answers: dict[str, int] = {}
    for framework, make in HARNESSES.items():
        store = open_store("memory://")
        harness: Any = make(store)
        if framework == "Django":
            harness.close()
            harness.engine = SessionEngine(
                conf.build_config({"STORE": store, "FAILURE_STATUS": {"lock_timeout": 423}}),
                store=store,
            )
            harness._settings.enable()
            harness._use = use_engine(harness.engine)
            harness._use.__enter__()
        elif framework == "Flask":
            harness.app.config["SESSIONKIT_FAILURE_STATUS"] = {"lock_timeout": 423}
        else:
            app = harness.client.app
            app.user_middleware.clear()
            app.middleware_stack = None
            app.add_middleware(
                SessionMiddleware, secret_key=KEY, store=store,
                failure_status={"lock_timeout": 423},
            )  # fmt: skip
        try:
            cookie = _cookie_of(harness.get("/set"), harness.cookie_name)
            with store.lock(digest(_sid(cookie)), ttl=5, wait=0):
                answers[framework] = harness.get("/locked", cookie)[0]
        finally:
            harness.close()
    assert answers == dict.fromkeys(FRAMEWORKS, 423)
