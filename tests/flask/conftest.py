"""Fixtures for the Flask adapter tests: the test app on every store, against real servers."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flask
import pytest

from tests.conftest import store_url
from tests.flask.app import create_app

#: Every store the adapter is run on. Redis runs against the real server fixture.
STORES = ["cookie", "memory", "file", "sqlite", "redis"]
SERVER_SIDE = [s for s in STORES if s != "cookie"]

AppFactory = Callable[..., flask.Flask]


def new_key() -> str:
    return secrets.token_urlsafe(48)


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return store_url(request.param, tmp_path, request)


@pytest.fixture(params=SERVER_SIDE)
def server_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return store_url(request.param, tmp_path, request)


@pytest.fixture
def make_app() -> AppFactory:
    """``make_app(store, **config)``: the test app with a fresh secret key, testing mode."""

    def make(store: str = "cookie://", **config: Any) -> flask.Flask:
        config.setdefault("SECRET_KEY", new_key())
        config.setdefault("TESTING", True)
        return create_app(store, **config)

    return make
