"""The ``SessionInterface`` Flask calls at the start and end of every request.

``open_session`` hands the raw ``Cookie`` header to the engine and loads the session it
names (one read; none without a cookie); ``save_session`` asks the engine for the commit
plan, runs it and copies its headers onto the response. Every decision is the engine's;
what is Flask's here is only where the settings come from and how ``session.permanent``
maps onto expiry.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import logging
import threading
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from flask import after_this_request, has_request_context
from flask.globals import request_ctx
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.exceptions import HTTPException

from sessionkit import (
    EventBus,
    Session,
    SessionEngine,
    SessionLimitReached,
    SessionTooLarge,
    Store,
    StoreUnavailable,
    open_store,
)
from sessionkit.cookies import merge_header
from sessionkit.failures import Failure
from sessionkit_flask import settings

if TYPE_CHECKING:
    from flask import Flask, Request, Response

log = logging.getLogger("sessionkit.flask")


class FlaskSession(Session, SessionMixin):  # type: ignore[override]
    """sessionkit's ``Session`` with Flask's ``SessionMixin``: ``flask.session`` is this.

    ``permanent`` is Flask's: a ``_permanent`` key in the data. At the end of the request a
    permanent session gets a persistent cookie and an idle timeout of
    ``PERMANENT_SESSION_LIFETIME`` (the absolute timeout still applies); a session made
    non-permanent goes back to a browser-session cookie.
    """

    __slots__ = ("_down", "_engine", "_phase", "_release", "open_failure")
    _engine: SessionEngine
    _release: Callable[[], Any] | None
    _down: StoreUnavailable | None
    _phase: str

    @property
    def permanent(self) -> bool:
        return bool(self.get("_permanent", False))

    @permanent.setter
    def permanent(self, value: bool) -> None:
        # Many apps set ``session.permanent = True`` on every request; only a real change
        # counts as a change, so such requests do not rewrite the session each time.
        if self.get("_permanent", _ABSENT) is not bool(value):
            self["_permanent"] = bool(value)

    # -- what the adapter keeps per request ------------------------------------------------
    def opened_by(self, engine: SessionEngine) -> None:
        """Remember the engine that opened this session: it also commits it, even if the
        app's settings change during the request."""
        self._engine = engine
        self._release = None
        self._down = None
        self._phase = "view"
        #: The outage the read in ``open_session`` ran into: the view's first use raises it
        #: (503) without trying the store a second time in the same request.
        self.open_failure: StoreUnavailable | None = None

    @property
    def phase(self) -> str:
        """Where the request is: ``"open"`` (Flask opening it: loading it then may fail
        quietly), ``"view"`` (and before-request hooks), ``"after"`` (its
        after-request hooks and the save), ``"refresh"`` (the save reading an unused
        session to re-send a permanent one's cookie), or ``"refused"`` (a save in the view
        was refused by the session limit and answered: nothing more is saved)."""
        return self._phase

    def enter(self, phase: str) -> None:
        self._phase = phase

    def after_view(self, response: Response) -> Response:
        """The first after-request function of the request (``after_this_request``)."""
        if self._phase != "refused":
            self._phase = "after"
        return response

    @property
    def engine(self) -> SessionEngine:
        """The engine that opened this session."""
        return self._engine

    @property
    def store_down(self) -> StoreUnavailable | None:
        """The outage this request ran into, if any. From then on the session reads as
        empty and is not saved, so a later read (an after-request hook) cannot raise
        again, and the response is the store-down 503."""
        return self._down

    def mark_store_down(self, exc: StoreUnavailable) -> None:
        if self._down is None:
            self._down = exc

    @property
    def holds_lock(self) -> bool:
        return self._release is not None

    def hold_lock(self, release: Callable[[], Any]) -> None:
        """Keep ``release`` until ``release_lock`` (called after the save, or at teardown)."""
        self._release = release
        HELD.set(self)

    def release_lock(self) -> None:
        """Let the next request of this session in (see ``sessionkit_flask.locked``)."""
        release = self._release
        if release is not None:
            self._release = None
            HELD.set(None)
            release()


_ABSENT = object()


class FlaskEngine(SessionEngine):
    """The engine with one Flask rule: once the store failed in a request, the session stops
    trying. Flask-Login's after-request hook reads the session again after the view's
    ``StoreUnavailable`` became a 503; a second load would raise past Flask's error handler
    and turn that 503 into a 500."""

    session_class = FlaskSession

    def load(self, session: Session) -> None:
        if not isinstance(session, FlaskSession):
            super().load(session)
            return
        if session.store_down is not None:
            return  # already failed in this request: it stays an empty session
        try:
            if session.open_failure is not None:
                raise session.open_failure  # the read in open_session failed: not again
            super().load(session)
        except StoreUnavailable as exc:
            if session.phase == "open":
                session.open_failure = exc  # the view may not need the session at all
                raise
            if session.phase == "refresh":
                raise  # only the cookie refresh is lost; save_session serves the page
            session.mark_store_down(exc)
            if session.phase == "view":
                raise  # the view cannot go on as if the session were empty: 503
            session.load()  # after the view: settle it as empty; the save answers 503


