"""``encrypt_records`` set the way each framework sets its options (Django's ``SESSIONKIT``,
Flask's ``SESSIONKIT_ENCRYPT_RECORDS``, the ASGI middleware's keyword) seals what the store
holds, and the app reads its session back as ever. (Under tests/django: Django's settings
are configured here.)"""

from __future__ import annotations

from collections.abc import Callable

import flask
import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client as DjangoClient
from django.test import override_settings
from django.urls import path as django_path
from sessionkit_asgi import SessionMiddleware
from sessionkit_django import conf, use_engine
from sessionkit_flask import SessionKit
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from sessionkit import MemoryStore, SessionEngine, Write
from tests.asgi.apps import TestClient


class Recording(MemoryStore):
    """A memory store that remembers which records were written."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[str] = []

    def save(self, write: Write) -> bool:
        self.written.append(write.digest)
        return super().save(write)

    async def asave(self, write: Write) -> bool:
        return self.save(write)


KEY = "encrypt-records-key-0123456789abcdef0123456789abcdef"
SECRET = "4111 1111 1111 1111"


def _django_set(request: HttpRequest) -> HttpResponse:
    request.session["card"] = SECRET
    return HttpResponse("ok")


def _django_get(request: HttpRequest) -> HttpResponse:
    return HttpResponse(request.session.get("card", ""))


urlpatterns = [django_path("set", _django_set), django_path("get", _django_get)]


def django_app(store: Recording) -> Callable[[str], str]:
    config = conf.build_config({"STORE": store, "ENCRYPT_RECORDS": True})
    assert config.encrypt_records
    engine = SessionEngine(config, store=store)
    client = DjangoClient()

    def get(path: str) -> str:
        with override_settings(ROOT_URLCONF=__name__), use_engine(engine):
            return client.get(f"/{path}").content.decode()

    return get


def flask_app(store: Recording) -> Callable[[str], str]:
    app = flask.Flask(__name__)
    app.config.update(SECRET_KEY=KEY, SESSIONKIT_STORE=store, SESSIONKIT_ENCRYPT_RECORDS=True)
    SessionKit(app)

    @app.get("/set")
    def set_() -> str:
        flask.session["card"] = SECRET
        return "ok"

    @app.get("/get")
    def get_() -> str:
        return str(flask.session.get("card", ""))

    client = app.test_client()
    return lambda path: client.get(f"/{path}").get_data(as_text=True)


def starlette_app(store: Recording) -> Callable[[str], str]:
    async def set_(request: Request) -> PlainTextResponse:
        request.session["card"] = SECRET
        return PlainTextResponse("ok")

    async def get_(request: Request) -> PlainTextResponse:
        return PlainTextResponse(str(request.session.get("card", "")))

    app = Starlette(routes=[Route("/set", set_), Route("/get", get_)])
    app.add_middleware(SessionMiddleware, secret_key=KEY, store=store, encrypt_records=True)
    client = TestClient(app)
    return lambda path: client.get(f"/{path}").text


@pytest.mark.parametrize("make", [django_app, flask_app, starlette_app])
def test_each_framework_seals_what_the_store_holds(
    make: Callable[[Recording], Callable[[str], str]],
) -> None:
    store = Recording()
    get = make(store)
    assert get("set") == "ok"
    (digest,) = set(store.written)
    record = store.load(digest)
    assert record is not None and set(record.items) == {"card"}
    assert record.items["card"].startswith("~1") and SECRET not in record.items["card"]
    assert get("get") == SECRET
