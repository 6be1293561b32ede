"""``SessionKit(app)``: the Flask extension that puts sessionkit behind ``flask.session``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from flask.sessions import SessionMixin
from flask.testing import FlaskClient

from sessionkit import (
    DbscRequest,
    EventBus,
    EventKind,
    LockTimeout,
    SessionEngine,
    SessionLimitReached,
    StoreUnavailable,
)
from sessionkit_flask import locking, login, signals
from sessionkit_flask.interface import HELD, SessionKitInterface, current

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger("sessionkit.flask")


class SessionKit:
    """Install sessionkit as the session of one or more Flask apps.

    ``SessionKit(app)`` or, in an app factory, ``kit = SessionKit()`` then
    ``kit.init_app(app)``. Settings come from ``app.config``: Flask's own session settings
    keep their meaning, sessionkit's are ``SESSIONKIT_<NAME>`` (``SESSIONKIT_STORE =
    "redis://..."``; without a store, the encrypted cookie).

    ``handle_store_errors=False`` lets ``StoreUnavailable`` and ``LockTimeout`` propagate
    instead of answering 503. ``clock`` replaces ``time.time`` (tests).
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        handle_store_errors: bool = True,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.events = EventBus()
        self.handle_store_errors = handle_store_errors
        self.clock = clock
        self._bridged: set[EventKind] = set()
        signals.watch(self)
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        interface = SessionKitInterface(
            events=self.events, clock=self.clock, handle_store_errors=self.handle_store_errors
        )
        app.session_interface = interface
        app.extensions["sessionkit"] = self
        engine = interface.engine(app)  # a bad setting fails here, at start-up, not on a request
        if engine is not None:
            locking.check_views(app, engine)  # @locked views on the cookie store
            if engine.dbsc is not None:  # DBSC's two endpoints, under SESSIONKIT_DBSC_PATH
                for path in (engine.dbsc.registration_path, engine.dbsc.refresh_path):
                    app.add_url_rule(
                        path, f"sessionkit_dbsc_{path.rsplit('/', 1)[1]}", dbsc_view,
                        methods=["POST"], provide_automatic_options=False,
                    )  # fmt: skip
        app.before_request(_locked_views_check(app, interface))
        login.connect(app)
        app.teardown_request(_teardown)
        app.test_client_class = client_class(app.test_client_class)
        if self.handle_store_errors:
            app.register_error_handler(StoreUnavailable, _refuse)
            app.register_error_handler(LockTimeout, _refuse)
        # a login refused by session_limit_policy="refuse" in a view that saves at once
        app.register_error_handler(SessionLimitReached, _refuse)
        from sessionkit_flask.cli import cli

        app.cli.add_command(cli)

    @staticmethod
    def engine(app: Flask) -> SessionEngine:
        """``app``'s engine for its current settings (for ``revoke_user`` and the like)."""
        interface = app.session_interface
        if not isinstance(interface, SessionKitInterface):
            raise RuntimeError("SessionKit is not installed on this app")
        engine = interface.engine(app)
        if engine is None:
            raise RuntimeError("set SECRET_KEY (or SESSIONKIT_SECRET_KEY) to use sessions")
        return engine

    def bridge(self, kind: EventKind) -> None:
        """Forward ``kind`` events to their blinker signal (see ``sessionkit_flask.signals``)."""
        if kind not in self._bridged:
            self._bridged.add(kind)
            self.events.subscribe(signals.forward, [kind])


class SessionTransactions(FlaskClient):
    """The test client's ``session_transaction()`` as one of its own requests: with the
    client's ``environ_base`` (its User-Agent and address), so the session it prepares is
    bound to the same browser as the requests that follow, as with Flask's own sessions."""

    def session_transaction(  # type: ignore[override]
        self, *args: Any, **kwargs: Any
    ) -> AbstractContextManager[SessionMixin]:
        kwargs["environ_base"] = {**self.environ_base, **(kwargs.get("environ_base") or {})}
        transaction: AbstractContextManager[SessionMixin] = super().session_transaction(
            *args, **kwargs
        )
        return transaction


def client_class(current: type[FlaskClient] | None) -> type[FlaskClient]:
    """``app.test_client_class`` with ``SessionTransactions`` mixed in (an app's own client
    class is kept as the base)."""
    if current is None:
        return SessionTransactions
    if issubclass(current, SessionTransactions):
        return current
    return type(current.__name__, (SessionTransactions, current), {})


def _locked_views_check(app: Flask, interface: SessionKitInterface) -> Callable[[], None]:
    """A before-request function: on the app's first request (its routes are final then),
    the @locked views registered after ``SessionKit(app)`` are refused before any view
    runs. Once passed, it costs a request one flag test; a refusal repeats on every
    request until the setting is fixed. (A store changed later on a running app is
    caught by ``acquire()`` itself.)"""
    passed = False

    def check() -> None:
        nonlocal passed
        if passed:
            return
        engine = interface.engine(app)
        if engine is not None:
            locking.check_views(app, engine)
        passed = True

    return check


def _teardown(_: BaseException | None) -> None:
    # save_session releases the lock; this covers a request that never got that far.
    session = HELD.get()
    if session is not None:
        session.release_lock()


def dbsc_view() -> Any:
    """DBSC's registration or refresh endpoint (``sessionkit.dbsc``): the core decides."""
    from flask import Response, current_app, request

    engine = SessionKit.engine(current_app)
    dbsc = engine.dbsc
    if dbsc is None:  # the setting was turned off on a running app
        return Response(status=404)
    answer = dbsc.handle(
        DbscRequest(
            request.method, request.path, request.base_url,
            {name.lower(): value for name, value in request.headers.items()},
            request.headers.get("Cookie"), engine.wsgi_client(request.environ),
        )
    )  # fmt: skip
    response = Response(answer.content(), answer.status)
    for name, value in answer.headers:
        if name == "Set-Cookie":
            response.headers.add(name, value)
        else:
            response.headers[name] = value
    return response


def _refuse(exc: StoreUnavailable | LockTimeout | SessionLimitReached) -> Any:
    """The core's answer for a store that is down or a lock that stayed taken in a view."""
    from flask import current_app, request

    if isinstance(exc, SessionLimitReached):
        session = current()
        if session is not None:
            session.enter("refused")
    policy = SessionKit.engine(current_app).refuse(exc, f"{request.method} {request.path}", log)
    assert policy is not None
    return policy.body, policy.status, policy.response_headers
