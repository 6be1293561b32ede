"""Django's own ``tests/sessions_tests`` (``SessionTestsMixin`` + ``SessionMiddlewareTests``)
against ``SESSION_ENGINE = "sessionkit_django.engine"``, one subprocess per store.

The middleware tests run twice per store: under Django's own ``SessionMiddleware`` over our
engine and under ``sessionkit_django.middleware.SessionMiddleware`` (users do both). The
patch that swaps sessionkit in is ``django_sessions/sessions_suite.py``.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from tests import servers
from tests.upstream.fetch import upstream_tree
from tests.upstream.runner import run_pytest

SUPPORT = Path(__file__).resolve().parent / "django_sessions"
SETTINGS = "tests.upstream.django_sessions.settings"
STORES = ["cookie", "memory", "file", "redis", "sqlite", "postgresql"]


def _store_url(store: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if store in ("cookie", "memory"):
        return f"{store}://"
    if store == "file":
        return f"file://{tmp_path / 'sessions'}?fsync=false"
    if store == "sqlite":
        return f"sqlite:///{tmp_path / 'sessions.sqlite3'}"
    if store == "redis":
        server: servers.Server = request.getfixturevalue("redis_server")
        return f"redis://127.0.0.1:{server.port}/0?prefix=dj{secrets.token_hex(4)}:"
    pg: servers.Postgres = request.getfixturevalue("postgres_server")
    return pg.url


@pytest.mark.parametrize("store", STORES)
def test_django_sessions_suite(store: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    tree = upstream_tree("Django")
    extra = ["-o", f"pythonpath={tree / 'tests'}", "--ds", SETTINGS]  # sessions_tests importable
    outcome = run_pytest(
        "django",
        store,
        tree,
        [str(SUPPORT / "sessions_suite.py"), "-c", str(SUPPORT / "pytest.ini"), *extra],
        env={"SESSIONKIT_SUITE_STORE": _store_url(store, tmp_path, request)},
        junit=tmp_path / "junit.xml",
    )
    outcome.assert_clean()
