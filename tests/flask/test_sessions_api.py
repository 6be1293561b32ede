"""The sessions API as a Flask blueprint, with Flask-Login, on stores with a user index
(memory, file, SQLite, Redis)."""

from __future__ import annotations

from pathlib import Path

import flask
import pytest
from flask.testing import FlaskClient
from flask_login import current_user  # type: ignore[import-untyped]
from sessionkit_flask import sessions_blueprint

from tests.conftest import store_url
from tests.flask.conftest import AppFactory

INDEXED = ["memory", "file", "sqlite", "redis"]
SAME = {"Sec-Fetch-Site": "same-origin"}


def is_staff() -> bool:
    return bool(current_user.is_authenticated and current_user.id == "root")


@pytest.fixture(params=INDEXED)
def app(request: pytest.FixtureRequest, tmp_path: Path, make_app: AppFactory) -> flask.Flask:
    app = make_app(store_url(request.param, tmp_path, request))
    app.register_blueprint(sessions_blueprint(staff=is_staff), url_prefix="/sessions")
    return app


def signed_in(app: flask.Flask, user: str) -> FlaskClient:
    client = app.test_client()
    assert client.get(f"/login/{user}").status_code == 200
    return client


def who(client: FlaskClient) -> str | None:
    response = client.get("/whoami")
    return response.text if response.status_code == 200 else None


def handle_of(client: FlaskClient) -> str:
    rows = client.get("/sessions/").json["sessions"]  # type: ignore[index]
    return str(next(r["handle"] for r in rows if r["current"]))


def test_list_and_revoke_my_other_session(app: flask.Flask) -> None:
    phone, laptop = signed_in(app, "alice"), signed_in(app, "alice")
    signed_in(app, "bob")
    response = laptop.get("/sessions/")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.mimetype == "application/json"
    body = response.json
    assert body is not None and body["user"] == "alice"
    assert len(body["sessions"]) == 2
    cookie = laptop.get_cookie("session")
    assert cookie is not None and cookie.value.split(".")[0] not in response.text
    revoked = laptop.delete(f"/sessions/{handle_of(phone)}", headers=SAME)
    assert revoked.json == {"revoked": 1, "current": False}
    assert who(phone) is None  # that client's next request is anonymous
    assert who(laptop) == "alice"


def test_revoking_my_own_session_logs_me_out(app: flask.Flask) -> None:
    laptop = signed_in(app, "alice")
    response = laptop.delete(f"/sessions/{handle_of(laptop)}", headers=SAME)
    assert response.json == {"revoked": 1, "current": True}
    assert "Max-Age=0" in response.headers["Set-Cookie"]
    assert who(laptop) is None


def test_revoke_others_and_extend(app: flask.Flask) -> None:
    a, b, c = (signed_in(app, "alice") for _ in range(3))
    assert c.post("/sessions/revoke-others", headers=SAME).json == {"revoked": 2}
    assert (who(a), who(b), who(c)) == (None, None, "alice")
    extended = c.post("/sessions/extend", json={"seconds": 600}, headers=SAME)
    assert extended.status_code == 200
    assert "Max-Age=600" in extended.headers["Set-Cookie"]
    bad = c.post("/sessions/extend", data=b"{nope", headers=SAME)
    assert (bad.status_code, bad.json["error"]) == (400, "bad_json")  # type: ignore[index]


def test_bad_handles_are_404_and_revoke_nothing(app: flask.Flask) -> None:
    alice, bob = signed_in(app, "alice"), signed_in(app, "bob")
    for path in (f"/sessions/{handle_of(bob)}", "/sessions/0123456789abcdef", "/sessions/x"):
        response = alice.delete(path, headers=SAME)
        assert response.status_code == 404, path
    assert who(bob) == "bob"


def test_forged_staff_calls_are_403(app: flask.Flask) -> None:
    alice, bob = signed_in(app, "alice"), signed_in(app, "bob")
    bobs = handle_of(bob)
    for response in [
        alice.get("/sessions/users/bob"),
        alice.delete(f"/sessions/users/bob/{bobs}", headers=SAME),
        alice.post("/sessions/users/bob/revoke-all", headers=SAME),
    ]:
        assert (response.status_code, response.json["error"]) == (403, "forbidden")  # type: ignore[index]
    assert who(bob) == "bob"


def test_staff_list_and_revoke(app: flask.Flask) -> None:
    root, bob1, bob2 = signed_in(app, "root"), signed_in(app, "bob"), signed_in(app, "bob")
    listed = root.get("/sessions/users/bob").json
    assert listed is not None and len(listed["sessions"]) == 2
    one = root.delete(f"/sessions/users/bob/{handle_of(bob1)}", headers=SAME)
    assert one.json == {"revoked": 1, "current": False}
    assert (who(bob1), who(bob2)) == (None, "bob")
    every = root.post("/sessions/users/bob/revoke-all", headers=SAME)
    assert every.json == {"revoked": 1, "current": False}
    assert (who(bob2), who(root)) == (None, "root")


@pytest.mark.parametrize(
    "headers",
    [{}, {"Sec-Fetch-Site": "cross-site"}, {"Origin": "https://evil.example"},
     {"Origin": "https://localhost"}],
)  # fmt: skip
def test_cross_site_calls_are_403_and_revoke_nothing(
    app: flask.Flask, headers: dict[str, str]
) -> None:
    phone, laptop = signed_in(app, "alice"), signed_in(app, "alice")
    other = handle_of(phone)
    for response in [
        laptop.delete(f"/sessions/{other}", headers=headers),
        laptop.post("/sessions/revoke-others", headers=headers),
    ]:
        assert (response.status_code, response.json["error"]) == (403, "cross_site")  # type: ignore[index]
    assert who(phone) == "alice"
    ok = laptop.delete(f"/sessions/{other}", headers={"Origin": "http://localhost"})
    assert ok.status_code == 200


def test_not_signed_in_and_wrong_method(app: flask.Flask) -> None:
    anonymous = app.test_client()
    assert anonymous.get("/sessions/").status_code == 401
    alice = signed_in(app, "alice")
    wrong = alice.post("/sessions/", headers=SAME)
    assert (wrong.status_code, wrong.headers["Allow"]) == (405, "GET, HEAD")


def test_the_cookie_store_answers_501(make_app: AppFactory) -> None:
    app = make_app("cookie://")
    app.register_blueprint(sessions_blueprint(), url_prefix="/sessions")
    response = signed_in(app, "alice").get("/sessions/")
    assert response.status_code == 501
    assert "no per-user index" in response.json["detail"]  # type: ignore[index]
