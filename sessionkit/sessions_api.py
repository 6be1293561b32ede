"""The sessions API, framework-free: a signed-in user lists and revokes their own sessions,
staff do the same for anyone. The adapters mount it (a Django URLconf, a Flask blueprint, a
Starlette router, a FastAPI ``APIRouter``) and only translate requests and responses.

Routes, relative to where it is mounted::

    GET    /                          my sessions (handle, device, created, last seen, current)
    POST   /revoke-others             log out all my other sessions
    POST   /extend  {"seconds": N}    this session now lives N seconds past its last use
    DELETE /<handle>                  log out one of my sessions
    GET    /users/<user>              staff: a user's sessions
    DELETE /users/<user>/<handle>     staff: log out one of them
    POST   /users/<user>/revoke-all   staff: log out all of them

A handle is a prefix of the record's digest, never the ID. Another user's handle reads
as unknown (404) and revokes nothing. What the adapter must do to the *current* session
(log it out, extend it) comes back as ``ApiResponse.effect``: the core never touches a
framework's session object.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal

from sessionkit import serialization
from sessionkit.config import DEFAULT_ABSOLUTE_TIMEOUT
from sessionkit.engine import SessionEngine
from sessionkit.ids import is_handle
from sessionkit.origin import SAFE_METHODS

if TYPE_CHECKING:
    from sessionkit.client import ClientInfo
    from sessionkit.records import SessionInfo
    from sessionkit.session import Session
    from sessionkit.stores.base import Store

#: Every response carries these: a device list must never sit in a shared cache, nor be
#: sniffed into something else.
HEADERS: Mapping[str, str] = {
    "Content-Type": "application/json",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


@dataclass(frozen=True)
class Caller:
    """Who is asking: the user key the session is bound to (``None``: not signed in), and
    which session this request runs on. ``digest`` never leaves the core; it only lets
    "revoke others" keep this session atomically."""

    user: str | None
    handle: str | None = None
    digest: str | None = field(default=None, repr=False)
    created: float | None = None
    #: the request's client, for the audit trail's device label and network prefix
    client: ClientInfo | None = field(default=None, repr=False)

    @classmethod
    def of(cls, session: Session, engine: SessionEngine, *, user: object = ...) -> Caller:
        """The caller behind ``session`` (the request's core session). ``user``: the
        framework's own verdict on who is signed in, as a user key (``None``: nobody);
        by default the user the session is bound to."""
        bound = session.user_id if user is ... else (None if user is None else str(user))
        created = session.created
        return cls(
            bound, session.handle, engine.digest_of(session),
            created.timestamp() if created is not None else None, engine.client_of(session),
        )  # fmt: skip


@dataclass(frozen=True)
class Effect:
    """What the adapter does to the current session after the call: ``"logout"`` (it was
    revoked: invalidate it, so the response clears the cookie) or ``"extend"``
    (``session.set_expiry(seconds)``)."""

    kind: Literal["logout", "extend"]
    seconds: float | None = None


LOGOUT = Effect("logout")


@dataclass(frozen=True)
class ApiResponse:
    """One answer: the status, the JSON body, what to do to the current session, and
    (for a 405) the allowed methods. ``headers`` and ``json()`` are what to send."""

    status: int
    body: dict[str, Any]
    effect: Effect | None = None
    allow: tuple[str, ...] = ()

    @property
    def headers(self) -> dict[str, str]:
        headers = dict(HEADERS)
        if self.allow:
            headers["Allow"] = ", ".join(self.allow)
        return headers

    def json(self) -> bytes:
        return serialization.dumps_plain_bytes(self.body)

    def apply(self, session: Session) -> None:
        """Do to the caller's own session what this answer asks: ``invalidate()`` it when
        the call revoked it (the adapter then clears its cookie), ``set_expiry`` when the
        call extended it. (Django logs out through ``django.contrib.auth`` instead.)"""
        effect = self.effect
        if effect is None:
            return
        if effect.kind == "logout":
            session.invalidate()
        elif effect.seconds is not None:
            session.set_expiry(effect.seconds)


def error(status: int, code: str, detail: str, allow: tuple[str, ...] = ()) -> ApiResponse:
    return ApiResponse(status, {"error": code, "detail": detail}, allow=allow)


NOT_FOUND = error(404, "not_found", "no such session")
NOT_SIGNED_IN = error(401, "not_signed_in", "sign in first")
NOT_STAFF = error(403, "forbidden", "staff only")
CROSS_SITE = error(
    403, "cross_site", "state-changing calls must come from this site (Sec-Fetch-Site or "
    "Origin must name it)"
)  # fmt: skip


@dataclass(frozen=True)
class _Route:
    name: str
    methods: tuple[str, ...]
    staff: bool = False
    user: str | None = None
    handle: str | None = None


def _route(path: str) -> _Route | None:
    trimmed = path.strip("/")
    parts = trimmed.split("/") if trimmed else []
    match parts:
        case []:
            return _Route("list", ("GET",))
        case ["revoke-others"]:
            return _Route("revoke_others", ("POST",))
        case ["extend"]:
            return _Route("extend", ("POST",))
        case [one] if is_handle(one):
            return _Route("revoke", ("DELETE",), handle=one)
        case ["users", user] if user:
            return _Route("user_list", ("GET",), staff=True, user=user)
        case ["users", user, "revoke-all"] if user:
            return _Route("user_revoke_all", ("POST",), staff=True, user=user)
        case ["users", user, one] if user and is_handle(one):
            return _Route("user_revoke", ("DELETE",), staff=True, user=user, handle=one)
    return None


class SessionsAPI:
    """The API over one engine (or a bare store: then ``absolute_timeout`` bounds
    ``extend``, and the clock is the system's)."""

    def __init__(
        self,
        target: SessionEngine | Store,
        *,
        absolute_timeout: float | None = None,
    ) -> None:
        self.store: Store
        self.clock: Callable[[], float]
        #: revokes go through it, so they are events (and audit entries) naming the actor
        self.engine = target if isinstance(target, SessionEngine) else None
        if isinstance(target, SessionEngine):
            self.store, self.clock = target.store, target.clock
            if absolute_timeout is None:
                absolute_timeout = target.config.absolute_timeout
        else:
            self.store, self.clock = target, time.time
        self.absolute_timeout = absolute_timeout

    # -- the checks both flavours share --------------------------------------------------
    def _check(
        self, method: str, path: str, body: bytes | None, caller: Caller, staff: bool,
        trusted_origin: bool,
    ) -> ApiResponse | tuple[_Route, float | None]:  # fmt: skip
        route = _route(path)
        if route is None:
            # the staff area answers who may ask before what exists: a malformed path
            # there is a 401/403 to those not allowed in, as a well-formed one is
            if path.strip("/").split("/")[0] == "users":
                if caller.user is None:
                    return NOT_SIGNED_IN
                if staff is not True:
                    return NOT_STAFF
            return NOT_FOUND
        method = method.upper()
        allowed = route.methods + (("HEAD",) if "GET" in route.methods else ())
        if method not in allowed:
            return error(405, "method_not_allowed", f"use {' or '.join(route.methods)}",
                         allow=allowed)  # fmt: skip
        if method not in SAFE_METHODS and not trusted_origin:
            return CROSS_SITE
        if caller.user is None:
            return NOT_SIGNED_IN
        # Exactly True: a truthy object from a sloppy check (the coroutine of an async check
        # given to a sync framework) must not make anyone staff.
        if route.staff and staff is not True:
            return NOT_STAFF
        if route.name != "extend" and not self.store.supports_user_index:
            return error(
                501, "no_user_index", f"this session store ({type(self.store).__name__}) "
                "keeps no per-user index, so it cannot list or revoke sessions; use a "
                "server-side store with one (memory, file, sqlite, postgresql, redis)"
            )  # fmt: skip
        seconds = None
        if route.name == "extend":
            parsed = self._seconds(body)
            if isinstance(parsed, ApiResponse):
                return parsed
            seconds = parsed
        return route, seconds

    def _seconds(self, body: bytes | None) -> float | ApiResponse:
        try:
            document = serialization.loads_plain(body or b"")
        except ValueError:
            return error(400, "bad_json", 'send a JSON object: {"seconds": N}')
        seconds = document.get("seconds") if type(document) is dict else None
        if not isinstance(seconds, (int, float)) or type(seconds) is bool:
            return error(400, "bad_seconds", '"seconds" must be a positive number')
        if not 0 < seconds < float("inf"):  # NaN fails this too
            return error(400, "bad_seconds", '"seconds" must be a positive number')
        # never past the absolute timeout (the engine enforces it anyway); without one, a
        # month, so one call cannot make a session immortal
        return float(min(seconds, self.absolute_timeout or DEFAULT_ABSOLUTE_TIMEOUT))

    # -- what each route answers -----------------------------------------------------------
    def _listed(self, infos: list[SessionInfo], caller: Caller, user: str) -> ApiResponse:
        mine = user == caller.user
        rows = [
            {"handle": info.handle, "device": info.device, "created": _iso(info.created),
             "last_seen": _iso(info.last_seen), "current": mine and info.handle == caller.handle}
            for info in sorted(infos, key=lambda i: -i.last_seen)
        ]  # fmt: skip
        return ApiResponse(200, {"user": user, "sessions": rows})

    @staticmethod
    def _revoked(done: bool, caller: Caller, user: str, handle: str) -> ApiResponse:
        if not done:
            return NOT_FOUND
        current = user == caller.user and handle == caller.handle
        return ApiResponse(200, {"revoked": 1, "current": current}, LOGOUT if current else None)

    def _extended(self, caller: Caller, seconds: float) -> ApiResponse:
        now = self.clock()
        expires = now + seconds
        if self.absolute_timeout is not None and caller.created is not None:
            expires = min(expires, caller.created + self.absolute_timeout)
        body = {"seconds": seconds, "expires": _iso(expires)}
        return ApiResponse(200, body, Effect("extend", seconds))

    # -- dispatch --------------------------------------------------------------------------
    def dispatch(
        self, method: str, path: str, body: bytes | None, caller: Caller, *,
        staff: bool = False, trusted_origin: bool = False,
    ) -> ApiResponse:  # fmt: skip
        """Answer one call. ``staff``: the app's staff check said exactly ``True``.
        ``trusted_origin``: the adapter vouches that the request is same-origin
        (``same_origin``, or the framework's CSRF check already ran)."""
        checked = self._check(method, path, body, caller, staff, trusted_origin)
        if isinstance(checked, ApiResponse):
            return checked
        route, seconds = checked
        store, me = self.store, caller.user
        assert me is not None
        user = route.user or me
        if route.name in ("list", "user_list"):
            return self._listed(store.user_sessions(user), caller, user)
        engine, actor = self.engine, _actor(route, caller)
        if route.name in ("revoke", "user_revoke"):
            assert route.handle is not None
            if engine is not None:
                done = engine.revoke_handle(user, route.handle, actor=actor, client=caller.client)
            else:
                done = store.revoke_handle(user, route.handle)
            return self._revoked(done, caller, user, route.handle)
        if route.name in ("revoke_others", "user_revoke_all"):
            keep = caller.digest if route.name == "revoke_others" else None
            if engine is not None:
                count = engine.revoke_user(user, keep=keep, actor=actor, client=caller.client)
            else:
                count = store.revoke_user(user, keep=keep)
            if route.name == "revoke_others":
                return ApiResponse(200, {"revoked": count})
            effect = LOGOUT if user == me and caller.handle is not None else None
            return ApiResponse(200, {"revoked": count, "current": effect is not None}, effect)
        assert seconds is not None
        return self._extended(caller, seconds)

    async def adispatch(
        self, method: str, path: str, body: bytes | None, caller: Caller, *,
        staff: bool = False, trusted_origin: bool = False,
    ) -> ApiResponse:  # fmt: skip
        """``dispatch`` on the store's async flavour."""
        checked = self._check(method, path, body, caller, staff, trusted_origin)
        if isinstance(checked, ApiResponse):
            return checked
        route, seconds = checked
        store, me = self.store, caller.user
        assert me is not None
        user = route.user or me
        if route.name in ("list", "user_list"):
            return self._listed(await store.auser_sessions(user), caller, user)
        engine, actor, client = self.engine, _actor(route, caller), caller.client
        if route.name in ("revoke", "user_revoke"):
            assert route.handle is not None
            if engine is not None:
                done = await engine.arevoke_handle(user, route.handle, actor=actor, client=client)
            else:
                done = await store.arevoke_handle(user, route.handle)
            return self._revoked(done, caller, user, route.handle)
        if route.name in ("revoke_others", "user_revoke_all"):
            keep = caller.digest if route.name == "revoke_others" else None
            if engine is not None:
                count = await engine.arevoke_user(user, keep=keep, actor=actor, client=client)
            else:
                count = await store.arevoke_user(user, keep=keep)
            if route.name == "revoke_others":
                return ApiResponse(200, {"revoked": count})
            effect = LOGOUT if user == me and caller.handle is not None else None
            return ApiResponse(200, {"revoked": count, "current": effect is not None}, effect)
        assert seconds is not None
        return self._extended(caller, seconds)


def _actor(route: _Route, caller: Caller) -> str:
    """Who revokes, for the audit trail: the user on their own sessions, else staff."""
    return f"staff:{caller.user}" if route.staff else "user"


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat().replace("+00:00", "Z")
