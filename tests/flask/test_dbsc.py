"""DBSC through the Flask extension: the endpoints are routes SessionKit(app) adds when
``SESSIONKIT_DBSC`` is on; the shared scenarios (tests/dbsc_scenarios.py) on memory, Redis
and SQLite."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import flask
import pytest
from sessionkit_flask import SessionKit

from sessionkit import ConfigError
from sessionkit.testing import FakeClock
from tests import dbsc_scenarios as scenarios
from tests.conftest import KEY, store_url

ORIGIN = "https://localhost"


def create_app(store: str, clock: FakeClock, **settings: Any) -> flask.Flask:
    app = flask.Flask(__name__)
    settings.setdefault("SESSIONKIT_DBSC", True)
    app.config.update(SECRET_KEY=KEY, SESSIONKIT_STORE=store, **settings)

    @app.get("/login")
    def login() -> Any:
        flask.session["cart"] = ["apple"]
        flask.session.bind_user(flask.request.args.get("user", "alice"))  # type: ignore[attr-defined]
        return {"ok": True}

    @app.get("/me")
    def me() -> Any:
        return {"user": flask.session.user_id, "data": dict(flask.session)}  # type: ignore[attr-defined]

    @app.get("/logout")
    def logout() -> Any:
        flask.session.invalidate()  # type: ignore[attr-defined]
        return {"ok": True}

    @app.get("/rotate")
    def rotate() -> Any:
        flask.session.regenerate()  # type: ignore[attr-defined]
        return {"ok": True}

    SessionKit(app, clock=clock)
    return app


class FlaskBrowser:
    def __init__(self, app: flask.Flask) -> None:
        self.client = app.test_client()
        self.origin = ORIGIN
        self.last: list[str] = []

    def _answer(self, response: Any) -> tuple[int, Mapping[str, str], Any]:
        self.last = response.headers.getlist("Set-Cookie")
        headers = {k.lower(): v for k, v in response.headers.items()}
        body = response.get_json(silent=True) if response.data else None
        return response.status_code, headers, body

    def get(self, path: str) -> tuple[int, Mapping[str, str], Any]:
        return self._answer(self.client.get(path, base_url=ORIGIN))

    def post(self, path: str, headers: dict[str, str]) -> tuple[int, Mapping[str, str], Any]:
        return self._answer(self.client.post(path, headers=headers, base_url=ORIGIN))

    def cookie(self, name: str) -> str | None:
        found = self.client.get_cookie(name, domain="localhost")
        return None if found is None or not found.value else found.value

    def set_cookie(self, name: str, value: str) -> None:
        self.client.set_cookie(name, value, domain="localhost")

    def set_cookies(self) -> list[str]:
        return self.last


@pytest.fixture(params=["memory", "redis", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return store_url(request.param, tmp_path, request)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def new_client(store: str, clock: FakeClock) -> scenarios.NewClient:
    app = create_app(store, clock)
    return lambda: FlaskBrowser(app)


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


def test_endpoints_only_with_the_setting(tmp_path: Path) -> None:
    app = create_app("memory://", FakeClock(), SESSIONKIT_DBSC=False)
    assert app.test_client().post(scenarios.REG).status_code == 404


def test_cookie_store_refused_at_startup() -> None:
    with pytest.raises(ConfigError, match="server-side store"):
        create_app("cookie://", FakeClock())
