"""docs/metrics.md's ``/metrics`` routes run in Django, Flask and FastAPI and show what the
core counted: a request that creates a session adds one ``created`` event and one timed
``save``, on the global registry the ``metrics`` setting exports to. (Here because Django's
settings are configured under tests/django.)"""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client as DjangoClient
from django.test import override_settings
from django.urls import path
from fastapi import Request
from prometheus_client.parser import text_string_to_metric_families
from sessionkit_django import conf, use_engine

from sessionkit import SessionEngine
from sessionkit.metrics import InstrumentedStore
from tests.asgi.apps import TestClient

PAGE = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
BLOCKS = re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)
KEY = "docs-metrics-key-0123456789abcdef0123456789abcdef"
#: (GET /metrics -> (status, content type, body), GET /visit: a request that saves a session)
Routes = tuple[Callable[[], tuple[int, str, str]], Callable[[], None]]


def run_block(marker: str) -> dict[str, Any]:
    (code,) = [block for block in BLOCKS if block.startswith(marker)]
    namespace: dict[str, Any] = {"SECRET_KEY": KEY, "__name__": "docs_metrics"}
    exec(compile(code, f"metrics.md ({marker})", "exec"), namespace)  # noqa: S102
    return namespace


def django_routes() -> Generator[Routes, None, None]:
    namespace = run_block("# Django")
    assert namespace["SESSIONKIT"]["METRICS"] == "prometheus"

    def visit(request: HttpRequest) -> HttpResponse:
        request.session["n"] = 1
        return HttpResponse("ok")

    module = types.ModuleType("docs_metrics_urls")
    module.urlpatterns = [*namespace["urlpatterns"], path("visit", visit)]  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    engine = SessionEngine(conf.build_config(namespace["SESSIONKIT"]))
    assert isinstance(engine.store, InstrumentedStore)
    try:
        with override_settings(ROOT_URLCONF=module.__name__), use_engine(engine):
            client = DjangoClient()

            def get() -> tuple[int, str, str]:
                response = client.get("/metrics")
                return response.status_code, response["Content-Type"], response.content.decode()

            yield get, lambda: DjangoClient().get("/visit")
    finally:
        del sys.modules[module.__name__]
        engine.store.close()


def flask_routes() -> Generator[Routes, None, None]:
    app = run_block("# Flask")["app"]

    def visit() -> str:
        from flask import session

        session["n"] = 1
        return "ok"

    app.add_url_rule("/visit", "visit", visit)

    client = app.test_client()

    def get() -> tuple[int, str, str]:
        response = client.get("/metrics")
        return response.status_code, response.content_type, response.get_data(as_text=True)

    yield get, lambda: app.test_client().get("/visit")


def fastapi_routes() -> Generator[Routes, None, None]:
    app = run_block("# FastAPI")["app"]

    async def visit(request: Request) -> str:
        request.session["n"] = 1
        return "ok"

    app.add_api_route("/visit", visit)

    with TestClient(app) as client:

        def get() -> tuple[int, str, str]:
            # the path a scrape config and curl name, answered without a redirect
            response = client.get("/metrics", follow_redirects=False)
            return response.status_code, response.headers["content-type"], response.text

        def visit_once() -> None:
            with TestClient(app) as fresh:  # no cookie: a new session each time
                assert fresh.get("/visit").status_code == 200

        yield get, visit_once


def sample(body: str, name: str, labels: dict[str, str]) -> float:
    for family in text_string_to_metric_families(body):
        for found in family.samples:
            if found.name == name and all(found.labels.get(k) == v for k, v in labels.items()):
                return found.value
    return 0.0


@pytest.mark.parametrize("framework", [django_routes, flask_routes, fastapi_routes])
def test_the_metrics_route_shows_what_the_core_counted(
    framework: Callable[[], Generator[Routes, None, None]],
) -> None:
    routes = framework()
    get, visit = next(routes)
    visit()  # the engine is built (and its metrics installed) by then, in every framework
    status, content_type, before = get()
    assert status == 200 and content_type.startswith("text/plain"), (status, content_type)
    visit()
    visit()
    status, _, after = get()
    assert status == 200
    created = ("sessionkit_events_total", {"kind": "created"})
    assert sample(after, *created) == sample(before, *created) + 2, after
    saves = ("sessionkit_store_latency_seconds_count", {"operation": "save", "store": "memory://"})
    assert sample(after, *saves) >= sample(before, *saves) + 2
    assert "# TYPE sessionkit_active_sessions gauge" in after
    routes.close()
