"""Flask-Login integration, connected when Flask-Login is installed.

- ``login_user``: the session gets a new ID (no fixation) and is bound to the user, so it
  is listed and revoked with that user's sessions.
- ``login_user(remember=True)``: instead of Flask-Login's separate remember cookie, which
  would outlive the absolute timeout and survive "log out everywhere", the session itself
  lives longer: a persistent cookie and an idle timeout of ``REMEMBER_COOKIE_DURATION``
  (or ``duration=``), still capped by the absolute timeout.
- ``logout_user``: as in stock Flask-Login, only Flask-Login's own keys go (it removes
  them itself); the rest of the session stays, under a new ID, unbound from the user, and
  the old ID dies in the store. ``SESSIONKIT_LOGOUT = "invalidate"`` discards the whole
  session instead.
- A user restored from an existing Flask-Login remember cookie is a login too.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from flask import current_app

from sessionkit_flask import settings
from sessionkit_flask.interface import current

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


def _logged_in(app: Flask, user: Any = None, **_: Any) -> None:
    session = current()
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
        try:
            session.set_expiry(seconds)
        except TypeError as exc:  # refused as Flask-Login refuses it, naming the setting
            raise TypeError(f"REMEMBER_COOKIE_DURATION: {exc}") from None


def _logged_out(app: Flask, user: Any = None, **_: Any) -> None:
    session = current()
    if session is None:
        return
    if settings.logout_mode(app.config) == "rotate":
        # Flask-Login has removed its keys; the rest stays, under a new ID (the old one is
        # deleted when the session is saved), bound to nobody.
        session.bind_user(None)
        if session.expiry_choice is not None:
            session.set_expiry(None)  # "remember me" ends with the login (permanent stays)
        return
    # Flask-Login asks, through the session, that its remember cookie be cleared after
    # the view; keep that request across the invalidation.
    clear_remember = dict.get(session, "_remember") == "clear"
    session.invalidate()
    if clear_remember:
        session["_remember"] = "clear"
