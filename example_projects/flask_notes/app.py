"""Notes on Flask + Flask-Login, on sessionkit (``SessionKit(app)``).

``gunicorn 'example_projects.flask_notes.app:create_app()'``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, cast
from urllib.parse import quote

from flask import Flask, Response, flash, get_flashed_messages, redirect, render_template, request
from flask import session as flask_session
from flask.typing import ResponseReturnValue
from flask_login import (  # type: ignore[import-untyped]
    LoginManager,
    UserMixin,
    current_user,
    logout_user,
)
from jinja2 import FileSystemLoader
from sessionkit_flask import FlaskSession, SessionKit

from example_projects.shared import activity, config, devices, panel


class User(UserMixin):  # type: ignore[misc]
    """A user known by the framework-neutral key (the username), nothing more."""

    def __init__(self, name: str) -> None:
        self.id = name


def create_app() -> Flask:
    app = Flask(__name__, static_folder=str(config.STATIC), static_url_path="/static")
    app.jinja_loader = FileSystemLoader(
        [str(config.PACKAGE / "flask_notes" / "templates"), str(config.TEMPLATES)]
    )
    app.config.update(
        SECRET_KEY=config.secret_key(),
        SESSION_COOKIE_NAME=config.COOKIE_NAME,
        SESSIONKIT_STORE=config.store_url(),
        SESSIONKIT_IDLE_TIMEOUT=config.IDLE_TIMEOUT,
        SESSIONKIT_ABSOLUTE_TIMEOUT=config.ABSOLUTE_TIMEOUT,
        SESSIONKIT_BROWSER_SESSION=False,  # persistent cookies, as in the other two apps
        # One sign-in for three apps: logout ends the shared session, the shop's keys too
        # (stock Flask-Login would remove only its own keys).
        SESSIONKIT_LOGOUT="invalidate",
    )
    kit = SessionKit(app)
    kit.events.subscribe(activity.record)
    app.before_request(lambda: _open_scope())
    app.teardown_request(_close_scope)

    manager = LoginManager(app)
    manager.session_protection = None  # sessionkit binds the session to the browser itself
    manager.login_view = config.url_of("shop") + "login/"  # one sign-in, in the shop
    manager.login_message = None  # nothing to flash into a session the shop cannot show

    def user_from_session(_: Any) -> User | None:
        # A login made in any of the three apps: the session's neutral user key.
        session: FlaskSession = flask_session  # type: ignore[assignment]
        return User(session.user_id) if session.user_id else None

    manager.user_loader(User)  # a login_user() in this app stores the same key
    manager.request_loader(user_from_session)

    @app.get("/")
    def notes() -> str:
        return page("notes/index.html", "Notes", notes=flask_session.get("notes", []))

    @app.post("/notes")
    def add_note() -> ResponseReturnValue:
        if not current_user.is_authenticated:
            return cast(Response, manager.unauthorized())  # to the shop sign-in, and back
        text = request.form.get("text", "").strip()[:500]
        if text:
            flask_session.setdefault("notes", []).insert(0, {"text": text, "at": _now()})
            flash("Note saved.", "success")
        else:
            flash("An empty note was not saved.", "warning")
        return redirect("/")

    @app.post("/notes/clear")
    def clear_notes() -> ResponseReturnValue:
        if not current_user.is_authenticated:
            return cast(Response, manager.unauthorized())
        flask_session.pop("notes", None)
        flash("All notes deleted.", "info")
        return redirect("/")

    @app.post("/logout")
    def logout() -> ResponseReturnValue:
        logout_user()  # SESSIONKIT_LOGOUT="invalidate": the shared session, all three apps
        flash("Signed out of all three apps in this browser.", "info")
        return redirect("/")

    return app


def page(template: str, title: str, **context: Any) -> str:
    shown = get_flashed_messages(with_categories=True)
    session: FlaskSession = flask_session  # type: ignore[assignment]
    user = current_user.get_id() if current_user.is_authenticated else None
    handle = session.handle
    stored = not session.new
    if user and stored:
        devices.remember(handle, request.remote_addr)
    info = panel.build(
        "notes", user=user, handle=handle, stored=stored, expires=session.expires,
        flashed=[f"{len(shown)} message(s)"] if shown else [],
    )  # fmt: skip
    signin = f"{config.url_of('shop')}login/?next={quote(request.url_root)}"
    return render_template(
        template, title=title, panel=info, messages=shown, signin=signin, **context
    )


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _open_scope() -> None:
    scope = activity.request_scope()
    scope.__enter__()
    request.environ["demo.activity"] = scope


def _close_scope(_: BaseException | None) -> None:
    scope = request.environ.pop("demo.activity", None)
    if scope is not None:
        scope.__exit__(None, None, None)
