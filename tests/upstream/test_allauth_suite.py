"""django-allauth's own tests (its sdist, for the installed version) against sessionkit's
Django engine: allauth's own test project (``tests.projects.regular``) with only
``SESSION_ENGINE = "sessionkit_django.engine"`` and ``SESSIONKIT`` added, as a user's project
changes them, and in the ``+mw`` runs sessionkit's ``SessionMiddleware`` in place of
Django's, as docs/django.md installs it (``allauth_project/settings.py``).

allauth keeps each stage of a login in the session (the pending login, the email verification
code, reauthentication's timestamp, the MFA stage, the OAuth state), cycles the key at login,
flushes it at logout, reopens ``request.session`` by its key after a save, serves its headless
API's session tokens by ``SessionStore(key)``, and its ``usersessions`` app lists, checks
(``exists(key)``) and ends (``delete(key)``) a user's other sessions, so those flows work
only if the engine keeps Django's session semantics across requests and outside them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.upstream.fetch import upstream_tree
from tests.upstream.runner import run_pytest
from tests.upstream.test_flask_suite import store_url

#: (store, middleware): Django's own SessionMiddleware over our engine, or ours ("+mw")
RUNS = [("memory", "django"), ("memory", "sessionkit"), ("redis", "sessionkit"),
        ("sqlite", "django")]  # fmt: skip
#: account (login, logout, signup, password reset and change, email verification by link
#: and by code, reauthentication, login by code, phone), mfa (TOTP, recovery codes, WebAuthn
#: stages), usersessions, the headless API (browser and app clients: session tokens are
#: session keys), and socialaccount's own flows (signup, connect, state). The 128 provider
#: packages are left out: each repeats the same OAuth dance with a different mock and would
#: triple the run for no more session coverage.
TESTS = [
    "tests/apps/account", "tests/apps/mfa", "tests/apps/usersessions", "tests/apps/headless",
    "tests/apps/socialaccount/internal", "tests/apps/socialaccount/test_adapter.py",
    "tests/apps/socialaccount/test_connect.py", "tests/apps/socialaccount/test_login.py",
    "tests/apps/socialaccount/test_phone.py", "tests/apps/socialaccount/test_signup.py",
    "tests/apps/socialaccount/test_utils.py",
]  # fmt: skip


@pytest.mark.parametrize(("store", "middleware"), RUNS)
def test_allauth_suite(
    store: str, middleware: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    tree = upstream_tree("django-allauth")
    env = {"SESSIONKIT_UPSTREAM_STORE": store_url(store, tmp_path, request)}
    if middleware == "sessionkit":
        env["SESSIONKIT_UPSTREAM_MIDDLEWARE"] = "1"
    label = store + ("+mw" if middleware == "sessionkit" else "")
    outcome = run_pytest(
        "allauth", label, tree, [*TESTS, "--ds", "allauth_project.settings"],
        env=env, junit=tmp_path / "junit.xml", asyncio_plugin=True,
    )  # fmt: skip
    outcome.assert_clean()
