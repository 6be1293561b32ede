"""sessionkit's events as blinker signals, Flask's own signalling library.

Connect as to any Flask signal; the sender is the app and the ``event`` keyword carries the
``sessionkit.Event`` (kind, opaque handle, reason; never the session ID)::

    @sessionkit_flask.session_expired.connect_via(app)
    def on_expired(app, event): ...

The bridge subscribes to the engine's events only for the signals somebody listens to, so
an app without receivers pays nothing for it.
"""

from __future__ import annotations

import weakref
from typing import Any, Protocol

from blinker import Namespace, Signal
from flask import has_app_context
from flask.globals import app_ctx

from sessionkit import Event, EventKind

_signals = Namespace()

session_created = _signals.signal("sessionkit.created")
session_loaded = _signals.signal("sessionkit.loaded")
session_saved = _signals.signal("sessionkit.saved")
session_touched = _signals.signal("sessionkit.touched")
session_regenerated = _signals.signal("sessionkit.regenerated")
session_invalidated = _signals.signal("sessionkit.invalidated")
session_expired = _signals.signal("sessionkit.expired")
fingerprint_mismatch = _signals.signal("sessionkit.fingerprint_mismatch")
cookie_rejected = _signals.signal("sessionkit.cookie_rejected")
record_rejected = _signals.signal("sessionkit.record_rejected")
save_conflict = _signals.signal("sessionkit.save_conflict")
store_error = _signals.signal("sessionkit.store_error")

#: Every event kind's signal, named ``sessionkit.<kind>`` (the names above are the same
#: objects: a blinker namespace hands out one signal per name).
SIGNALS: dict[EventKind, Signal] = {
    kind: _signals.signal(f"sessionkit.{kind.value}") for kind in EventKind
}
_KIND_OF = {id(signal): kind for kind, signal in SIGNALS.items()}


class _Bridged(Protocol):
    def bridge(self, kind: EventKind) -> None: ...


_extensions: weakref.WeakSet[Any] = weakref.WeakSet()


def watch(extension: _Bridged) -> None:
    """Forward events to signals for ``extension`` now and whenever a receiver connects."""
    _extensions.add(extension)
    for kind, signal in SIGNALS.items():
        if signal.receivers:
            extension.bridge(kind)


def forward(event: Event) -> None:
    """An engine subscriber: send ``event`` on its signal, with the current app as sender."""
    sender = app_ctx.app if has_app_context() else None
    SIGNALS[event.kind].send(sender, event=event)


def _connected(signal: Signal, **_: Any) -> None:
    kind = _KIND_OF.get(id(signal))
    if kind is not None:
        for extension in list(_extensions):
            extension.bridge(kind)


for _signal in SIGNALS.values():
    _signal.receiver_connected.connect(_connected)
