"""What sessionkit did on a request, for the panel at the bottom of every page.

A page is rendered before sessionkit commits the session (the commit needs the response's
status), so a page cannot show its own request's outcome. The apps therefore subscribe to
the engine's events (``created``, ``regenerated``, ``saved``, ``touched``, ...) and the page
shows what the last committing request of the same session did in the same app: after a
login "regenerated, created", after a flash was shown "saved".

Events carry the session's opaque handle, never its ID. They are collected per request in a
context variable (each app opens one around a request); the commit's events file the list
under the handle the session ended with. The last 1000 sessions of the process are kept.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from sessionkit import Event, EventKind

_current: ContextVar[list[str] | None] = ContextVar("sessionkit_demo_events", default=None)
_recent: OrderedDict[str, list[str]] = OrderedDict()
_mutex = threading.Lock()
_LIMIT = 1000
#: Emitted when a commit runs: only these close a request's account. ("loaded" is left
#: out altogether: every page says so already.)
_COMMIT = frozenset(
    {
        EventKind.CREATED, EventKind.SAVED, EventKind.TOUCHED, EventKind.REGENERATED,
        EventKind.INVALIDATED, EventKind.SAVE_CONFLICT,
    }
)  # fmt: skip


@contextmanager
def request_scope() -> Iterator[None]:
    """Collect the events of the request running inside the block."""
    token = _current.set([])
    try:
        yield
    finally:
        _current.reset(token)


def record(event: Event) -> None:
    """An engine subscriber: file ``event`` with the events before it in this request."""
    seen = _current.get()
    if seen is None or event.kind is EventKind.LOADED:
        return
    seen.append(event.kind.value)
    if event.handle is None or event.kind not in _COMMIT:
        return
    with _mutex:
        _recent[event.handle] = list(seen)
        _recent.move_to_end(event.handle)
        while len(_recent) > _LIMIT:
            _recent.popitem(last=False)


def last_request(handle: str | None) -> list[str]:
    """The event kinds of the last request of session ``handle`` in this app that
    committed something (a read-only request within the touch interval commits nothing)."""
    if handle is None:
        return []
    with _mutex:
        return list(_recent.get(handle, ()))
