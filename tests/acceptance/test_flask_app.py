"""A Flask app with Flask-Login, set up as docs/flask.md's quick start says, met with each
misconfiguration and outage of issue 14, asserting what the user sees: the exception at
start-up with its exact message, or the response's status, headers and body."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, session
from flask_login import (  # type: ignore[import-untyped]
    LoginManager,
    UserMixin,
    current_user,
    login_required,
    login_user,
)
from sessionkit_flask import SessionKit, locked

from sessionkit import ConfigError, LocksUnsupported
from tests import servers
from tests.acceptance.conftest import LOCKING, PATTERN_KEY, STORE_SCHEMES, WEAK_KEY

ROOT = Path(__file__).resolve().parents[2]
OUTAGE_BODY = "Service unavailable: the session store cannot be reached. Try again shortly."


class User(UserMixin):  # type: ignore[misc]
    def __init__(self, user_id: str) -> None:
        self.id = user_id


def create_app(key: str, **config: Any) -> Flask:
    """docs/flask.md's quick start, plus Flask-Login as its section says."""
    app = Flask(__name__)
    app.config["SECRET_KEY"] = key
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config.update(config)
    SessionKit(app)
    login_manager = LoginManager(app)
    login_manager.user_loader(User)

    @app.get("/")
    def index() -> str:
        session["visits"] = session.get("visits", 0) + 1
        return f"visit number {session['visits']}"

    @app.post("/login")
    def login() -> str:
        login_user(User("alice"))
        return "signed in"

    @app.get("/me")
    @login_required  # type: ignore[untyped-decorator]
    def me() -> str:
        return str(current_user.id)

    return app


def test_the_quick_start_works(secret_key: str, redis_server: servers.Server) -> None:
    app = create_app(secret_key, SESSIONKIT_STORE=f"redis://127.0.0.1:{redis_server.port}/0")
    client = app.test_client()
    assert client.get("/").text == "visit number 1"
    assert client.get("/").text == "visit number 2"
    assert client.post("/login").text == "signed in"
    assert client.get("/me").text == "alice"


@pytest.mark.parametrize(
    ("config", "said"),
    [
        pytest.param(
            {"SECRET_KEY": "changeme"},
            "'SECRET_KEY / SECRET_KEY_FALLBACKS': " + WEAK_KEY,
            id="short-key",
        ),
        pytest.param(
            {"SECRET_KEY": "changeme-changeme-changeme-changeme"},
            "'SECRET_KEY / SECRET_KEY_FALLBACKS': " + PATTERN_KEY,
            id="weak-key",
        ),
        pytest.param(
            {"SESSIONKIT_STOER": "redis://localhost:6379/0"},
            "'SESSIONKIT_STOER': unknown setting; did you mean 'SESSIONKIT_STORE'?",
            id="misspelt-setting",
        ),
        pytest.param(
            {"SESSIONKIT_STORE": "rdis://localhost:6379/0"},
            f"'store': no store for 'rdis://localhost:6379/0'; available: {STORE_SCHEMES}",
            id="scheme-typo",
        ),
    ],
)
def test_a_fatal_setting_stops_the_app_at_start_up(
    secret_key: str, config: dict[str, Any], said: str
) -> None:
    config = {"SECRET_KEY": secret_key, **config}
    with pytest.raises(ConfigError) as caught:
        create_app(config.pop("SECRET_KEY"), **config)
    assert str(caught.value) == f"sessionkit setting {said}"


def test_flask_sessionkit_keygen_runs_while_the_tutorial_key_stops_the_app(
    tmp_path: Path,
) -> None:
    (tmp_path / "tutorial.py").write_text(
        textwrap.dedent(
            """
            from flask import Flask
            from sessionkit_flask import SessionKit

            app = Flask(__name__)
            app.config["SECRET_KEY"] = "dev"  # Flask's tutorial
            SessionKit(app)
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "adapters")])}
    run = [sys.executable, "-m", "flask", "--app", "tutorial"]
    made = subprocess.run(
        [*run, "sessionkit", "keygen"], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert len(made.stdout.strip()) >= 43
    refused = subprocess.run(
        [*run, "routes"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert refused.returncode != 0
    assert "sessionkit setting 'SECRET_KEY / SECRET_KEY_FALLBACKS': the secret key is 3 bytes" in (
        refused.stderr
    )


def test_a_locked_view_on_the_cookie_store_stops_the_app(secret_key: str) -> None:
    app = Flask(__name__)
    app.config.update(SECRET_KEY=secret_key)

    @app.post("/checkout")
    @locked
    def checkout() -> str:
        return "ordered"

    with pytest.raises(LocksUnsupported) as caught:
        SessionKit(app)
    assert str(caught.value) == (
        "sessionkit setting 'SESSIONKIT_STORE': the store cookie:// cannot lock sessions, but "
        "these routes take the session lock: POST /checkout (checkout). Locks need a "
        f"server-side store ({LOCKING}): set one, or remove the lock from these routes."
    )


def _assert_outage(response: Any) -> None:
    assert response.status_code == 503
    assert response.text == OUTAGE_BODY
    assert response.headers["Retry-After"] == "5"
    assert response.headers["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in response.headers


def test_a_wrong_service_on_the_store_port_is_a_503_saying_so(
    secret_key: str, http_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(secret_key, SESSIONKIT_STORE=f"redis://:s3cret@127.0.0.1:{http_port}/0")
    with caplog.at_level(logging.WARNING, "sessionkit.flask"):
        _assert_outage(app.test_client().get("/"))
    (line,) = [r.getMessage() for r in caplog.records if r.name == "sessionkit.flask"]
    assert line == (
        "sessionkit: GET / answered 503 because the session store is unavailable: session "
        f"store redis://:***@127.0.0.1:{http_port}/0 is unavailable: Protocol error, got "
        '"<" as reply type byte: the server at this address does not speak the Redis '
        "protocol. Check the URL's host and port: is it another service, such as an HTTP "
        "server?; nothing was changed."
    )


def test_a_store_that_goes_down_is_a_503_also_under_flask_login(
    secret_key: str, own_redis: servers.Server, caplog: pytest.LogCaptureFixture
) -> None:
    """Flask-Login reads the session in the view and again after it: neither is a 500."""
    app = create_app(
        secret_key, SESSIONKIT_STORE=f"redis://127.0.0.1:{own_redis.port}/0",
        PROPAGATE_EXCEPTIONS=False,
    )  # fmt: skip
    client = app.test_client()
    assert client.post("/login").text == "signed in"
    assert client.get("/me").text == "alice"
    own_redis.stop()
    with caplog.at_level(logging.WARNING):
        _assert_outage(client.get("/me"))  # login_required reads the session
        _assert_outage(client.get("/"))
        _assert_outage(client.post("/login"))
    lines = [r.getMessage() for r in caplog.records if r.name == "sessionkit.flask"]
    assert len(lines) == 3 and all("Connection refused. Check that the server" in x for x in lines)
    assert not [r for r in caplog.records if r.exc_info]  # no traceback, no "Exception on"
    own_redis.start()  # back (empty: this Redis persists nothing), and serving again
    assert client.post("/login").text == "signed in"
    assert client.get("/me").text == "alice"


def test_the_store_down_at_first_contact_is_a_503_not_a_500(
    secret_key: str, closed_port: int
) -> None:
    app = create_app(
        secret_key, SESSIONKIT_STORE=f"redis://127.0.0.1:{closed_port}/0",
        PROPAGATE_EXCEPTIONS=False,
    )  # fmt: skip
    client = app.test_client()
    _assert_outage(client.post("/login"))
