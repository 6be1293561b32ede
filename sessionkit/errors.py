"""Every exception sessionkit raises on purpose, each with a message that says what to do."""

from __future__ import annotations

from sessionkit.urls import mask_url


class SessionKitError(Exception):
    """Base class of every error sessionkit raises deliberately."""


class ConfigError(SessionKitError, ValueError):
    """A setting is missing, malformed or insecure; raised once, at start-up."""

    def __init__(self, setting: str, problem: str) -> None:
        self.setting = setting
        self.problem = problem
        super().__init__(f"sessionkit setting {setting!r}: {problem}")


class SessionTooLarge(SessionKitError):
    """The session would not fit in a cookie (or in the store's largest item); nothing was
    sent or saved. ``message`` replaces the cookie wording, for a store's own limit."""

    #: How the message names the store setting; ``suggest`` puts a framework's spelling.
    STORE_SETTING = "store='redis://...', 'sqlite:///...', 'file:///...'"

    def __init__(self, size: int, limit: int, message: str | None = None) -> None:
        self.size = size
        self.limit = limit
        self.custom = message
        super().__init__(message or self._message(self.STORE_SETTING))

    def _message(self, store_setting: str) -> str:
        return (
            f"the session cookie would be {self.size} bytes, over the {self.limit}-byte limit "
            "(browsers drop cookies over 4096 bytes), so it was not sent. Store less in the "
            f"session, or use a server-side store ({store_setting})."
        )

    def suggest(self, store_setting: str) -> SessionTooLarge:
        """This error, its message naming the store setting as an adapter's framework
        spells it (e.g. ``SESSIONKIT = {"STORE": "redis://..."}``)."""
        if self.custom is None:
            self.args = (self._message(store_setting),)
        return self


class SessionDataError(SessionKitError, TypeError):
    """A value put in the session cannot be serialized safely."""


class SessionNotLoaded(SessionKitError, RuntimeError):
    """The session was used where it was deliberately not loaded."""


class LockOrderError(SessionKitError, RuntimeError):
    """A session lock was asked for after this request had already changed the session:
    those changes were made without the lock, so it cannot protect them. Take the lock
    first (``@locked``/``@session_lock`` outermost, ``lock_session`` before any change).
    Reading before the lock is fine: the session is read again once the lock is held."""


class FreshOrderError(SessionKitError, RuntimeError):
    """A route demanded a fresh read of the session (past the local cache) after this
    request had already changed the session it read from the cache: those changes rest on
    a read that may be stale, so they are neither kept nor silently dropped. Demand the
    fresh read first (``@fresh``/``@fresh_session`` outermost, ``fresh_session`` before
    any change). Reading before it is fine: the session is read again from the store."""


class SessionLimitReached(SessionKitError):
    """A login was refused: the user already has ``max_sessions`` live sessions and
    ``session_limit_policy`` is ``"refuse"``. Nothing was saved: the request's session is
    left as it was before the login (still anonymous), and the user's other sessions are
    untouched. ``handle``: the session that tried to log in (never its ID)."""

    def __init__(self, max_sessions: int, handle: str | None = None) -> None:
        self.max_sessions = max_sessions
        self.handle = handle
        super().__init__(
            f"login refused: this user already has {max_sessions} live session(s), the "
            f"limit (max_sessions_per_user={max_sessions}, session_limit_policy='refuse'); "
            "nothing was saved. Log out (or revoke) another session first, or use "
            "session_limit_policy='evict_oldest'."
        )


class StoreError(SessionKitError):
    """Base class for store failures."""


class StoreUnavailable(StoreError):
    """The store could not be reached; the URL in the message has its password masked."""

    def __init__(
        self,
        url: str,
        cause: BaseException | str,
        *,
        ambiguous: bool = False,
        hint: str | None = None,
    ) -> None:
        self.url = mask_url(url)
        self.cause = cause
        #: What to do, when the store knows better than "check that the server is running"
        #: (SQLite has no server: a missing directory, a directory it may not write in).
        self.hint = hint
        #: True when a write was sent and its reply lost: it may have been applied.
        self.ambiguous = ambiguous
        outcome = (
            "a write was sent but its reply was lost, so it may or may not have been applied"
            if ambiguous
            else "nothing was changed"
        )
        advice = hint or "Check that the server is running and reachable"
        said = str(cause).rstrip(".")  # redis-py's own ends in one: no "refused.. Check"
        super().__init__(f"session store {self.url} is unavailable: {said}. {advice}; {outcome}.")


class LocksUnsupported(ConfigError, StoreError):
    """A route takes the session lock (``@locked``, ``@session_lock``, ``LockedSession``) but
    the store cannot lock. Adapters raise it when the app starts (the routes are named);
    ``engine.lock()`` raises it too, whatever the request, for a route the start-up check
    could not see. Both a ``ConfigError`` (a setting is wrong) and a ``StoreError``."""

    #: The stores that can lock (each declares ``supports_lock``).
    LOCKING_STORES = "memory://, redis://, sqlite:///, postgresql://, file:/// or memcached://"

    def __init__(
        self, store_url: str, routes: tuple[str, ...] = (), setting: str = "store"
    ) -> None:
        self.store_url = mask_url(store_url)
        self.routes = routes
        where = (
            f"these routes take the session lock: {', '.join(routes)}"
            if routes
            else "a route takes the session lock"
        )
        super().__init__(
            setting,
            f"the store {self.store_url} cannot lock sessions, but {where}. Locks need a "
            f"server-side store ({self.LOCKING_STORES}): set one, or remove the lock from "
            "these routes.",
        )


class LockTimeout(StoreError):
    """A session lock could not be acquired within the wait timeout."""

    def __init__(self, handle: str, waited: float) -> None:
        self.handle = handle
        self.waited = waited
        super().__init__(
            f"session {handle} is locked by another request; gave up after {waited:.2f}s. "
            "Retry the request, or raise the lock's wait timeout."
        )


class StoreReadOnly(StoreUnavailable):
    """The primary store is down and sessions are served read-only from the ``fallback``
    store (docs/fallback.md): this change (a save, a login, a rotation, a logout, a lock)
    was refused, not made. A ``StoreUnavailable``, so code that handles an outage handles
    this too; it has its own failure policy (``store_read_only``: 503 with Retry-After)."""

    def __init__(
        self, url: str, fallback: str, cause: BaseException | str, *, ambiguous: bool = False
    ) -> None:
        super().__init__(url, cause, ambiguous=ambiguous)
        self.fallback = mask_url(fallback)
        outcome = (
            "it was sent before the outage was noticed and its reply was lost, so it may or "
            "may not have been applied"
            if ambiguous
            else "nothing was changed"
        )
        said = str(cause).rstrip(".")
        self.args = (
            f"session store {self.url} is unavailable ({said}); sessions are read from the "
            f"fallback {self.fallback} until it is back, and changes are refused: {outcome}. "
            "Retry once the primary store is back.",
        )
