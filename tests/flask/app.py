"""The Flask app the adapter tests drive: plain Flask views, Flask-Login, flash messages.

``create_app()`` with no arguments reads ``SECRET_KEY`` and ``SESSIONKIT_STORE`` from the
environment, so gunicorn can serve it: ``gunicorn 'tests.flask.app:create_app()'``.
"""

from __future__ import annotations

import os
import uuid
from datetime import date, datetime, timezone
from typing import Any

import flask
from flask import flash, get_flashed_messages, session
from flask_login import (
    LoginManager,
    UserMixin,
    current_user,
    login_required,
    login_user,
    logout_user,
)
from markupsafe import Markup
from sessionkit_flask import SessionKit, locked

ROUND_TRIP: dict[str, Any] = {
    "tuple": (1, "two", (3.0, None)),
    "bytes": b"\x00\xffbinary",
    "markup": Markup("<b>bold</b>"),
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "datetime": datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
    "date": date(2026, 5, 17),
    "nested": {"list": [1, {"a": (1, 2)}], "text": "héllo"},
}


class User(UserMixin):
    def __init__(self, user_id: str) -> None:
        self.id = user_id


def create_app(store: str | None = None, **config: Any) -> flask.Flask:
    app = flask.Flask(__name__)
    app.config["SECRET_KEY"] = os.environ.get("SECRET_KEY")
    app.config["SESSIONKIT_STORE"] = store or os.environ.get("SESSIONKIT_STORE", "cookie://")
    app.config.update(config)
    clock = app.config.pop("CLOCK", None)
    builtin = app.config.pop("FLASK_BUILTIN_SESSION", False)  # Flask's own, to compare
    # The @locked view, by default only on a store that can lock: on the cookie store the
    # app refuses it at its first request.
    locks = app.config.pop("LOCKED_VIEWS", app.config["SESSIONKIT_STORE"] != "cookie://")
    if not builtin:
        SessionKit(app, clock=clock)

    if app.config.pop("LOGIN", True):
        manager = LoginManager(app)
        manager.user_loader(User)

    @app.get("/none")
    def none() -> str:
        return "no session here"

    @app.get("/set/<key>/<value>")
    def set_(key: str, value: str) -> str:
        session[key] = value
        return "ok"

    @app.get("/get/<key>")
    def get(key: str) -> str:
        return str(session.get(key))

    @app.get("/contains/<key>")
    def contains(key: str) -> str:
        return str(key in session)

    @app.get("/len")
    def len_() -> str:
        return str(len(session))

    @app.get("/incr")
    def incr() -> dict[str, Any]:
        session["n"] = session.get("n", 0) + 1
        return {"n": session["n"], "pid": os.getpid()}

    if not builtin and locks:

        @app.get("/locked-incr")
        @locked(wait=20)
        def locked_incr() -> dict[str, Any]:
            session["n"] = session.get("n", 0) + 1
            return {"n": session["n"], "pid": os.getpid()}

        @app.get("/change-then-locked")
        def change_then_locked() -> str:
            session["m"] = "x"
            return locked(lambda: "never")()  # type: ignore[no-any-return]

    @app.get("/clear")
    def clear() -> str:
        session.clear()
        return "cleared"

    @app.get("/login/<user_id>")
    def login(user_id: str) -> str:
        remember = flask.request.args.get("remember") == "1"
        login_user(User(user_id), remember=remember)
        return "logged in"

    @app.get("/logout")
    def logout() -> str:
        logout_user()
        return "logged out"

    @app.get("/whoami")
    @login_required
    def whoami() -> str:
        return str(current_user.id)

    @app.get("/flash/<message>")
    def flash_(message: str) -> str:
        flash(message)
        return "flashed"

    @app.get("/flashes")
    def flashes() -> dict[str, Any]:
        return {"messages": get_flashed_messages()}

    @app.get("/permanent/<on>")
    def permanent(on: str) -> str:
        session.permanent = on == "1"
        session["p"] = True
        return "ok"

    @app.get("/types/put")
    def types_put() -> str:
        session.update(ROUND_TRIP)
        return "ok"

    @app.get("/types/check")
    def types_check() -> dict[str, str]:
        out = {}
        for key, expected in ROUND_TRIP.items():
            got = session[key]
            ok = got == expected and type(got) is type(expected)
            out[key] = "ok" if ok else f"{type(got).__name__}: {got!r}"
        return out

    @app.get("/big")
    def big() -> str:
        session["blob"] = "x" * 5000
        return "too big for a cookie"

    @app.get("/modify-then-fail")
    def modify_then_fail() -> str:
        session["half"] = "done"
        raise RuntimeError("the view failed after changing the session")

    return app
