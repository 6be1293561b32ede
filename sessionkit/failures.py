"""What a request answers when its session fails: one policy per failure, for every framework.

A policy is a status, headers, a body, a log line and an event. The core decides it; an
adapter only turns it into its framework's native response (Django's ``HttpResponse``,
Flask's ``Response``, a plain ASGI response), so a store outage or a lock that stays taken
is answered alike under Django, Flask and Starlette. Statuses are configurable in one
place, ``SessionConfig(failure_status={"lock_timeout": 423})``.

``COOKIE_REJECTED`` has no status: a forged or stale cookie gets the view's own response,
served to an anonymous session, with the cookie cleared (answering it with an error would
let anyone with a bad cookie break a page).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace

from sessionkit.errors import (
    ConfigError,
    LockTimeout,
    SessionLimitReached,
    SessionTooLarge,
    StoreReadOnly,
    StoreUnavailable,
)
from sessionkit.events import EventKind

log = logging.getLogger("sessionkit")


class Failure(str, enum.Enum):
    """The ways a request's session can fail, each with one ``FailurePolicy``."""

    STORE_DOWN = "store_down"
    LOCK_TIMEOUT = "lock_timeout"
    CONFLICT = "conflict"
    TOO_LARGE = "session_too_large"
    COOKIE_REJECTED = "cookie_rejected"
    SESSION_LIMIT = "session_limit"
    READ_ONLY = "store_read_only"


@dataclass(frozen=True, slots=True)
class FailurePolicy:
    """How a request answers one failure. ``status`` ``None``: the view's response goes out."""

    failure: Failure
    status: int | None
    headers: tuple[tuple[str, str], ...]
    body: str
    level: int  # of the log line on the ``sessionkit`` logger
    event: EventKind
    summary: str  # the log line's reason, after "answered <status> because"

    @property
    def response_headers(self) -> list[tuple[str, str]]:
        """``headers`` plus the body's content type: what an adapter's response carries."""
        return [("Content-Type", "text/plain; charset=utf-8"), *self.headers]


_NO_STORE = ("Cache-Control", "no-store")

DEFAULT_POLICIES: Mapping[Failure, FailurePolicy] = {
    p.failure: p
    for p in (
        FailurePolicy(
            Failure.STORE_DOWN, 503, (("Retry-After", "5"), _NO_STORE),
            "Service unavailable: the session store cannot be reached. Try again shortly.",
            logging.ERROR, EventKind.STORE_ERROR, "the session store is unavailable",
        ),
        FailurePolicy(
            Failure.LOCK_TIMEOUT, 503, (("Retry-After", "1"), _NO_STORE),
            "Service unavailable: another request of this session is still running. Retry.",
            logging.WARNING, EventKind.LOCK_TIMEOUT, "the session lock stayed taken",
        ),
        FailurePolicy(
            Failure.CONFLICT, 400, (_NO_STORE,),
            "Bad request: the session was deleted before the request completed (a logout "
            "in another request, for example); nothing was saved.",
            logging.WARNING, EventKind.SAVE_CONFLICT,
            "the session was deleted or rotated by another request",
        ),
        FailurePolicy(
            Failure.TOO_LARGE, 500, (_NO_STORE,),
            "Internal server error: the session is too large to be saved.",
            logging.ERROR, EventKind.SESSION_TOO_LARGE, "the session is too large",
        ),
        FailurePolicy(
            Failure.SESSION_LIMIT, 409, (_NO_STORE,),
            "Conflict: this account already has the maximum number of sessions. Sign out "
            "on another device, then sign in again.",
            logging.WARNING, EventKind.LOGIN_REFUSED,
            "the user is at max_sessions_per_user and the policy refuses new logins",
        ),
        FailurePolicy(
            Failure.READ_ONLY, 503, (("Retry-After", "5"), _NO_STORE),
            "Service unavailable: the session store is read-only for now (its primary "
            "server is down; sessions are read from a replica), so this change was not "
            "saved. Nothing was changed. Try again shortly.",
            logging.WARNING, EventKind.STORE_READ_ONLY,
            "the session store is read-only (primary down, fallback serving reads)",
        ),
        FailurePolicy(
            Failure.COOKIE_REJECTED, None, (), "", logging.WARNING,
            EventKind.COOKIE_REJECTED, "the session cookie was rejected",
        ),
    )
}  # fmt: skip


def failure_of(exc: BaseException) -> Failure | None:
    """The failure an exception raised by sessionkit stands for (``None``: not ours)."""
    if isinstance(exc, StoreReadOnly):  # before StoreUnavailable: it is one
        return Failure.READ_ONLY
    if isinstance(exc, StoreUnavailable):
        return Failure.STORE_DOWN
    if isinstance(exc, LockTimeout):
        return Failure.LOCK_TIMEOUT
    if isinstance(exc, SessionTooLarge):
        return Failure.TOO_LARGE
    if isinstance(exc, SessionLimitReached):
        return Failure.SESSION_LIMIT
    return None


def policies(status: Mapping[str, int]) -> dict[Failure, FailurePolicy]:
    """The policies with ``status`` (``{"lock_timeout": 423}``) applied; checked at start-up."""
    out = dict(DEFAULT_POLICIES)
    for name, code in status.items():
        try:
            failure = Failure(name)
        except ValueError:
            known = ", ".join(repr(f.value) for f in Failure if f is not Failure.COOKIE_REJECTED)
            raise ConfigError("failure_status", f"{name!r} is not a failure; use {known}") from None
        if failure is Failure.COOKIE_REJECTED:
            raise ConfigError(
                "failure_status",
                "'cookie_rejected' has no status: the view's response goes out, anonymously",
            )
        if isinstance(code, bool) or not isinstance(code, int) or not 400 <= code <= 599:
            raise ConfigError("failure_status", f"{name}: {code!r}; use a 4xx or 5xx status")
        out[failure] = replace(out[failure], status=code)
    return out


def log_refusal(
    policy: FailurePolicy, where: str, exc: BaseException | None, logger: logging.Logger = log
) -> None:
    """The policy's log line: which request, what it answered, and why (on the adapter's
    logger, e.g. ``sessionkit.flask``, so an app's logging setup keeps working)."""
    logger.log(
        policy.level, "sessionkit: %s answered %s because %s: %s",
        where or "a request", policy.status, policy.summary, exc if exc is not None else "-",
    )  # fmt: skip
