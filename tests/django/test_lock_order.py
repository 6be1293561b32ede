"""The one "lock before use" rule, checked in all three adapters (it is the core's).

A session *read* before its lock was taken (by auth, CSRF or other middleware) is read
again once the lock is held, so the view sees what a concurrent request committed in the
meantime; a session *changed* before the lock is refused with ``LockOrderError``, because
those changes were made without the lock. It lives under tests/django because Django's
settings are configured there.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import flask
import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client as DjangoClient
from django.test import override_settings
from django.urls import path as django_path
from sessionkit_asgi import SessionMiddleware, get_engine
from sessionkit_asgi import locked as asgi_locked
from sessionkit_django import conf, use_engine
from sessionkit_django.middleware import session_lock
from sessionkit_flask import SessionKit
from sessionkit_flask import locked as flask_locked
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from sessionkit import LockOrderError, SessionEngine, open_store
from tests.asgi.apps import TestClient

KEY = "lock-order-key-0123456789abcdef0123456789abcdef"


def behind_its_back(engine: SessionEngine, cookie_name: str, cookie: str, session: Any) -> None:
    """What a concurrent request of the same session commits while this one runs (through
    an engine of its own, on the same store, as another worker would)."""
    elsewhere = SessionEngine(engine.config, store=engine.store)
    # the same client: a fingerprint mismatch would invalidate the session instead
    other = elsewhere.open(f"{cookie_name}={cookie}", engine.client_of(session))
    other["n"] = "5"
    assert elsewhere.run(elsewhere.commit(other, 200))


# -- Django ---------------------------------------------------------------------------------
def _django_first(change: bool) -> Callable[[Any], Any]:
    def decorate(view: Any) -> Any:
        @functools.wraps(view)
        def wrapper(request: HttpRequest) -> Any:
            assert request.session.get("n") == "1"  # what middleware would read
            if change:
                request.session["m"] = "x"
            store = request.session
            behind_its_back(store.engine, "sessionid", request.COOKIES["sessionid"], store.core)
            return view(request)

        return wrapper

    return decorate


def _django_set(request: HttpRequest) -> HttpResponse:
    request.session["n"] = "1"
    return HttpResponse("ok")


@session_lock
def _django_locked_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse(request.session.get("n"))


urlpatterns = [
    django_path("set", _django_set),
    django_path("read-then-lock", _django_first(False)(_django_locked_view)),
    django_path("change-then-lock", _django_first(True)(_django_locked_view)),
]


@pytest.fixture
def django_get() -> Iterator[Callable[[str], str]]:
    store = open_store("memory://")
    engine = SessionEngine(conf.build_config({"STORE": store}), store=store)
    with override_settings(ROOT_URLCONF=__name__), use_engine(engine):
        client = DjangoClient()

        def get(path: str) -> str:
            return client.get(f"/{path}").content.decode()

        yield get


# -- Flask ----------------------------------------------------------------------------------
@pytest.fixture
def flask_get() -> Callable[[str], str]:
    app = flask.Flask(__name__)
    app.config.update(SECRET_KEY=KEY, SESSIONKIT_STORE="memory://", TESTING=True)
    SessionKit(app)
    session: Any = flask.session

    def first(change: bool) -> Callable[[Any], Any]:
        def decorate(view: Any) -> Any:
            @functools.wraps(view)
            def wrapper() -> Any:
                assert session.get("n") == "1"  # what @login_required would read
                if change:
                    session["m"] = "x"
                cookie = flask.request.cookies["session"]
                behind_its_back(session.engine, "session", cookie, flask.session)
                return view()

            return wrapper

        return decorate

    @app.get("/set")
    def set_() -> str:
        session["n"] = "1"
        return "ok"

    def locked_view() -> str:
        return str(session.get("n"))

    for name, change in (("read-then-lock", False), ("change-then-lock", True)):
        view = first(change)(flask_locked(functools.wraps(locked_view)(locked_view)))
        app.add_url_rule(f"/{name}", name, view)
    client = app.test_client()
    return lambda path: client.get(f"/{path}").get_data(as_text=True)


# -- Starlette ------------------------------------------------------------------------------
@pytest.fixture
def starlette_get() -> Iterator[Callable[[str], str]]:
    def first(change: bool) -> Callable[[Any], Any]:
        def decorate(view: Any) -> Any:
            async def wrapper(request: Request) -> Any:
                assert request.session.get("n") == "1"  # what a dependency would read
                if change:
                    request.session["m"] = "x"
                cookie = request.cookies["session"]
                behind_its_back(get_engine(request), "session", cookie, request.session)
                return await view(request)

            return wrapper

        return decorate

    async def set_(request: Request) -> PlainTextResponse:
        request.session["n"] = "1"
        return PlainTextResponse("ok")

    @asgi_locked
    async def locked_view(request: Request) -> PlainTextResponse:
        return PlainTextResponse(str(request.session.get("n")))

    app = Starlette(routes=[
        Route("/set", set_),
        Route("/read-then-lock", first(False)(locked_view)),
        Route("/change-then-lock", first(True)(locked_view)),
    ])  # fmt: skip
    app.add_middleware(SessionMiddleware, secret_key=KEY, store="memory://")
    with TestClient(app) as client:
        yield lambda path: client.get(f"/{path}").text


FRAMEWORKS = ["django_get", "flask_get", "starlette_get"]


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_session_read_before_the_lock_is_read_again_under_it(
    framework: str, request: pytest.FixtureRequest
) -> None:
    get: Callable[[str], str] = request.getfixturevalue(framework)
    assert get("set") == "ok"
    assert get("read-then-lock") == "5"  # what was committed meanwhile, not the stale "1"


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_session_changed_before_the_lock_is_refused(
    framework: str, request: pytest.FixtureRequest
) -> None:
    get: Callable[[str], str] = request.getfixturevalue(framework)
    assert get("set") == "ok"
    with pytest.raises(LockOrderError, match=r"changed \(keys 'm'\) before its lock"):
        get("change-then-lock")
