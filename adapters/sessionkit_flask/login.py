"""Flask-Login integration, connected when Flask-Login is installed.

- ``login_user``: the session gets a new ID (no fixation) and is bound to the user, so it
  is listed and revoked with that user's sessions.
- ``login_user(remember=True)``: instead of Flask-Login's separate remember cookie, which
  would outlive the absolute timeout and survive "log out everywhere", the session itself
  lives longer: a persistent cookie and an idle timeout of ``REMEMBER_COOKIE_DURATION``
  (or ``duration=``), still capped by the absolute timeout.
- ``logout_user``: the session is invalidated server-side; the captured cookie is dead.
- A user restored from an existing Flask-Login remember cookie is a login too.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from flask import current_app
from flask import session as flask_session

from sessionkit_flask.interface import FlaskSession

if TYPE_CHECKING:
    from flask import Flask

#: Flask-Login's default REMEMBER_COOKIE_DURATION.
DEFAULT_REMEMBER = timedelta(days=365)


def connect(app: Flask) -> bool:
    """Hook Flask-Login's signals for ``app``; ``False`` when Flask-Login is absent."""
    try:
        import flask_login  # type: ignore[import-untyped]
    except ImportError:
        return False
    flask_login.user_logged_in.connect(_logged_in, sender=app, weak=False)
    flask_login.user_loaded_from_cookie.connect(_logged_in, sender=app, weak=False)
    flask_login.user_logged_out.connect(_logged_out, sender=app, weak=False)
    return True


def _current() -> FlaskSession | None:
    session = flask_session._get_current_object()  # type: ignore[attr-defined]
    return session if isinstance(session, FlaskSession) else None


def _logged_in(app: Flask, user: Any = None, **_: Any) -> None:
    session = _current()
    if session is None or user is None:
        return
    manager = getattr(app, "login_manager", None)
    id_attribute = getattr(manager, "id_attribute", "get_id")
    session.bind_user(getattr(user, id_attribute)())  # regenerates the ID
    if dict.get(session, "_remember") == "set":
        seconds = session.pop("_remember_seconds", None)
        session.pop("_remember")  # Flask-Login then sets no remember cookie
        if seconds is None:
            seconds = current_app.config.get("REMEMBER_COOKIE_DURATION", DEFAULT_REMEMBER)
        session.set_expiry(seconds)


def _logged_out(app: Flask, user: Any = None, **_: Any) -> None:
    session = _current()
    if session is None:
        return
    # Flask-Login asks, through the session, that its remember cookie be cleared after
    # the view; keep that request across the invalidation.
    clear_remember = dict.get(session, "_remember") == "clear"
    session.invalidate()
    if clear_remember:
        session["_remember"] = "clear"
