"""``@locked``: views that must not overlap for one session (a cart checkout, a counter);
and ``@fresh``: views whose session is read from the store itself, past the local cache.

The lock is the store's (memory, Redis, SQL, file). It is taken before the session is
loaded and released only after the session was saved, so two requests of one browser run
one after the other; requests of other sessions are not slowed.

On a store that cannot lock (the cookie store), an app with ``@locked`` views fails when
it starts: at ``SessionKit(app)`` for the views registered by then, and at the app's first
request for those registered later (Flask takes no routes after its first request), with
an error naming the views, before any view runs, whatever the route.

A ``@fresh`` view (a payment, a password change, an admin action) sees a logout or a role
change the moment it lands anywhere: ``open_session`` finds the mark and reads the session
from the store itself (``?cache=on``, docs/stores/cache.md); without a cache it is a plain
load.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, overload

from sessionkit import SessionEngine, StoreUnavailable
from sessionkit_flask.interface import (
    FRESH_MARK,
    LOCK_MARK,
    FlaskSession,
    current,
    locked_view,
)

if TYPE_CHECKING:
    from flask import Flask

F = TypeVar("F", bound=Callable[..., Any])


@overload
def locked(view: F, /) -> F: ...
@overload
def locked(*, ttl: float = 30.0, wait: float = 10.0) -> Callable[[F], F]: ...


def locked(
    view: F | None = None, /, *, ttl: float = 30.0, wait: float = 10.0
) -> F | Callable[[F], F]:
    """Serialise this view per session. ``ttl``: how long a crashed worker can hold the
    lock; ``wait``: how long to queue before giving up with ``LockTimeout`` (answered 503).

    The core's rule, as in every framework: a session already read in this request (by
    ``@login_required``, a ``before_request`` hook) is read again once the lock is held; one
    already changed is refused with ``LockOrderError``. Put it above ``@login_required``.
    """

    def decorate(func: F) -> F:
        return _before_view(func, functools.partial(acquire, ttl=ttl, wait=wait), LOCK_MARK)

    return decorate(view) if view is not None else decorate


def _before_view(view: F, step: Callable[[], object], mark: str) -> F:
    """``view`` with ``step()`` first, marked ``mark`` (``open_session`` and the start-up
    check find the marked views): an ``async def`` view stays one, so Flask awaits it."""
    if inspect.iscoroutinefunction(view):

        @functools.wraps(view)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            step()
            return await view(*args, **kwargs)

        setattr(async_wrapper, mark, True)
        return async_wrapper  # type: ignore[return-value]

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        step()
        return view(*args, **kwargs)

    setattr(wrapper, mark, True)
    return wrapper  # type: ignore[return-value]


def acquire(*, ttl: float = 30.0, wait: float = 10.0) -> None:
    """Take this request's session lock until the session is saved (a no-op when held)."""
    session = current()
    if not isinstance(session, FlaskSession):
        raise RuntimeError("@locked needs sessionkit_flask.SessionKit(app) and a secret key")
    if session.holds_lock:
        return
    # Refused when the app started for the views it could see; this catches the rest
    # (acquire() called by hand) on every request alike, with or without a cookie.
    from flask import request

    session.engine.require_locks([f"{request.method} {request.path}"], setting="SESSIONKIT_STORE")
    lock = session.engine.lock(session, ttl=ttl, wait=wait)
    try:
        lock.__enter__()
    except StoreUnavailable as exc:
        session.mark_store_down(exc)  # later reads in this request answer empty, not raise
        raise
    session.hold_lock(functools.partial(lock.__exit__, None, None, None))


def fresh(view: F) -> F:
    """Read this view's session from the store itself, never from the local cache:
    ``@fresh``. ``open_session`` sees the mark and loads it so. A session read before the
    view all the same (a marked ``MethodView`` method, which ``open_session`` cannot see)
    is read again; one already changed in this request (by a ``before_request`` hook) is
    refused with ``FreshOrderError``. Put it above ``@login_required``; with ``@locked``,
    either order reads fresh under the lock. ``async def`` views work too."""
    return _before_view(view, require_fresh, FRESH_MARK)


def require_fresh() -> None:
    """Make this request's session the store's own, past the local cache: read again on
    its next use if it was read through the cache (``@fresh`` calls it)."""
    session = current()
    if not isinstance(session, FlaskSession):
        raise RuntimeError("@fresh needs sessionkit_flask.SessionKit(app) and a secret key")
    session.engine.require_fresh(session, reload=True)


def locked_views(app: Flask) -> list[str]:
    """``"POST /cart/checkout (checkout)"`` for each of ``app``'s ``@locked`` views."""
    found = []
    for rule in app.url_map.iter_rules():
        if locked_view(app, rule.endpoint):
            methods = set(rule.methods or ()) - {"HEAD", "OPTIONS"}
            shown = " ".join(sorted(methods))
            found.append(f"{shown + ' ' if shown else ''}{rule.rule} ({rule.endpoint})")
    return found


def check_views(app: Flask, engine: SessionEngine) -> None:
    """Refuse (``LocksUnsupported``) ``@locked`` views on a store that cannot lock."""
    if not engine.store.supports_lock:
        views = locked_views(app)
        if views:
            engine.require_locks(views, setting="SESSIONKIT_STORE")
