"""DBSC in a FastAPI app: the same middleware answers the endpoints; the shared scenarios
(tests/dbsc_scenarios.py) through Starlette's TestClient, on memory and Redis."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from sessionkit_asgi import SessionMiddleware

from sessionkit import EventBus
from sessionkit.testing import FakeClock
from tests import dbsc_scenarios as scenarios
from tests.asgi.apps import KEY, TestClient
from tests.conftest import store_url

ORIGIN = "https://testserver"


def build(store: str, clock: FakeClock) -> FastAPI:
    app = FastAPI()

    @app.get("/login")
    async def login(request: Request, user: str = "alice") -> dict[str, bool]:
        request.session["cart"] = ["apple"]
        request.session.bind_user(user)  # type: ignore[attr-defined]
        return {"ok": True}

    @app.get("/me")
    async def me(request: Request) -> dict[str, Any]:
        return {"user": request.session.user_id, "data": dict(request.session)}  # type: ignore[attr-defined]

    @app.get("/logout")
    async def logout(request: Request) -> dict[str, bool]:
        request.session.invalidate()  # type: ignore[attr-defined]
        return {"ok": True}

    @app.get("/rotate")
    async def rotate(request: Request) -> dict[str, bool]:
        request.session.regenerate()  # type: ignore[attr-defined]
        return {"ok": True}

    app.add_middleware(SessionMiddleware, secret_key=KEY, store=store, clock=clock,
                       events=EventBus(), dbsc=True)  # fmt: skip
    return app


class HttpxBrowser:
    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.origin = ORIGIN
        self.last: list[str] = []

    def _answer(self, response: Any) -> tuple[int, Mapping[str, str], Any]:
        self.last = response.headers.get_list("set-cookie")
        body = response.json() if response.content else None
        return response.status_code, {k.lower(): v for k, v in response.headers.items()}, body

    def get(self, path: str) -> tuple[int, Mapping[str, str], Any]:
        return self._answer(self.client.get(path))

    def post(self, path: str, headers: dict[str, str]) -> tuple[int, Mapping[str, str], Any]:
        return self._answer(self.client.post(path, headers=headers))

    def cookie(self, name: str) -> str | None:
        return self.client.cookies.get(name) or None

    def set_cookie(self, name: str, value: str) -> None:
        self.client.cookies.set(name, value)

    def set_cookies(self) -> list[str]:
        return self.last


@pytest.fixture(params=["memory", "redis"])
def new_client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[scenarios.NewClient]:
    clock = FakeClock()
    request.node.dbsc_clock = clock
    app = build(store_url(request.param, tmp_path, request), clock)
    opened: list[TestClient] = []

    def make() -> HttpxBrowser:
        client = TestClient(app, base_url=ORIGIN)
        client.__enter__()
        opened.append(client)
        return HttpxBrowser(client)

    yield make
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture
def clock(request: pytest.FixtureRequest, new_client: scenarios.NewClient) -> FakeClock:
    return request.node.dbsc_clock  # type: ignore[no-any-return]


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
