"""sessionkit for ASGI apps (Starlette, FastAPI, any ASGI framework).

Swap ``from starlette.middleware.sessions import SessionMiddleware`` for
``from sessionkit_asgi import SessionMiddleware`` and ``request.session`` becomes
sessionkit's ``Session``: server-side stores or an encrypted cookie, regeneration,
fingerprints, flash data, locks and fresh reads past the local cache (``@fresh``,
``fresh_session``). ``sessions_app()`` mounts the sessions API. The FastAPI helpers
(``SessionDep``, ``LockedSession``, ``FreshSession``, ``sessions_router``) import FastAPI
only when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sessionkit_asgi.access import get_engine, get_session
from sessionkit_asgi.events import CountEvents, LogEvents
from sessionkit_asgi.freshness import fresh, fresh_session
from sessionkit_asgi.locking import lock_session, locked, locked_session
from sessionkit_asgi.middleware import SessionMiddleware, build_config
from sessionkit_asgi.sessions_api import sessions_app

if TYPE_CHECKING:
    from sessionkit_asgi.fastapi import FreshSession, LockedSession, SessionDep, sessions_router

__all__ = [
    "CountEvents",
    "FreshSession",
    "LockedSession",
    "LogEvents",
    "SessionDep",
    "SessionMiddleware",
    "build_config",
    "fresh",
    "fresh_session",
    "get_engine",
    "get_session",
    "lock_session",
    "locked",
    "locked_session",
    "sessions_app",
    "sessions_router",
]


def __getattr__(name: str) -> Any:
    if name in ("SessionDep", "LockedSession", "FreshSession", "sessions_router"):
        try:
            from sessionkit_asgi import fastapi
        except ModuleNotFoundError as exc:
            if exc.name not in ("fastapi", "pydantic"):
                raise
            raise ModuleNotFoundError(
                f"sessionkit_asgi.{name} is a FastAPI helper and needs FastAPI, which is not "
                "installed; pip install 'sessionkit[fastapi]' (Starlette apps: mount "
                "sessions_app() instead of sessions_router())", name=exc.name
            ) from exc  # fmt: skip
        return getattr(fastapi, name)
    raise AttributeError(f"module 'sessionkit_asgi' has no attribute {name!r}")
