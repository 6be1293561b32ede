"""The sessions API as a Flask blueprint:
``app.register_blueprint(sessions_blueprint(staff=is_admin), url_prefix="/sessions")``.

A state-changing call must be same-origin by its ``Sec-Fetch-Site`` or ``Origin`` header
(``sessionkit.same_origin``); with Flask-WTF's ``CSRFProtect`` active, its token check runs
first, as for every view. ``staff`` decides who may use the ``/users/...`` routes: a
callable with no arguments (it reads ``flask_login.current_user`` or ``flask.g``); by
default nobody.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, Response, request

from sessionkit import Caller, SessionsAPI, same_origin
from sessionkit_flask.interface import FlaskSession, current

#: Every method reaches the core, which answers 405 (with ``Allow``) for the wrong one.
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def nobody() -> bool:
    """The default staff check: no one is staff until the app says who is."""
    return False


def sessions_blueprint(
    *, staff: Callable[[], bool] = nobody, name: str = "sessionkit_sessions"
) -> Blueprint:
    """A blueprint serving the sessions API (see ``sessionkit.sessions_api``)."""
    blueprint = Blueprint(name, __name__)

    def endpoint(path: str = "") -> Response:
        session = _session()
        engine = session.engine
        trusted = same_origin(request.method, request.headers, request.host, request.scheme)
        answer = SessionsAPI(engine).dispatch(
            request.method, "/" + path, request.get_data(), Caller.of(session, engine),
            staff=staff(), trusted_origin=trusted,
        )  # fmt: skip
        answer.apply(session)
        body = b"" if request.method == "HEAD" else answer.json()
        return Response(body, answer.status, headers=answer.headers)

    blueprint.add_url_rule("/", "api", endpoint, methods=METHODS, provide_automatic_options=False)
    blueprint.add_url_rule(
        "/<path:path>", "api_path", endpoint, methods=METHODS, provide_automatic_options=False
    )
    return blueprint


def _session() -> FlaskSession:
    session = current()
    if session is None:
        raise RuntimeError(
            "the sessions API needs SessionKit(app) and a secret key: flask.session is not a "
            "sessionkit session in this app"
        )
    return session

