"""One small bounded cache for values derived from request traits (a User-Agent's device
label, a client's fingerprint): a handful of distinct keys in practice, so a plain dict,
but never unbounded, since the keys come from requests and an attacker can vary them."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_MISSING: object = object()


class BoundedCache(Generic[K, V]):
    """At most ``size`` entries; when full, the oldest one goes (a flood of new keys does
    not empty the cache of the keys real clients keep sending)."""

    __slots__ = ("_data", "size")

    def __init__(self, size: int = 4096) -> None:
        self._data: dict[K, V] = {}
        self.size = size

    def get(self, key: K, make: Callable[[K], V]) -> V:
        """The cached value for ``key``, made with ``make(key)`` on a miss."""
        data = self._data
        value = data.get(key, _MISSING)
        if value is _MISSING:
            value = make(key)
            if len(data) >= self.size:
                del data[next(iter(data))]
            data[key] = value
        return value  # type: ignore[return-value]

    def __len__(self) -> int:
        return len(self._data)