#: Set on ``@locked`` views (``sessionkit_flask.locking``), so the start-up check finds
#: them and ``open_session`` leaves their session to be loaded under the lock.
LOCK_MARK = "__sessionkit_locks__"


def locked_view(app: Flask, endpoint: str | None) -> bool:
    """Whether the view of ``endpoint`` is ``@locked`` (it loads its session under the
    lock)."""
    view = app.view_functions.get(endpoint or "")
    return view is not None and getattr(view, LOCK_MARK, False)


#: Set on ``@fresh`` views (``sessionkit_flask.locking``): ``open_session`` reads their
#: session from the store itself, past a local cache.
FRESH_MARK = "__sessionkit_fresh__"


def endpoint_of(request: Request) -> str | None:
    """The endpoint ``request`` will be routed to, from ``open_session`` on: Flask matches
    the URL only after opening the session, so it is matched here (the same match)."""
    rule = request.url_rule
    if rule is None:
        adapter = request_ctx.url_adapter
        if adapter is None:
            return None
        try:
            rule, _ = adapter.match(return_rule=True)
        except HTTPException:  # 404, 405, a redirect: Flask answers it, with no view of ours
            return None
    endpoint: str = rule.endpoint
    return endpoint


def apply_permanent(app: Flask, session: FlaskSession) -> None:
    """Map ``session.permanent`` onto the session's own expiry (see ``FlaskSession``)."""
    permanent = dict.get(session, "_permanent", False)
    choice = session.expiry_choice
    if permanent:
        if choice != "persistent":  # not yet persistent (and not "remember me")
            session.set_expiry(app.permanent_session_lifetime)
    elif "_permanent" in session.changed_keys and choice == "persistent":
        session.set_expiry(None)


