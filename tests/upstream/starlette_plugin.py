"""pytest plugin for running Starlette's own ``tests/middleware/test_session.py`` with
sessionkit's ASGI middleware on the store ``$SESSIONKIT_UPSTREAM_STORE``.

The whole patch, in one comment: ``starlette.middleware.sessions.SessionMiddleware`` (which the
suite imports by that name) becomes ``sessionkit_asgi.SessionMiddleware`` on that store; and
because sessionkit refuses secret keys shorter than 32 random bytes (a deliberate difference,
docs/asgi.md), the suite's key ("example") is stretched by SHA-256, so distinct keys stay
distinct. (Starlette 1.10's tests import ``httpx2``; where it is not installed, ``httpx``,
which Starlette's TestClient still accepts, stands in under that name.) Everything else
(Starlette's ``Session`` class, its TestClient, both anyio backends) is Starlette's own.
The test runs this module from a directory of its own so that Starlette's ``tests``
package, not ours, is the one named ``tests``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from typing import Any

if importlib.util.find_spec("httpx2") is None:
    import httpx

    sys.modules["httpx2"] = httpx

import sessionkit_asgi
import starlette.middleware.sessions

STORE = os.environ["SESSIONKIT_UPSTREAM_STORE"]


class SessionMiddleware(sessionkit_asgi.SessionMiddleware):
    def __init__(self, app: Any, secret_key: Any, *args: Any, **kwargs: Any) -> None:
        key = hashlib.sha256(b"starlette-suite:" + str(secret_key).encode()).hexdigest()
        kwargs.setdefault("store", STORE)
        super().__init__(app, key, *args, **kwargs)


starlette.middleware.sessions.SessionMiddleware = SessionMiddleware  # type: ignore[misc]
