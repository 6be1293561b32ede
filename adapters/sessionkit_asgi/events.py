"""Bridges from the engine's events to logging and metrics.

Pass them as ``on_event=`` to the middleware (or subscribe them to an ``EventBus`` you pass
as ``events=``). Events carry a session handle, never the ID, so they are safe to log.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter

from sessionkit import Event


class LogEvents:
    """Log every event on ``logger`` (``sessionkit.events`` by default) at ``level``."""

    def __init__(self, logger: logging.Logger | None = None, level: int = logging.INFO) -> None:
        self.logger = logger or logging.getLogger("sessionkit.events")
        self.level = level

    def __call__(self, event: Event) -> None:
        self.logger.log(
            self.level, "session %s: %s%s", event.handle or "-", event.kind.value,
            f" ({event.reason})" if event.reason else "",
        )  # fmt: skip


class CountEvents:
    """Count events by kind, for a metrics endpoint or exporter: ``counts["saved"]``."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.counts[event.kind.value] += 1
