"""The ``SessionInterface`` Flask calls at the start and end of every request.

``open_session`` hands the raw ``Cookie`` header to the engine (no I/O: the session loads
itself on first use); ``save_session`` asks the engine for the commit plan, runs it and
copies its headers onto the response. Every decision is the engine's; what is Flask's here
is only where the settings come from and how ``session.permanent`` maps onto expiry.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from flask.sessions import SessionInterface, SessionMixin

from sessionkit import (
    EventBus,
    Session,
    SessionEngine,
    Store,
    StoreUnavailable,
    open_store,
)
from sessionkit.cookies import merge_header
from sessionkit_flask import settings

if TYPE_CHECKING:
    from flask import Flask, Request, Response

log = logging.getLogger("sessionkit.flask")

STORE_DOWN_BODY = "Service unavailable: the session store cannot be reached. Please retry."
#: What every 503 for a store that is down carries, whether it failed loading or saving.
STORE_DOWN_HEADERS = {"Retry-After": "5", "Cache-Control": "no-store"}


class FlaskSession(Session, SessionMixin):  # type: ignore[override]
    """sessionkit's ``Session`` with Flask's ``SessionMixin``: ``flask.session`` is this.

    ``permanent`` is Flask's: a ``_permanent`` key in the data. At the end of the request a
    permanent session gets a persistent cookie and an idle timeout of
    ``PERMANENT_SESSION_LIFETIME`` (the absolute timeout still applies); a session made
    non-permanent goes back to a browser-session cookie.
    """

    __slots__ = ("_engine", "_release")
    _engine: SessionEngine
    _release: Callable[[], Any] | None

    @property
    def permanent(self) -> bool:
        return bool(self.get("_permanent", False))

    @permanent.setter
    def permanent(self, value: bool) -> None:
        # Many apps set ``session.permanent = True`` on every request; only a real change
        # counts as a change, so such requests do not rewrite the session each time.
        if self.get("_permanent", _ABSENT) is not bool(value):
            self["_permanent"] = bool(value)


_ABSENT = object()


def apply_permanent(app: Flask, session: FlaskSession) -> None:
    """Map ``session.permanent`` onto the session's own expiry (see ``FlaskSession``)."""
    permanent = dict.get(session, "_permanent", False)
    if permanent:
        if session._browser is not False:  # not yet persistent (and not "remember me")
            session.set_expiry(app.permanent_session_lifetime)
    elif "_permanent" in session._changed and session._browser is False:
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
        engine = SessionEngine(session_config, store=store, events=self.events, **kwargs)
        engine.session_class = FlaskSession
        return engine

    # -- the two calls Flask makes ---------------------------------------------------------
    def open_session(self, app: Flask, request: Request) -> FlaskSession | None:
        engine = self.engine(app)
        if engine is None:
            return None  # Flask then serves its NullSession, which refuses writes
        environ = request.environ
        client = engine.wsgi_client(environ)
        session: FlaskSession = engine.open(environ.get("HTTP_COOKIE"), client)  # type: ignore[assignment]
        session._engine = engine
        session._release = None
        return session

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if type(session) is not FlaskSession and not isinstance(session, FlaskSession):
            return
        engine = session._engine
        try:
            if session._loader is None:
                apply_permanent(app, session)
            plan = engine.commit(session, response.status_code)
            engine.run(plan)
        except StoreUnavailable as exc:
            if not self.handle_store_errors:
                raise
            store_down(exc, response)
            return
        finally:
            release_lock(session)
        headers = response.headers
        for name, value in plan.headers():
            if name == "Set-Cookie":
                headers.add(name, value)
            else:
                headers[name] = merge_header(name, headers.get(name))


#: The session whose lock this request holds, for the teardown safety net: a request that
#: fails before ``save_session`` must not keep the lock until its ttl runs out.
HELD: ContextVar[FlaskSession | None] = ContextVar("sessionkit_flask_held", default=None)


def release_lock(session: FlaskSession) -> None:
    """Let the next request of this session in (see ``sessionkit_flask.locked``)."""
    release = session._release
    if release is not None:
        session._release = None
        HELD.set(None)
        release()


def store_down(exc: StoreUnavailable, response: Response) -> None:
    """Turn a response whose session could not be saved into a 503: sending the page as if
    the session were saved would lose what the user just did without telling them."""
    log.error("sessionkit: %s Answering 503.", exc)
    response.status_code = 503
    response.set_data(STORE_DOWN_BODY)
    response.mimetype = "text/plain"
    response.headers.update(STORE_DOWN_HEADERS)
