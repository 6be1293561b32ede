"""``flask sessionkit gc|stats|list|revoke|export|erase|audit|init|keygen``: the
``sessionkit`` command's group, run against the app's configured store.

It is a Flask plugin command (the ``flask.commands`` entry point) as well as one of the
app's commands, so ``flask sessionkit keygen`` works before the app can load: an app whose
``SECRET_KEY`` is missing or too weak (Flask's tutorial ``"dev"``) refuses to start, and the
command that makes a key is what its owner needs then. The other commands load the app.
"""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.cli import with_appcontext

from sessionkit import SessionConfig, Store, open_store
from sessionkit.cli import build_group
from sessionkit_flask import settings


def _config() -> SessionConfig:
    """The app's settings: its keys (sealed records, erasure pseudonyms), its audit trail."""
    app = current_app
    return settings.session_config(app.config, settings.secret_keys(app))


def _store() -> Store:
    store = _config().store
    # A fresh client per command: the command closes it when done.
    return open_store(store) if isinstance(store, str) else store


def flask_group() -> Any:
    """The click group; each command but ``keygen`` runs in the app's context."""
    group = build_group(get_store=_store, name="sessionkit", get_config=_config)
    for name, command in group.commands.items():
        if name != "keygen" and command.callback is not None:
            command.callback = with_appcontext(command.callback)
    return group


#: What the ``flask.commands`` entry point ``sessionkit`` names.
cli = flask_group()
