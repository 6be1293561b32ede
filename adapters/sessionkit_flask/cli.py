"""``flask sessionkit gc|stats|list|revoke|init|keygen``: the ``sessionkit`` command's group,
run against the app's configured store."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sessionkit import Store, open_store
from sessionkit.cli import build_group
from sessionkit_flask import settings

if TYPE_CHECKING:
    from flask import Flask


def flask_group(app: Flask) -> Any:
    """The click group for ``app``; each command opens the store from ``app.config``."""

    def get_store() -> Store:
        store = settings.session_config(app.config, settings.secret_keys(app)).store
        # A fresh client per command: the command closes it when done.
        return open_store(store) if isinstance(store, str) else store

    return build_group(get_store=get_store, name="sessionkit")
