"""A store wrapper (the cache, the fallback, metrics) stands in for the store it wraps: it
must pass on every call of the store protocol and every capability flag, or the feature
behind the call silently stops working once the wrapper is on (``rekey`` refused, DBSC
challenges lost, ``audit="store"`` refused at start-up)."""

from __future__ import annotations

import inspect

import pytest

from sessionkit.metrics import InstrumentedStore
from sessionkit.stores.base import Store
from sessionkit.stores.cache import CachingStore
from sessionkit.stores.fallback import FallbackStore
from sessionkit.stores.memory import MemoryStore

PROTOCOL = sorted(
    name for name, value in vars(Store).items()
    if not name.startswith("_") and inspect.isfunction(value)
)  # fmt: skip
FLAGS = sorted(name for name in vars(Store) if name.startswith("supports_"))


@pytest.mark.parametrize("wrapper", [CachingStore, FallbackStore, InstrumentedStore])
def test_a_wrapper_defines_every_call_of_the_store_protocol(wrapper: type[Store]) -> None:
    assert {"load", "save", "reseal", "take_challenge", "audit_sink"} <= set(PROTOCOL)
    missing = [name for name in PROTOCOL if getattr(wrapper, name) is getattr(Store, name)]
    assert missing == [], f"{wrapper.__name__} falls back to Store's default for {missing}"


def test_instrumented_store_keeps_every_capability() -> None:
    class Able(MemoryStore):
        supports_reseal = supports_challenges = True

    store = InstrumentedStore(Able())
    assert {flag: getattr(store, flag) for flag in FLAGS} == {flag: True for flag in FLAGS}


def test_a_wrapper_over_the_cache_says_its_reads_may_be_cached() -> None:
    """``caches_reads`` is what makes a fresh-marked route read a session again that was
    already read (through the cache); a wrapper hiding it would serve the cached read."""
    from tests.core.test_fresh import Silent

    cached = CachingStore(MemoryStore(), Silent())
    assert cached.caches_reads and not MemoryStore().caches_reads
    assert InstrumentedStore(cached).caches_reads
    assert FallbackStore(cached, MemoryStore()).caches_reads
    assert not FallbackStore(MemoryStore(), MemoryStore()).caches_reads
