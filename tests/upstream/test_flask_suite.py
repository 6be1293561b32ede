"""Flask's own session tests (from its sdist, for the installed version) against sessionkit,
on the cookie, memory, Redis and SQLite stores. The patch is ``flask_plugin.py``."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from tests.upstream.fetch import upstream_tree
from tests.upstream.runner import run_pytest

STORES = ["cookie", "memory", "redis", "sqlite"]

#: Flask's tests that exercise sessions: test_basic's session and flash tests; the test
#: client's session_transaction and redirect tests; the message_flashed signal; the session in
#: templates, in URL converters, in copied request contexts and in streamed responses.
FILES = [
    "tests/test_basic.py", "tests/test_testing.py", "tests/test_signals.py",
    "tests/test_templating.py", "tests/test_reqctx.py", "tests/test_helpers.py",
    "tests/test_converters.py",
]  # fmt: skip
SELECT = (
    "session or flash or test_standard_context or test_greenlet_context_copying "
    "or test_context_available"
)


def store_url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind in ("cookie", "memory"):
        return f"{kind}://"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'sessions.sqlite3'}"
    port = request.getfixturevalue("redis_server").port
    return f"redis://127.0.0.1:{port}/0?prefix=flask{secrets.token_hex(6)}:"


@pytest.mark.parametrize("store", STORES)
def test_flask_own_session_tests(
    store: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    tree = upstream_tree("flask")
    outcome = run_pytest(
        "flask", store, tree, [*FILES, "-k", SELECT, "-p", "tests.upstream.flask_plugin"],
        env={"SESSIONKIT_UPSTREAM_STORE": store_url(store, tmp_path, request)},
        junit=tmp_path / "junit.xml",
    )  # fmt: skip
    outcome.assert_clean()
