"""A clock that moves only when told to, so expiry is tested without sleeping."""

from __future__ import annotations

from datetime import timedelta


class FakeClock:
    """Callable like ``time.time``; pass it as ``clock=`` to the engine and the store."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float | timedelta) -> None:
        if isinstance(seconds, timedelta):
            seconds = seconds.total_seconds()
        self.now += seconds

    def __repr__(self) -> str:
        return f"FakeClock(now={self.now})"
