"""Session events: a tiny publish/subscribe bus that adapters bridge to framework signals.

Events never carry a session ID, only its handle. Security-relevant events are also logged
on the ``sessionkit.security`` logger, so an operator sees them with no subscriber at all.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sessionkit.client import ClientInfo

security_log = logging.getLogger("sessionkit.security")
log = logging.getLogger("sessionkit")


class EventKind(str, enum.Enum):
    CREATED = "created"
    LOADED = "loaded"
    SAVED = "saved"
    TOUCHED = "touched"
    REGENERATED = "regenerated"
    INVALIDATED = "invalidated"
    EXPIRED = "expired"
    FINGERPRINT_MISMATCH = "fingerprint_mismatch"
    COOKIE_REJECTED = "cookie_rejected"
    RECORD_REJECTED = "record_rejected"
    SAVE_CONFLICT = "save_conflict"
    STORE_ERROR = "store_error"
    LOCK_TIMEOUT = "lock_timeout"
    SESSION_TOO_LARGE = "session_too_large"
    #: A session deleted to keep its user within ``max_sessions_per_user`` (the least
    #: recently used one); ``handle`` is the evicted session's, ``detail`` says for whom.
    SESSION_EVICTED = "session_evicted"
    #: A login refused by ``session_limit_policy="refuse"`` (``SessionLimitReached``).
    LOGIN_REFUSED = "login_refused"
    #: The primary store went down: sessions are now read from the ``fallback`` store and
    #: changes are refused (once per switch; ``detail``: primary, fallback, cause).
    STORE_FALLBACK = "store_fallback"
    #: The primary store answered again: back to normal (once per switch; ``detail``:
    #: how long the fallback served, reads served and changes refused meanwhile).
    STORE_RECOVERED = "store_recovered"
    #: A change refused while the fallback serves (``StoreReadOnly``, answered 503).
    STORE_READ_ONLY = "store_read_only"
    #: A device-bound session (DBSC) came without a valid bound cookie: a copied session
    #: cookie, most likely. The request ran without the session (``dbsc_missing_action``).
    DBSC_MISSING = "dbsc_missing"
    #: A device-bound key was registered for a session, or a registration/refresh refused.
    DBSC_REGISTERED = "dbsc_registered"
    DBSC_REFUSED = "dbsc_refused"
    #: A session was bound to a user (``bind_user``, a framework's login); ``user`` says who.
    USER_BOUND = "user_bound"
    #: A session was taken from its user but lives on (a logout that keeps the rest of
    #: the session, as Flask-Login's; after ``REGENERATED`` when it rotates too); ``user``
    #: is the user it was bound to, ``handle`` the session's before then.
    USER_UNBOUND = "user_unbound"
    #: A user's session was ended from outside it: the sessions API, staff, the CLI, an
    #: erasure (``SessionEngine.revoke_user``/``revoke_handle``); ``actor`` says by whom.
    REVOKED = "revoked"


SECURITY_EVENTS = frozenset(
    {
        EventKind.FINGERPRINT_MISMATCH,
        EventKind.COOKIE_REJECTED,
        EventKind.RECORD_REJECTED,
        EventKind.DBSC_MISSING,
        EventKind.DBSC_REFUSED,
    }
)


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened to a session. ``handle`` is safe to log; ``detail`` says why."""

    kind: EventKind
    handle: str | None = None
    reason: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    #: The user key the session is (or was) bound to, when the engine knows it.
    user: str | None = None
    #: The request's client (``None`` outside a request): the audit trail keeps only its
    #: device label and network prefix, never the address or the User-Agent.
    client: ClientInfo | None = None
    #: Who made it happen, when not the session's own request: ``"user"`` (the sessions
    #: API, on one's own sessions), ``"staff:<key>"``, ``"cli"``, ``"erasure"``, ...
    actor: str | None = None


Subscriber = Callable[[Event], None]


class EventBus:
    """Synchronous fan-out. A subscriber that raises is logged and never breaks a request."""

    __slots__ = ("__weakref__", "_lock", "_subscribers", "active")  # weakref: metrics

    def __init__(self) -> None:
        self._subscribers: dict[EventKind | None, tuple[Subscriber, ...]] = {}
        self._lock = threading.Lock()
        #: True while anyone subscribes; without subscribers only security events are
        #: produced (for the log), so the request path skips building the others.
        self.active = False

    def subscribe(
        self, callback: Subscriber, kinds: Iterable[EventKind | str] | None = None
    ) -> Callable[[], None]:
        """Call ``callback`` for every event (or only ``kinds``); returns an unsubscribe."""
        keys: list[EventKind | None] = [None] if kinds is None else [EventKind(k) for k in kinds]
        with self._lock:
            for key in keys:
                self._subscribers[key] = (*self._subscribers.get(key, ()), callback)
            self.active = True

        def unsubscribe() -> None:
            with self._lock:
                for key in keys:
                    rest = tuple(c for c in self._subscribers.get(key, ()) if c is not callback)
                    self._subscribers[key] = rest
                self.active = any(self._subscribers.values())

        return unsubscribe

    def wants(self, kind: EventKind) -> bool:
        return bool(self._subscribers.get(kind) or self._subscribers.get(None)) or (
            kind in SECURITY_EVENTS
        )

    def emit(self, event: Event) -> None:
        if event.kind in SECURITY_EVENTS:
            security_log.warning(
                "sessionkit %s: %s (session %s)",
                event.kind.value,
                event.reason,
                event.handle or "-",
            )
        for callback in (*self._subscribers.get(event.kind, ()), *self._subscribers.get(None, ())):
            try:
                callback(event)
            except Exception:
                log.exception("sessionkit event subscriber %r failed", callback)
