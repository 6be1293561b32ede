"""The route lock: ``lock_session``, ``locked_session`` (FastAPI) and ``@locked``.

The route lock serialises the requests of one session that must not overlap (read, compute,
write). The middleware has already loaded the session before routing, so the lock is taken
in the view, the session is loaded again under it, and the lock is handed to the middleware,
which lets go only after the commit has run: a lock released when the view returns would
leave the window between the view and the save open.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any, TypeVar, overload

from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection

from sessionkit import LockTimeout, Session
from sessionkit_asgi import loops, routes
from sessionkit_asgi.access import before_endpoint, exchange_of

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


async def lock_session(
    connection: HTTPConnection,
    *,
    ttl: float = 30.0,
    wait: float = 10.0,
    status_code: int | None = None,
) -> Session:
    """Take this session's lock, reload the session under it, and return the fresh copy
    (also installed as ``request.session``). The middleware releases the lock once the
    response's commit has run. The core's rule, as in every framework: a session already
    read in this request is read again under the lock; one already changed is refused with
    ``LockOrderError``.

    A request with no valid session cookie has nothing to race with and locks nothing.
    When the lock stays taken for ``wait`` seconds, ``LockTimeout`` propagates and the
    middleware answers the core's lock-timeout policy (503 with ``Retry-After: 1`` unless
    ``failure_status`` says otherwise); a ``status_code`` given here answers that status
    instead, as an ``HTTPException``. Needs a store that can lock (not the cookie store):
    on one that cannot, ``LocksUnsupported`` (a ``ConfigError``), with or without a cookie.
    """
    exchange = exchange_of(connection)
    session = exchange.session
    if exchange.locks is not None:  # already locked in this request
        return session
    engine = exchange.middleware.engine
    # Refused at the lifespan startup for the routes it can see; this catches the rest (a
    # view calling lock_session itself, a server without lifespan) on every request alike.
    engine.require_locks([f"{connection.scope.get('method', 'WS')} {connection.url.path}"])
    if session.handle is None:
        return session
    stack = AsyncExitStack()
    try:
        await stack.enter_async_context(loops.alock(engine, session, ttl=ttl, wait=wait))
    except LockTimeout as exc:
        if status_code is None:
            raise  # answered by the middleware, with the core's policy
        raise HTTPException(status_code, detail=str(exc), headers={"Retry-After": "1"}) from exc
    exchange.locks = stack
    # read again under the lock (the core made it pending), natively, before the view
    await loops.aload(engine, session)  # a StoreUnavailable is answered by the middleware
    return session


def locked_session(
    *, ttl: float = 30.0, wait: float = 10.0, status_code: int | None = None
) -> Callable[[HTTPConnection], Awaitable[Session]]:
    """A dependency (FastAPI ``Depends(locked_session())``) that locks and returns the
    session; see ``lock_session``."""

    async def dependency(connection: HTTPConnection) -> Session:
        return await lock_session(connection, ttl=ttl, wait=wait, status_code=status_code)

    routes.mark(dependency)
    return dependency


@overload
def locked(
    endpoint: F, *, ttl: float = ..., wait: float = ..., status_code: int | None = ...
) -> F: ...
@overload
def locked(
    endpoint: None = None, *, ttl: float = ..., wait: float = ..., status_code: int | None = ...
) -> Callable[[F], F]: ...
def locked(
    endpoint: F | None = None,
    *,
    ttl: float = 30.0,
    wait: float = 10.0,
    status_code: int | None = None,
) -> F | Callable[[F], F]:
    """Decorate an async Starlette endpoint (``async def view(request)``) so its session's
    requests run one at a time: ``@locked`` or ``@locked(wait=2.0)``."""

    def decorate(view: F) -> F:
        async def lock(connection: HTTPConnection) -> None:
            await lock_session(connection, ttl=ttl, wait=wait, status_code=status_code)

        wrapper = before_endpoint("@locked", view, lock)
        routes.mark(wrapper)
        return wrapper

    return decorate if endpoint is None else decorate(endpoint)
