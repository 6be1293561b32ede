"""Test helpers for sessionkit and for third-party stores: the conformance suite, a fake
clock and a cookie-keeping ``Browser`` that drives the engine without a web framework."""

from sessionkit.testing.browser import Browser, Visit
from sessionkit.testing.clock import FakeClock
from sessionkit.testing.conformance import (
    LockConformance,
    ScanConformance,
    ServerStoreConformance,
    SessionLimitConformance,
    StoreConformance,
    SweepConformance,
    UserIndexConformance,
)

__all__ = [
    "Browser",
    "FakeClock",
    "LockConformance",
    "ScanConformance",
    "ServerStoreConformance",
    "SessionLimitConformance",
    "StoreConformance",
    "SweepConformance",
    "UserIndexConformance",
    "Visit",
]
