"""The request's session and engine, as the middleware left them on the ASGI scope."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from sessionkit import Session, SessionEngine, SessionNotLoaded
from sessionkit_asgi.middleware import ENGINE_KEY, EXCHANGE_KEY, Exchange, NotLoadedSession


def exchange_of(connection: HTTPConnection) -> Exchange:
    exchange = connection.scope.get(EXCHANGE_KEY)
    if isinstance(exchange, Exchange):
        return exchange
    session = connection.scope.get("session")
    if isinstance(session, NotLoadedSession):
        session.raise_not_loaded()
    raise SessionNotLoaded(
        "this request has no sessionkit session: add sessionkit_asgi.SessionMiddleware to "
        "the application (app.add_middleware(SessionMiddleware, secret_key=...))"
    )


def get_session(connection: HTTPConnection) -> Session:
    """The request's ``Session`` (also a FastAPI dependency: ``Depends(get_session)``)."""
    return exchange_of(connection).session


def get_engine(connection: HTTPConnection) -> SessionEngine:
    """The engine behind the request's middleware, for store-level work such as listing or
    revoking a user's sessions, or a health route (on ``exclude_paths`` too)."""
    engine = connection.scope.get(ENGINE_KEY)
    if isinstance(engine, SessionEngine):
        return engine
    return exchange_of(connection).middleware.engine
