"""Test helpers for sessionkit and for third-party stores: a fake clock and a cookie-keeping
``Browser`` that drives the engine without a web framework (both without pytest, for
Django's ``manage.py test`` or unittest too), and the store conformance suite (pytest
classes: imported from here only when asked for, so pytest is needed only then)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sessionkit.testing.browser import Browser, Visit
from sessionkit.testing.clock import FakeClock

if TYPE_CHECKING:
    from sessionkit.testing.conformance import (
        ChallengeConformance as ChallengeConformance,
    )
    from sessionkit.testing.conformance import (
        LockConformance as LockConformance,
    )
    from sessionkit.testing.conformance import (
        ResealConformance as ResealConformance,
    )
    from sessionkit.testing.conformance import (
        ScanConformance as ScanConformance,
    )
    from sessionkit.testing.conformance import (
        ServerStoreConformance as ServerStoreConformance,
    )
    from sessionkit.testing.conformance import (
        SessionLimitConformance as SessionLimitConformance,
    )
    from sessionkit.testing.conformance import (
        StoreConformance as StoreConformance,
    )
    from sessionkit.testing.conformance import (
        SweepConformance as SweepConformance,
    )
    from sessionkit.testing.conformance import (
        UserIndexConformance as UserIndexConformance,
    )

_CONFORMANCE = (
    "ChallengeConformance",
    "LockConformance",
    "ResealConformance",
    "ScanConformance",
    "ServerStoreConformance",
    "SessionLimitConformance",
    "StoreConformance",
    "SweepConformance",
    "UserIndexConformance",
)

__all__ = ["Browser", "FakeClock", "Visit", *_CONFORMANCE]


def __getattr__(name: str) -> Any:
    if name in _CONFORMANCE:
        from sessionkit.testing import conformance  # needs pytest

        return getattr(conformance, name)
    raise AttributeError(f"module 'sessionkit.testing' has no attribute {name!r}")
