"""The conformance kit itself: each of its checks fails for a store that breaks it.

A check that passes whatever the store does protects nobody, so each one here is run
against a store broken in exactly the way the check is about.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping

import pytest

from sessionkit import MemoryStore, Write
from sessionkit.testing import (
    FakeClock,
    LockConformance,
    ResealConformance,
    ServerStoreConformance,
)


class SyncOnlyStore(MemoryStore):
    """Its async flavour is broken: only a check that really runs async can notice."""

    async def asave(self, write: Write) -> bool:
        raise RuntimeError("the async flavour was used")


class CarelessUnlockStore(MemoryStore):
    """Lets go of a lock whoever holds it: a holder that wakes up after its lock lapsed
    frees the lock of the request that took it over."""

    def _unlock(self, digest: str, token: str) -> None:
        with self._mutex:
            self._locks.pop(digest, None)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def test_the_untouched_check_runs_the_async_flavour(loop: asyncio.AbstractEventLoop) -> None:
    clock = FakeClock()
    kit = ServerStoreConformance()
    kit.test_untouched_request_costs_nothing(SyncOnlyStore(clock=clock), clock, "sync", loop)
    with pytest.raises(RuntimeError, match="async flavour was used"):
        kit.test_untouched_request_costs_nothing(SyncOnlyStore(clock=clock), clock, "async", loop)


def test_the_crashed_holder_check_catches_a_careless_unlock() -> None:
    clock = FakeClock()
    kit = LockConformance()
    kit.test_a_crashed_holder_expires(MemoryStore(clock=clock), clock)
    with pytest.raises(pytest.fail.Exception, match="DID NOT RAISE"):
        kit.test_a_crashed_holder_expires(CarelessUnlockStore(clock=clock), clock)


class BlindResealStore(MemoryStore):
    """Re-seals without comparing: writes the new text over whatever is stored now."""

    def reseal(self, digest: str, pairs: Mapping[str, tuple[str, str]]) -> int:
        with self._mutex:
            record, expires = self._records[digest]
            items = {**record.items, **{k: new for k, (_, new) in pairs.items()}}
            self._records[digest] = (record._replace(items=items), expires)
        return len(pairs)


def test_the_reseal_checks_catch_a_reseal_that_does_not_compare(
    loop: asyncio.AbstractEventLoop,
) -> None:
    clock = FakeClock()
    kit = ResealConformance()
    kit.test_a_concurrent_change_wins_over_the_reseal(MemoryStore(clock=clock), clock, "sync", loop)
    with pytest.raises(AssertionError):
        kit.test_a_concurrent_change_wins_over_the_reseal(
            BlindResealStore(clock=clock), clock, "sync", loop
        )
