"""The audit trail through Flask and Flask-Login, on real Redis and SQLite: ``login_user`` and
``logout_user`` are entries, and ``flask sessionkit audit|export|erase`` use the app's store
and settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sessionkit_flask import SessionKit

from tests.conftest import store_url
from tests.flask.conftest import AppFactory

PHONE = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36"
)


@pytest.fixture(params=["redis", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return store_url(request.param, tmp_path, request)


def test_flask_login_and_logout_are_entries(make_app: AppFactory, url: str) -> None:
    app = make_app(url, SESSIONKIT_AUDIT="store")
    client = app.test_client()
    client.environ_base.update(HTTP_USER_AGENT=PHONE, REMOTE_ADDR="192.0.2.55")
    assert client.get("/login/alice").status_code == 200
    assert client.get("/logout").status_code == 200
    entries = SessionKit.engine(app).audit_entries("alice")
    assert [e.kind for e in entries] == ["login", "logout"]
    assert (entries[0].device, entries[0].network) == ("Chrome on Android", "192.0.2.0/24")


def test_the_flask_commands_show_export_and_erase(make_app: AppFactory, tmp_path: Path) -> None:
    app = make_app(f"sqlite:///{tmp_path / 's.db'}", SESSIONKIT_AUDIT="store")
    app.test_client().get("/login/alice")
    # the command stands for another process: it reads what the app's trail has written
    SessionKit.engine(app).audit.flush()  # type: ignore[union-attr]
    runner = app.test_cli_runner()
    shown = runner.invoke(args=["sessionkit", "audit", "--user", "alice", "--json"])
    assert shown.exit_code == 0, shown.output
    assert [json.loads(line)["kind"] for line in shown.output.splitlines()] == ["login"]
    exported = runner.invoke(args=["sessionkit", "export", "--user", "alice"])
    assert exported.exit_code == 0, exported.output
    assert [e["kind"] for e in json.loads(exported.output)["audit"]] == ["login"]
    erased = runner.invoke(args=["sessionkit", "erase", "--user", "alice", "--yes"])
    assert erased.exit_code == 0 and "erased 1 session" in erased.output
    after = json.loads(runner.invoke(args=["sessionkit", "export", "--user", "alice"]).output)
    assert after["sessions"] == [] and after["audit"] == []
    # the app's own keys made the pseudonym: the app finds the erased entries under it
    engine = SessionKit.engine(app)
    pseudonym = engine.audit.pseudonym("alice")  # type: ignore[union-attr]
    kinds = [e.kind for e in engine.audit_entries(pseudonym)]
    assert kinds == ["login", "revoke", "erasure"]
