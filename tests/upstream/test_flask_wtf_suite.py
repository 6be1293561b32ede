"""Flask-WTF's own tests (its sdist, for the installed version) against sessionkit: every
app they build gets ``SessionKit(app)`` on the store, through the same patch as Flask's
suite (``flask_plugin.py``). Flask-WTF keeps its CSRF token's secret in the session
(``session["csrf_token"]``), and ``generate_csrf``/``validate_csrf`` read it back on the
next request, so a form of a Flask-WTF app works only if this round trip does."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.upstream.fetch import upstream_tree
from tests.upstream.runner import run_pytest
from tests.upstream.test_flask_suite import store_url

STORES = ["cookie", "memory", "redis"]
#: the files that touch the session (CSRFProtect, FlaskForm's csrf field); test_file,
#: test_recaptcha and test_i18n test uploads, reCAPTCHA and Babel, and no session
FILES = ["tests/test_csrf_extension.py", "tests/test_csrf_form.py", "tests/test_form.py"]


@pytest.mark.parametrize("store", STORES)
def test_flask_wtf_suite(store: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    tree = upstream_tree("Flask-WTF")
    outcome = run_pytest(
        "flask-wtf", store, tree, [*FILES, "-p", "tests.upstream.flask_plugin"],
        env={"SESSIONKIT_UPSTREAM_STORE": store_url(store, tmp_path, request)},
        junit=tmp_path / "junit.xml",
    )  # fmt: skip
    outcome.assert_clean()
