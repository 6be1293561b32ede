"""The sessions API as a Django view (mounted by ``sessionkit_django.urls``).

It runs on ``request.session`` under sessionkit's middleware or under Django's own
``SessionMiddleware`` with ``SESSION_ENGINE = "sessionkit_django.engine"``. The signed-in
user is ``request.user`` (their key is ``SESSIONKIT["USER_KEY"]``, the key of the per-user
index); ``/users/<user>`` takes that key. The view is not ``csrf_exempt``: Django's
``CsrfViewMiddleware`` checks every state-changing call (JSON clients send the token in
``X-CSRFToken``; a ``GET`` of the list sets the CSRF cookie). A ``Sec-Fetch-Site`` header
that names another site is refused as well, and without ``CsrfViewMiddleware`` the
``Sec-Fetch-Site``/``Origin`` check decides alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, RawPostDataException
from django.middleware.csrf import get_token

from sessionkit import ApiResponse, Caller, SessionsAPI, same_origin
from sessionkit_django.conf import user_key_getter
from sessionkit_django.engine import SessionStoreBase

StaffCheck = Callable[[HttpRequest], bool]
CSRF_MIDDLEWARE = "django.middleware.csrf.CsrfViewMiddleware"


def is_staff(request: HttpRequest) -> bool:
    """The default staff check: Django's ``is_staff`` on an active user."""
    user = getattr(request, "user", None)
    return bool(getattr(user, "is_staff", False) and getattr(user, "is_active", False))


def origin_ok(request: HttpRequest) -> bool:
    """Same-origin by the headers, or vouched for by ``CsrfViewMiddleware`` (which already
    ran: it rejects before the view), unless the browser itself says another site."""
    if same_origin(request.method or "GET", request.headers, request.get_host(), request.scheme):
        return True
    return CSRF_MIDDLEWARE in settings.MIDDLEWARE and "sec-fetch-site" not in request.headers


def sessions_view(staff: StaffCheck = is_staff) -> Callable[..., HttpResponse]:
    """The view behind every route of the API (``path`` relative to where it is mounted)."""

    def view(request: HttpRequest, path: str = "") -> HttpResponse:
        store = request.session
        if not isinstance(store, SessionStoreBase):
            raise RuntimeError(
                "the sessions API needs sessionkit's session: add "
                "sessionkit_django.middleware.SessionMiddleware, or set SESSION_ENGINE = "
                '"sessionkit_django.engine"'
            )
        method = request.method or "GET"
        caller = Caller.of(store.fetch(), store.engine, user=_user_key(request, store))
        answer = SessionsAPI(store.engine).dispatch(
            method, "/" + path, _body(request), caller, staff=staff(request),
            trusted_origin=origin_ok(request),
        )  # fmt: skip
        apply_effect(request, answer)
        if method == "GET" and answer.status == 200:
            get_token(request)  # the CSRF cookie, for the state-changing calls to come
        body = b"" if method == "HEAD" else answer.json()
        return HttpResponse(body, status=answer.status, headers=answer.headers)

    return view


def _body(request: HttpRequest) -> bytes:
    try:
        return bytes(request.body)
    except RawPostDataException:  # a multipart form, already parsed (by the CSRF check)
        return b""  # not JSON, and only /extend reads a body


def _user_key(request: HttpRequest, store: SessionStoreBase) -> Any:
    user = getattr(request, "user", None)
    if user is None:  # no AuthenticationMiddleware: the user the session is bound to
        return store.user_id
    return user_key_getter()(user) if user.is_authenticated else None


def apply_effect(request: HttpRequest, answer: ApiResponse) -> None:
    effect = answer.effect
    if effect is None:
        return
    if effect.kind == "logout":
        if hasattr(request, "user"):
            from django.contrib.auth import logout

            logout(request)  # flush(), request.user anonymous, user_logged_out sent
        else:
            request.session.flush()
    elif effect.seconds is not None:
        request.session.set_expiry(effect.seconds)
