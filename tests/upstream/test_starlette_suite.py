"""Starlette's own session tests (``tests/middleware/test_session.py`` from its sdist, for
the installed version, on asyncio and trio) against sessionkit's ASGI middleware, on the
cookie, memory, Redis, SQLite and file stores. The patch is ``starlette_plugin.py``.

pytest runs in a directory of symlinks (Starlette's ``pyproject.toml`` and ``tests``, and our
plugin as a top-level module): Starlette's suite is a package named ``tests``, like ours, so
the plugin cannot be imported as ``tests.upstream...`` from inside it.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from tests.upstream.fetch import upstream_tree
from tests.upstream.runner import run_pytest

STORES = ["cookie", "memory", "sqlite", "file", "redis"]
PLUGIN = Path(__file__).with_name("starlette_plugin.py")
#: Starlette's suite turns every warning into an error. Older Starlettes' own TestClient
#: names ``anyio.abc.BlockingPortal``, an alias that the anyio installed beside them (the
#: newest one, as a user gets) deprecates: a warning about Starlette's test client and anyio,
#: raised while its conftest imports, before any session test runs. It alone is let through.
WARNINGS = ["-W", "ignore:The anyio.abc.BlockingPortal alias is deprecated:DeprecationWarning"]


def store_url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind in ("cookie", "memory"):
        return f"{kind}://"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'sessions.sqlite3'}"
    if kind == "file":
        return f"file://{tmp_path / 'sessions'}"
    port = request.getfixturevalue("redis_server").port
    return f"redis://127.0.0.1:{port}/0?prefix=starlette{secrets.token_hex(6)}:"


def run_tree(
    dist: str, tmp_path: Path, files: tuple[str, ...] = ("pyproject.toml", "tests")
) -> Path:
    """A directory holding the upstream suite and our plugin side by side (symlinks only)."""
    source = upstream_tree(dist)
    tree = tmp_path / "tree"
    tree.mkdir()
    for name in files:
        (tree / name).symlink_to(source / name)
    (tree / "sessionkit_upstream_plugin.py").symlink_to(PLUGIN)
    return tree


@pytest.mark.parametrize("store", STORES)
def test_starlette_own_session_tests(
    store: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    tree = run_tree("starlette", tmp_path)
    outcome = run_pytest(
        "starlette", store, tree,
        ["tests/middleware/test_session.py", "-p", "sessionkit_upstream_plugin", *WARNINGS],
        env={"SESSIONKIT_UPSTREAM_STORE": store_url(store, tmp_path, request)},
        junit=tmp_path / "junit.xml",
    )  # fmt: skip
    outcome.assert_clean()
