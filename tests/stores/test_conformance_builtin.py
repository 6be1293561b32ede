"""The built-in in-process stores pass the conformance suite in both flavours."""

from __future__ import annotations

from sessionkit import CookieStore, MemoryStore, Store
from sessionkit.testing import (
    ChallengeConformance,
    FakeClock,
    LockConformance,
    ResealConformance,
    ScanConformance,
    ServerStoreConformance,
    SessionLimitConformance,
    StoreConformance,
    SweepConformance,
    UserIndexConformance,
)


class TestMemoryStore(
    ServerStoreConformance,
    ChallengeConformance,
    UserIndexConformance,
    LockConformance,
    SweepConformance,
    ScanConformance,
    ResealConformance,
    SessionLimitConformance,
):
    def make_store(self, clock: FakeClock) -> Store:
        return MemoryStore(clock=clock)


class TestCookieStore(StoreConformance):
    def make_store(self, clock: FakeClock) -> Store:
        return CookieStore()