class SessionKitInterface(SessionInterface):
    """Installed by ``SessionKit`` as ``app.session_interface``; one per app."""

    def __init__(
        self,
        *,
        events: EventBus,
        clock: Callable[[], float] | None = None,
        handle_store_errors: bool = True,
    ) -> None:
        self.events = events
        self.clock = clock
        self.handle_store_errors = handle_store_errors
        self._engines: dict[Any, SessionEngine] = {}
        self._stores: dict[str, Store] = {}
        self._last: tuple[tuple[Any, ...], SessionEngine] | None = None
        self._keys: tuple[str, ...] = ()
        self._size = -1
        self._mutex = threading.Lock()
        #: the app's view functions (the dict, its size) and which of them are marked
        self._marked: tuple[object, int, frozenset[str], frozenset[str]] | None = None

    # -- engines ---------------------------------------------------------------------------
    def engine(self, app: Flask) -> SessionEngine | None:
        """The engine for ``app``'s current settings; ``None`` without a secret key."""
        config = app.config
        size = len(config)
        if size != self._size:  # a key was added or removed: look for SESSIONKIT_* again
            self._keys, self._size = settings.relevant_keys(config), size
        keys = settings.secret_keys(app)
        key = (keys, settings.fingerprint(config, self._keys))
        last = self._last
        if last is not None and last[0] == key:
            return last[1]
        if not settings.has_secret(config, keys):
            return None
        frozen = settings.freeze(key)
        with self._mutex:
            engine = self._engines.get(frozen)
            if engine is None:
                engine = self._build(config, keys)
                if len(self._engines) >= 32:  # a test suite cycling settings; stay bounded
                    self._engines.clear()
                self._engines[frozen] = engine
            self._last = (key, engine)
        return engine

    def _build(self, config: Any, keys: list[str | bytes]) -> SessionEngine:
        session_config = settings.session_config(config, keys)
        store = session_config.store
        if isinstance(store, str):
            # One store per URL for the app's life: a settings change must not lose the
            # sessions held by a memory store, or reconnect a server store.
            if store not in self._stores:
                stateless = store.startswith("cookie:")  # keeps no time of its own
                options = {} if self.clock is None or stateless else {"clock": self.clock}
                self._stores[store] = open_store(store, **options)
            store = self._stores[store]
        kwargs: dict[str, Any] = {} if self.clock is None else {"clock": self.clock}
        return FlaskEngine(session_config, store=store, events=self.events, **kwargs)

    def view_marks(self, app: Flask, request: Request) -> tuple[bool, bool]:
        """Whether the view ``request`` is routed to is ``@locked`` (its session is loaded
        under the lock), and whether it is ``@fresh`` (loaded past the local cache). The
        URL is matched only in an app that has such views; their list is kept until the
        app's views change."""
        views = app.view_functions
        marked = self._marked
        if marked is None or marked[0] is not views or marked[1] != len(views):
            locked = frozenset(e for e, v in views.items() if getattr(v, LOCK_MARK, False))
            fresh = frozenset(e for e, v in views.items() if getattr(v, FRESH_MARK, False))
            marked = self._marked = (views, len(views), locked, fresh)
        if not (marked[2] or marked[3]):
            return False, False
        endpoint = endpoint_of(request)
        return endpoint in marked[2], endpoint in marked[3]

    # -- the two calls Flask makes ---------------------------------------------------------
    def open_session(self, app: Flask, request: Request) -> FlaskSession | None:
        engine = self.engine(app)
        if engine is None:
            return None  # Flask then serves its NullSession, which refuses writes
        environ = request.environ
        if "REMOTE_ADDR" not in environ and "HTTP_USER_AGENT" not in environ:
            environ = {**environ, **test_client_environ()}
        client = engine.wsgi_client(environ)
        cookie = environ.get("HTTP_COOKIE")
        if engine.dbsc is not None and engine.dbsc.handles(request.path):
            cookie = None  # DBSC's endpoints read the session themselves; the view's is empty
        locked, fresh = self.view_marks(app, request) if cookie else (False, False)
        session: FlaskSession = engine.open(cookie, client, fresh=fresh)  # type: ignore[assignment]
        session.opened_by(engine)
        after_this_request(session.after_view)
        if not session.loaded and not locked:
            # Loaded now, as Flask's own cookie session and Flask-Session are: the view and
            # any C code reading the dict (json.dumps, orjson) see the data. It costs no
            # extra read with SESSION_REFRESH_EACH_REQUEST (the default), where the save
            # reads an unused session anyway. A locked view loads under its lock instead;
            # a store that is down leaves the session pending: its first use raises (503).
            session.enter("open")
            with contextlib.suppress(StoreUnavailable):
                session.load()
            session.enter("view")
        return session

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if type(session) is not FlaskSession and not isinstance(session, FlaskSession):
            return
        engine = session.engine
        if session.phase == "refused":  # the 409 went out already; the session stays as it was
            session.release_lock()
            return
        session.enter("after")
        if not session.loaded and engine.config.refresh_each_request:
            # Flask re-sends a permanent session's cookie on every request, used or not:
            # whether this one is permanent is in its record.
            session.enter("refresh")
            # A store that is down costs only the refresh: the page did not need the session.
            with contextlib.suppress(StoreUnavailable):
                session.load()
            session.enter("after")
        try:
            if session.store_down is None:
                if session.loaded:
                    apply_permanent(app, session)
                plan = engine.commit(session, response.status_code)
                engine.run(plan)
        except StoreUnavailable as exc:
            session.mark_store_down(exc)
            if not self.handle_store_errors:
                raise
        except (SessionTooLarge, SessionLimitReached) as exc:
            refuse(engine, exc, response)
            return
        finally:
            session.release_lock()
        down = session.store_down
        if down is not None:
            # once per request: the error handler may have answered the policy already
            answered = engine.policy(Failure.STORE_DOWN)
            if self.handle_store_errors and not (
                response.status_code == answered.status and "Retry-After" in response.headers
            ):
                refuse(engine, down, response)
            return
        if plan.failure is not None:  # a concurrent logout: the write was not made
            refuse(engine, plan.failure, response)
            return
        headers = response.headers
        for name, value in plan.headers():
            if name == "Set-Cookie":
                headers.add(name, value)
            else:
                headers[name] = merge_header(name, headers.get(name))
        for name, value in plan.dbsc_headers:  # DBSC: the registration header, bound cookie
            headers.add(name, value)


@functools.cache
def test_client_environ() -> dict[str, str]:
    """What Flask's test client sends (its ``environ_base``) for a request that carries
    neither an address nor a User-Agent. Servers always set ``REMOTE_ADDR``; only Flask's
    test helpers leave both out: ``test_request_context()``, and so the
    ``session_transaction()`` of any test client class (Flask-Login's ``FlaskLoginClient``
    too). Such a session is then bound to the test client that reads it afterwards."""
    version = importlib.metadata.version("werkzeug")
    return {"REMOTE_ADDR": "127.0.0.1", "HTTP_USER_AGENT": f"Werkzeug/{version}"}


def current() -> FlaskSession | None:
    """This request's session when it is sessionkit's (``None`` outside a request or with
    Flask's null session). Like ``flask.session``, it counts as an access."""
    if not has_request_context():
        return None
    session = request_ctx.session
    return session if isinstance(session, FlaskSession) else None


#: The session whose lock this request holds, for the teardown safety net: a request that
#: fails before ``save_session`` must not keep the lock until its ttl runs out.
HELD: ContextVar[FlaskSession | None] = ContextVar("sessionkit_flask_held", default=None)


def refuse(engine: SessionEngine, cause: BaseException | Failure, response: Response) -> None:
    """Turn a response whose session could not be saved into the core's answer for that
    failure (see ``sessionkit.failures``): sending the page as if the session were saved
    would lose what the user just did without telling them."""
    from flask import request

    policy = engine.refuse(cause, f"{request.method} {request.path}", log)
    assert policy is not None and policy.status is not None
    response.status_code = policy.status
    response.set_data(policy.body)
    response.headers.update(policy.response_headers)
