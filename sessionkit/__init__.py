"""sessionkit: secure, fast sessions with one behaviour in Django, Flask and ASGI apps.

Everything public is importable from here; nothing else should import from deep paths.
"""

from __future__ import annotations

from sessionkit.config import SessionConfig
from sessionkit.cookies import add_cache_private, add_vary_cookie
from sessionkit.engine import CommitPlan, SessionEngine
from sessionkit.errors import (
    ConfigError,
    LocksUnsupported,
    LockTimeout,
    SessionDataError,
    SessionKitError,
    SessionNotLoaded,
    SessionTooLarge,
    StoreError,
    StoreUnavailable,
)
from sessionkit.events import Event, EventBus, EventKind
from sessionkit.failures import Failure, FailurePolicy
from sessionkit.fingerprint import ClientInfo, client_address
from sessionkit.session import Session
from sessionkit.stores import (
    CookieStore,
    MemoryStore,
    Record,
    RecordMeta,
    SessionInfo,
    Store,
    Write,
    open_store,
    register_store,
)

__version__ = "0.1.0"

__all__ = [
    "ClientInfo",
    "CommitPlan",
    "ConfigError",
    "CookieStore",
    "Event",
    "EventBus",
    "EventKind",
    "Failure",
    "FailurePolicy",
    "LockTimeout",
    "LocksUnsupported",
    "MemoryStore",
    "Record",
    "RecordMeta",
    "Session",
    "SessionConfig",
    "SessionDataError",
    "SessionEngine",
    "SessionInfo",
    "SessionKitError",
    "SessionNotLoaded",
    "SessionTooLarge",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "Write",
    "__version__",
    "add_cache_private",
    "add_vary_cookie",
    "client_address",
    "open_store",
    "register_store",
]
