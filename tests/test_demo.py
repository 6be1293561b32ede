"""`make demo` serves a working app: sign in rotates the ID, flash shows once, logout kills."""

from __future__ import annotations

from typing import Any

from example_projects.core_demo import make_app
from tests.conftest import make_engine


def call(app: Any, path: str, cookie: str | None) -> tuple[str, dict[str, str], str]:
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        captured["status"], captured["headers"] = status, headers

    environ = {"PATH_INFO": path, "QUERY_STRING": "", "REMOTE_ADDR": "127.0.0.1"}
    if cookie:
        environ["HTTP_COOKIE"] = cookie
    body = b"".join(app(environ, start_response)).decode()
    return captured["status"], dict(captured["headers"]), body


def cookie_from(headers: dict[str, str], old: str | None) -> str | None:
    header = headers.get("Set-Cookie")
    if header is None:
        return old
    pair = header.split(";")[0]
    return None if pair.endswith("=") else pair


def test_demo_flow() -> None:
    app = make_app(make_engine())
    status, headers, body = call(app, "/", None)
    assert status == "200 OK" and "Visits in this session: <b>1</b>" in body
    cookie = cookie_from(headers, None)
    _, headers, _ = call(app, "/login", cookie)
    signed_in = cookie_from(headers, cookie)
    assert signed_in != cookie
    _, _, body = call(app, "/", signed_in)
    assert "Signed in as demo" in body and "<b>demo</b>" in body
    _, _, body = call(app, "/", signed_in)
    assert "rotated" not in body  # the flash showed once
    _, _, body = call(app, "/", cookie)
    assert "<b>nobody</b>" in body  # the pre-login cookie is dead
    _, headers, _ = call(app, "/logout", signed_in)
    _, _, body = call(app, "/", signed_in)
    assert "<b>nobody</b>" in body  # the logged-out cookie is dead
