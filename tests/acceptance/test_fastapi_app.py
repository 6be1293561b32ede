"""A FastAPI app set up as docs/asgi.md says, met with each misconfiguration and outage of
issue 14: it refuses to start (uvicorn exits; ``with TestClient(app)`` raises) with the
exact message, and an outage is a JSON 503, never a 500."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

from sessionkit import ConfigError, LocksUnsupported
from tests import servers
from tests.acceptance.conftest import LOCKING, PATTERN_KEY, STORE_SCHEMES, WEAK_KEY
from tests.acceptance.fastapi_app import create_app

with warnings.catch_warnings():  # starlette nags to swap httpx for httpx2 on import
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

ROOT = Path(__file__).resolve().parents[2]
OUTAGE = {"detail": "Service unavailable: the session store cannot be reached. Try again shortly."}


def test_the_quick_start_works(secret_key: str, redis_server: servers.Server) -> None:
    app = create_app(secret_key=secret_key, store=f"redis://127.0.0.1:{redis_server.port}/0")
    with TestClient(app) as http:
        assert http.get("/").json() == {"visits": 1, "user": None}
        assert http.post("/login", params={"user": "alice"}).json() == {"user": "alice"}
        assert http.get("/").json() == {"visits": 2, "user": "alice"}


FATAL = [
    pytest.param({"secret_key": "changeme"}, "'secret_key': " + WEAK_KEY, id="short-key"),
    pytest.param(
        {"secret_key": "changeme-changeme-changeme-changeme"},
        "'secret_key': " + PATTERN_KEY,
        id="weak-key",
    ),
    pytest.param(
        {"idle_timout": 3600},
        "'idle_timout': unknown setting; did you mean 'idle_timeout'?",
        id="misspelt-setting",
    ),
    pytest.param(
        {"store": "rdis://localhost:6379/0"},
        f"'store': no store for 'rdis://localhost:6379/0'; available: {STORE_SCHEMES}",
        id="scheme-typo",
    ),
    pytest.param(
        {"locked_route": True},
        "'store': the store cookie:// cannot lock sessions, but these routes take the session "
        f"lock: POST /checkout (create_app.<locals>.checkout). Locks need a server-side store "
        f"({LOCKING}): set one, or remove the lock from these routes.",
        id="locked-on-cookie",
    ),
]


@pytest.mark.parametrize(("options", "said"), FATAL)
def test_a_fatal_setting_refuses_the_startup(
    secret_key: str, options: dict[str, Any], said: str
) -> None:
    app = create_app(**{"secret_key": secret_key, **options})
    with pytest.raises(ConfigError) as caught, TestClient(app):
        pass
    assert str(caught.value) == f"sessionkit setting {said}"
    if "locked_route" in options:
        assert isinstance(caught.value, LocksUnsupported)


@pytest.mark.parametrize(
    ("options", "said"), [FATAL[0], FATAL[-1]]
)  # one in the middleware's construction, one found by walking the routes
def test_uvicorn_refuses_to_start(secret_key: str, options: dict[str, Any], said: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONKIT_")}
    env["ACCEPTANCE_SESSION_OPTIONS"] = json.dumps({"secret_key": secret_key, **options})
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "adapters")])
    proc = subprocess.run(
        [sys.executable, "-m", "uvicorn", "tests.acceptance.fastapi_app:app", "--port", "0"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 3, output  # uvicorn's "startup failed"
    assert f"sessionkit: sessionkit setting {said}" in output
    assert "Application startup failed. Exiting." in output
    assert "Application startup complete" not in output


def _assert_outage(response: Any) -> None:
    assert response.status_code == 503
    assert response.json() == OUTAGE
    assert response.headers["retry-after"] == "5"
    assert response.headers["cache-control"] == "no-store"
    assert "set-cookie" not in response.headers


def test_a_wrong_service_on_the_store_port_is_a_json_503(
    secret_key: str, http_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(secret_key=secret_key, store=f"redis://127.0.0.1:{http_port}/0")
    with TestClient(app) as http, caplog.at_level(logging.WARNING, "sessionkit.asgi"):
        _assert_outage(http.get("/"))
    (line,) = [r.getMessage() for r in caplog.records if r.name == "sessionkit.asgi"]
    assert "does not speak the Redis protocol. Check the URL's host and port" in line


def test_a_store_that_goes_down_is_a_json_503(
    secret_key: str, own_redis: servers.Server, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(secret_key=secret_key, store=f"redis://127.0.0.1:{own_redis.port}/0")
    with TestClient(app, raise_server_exceptions=False) as http:
        assert http.post("/login", params={"user": "alice"}).status_code == 200
        own_redis.stop()
        with caplog.at_level(logging.WARNING):
            _assert_outage(http.get("/"))  # the load fails
            http.cookies.clear()
            _assert_outage(http.get("/"))  # the save fails
        assert not [r for r in caplog.records if r.exc_info]  # no traceback
        own_redis.start()
        assert http.get("/").json() == {"visits": 1, "user": None}
