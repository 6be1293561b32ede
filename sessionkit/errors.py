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

    def __init__(self, size: int, limit: int, message: str | None = None) -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            message
            or f"the session cookie would be {size} bytes, over the {limit}-byte limit "
            "(browsers drop cookies over 4096 bytes), so it was not sent. Store less in the "
            "session, or use a "
            "server-side store (store='redis://...', 'sqlite:///...', 'file:///...')."
        )


class SessionDataError(SessionKitError, TypeError):
    """A value put in the session cannot be serialized safely."""


class SessionNotLoaded(SessionKitError, RuntimeError):
    """The session was used where it was deliberately not loaded."""


class StoreError(SessionKitError):
    """Base class for store failures."""


class StoreUnavailable(StoreError):
    """The store could not be reached; the URL in the message has its password masked."""

    def __init__(self, url: str, cause: BaseException | str, *, ambiguous: bool = False) -> None:
        self.url = mask_url(url)
        self.cause = cause
        #: True when a write was sent and its reply lost: it may have been applied.
        self.ambiguous = ambiguous
        outcome = (
            "a write was sent but its reply was lost, so it may or may not have been applied"
            if ambiguous
            else "the session was left unchanged"
        )
        super().__init__(
            f"session store {self.url} is unavailable: {cause}. Check that the server is "
            f"running and reachable; {outcome}."
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
