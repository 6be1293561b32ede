"""sessionkit: secure, fast sessions with one behaviour in Django, Flask and ASGI apps.

Everything public is importable from here; nothing else should import from deep paths.
"""

from __future__ import annotations

from sessionkit.audit import AuditEntry, AuditSink, AuditTrail
from sessionkit.client import ClientInfo, client_address
from sessionkit.config import SessionConfig
from sessionkit.cookies import add_cache_private, add_vary_cookie
from sessionkit.dbsc import DbscRequest, DbscResponse, DeviceBinding
from sessionkit.engine import CommitPlan, SessionEngine
from sessionkit.errors import (
    ConfigError,
    FreshOrderError,
    LockOrderError,
    LocksUnsupported,
    LockTimeout,
    SessionDataError,
    SessionKitError,
    SessionLimitReached,
    SessionNotLoaded,
    SessionTooLarge,
    StoreError,
    StoreReadOnly,
    StoreUnavailable,
)
from sessionkit.events import Event, EventBus, EventKind
from sessionkit.failures import Failure, FailurePolicy
from sessionkit.health import Health
from sessionkit.origin import same_origin
from sessionkit.rekey import RekeyReport
from sessionkit.session import Session
from sessionkit.sessions_api import ApiResponse, Caller, Effect, SessionsAPI
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
    "ApiResponse",
    "AuditEntry",
    "AuditSink",
    "AuditTrail",
    "Caller",
    "ClientInfo",
    "CommitPlan",
    "ConfigError",
    "CookieStore",
    "DbscRequest",
    "DbscResponse",
    "DeviceBinding",
    "Effect",
    "Event",
    "EventBus",
    "EventKind",
    "Failure",
    "FailurePolicy",
    "FreshOrderError",
    "Health",
    "LockOrderError",
    "LockTimeout",
    "LocksUnsupported",
    "MemoryStore",
    "Record",
    "RecordMeta",
    "RekeyReport",
    "Session",
    "SessionConfig",
    "SessionDataError",
    "SessionEngine",
    "SessionInfo",
    "SessionKitError",
    "SessionLimitReached",
    "SessionNotLoaded",
    "SessionTooLarge",
    "SessionsAPI",
    "Store",
    "StoreError",
    "StoreReadOnly",
    "StoreUnavailable",
    "Write",
    "__version__",
    "add_cache_private",
    "add_vary_cookie",
    "client_address",
    "open_store",
    "register_store",
    "same_origin",
]
