"""Fresh reads for sensitive routes: ``fresh_session``, ``FreshSession`` (FastAPI) and
``@fresh``.

A route that must see a logout or a role change the moment it lands anywhere (a payment, a
password change, an admin action) reads its session from the store itself, never from the
process's local cache (``?cache=on``, docs/stores/cache.md). The middleware has already
loaded the session before routing, so the view reads it again from the store, as the route
lock does: an unchanged session loses nothing; one changed before (by other middleware)
raises ``FreshOrderError``. On a store without a local cache every read is the store's own,
so nothing is read twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from starlette.requests import HTTPConnection

from sessionkit import Session
from sessionkit_asgi import loops
from sessionkit_asgi.access import before_endpoint, exchange_of

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


async def fresh_session(connection: HTTPConnection) -> Session:
    """The request's session as the store holds it now, past the local cache (also
    installed as ``request.session``; a FastAPI dependency: ``Depends(fresh_session)``).
    A ``StoreUnavailable`` is answered by the middleware, as for any load."""
    exchange = exchange_of(connection)
    session = exchange.session
    engine = exchange.middleware.engine
    engine.require_fresh(session, reload=True)
    await loops.aload(engine, session)  # natively, before the view
    return session


def fresh(endpoint: F) -> F:
    """Decorate an async Starlette endpoint (``async def view(request)``, an
    ``HTTPEndpoint`` method, a WebSocket endpoint) so its session is read from the store
    itself: ``@fresh``. With ``@locked``, either order reads fresh under the lock."""
    return before_endpoint("@fresh", endpoint, fresh_session)
