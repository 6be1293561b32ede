"""docs/health.md's health routes run in Django, Flask and FastAPI and answer as it says:
200 with the probe as JSON while the store answers, 503 once it is down. (Here because
Django's settings are configured under tests/django.)"""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client as DjangoClient
from django.test import override_settings
from sessionkit_django import conf, use_engine

from sessionkit import SessionEngine, open_store
from tests import servers
from tests.asgi.apps import TestClient

PAGE = Path(__file__).resolve().parents[2] / "docs" / "health.md"
BLOCKS = re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)
KEY = "docs-health-key-0123456789abcdef0123456789abcdef"
Get = Callable[[], tuple[int, dict[str, Any]]]


def run_block(marker: str, store: str) -> dict[str, Any]:
    (code,) = [block for block in BLOCKS if block.startswith(marker)]
    code = code.replace('"memory://"', repr(store))
    namespace: dict[str, Any] = {"SECRET_KEY": KEY, "__name__": "docs_health"}
    exec(compile(code, f"health.md ({marker})", "exec"), namespace)  # noqa: S102
    return namespace


@pytest.fixture
def redis_url() -> Iterator[tuple[str, servers.Server]]:
    server = servers.redis_server()
    yield f"redis://127.0.0.1:{server.port}/0?socket_timeout=0.5", server
    server.close()


def django_get(store: str) -> Iterator[Get]:
    namespace = run_block("# Django", store)
    module = types.ModuleType("docs_health_urls")
    module.urlpatterns = namespace["urlpatterns"]  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    made = open_store(store)
    engine = SessionEngine(conf.build_config({"STORE": made}), store=made)
    try:
        with override_settings(ROOT_URLCONF=module.__name__), use_engine(engine):
            client = DjangoClient()

            def get() -> tuple[int, dict[str, Any]]:
                response = client.get("/healthz")
                return response.status_code, response.json()

            yield get
    finally:
        del sys.modules[module.__name__]
        made.close()


def flask_get(store: str) -> Iterator[Get]:
    client = run_block("# Flask", store)["app"].test_client()

    def get() -> tuple[int, dict[str, Any]]:
        response = client.get("/healthz")
        return response.status_code, response.get_json()

    yield get


def fastapi_get(store: str) -> Iterator[Get]:
    with TestClient(run_block("# FastAPI", store)["app"]) as client:

        def get() -> tuple[int, dict[str, Any]]:
            response = client.get("/healthz")
            return response.status_code, response.json()

        yield get


@pytest.mark.parametrize("framework", [django_get, flask_get, fastapi_get])
def test_the_health_route_answers_200_then_503_when_the_store_stops(
    framework: Callable[[str], Iterator[Get]], redis_url: tuple[str, servers.Server]
) -> None:
    url, server = redis_url
    routes = framework(url)
    get = next(routes)
    status, body = get()
    assert status == 200 and body["ok"] is True, body
    assert body["server_version"].startswith("7.") and body["latency_ms"] >= 0
    server.stop()
    status, body = get()
    assert status == 503 and body["ok"] is False
    assert str(server.port) in body["error"]
    routes.close()
