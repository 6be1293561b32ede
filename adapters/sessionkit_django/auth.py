"""``django.contrib.auth`` integration: sessions belong to users, and users control them.

- ``user_logged_in`` binds the session to the user, so it is in the user's index (listed by
  ``user_sessions``, revoked with ``revoke_user``); Django's ``login()`` has already rotated
  the ID (``cycle_key``/``flush``), which the binding confirms.
- ``user_logged_out`` invalidates the session server-side, even if a custom logout view
  forgot ``flush()``: a captured cookie is dead afterwards.
- ``update_session_auth_hash`` here wraps Django's and then logs out the user's other
  sessions at once (Django's own only makes them fail their next hash check).
- ``logout_other_sessions(request)`` is the "log out my other devices" button.

The per-user functions need a store with a user index (memory, file, SQL, Redis). The cookie
store keeps nothing server-side, so it cannot list or revoke: those calls raise
``StoreError`` and say so.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import update_session_auth_hash as _django_update_hash
from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.http import HttpRequest

from sessionkit import ClientInfo, SessionInfo
from sessionkit_django.conf import engines, user_key_getter
from sessionkit_django.engine import SessionStoreBase


def _store_of(request: HttpRequest | None) -> SessionStoreBase | None:
    session = getattr(request, "session", None)
    return session if isinstance(session, SessionStoreBase) else None


def _user_key(user: Any) -> str:
    return user_key_getter()(user)


def bind_on_login(sender: Any, request: HttpRequest | None, user: Any, **_: Any) -> None:
    store = _store_of(request)
    if store is not None and user is not None and user.pk is not None:
        # login() rotated the ID already (cycle_key, or flush for another user), or kept it on
        # purpose for the same user logging in again, as Django does
        store.bind_user(_user_key(user), regenerate=False)


def invalidate_on_logout(sender: Any, request: HttpRequest | None, **_: Any) -> None:
    store = _store_of(request)
    if store is not None:
        store.flush()


def connect() -> None:
    """Called by the app's ``ready()``; idempotent (Django dedups by ``dispatch_uid``)."""
    user_logged_in.connect(bind_on_login, dispatch_uid="sessionkit_django.bind_on_login")
    user_logged_out.connect(
        invalidate_on_logout, dispatch_uid="sessionkit_django.invalidate_on_logout"
    )


def logout_other_sessions(request: HttpRequest) -> int:
    """Revoke every session of ``request.user`` except this one; returns how many."""
    user, keep = _who(request)
    engine = engines().request
    return engine.revoke_user(user, keep=keep, actor="user", client=_client(request))


async def alogout_other_sessions(request: HttpRequest) -> int:
    user, keep = _who(request)
    engine = engines().request
    return await engine.arevoke_user(user, keep=keep, actor="user", client=_client(request))


def _client(request: HttpRequest | None) -> ClientInfo | None:
    """The request's client as the session saw it (for the audit trail)."""
    store = _store_of(request)
    return store.client if store is not None else None


def _who(request: HttpRequest) -> tuple[str, str | None]:
    store = _store_of(request)
    user = getattr(request, "user", None)
    if store is None or user is None or not user.is_authenticated:
        raise PermissionError(
            "logout_other_sessions needs a logged-in user on a sessionkit session"
        )
    return _user_key(user), store.digest


def update_session_auth_hash(request: HttpRequest, user: Any) -> int:
    """Django's ``update_session_auth_hash`` (keeps this session logged in after a password
    change, under a new ID), then revoke the user's other sessions now."""
    _django_update_hash(request, user)
    if getattr(request, "user", None) != user:
        return 0
    return engines().request.revoke_user(
        _user_key(user), keep=_current(request), actor="user", client=_client(request)
    )


def _current(request: HttpRequest) -> str | None:
    store = _store_of(request)
    return store.digest if store is not None else None


def user_sessions(user: Any) -> list[SessionInfo]:
    """The user's live sessions, as opaque handles (never IDs), for a device list."""
    return engines().request.store.user_sessions(_user_key(user))


def revoke_all(user: Any, *, actor: str = "app", request: HttpRequest | None = None) -> int:
    """Log out every session of ``user`` (the admin page's "Revoke all"); ``actor`` names
    who did it in the audit trail (the admin page: ``"staff:<key>"``), ``request`` the
    request it came in (its device and network)."""
    return engines().request.revoke_user(_user_key(user), actor=actor, client=_client(request))


def revoke_session(
    user: Any, session_handle: str, *, actor: str = "app", request: HttpRequest | None = None
) -> bool:
    """Log out one of the user's sessions by the handle ``user_sessions`` showed."""
    return engines().request.revoke_handle(
        _user_key(user), session_handle, actor=actor, client=_client(request)
    )
