"""``fallback`` in each framework's own spelling builds the read-only fallback (Django's
``SESSIONKIT["FALLBACK"]``, Flask's ``SESSIONKIT_FALLBACK``, the ASGI middleware's
``fallback=``), and a cookie store as the fallback is refused at start-up in all three."""

from __future__ import annotations

from typing import Any

import flask
import pytest
from sessionkit_asgi import SessionMiddleware
from sessionkit_django import conf
from sessionkit_flask import SessionKit
from starlette.applications import Starlette

from sessionkit import ConfigError, SessionEngine
from sessionkit.stores.fallback import FallbackStore

KEY = "fallback-settings-key-0123456789abcdef0123456789abcdef"


def django_engine(**settings: object) -> SessionEngine:
    return SessionEngine(conf.build_config({"STORE": "memory://", **settings}))


def flask_engine(**settings: object) -> SessionEngine:
    app = flask.Flask(__name__)
    app.config.update(SECRET_KEY=KEY, SESSIONKIT_STORE="memory://",
                      **{f"SESSIONKIT_{k}": v for k, v in settings.items()})  # fmt: skip
    SessionKit(app)
    return SessionKit.engine(app)


def asgi_engine(**settings: object) -> SessionEngine:
    options: dict[str, Any] = {k.lower(): v for k, v in settings.items()}
    middleware = SessionMiddleware(Starlette(), secret_key=KEY, store="memory://", **options)
    return middleware.engine


ENGINES = {"Django": django_engine, "Flask": flask_engine, "ASGI": asgi_engine}


@pytest.mark.parametrize("framework", ENGINES)
def test_each_framework_builds_the_fallback(framework: str) -> None:
    engine = ENGINES[framework](FALLBACK="memory://?max_sessions=7", FALLBACK_PROBE_INTERVAL=2)
    store = engine.store
    assert isinstance(store, FallbackStore)
    assert store.fallback.url == "memory://?max_sessions=7"
    assert store.probe_interval == 2.0 and store.events is engine.events


@pytest.mark.parametrize("framework", ENGINES)
def test_each_framework_refuses_a_cookie_fallback(framework: str) -> None:
    with pytest.raises(ConfigError, match="cannot be a fallback"):
        ENGINES[framework](FALLBACK="cookie://")
