"""Core events as a Django signal: ``session_event`` sends ``event=`` (a ``sessionkit.Event``:
kind, handle, reason; never a session ID).

The bridge subscribes to the engine's event bus only once a receiver connects, because an
event bus with a subscriber makes the engine build an event object on every request.
"""

from __future__ import annotations

from typing import Any

from django.dispatch import Signal

from sessionkit import Event, EventBus


class _BridgedSignal(Signal):
    def connect(self, *args: Any, **kwargs: Any) -> None:
        super().connect(*args, **kwargs)
        bridge()


#: Sent for every core event (created, saved, regenerated, invalidated, expired,
#: fingerprint_mismatch, cookie_rejected, save_conflict, store_error, ...).
session_event = _BridgedSignal()

_bridged: list[object] = []


def _forward(event: Event) -> None:
    session_event.send(sender=Event, event=event)


def bridge(bus: EventBus | None = None) -> None:
    """Subscribe the signal to the engine's bus; ``conf`` calls it again for every engine
    it builds (settings changes), once anyone listens."""
    if bus is None:
        from sessionkit_django.conf import engines

        bus = engines().request.events
    if not any(owner is bus for owner in _bridged):
        bus.subscribe(_forward)
        _bridged.append(bus)


def rebridge(bus: EventBus) -> None:
    if session_event.has_listeners():
        bridge(bus)
