"""DBSC through sessionkit's Django middleware: it answers the two endpoints itself when
``SESSIONKIT["DBSC"]`` is on (no URLconf entry, outside CSRF); the shared scenarios
(tests/dbsc_scenarios.py) on memory, Redis and SQLite, sync (Client) and ASGI
(AsyncClient, the store's async flavour)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from django.http import HttpRequest, JsonResponse
from django.test import AsyncClient, Client, override_settings
from django.urls import path
from sessionkit_django import conf

from sessionkit import ConfigError, SessionEngine
from sessionkit.testing import FakeClock
from tests import dbsc_scenarios as scenarios
from tests.django.conftest import EngineFactory

ORIGIN = "http://testserver"


def login(request: HttpRequest) -> JsonResponse:
    request.session["cart"] = ["apple"]
    request.session.bind_user(request.GET.get("user", "alice"))  # type: ignore[attr-defined]
    return JsonResponse({"ok": True})


def me(request: HttpRequest) -> JsonResponse:
    data = dict(request.session.items())
    return JsonResponse({"user": request.session.user_id, "data": data})  # type: ignore[attr-defined]


def logout(request: HttpRequest) -> JsonResponse:
    request.session.flush()
    return JsonResponse({"ok": True})


def rotate(request: HttpRequest) -> JsonResponse:
    request.session.cycle_key()
    return JsonResponse({"ok": True})


def bind_here(request: HttpRequest) -> JsonResponse:
    request.session.start_device_binding()  # type: ignore[attr-defined]
    return JsonResponse({"ok": True})


urlpatterns = [
    path("login", login), path("me", me), path("logout", logout), path("rotate", rotate),
    path("bind", bind_here),
]  # fmt: skip


class DjangoBrowser:
    def __init__(self) -> None:
        self.client = Client()
        self.origin = ORIGIN
        self.last: list[str] = []

    def _answer(self, response: Any) -> tuple[int, Mapping[str, str], Any]:
        self.last = [m.OutputString() for m in response.cookies.values()]
        headers = {k.lower(): v for k, v in response.headers.items()}
        body = response.json() if response.content else None
        return response.status_code, headers, body

    def get(self, path_: str) -> tuple[int, Mapping[str, str], Any]:
        return self._answer(self.client.get(path_))

    def post(self, path_: str, headers: dict[str, str]) -> tuple[int, Mapping[str, str], Any]:
        return self._answer(self.client.post(path_, headers=headers))

    def cookie(self, name: str) -> str | None:
        morsel = self.client.cookies.get(name)
        return morsel.value if morsel is not None and morsel.value else None

    def set_cookie(self, name: str, value: str) -> None:
        self.client.cookies[name] = value

    def set_cookies(self) -> list[str]:
        return self.last


class AsyncDjangoBrowser(DjangoBrowser):
    """The same through Django's ASGI handler: the middleware awaits the store's async
    flavour (``DeviceBinding.ahandle``), every request on the test's one event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.loop = loop
        self.aclient = AsyncClient()
        self.client.cookies = self.aclient.cookies  # one jar

    def get(self, path_: str) -> tuple[int, Mapping[str, str], Any]:
        return self._answer(self.loop.run_until_complete(self.aclient.get(path_)))

    def post(self, path_: str, headers: dict[str, str]) -> tuple[int, Mapping[str, str], Any]:
        request = self.aclient.post(path_, headers=headers)
        return self._answer(self.loop.run_until_complete(request))


@pytest.fixture(params=["memory", "redis", "sqlite"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["sync", "async"])
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def new_client(
    kind: str, flavour: str, make_sk: EngineFactory, clock: FakeClock
) -> Iterator[scenarios.NewClient]:
    with override_settings(ROOT_URLCONF=__name__, SESSION_COOKIE_NAME="session"):
        engine = make_sk(kind, DBSC=True)
        if flavour == "sync":
            yield DjangoBrowser
            return
        loop = asyncio.new_event_loop()
        try:
            yield lambda: AsyncDjangoBrowser(loop)
            loop.run_until_complete(engine.store.aclose())  # its async clients live here
        finally:
            loop.close()


def test_full_flow(new_client: scenarios.NewClient, clock: FakeClock) -> None:
    scenarios.full_flow(new_client, clock)


def test_stolen_cookie(new_client: scenarios.NewClient, clock: FakeClock) -> None:
    scenarios.stolen_cookie(new_client, clock)


@pytest.mark.parametrize("case", scenarios.BAD_PROOFS)
def test_bad_proof(new_client: scenarios.NewClient, clock: FakeClock, case: str) -> None:
    scenarios.bad_proof(new_client, clock, case)


def test_registration_for_another_session(
    new_client: scenarios.NewClient, clock: FakeClock
) -> None:
    scenarios.another_session(new_client, clock)


def test_endpoint_headers(new_client: scenarios.NewClient) -> None:
    scenarios.endpoint_headers(new_client)


def test_endpoints_only_with_the_setting(make_sk: EngineFactory) -> None:
    with override_settings(ROOT_URLCONF=__name__):
        make_sk("memory")
        assert Client().post(scenarios.REG).status_code == 404


def test_cookie_store_refused_at_startup() -> None:
    config = conf.build_config({"STORE": "cookie://", "DBSC": True})
    with pytest.raises(ConfigError, match="server-side store"):
        SessionEngine(config)


def test_check_without_our_middleware() -> None:
    from sessionkit_django.checks import check_settings

    djangos = "django.contrib.sessions.middleware.SessionMiddleware"
    with override_settings(SESSIONKIT={"STORE": "memory://", "DBSC": True}, MIDDLEWARE=[djangos]):
        assert "sessionkit.E006" in [e.id for e in check_settings()]
    with override_settings(SESSIONKIT={"STORE": "memory://", "DBSC": True}):
        assert "sessionkit.E006" not in [e.id for e in check_settings()]


def test_explicit_start_over_plain_http(make_sk: EngineFactory) -> None:
    with override_settings(ROOT_URLCONF=__name__, SESSION_COOKIE_NAME="session"):
        make_sk("memory", DBSC=True)
        client = Client(REMOTE_ADDR="203.0.113.9")  # not loopback, not HTTPS
        assert "secure-session-registration" not in client.get("/login").headers
        assert "secure-session-registration" in client.get("/bind").headers
