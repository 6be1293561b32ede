"""Flask-Login's own test suite (its sdist, for the installed version) against sessionkit:
every app it builds gets ``SessionKit(app)`` on the store, through the same patch as Flask's
suite (``flask_plugin.py``). Flask-Login keeps its state in the session (``_user_id``,
``_fresh``, ``_id``, the remember-me cookie's restore), so this is what a Flask-Login app
relies on."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.upstream.fetch import upstream_tree
from tests.upstream.runner import run_pytest
from tests.upstream.test_flask_suite import store_url

STORES = ["cookie", "memory", "redis"]


@pytest.mark.parametrize("store", STORES)
def test_flask_login_suite(store: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    tree = upstream_tree("Flask-Login")
    outcome = run_pytest(
        "flask-login", store, tree, ["tests/test_login.py", "-p", "tests.upstream.flask_plugin"],
        env={"SESSIONKIT_UPSTREAM_STORE": store_url(store, tmp_path, request)},
        junit=tmp_path / "junit.xml",
    )  # fmt: skip
    outcome.assert_clean()
