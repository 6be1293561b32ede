"""Core events as a Django signal: ``session_event`` sends ``event=`` (a ``sessionkit.Event``:
kind, handle, reason; never a session ID).

``EVENTS`` is the one event bus of every engine ``sessionkit_django.conf`` builds, for the
life of the process (settings changes rebuild engines, not the bus). The signal subscribes
to it once a receiver connects, because an event bus with a subscriber makes the engine
build an event object on every request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.dispatch import Signal

from sessionkit import Event, EventBus

#: The event bus every engine built from the Django settings shares.
EVENTS = EventBus()


class _BridgedSignal(Signal):
    def connect(self, *args: Any, **kwargs: Any) -> None:
        super().connect(*args, **kwargs)
        for bus in (EVENTS, *_relayed):
            _listen(bus)


#: Sent for every core event (created, saved, regenerated, invalidated, expired,
#: fingerprint_mismatch, cookie_rejected, save_conflict, store_error, ...).
session_event = _BridgedSignal()

_relayed: list[EventBus] = []  # buses of engines installed with use_engine
_listening: dict[int, Callable[[], None]] = {}  # id(bus) -> unsubscribe


def _forward(event: Event) -> None:
    session_event.send(sender=Event, event=event)


def _listen(bus: EventBus) -> None:
    if id(bus) not in _listening:
        _listening[id(bus)] = bus.subscribe(_forward)


def relay(bus: EventBus) -> Callable[[], None]:
    """Also send the events of ``bus`` (an engine of its own, installed with
    ``use_engine``) as the signal, from when anyone listens; call the result to stop."""
    _relayed.append(bus)
    if session_event.has_listeners():
        _listen(bus)

    def stop() -> None:
        _relayed.remove(bus)
        if bus not in _relayed and bus is not EVENTS:
            unsubscribe = _listening.pop(id(bus), None)
            if unsubscribe is not None:
                unsubscribe()

    return stop
