"""Core events as a Django signal: ``session_event`` sends ``event=`` (a ``sessionkit.Event``:
kind, handle, reason; never a session ID).

``EVENTS`` is the one event bus of every engine ``sessionkit_django.conf`` builds, for the
life of the process (settings changes rebuild engines, not the bus). The signal subscribes
to it once a receiver connects, because an event bus with a subscriber makes the engine
build an event object on every request.
"""

from __future__ import annotations

from typing import Any

from django.dispatch import Signal

from sessionkit import Event, EventBus

#: The event bus every engine built from the Django settings shares.
EVENTS = EventBus()


class _BridgedSignal(Signal):
    _bridged = False

    def connect(self, *args: Any, **kwargs: Any) -> None:
        super().connect(*args, **kwargs)
        if not self._bridged:
            self._bridged = True
            EVENTS.subscribe(forward)


#: Sent for every core event (created, saved, regenerated, invalidated, expired,
#: fingerprint_mismatch, cookie_rejected, save_conflict, store_error, ...).
session_event = _BridgedSignal()


def forward(event: Event) -> None:
    """Send ``event`` as ``session_event`` (subscribed to ``EVENTS``, and to the bus of an
    engine installed with ``use_engine``)."""
    if session_event.has_listeners():
        session_event.send(sender=Event, event=event)
