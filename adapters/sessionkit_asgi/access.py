"""The request's session and engine, as the middleware left them on the ASGI scope."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from starlette.requests import HTTPConnection

from sessionkit import Session, SessionEngine, SessionNotLoaded
from sessionkit_asgi.middleware import ENGINE_KEY, EXCHANGE_KEY, Exchange, NotLoadedSession

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


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


def before_endpoint(
    name: str, endpoint: F, step: Callable[[HTTPConnection], Awaitable[object]]
) -> F:
    """``endpoint`` (an async Starlette endpoint, an ``HTTPEndpoint`` method, a WebSocket
    endpoint) with ``await step(request)`` first: the route decorators' (``@locked``,
    ``@fresh``) common part; ``name`` is the decorator's, for its errors."""
    if not inspect.iscoroutinefunction(endpoint):
        raise TypeError(f"{name} needs an async endpoint; {endpoint!r} is not one")

    @functools.wraps(endpoint)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        found = [a for a in (*args, *kwargs.values()) if isinstance(a, HTTPConnection)]
        if not found:
            raise TypeError(f"{name}: {endpoint.__qualname__} was not given the request")
        await step(found[0])
        return await endpoint(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
