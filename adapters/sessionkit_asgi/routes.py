"""Which routes of an app take the session lock, found when the app starts.

``@locked`` endpoints and ``locked_session()`` dependencies carry a mark; the middleware
walks the app's routes at the lifespan startup and, on a store that cannot lock, refuses
to start naming them, instead of failing their requests one by one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

#: Set on ``@locked`` endpoints and on ``locked_session()`` dependencies.
LOCK_MARK = "__sessionkit_locks__"


def mark(target: Any) -> None:
    setattr(target, LOCK_MARK, True)


def locked_routes(app: Any) -> list[str]:
    """``"GET /cart (checkout)"`` for each route of ``app`` (a Starlette or FastAPI app, a
    router, or anything with ``routes``) whose endpoint or dependencies take the lock."""
    return list(_walk(_routes_of(app), ""))


def _routes_of(app: Any) -> Iterable[Any]:
    routes = getattr(app, "routes", None)
    if routes is None:
        routes = getattr(getattr(app, "router", None), "routes", None)
    return routes or ()


def _walk(routes: Iterable[Any], prefix: str, inherited: bool = False) -> Iterator[str]:
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:  # FastAPI >= 0.16x keeps an included router as one route
            context = getattr(route, "include_context", None)
            locks = inherited or _any_marked(getattr(context, "dependencies", ()))
            inner_prefix = prefix + str(getattr(context, "prefix", ""))
            yield from _walk(_routes_of(included), inner_prefix, locks)
            continue
        path = prefix + str(getattr(route, "path", ""))
        endpoint = getattr(route, "endpoint", None)
        if (
            inherited
            or _marked(endpoint)
            or _marked_method(endpoint)
            or _any_marked(getattr(route, "dependencies", None) or ())
            or _depends_on_lock(getattr(route, "dependant", None))
        ):
            methods = set(getattr(route, "methods", None) or ())
            if "GET" in methods:
                methods.discard("HEAD")  # Starlette adds it to every GET route
            shown = " ".join(sorted(methods))
            name = getattr(endpoint, "__qualname__", repr(endpoint))
            yield f"{shown + ' ' if shown else ''}{path or '/'} ({name})"
        inner = getattr(route, "routes", None)  # Mount, Host
        if inner and not _has_own_sessions(getattr(route, "app", None)):
            yield from _walk(inner, path, inherited)


def _has_own_sessions(app: Any) -> bool:
    """A mounted app with a sessionkit middleware of its own: its locks are its store's,
    not ours (its requests meet its own ``lock_session`` check)."""
    from sessionkit_asgi.middleware import SessionMiddleware

    middleware = getattr(app, "user_middleware", None) or ()
    return any(getattr(item, "cls", None) is SessionMiddleware for item in middleware)


def _marked(target: Any) -> bool:
    return bool(getattr(target, LOCK_MARK, False))


_METHODS = ("get", "head", "post", "put", "patch", "delete", "options")


def _marked_method(endpoint: Any) -> bool:
    """Starlette's ``HTTPEndpoint`` class with an ``@locked`` method."""
    return isinstance(endpoint, type) and any(
        _marked(getattr(endpoint, name, None)) for name in _METHODS
    )


def _any_marked(depends: Iterable[Any]) -> bool:
    """FastAPI ``dependencies=[Depends(locked_session())]`` of a route or router."""
    return any(_marked(getattr(item, "dependency", None)) for item in depends)


def _depends_on_lock(dependant: Any, depth: int = 0) -> bool:
    """FastAPI: a dependency (at any depth) that takes the lock (``LockedSession``)."""
    if dependant is None or depth > 32:
        return False
    return any(
        _marked(getattr(dep, "call", None)) or _depends_on_lock(dep, depth + 1)
        for dep in getattr(dependant, "dependencies", ())
    )
