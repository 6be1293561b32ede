"""sessionkit for Flask: ``SessionKit(app)`` and ``flask.session`` is a sessionkit session.

``session[...]``, ``flash()``, ``get_flashed_messages()`` and Flask-Login keep working;
the session gains server-side stores, an encrypted cookie store, ID regeneration at login,
server-side logout, idle and absolute timeouts, per-session locks (``@locked``), fresh
reads past the local cache (``@fresh``) and key rotation;
``sessions_blueprint()`` serves the sessions API (list and revoke a user's sessions).
"""

from __future__ import annotations

from werkzeug.local import LocalProxy

from sessionkit_flask.extension import SessionKit
from sessionkit_flask.interface import FlaskSession, SessionKitInterface, current
from sessionkit_flask.locking import fresh, locked
from sessionkit_flask.sessions_api import sessions_blueprint
from sessionkit_flask.signals import (
    SIGNALS,
    cookie_rejected,
    fingerprint_mismatch,
    record_rejected,
    save_conflict,
    session_created,
    session_expired,
    session_invalidated,
    session_loaded,
    session_regenerated,
    session_saved,
    session_touched,
    store_error,
)


def _session() -> FlaskSession:
    found = current()
    if found is None:
        raise RuntimeError(
            "sessionkit_flask.session is only available in a request of an app with "
            "SessionKit(app) and a secret key"
        )
    return found


#: ``flask.session``, typed as what it is with ``SessionKit(app)``: a ``FlaskSession``, so
#: ``session.handle``, ``session.bind_user()`` and ``session.regenerate()`` type-check.
session: FlaskSession = LocalProxy(_session)  # type: ignore[assignment]

__all__ = [
    "SIGNALS",
    "FlaskSession",
    "SessionKit",
    "SessionKitInterface",
    "cookie_rejected",
    "fingerprint_mismatch",
    "fresh",
    "locked",
    "record_rejected",
    "save_conflict",
    "session",
    "session_created",
    "session_expired",
    "session_invalidated",
    "session_loaded",
    "session_regenerated",
    "session_saved",
    "session_touched",
    "sessions_blueprint",
    "store_error",
]
