"""pytest plugin (``-p tests.upstream.flask_plugin``) for running Flask's own test suite with
sessionkit as the session of every app it builds, on the store ``$SESSIONKIT_UPSTREAM_STORE``.

The whole patch, in one comment: every ``Flask(...)`` gets ``SessionKit(app)`` on that store
right after Flask's own ``__init__``; and because sessionkit refuses secret keys shorter than
32 random bytes (a deliberate difference, docs/flask.md), each key Flask's tests choose
("test key", "0 key", ...) is stretched by SHA-256 where sessionkit reads it, so distinct
keys stay distinct and key rotation is still tested. (Flask 3.1's conftest also names
``_pytest.monkeypatch.notset``, which pytest 9 dropped; it is put back as pytest's NOTSET.)
"""

from __future__ import annotations

import functools
import hashlib
import os
from typing import Any

import _pytest.compat
import _pytest.monkeypatch
import flask
import sessionkit_flask
from sessionkit_flask import settings

STORE = os.environ["SESSIONKIT_UPSTREAM_STORE"]

_flask_init = flask.Flask.__init__
_secret_keys = settings.secret_keys


@functools.wraps(_flask_init)
def _init(self: flask.Flask, *args: Any, **kwargs: Any) -> None:
    _flask_init(self, *args, **kwargs)
    self.config["SESSIONKIT_STORE"] = STORE
    sessionkit_flask.SessionKit(self)


def _stretched(app: flask.Flask) -> list[str | bytes]:
    def stretch(key: str | bytes) -> str:
        raw = key.encode() if isinstance(key, str) else key
        return hashlib.sha256(b"flask-suite:" + raw).hexdigest()

    return [stretch(key) for key in _secret_keys(app)]


_pytest.monkeypatch.notset = _pytest.compat.NOTSET  # type: ignore[attr-defined]
flask.Flask.__init__ = _init  # type: ignore[method-assign]
settings.secret_keys = _stretched
