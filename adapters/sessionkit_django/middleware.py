"""``sessionkit_django.middleware.SessionMiddleware``: replaces Django's, sync and async.

Per request: ``engine.open()`` verifies the cookie with no I/O (a forged one never reaches
the store), ``request.session`` is a managed ``SessionStore`` around the core session, and
after the view ``engine.commit()`` decides the write, the cookie, ``Vary``/``Cache-Control``
and the no-save-on-5xx rule; ``run()``/``arun()`` execute it. Under ASGI the store's async
methods are awaited directly, with no thread hop. A save that finds the session deleted
meanwhile (a concurrent logout) is not performed and the request ends in 400, as with
Django's ``SessionInterrupted``; that and every other failure is answered with the core's
policy (``sessionkit.failures``, docs/failures.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from http.cookies import Morsel
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.http import HttpRequest, HttpResponse, HttpResponseBase

from sessionkit import (
    ClientInfo,
    CommitPlan,
    LockTimeout,
    SessionEngine,
    SessionTooLarge,
    StoreUnavailable,
)
from sessionkit.cookies import merge_header
from sessionkit.failures import Failure
from sessionkit_django.conf import engines
from sessionkit_django.engine import SessionStore

Handler = Callable[[HttpRequest], Any]
log = logging.getLogger("sessionkit.django")
_ATTRS = {"max-age", "expires", "path", "domain", "samesite"}
_FLAGS = {"secure", "httponly"}


_BLANK = dict.fromkeys(Morsel._reserved, "")  # type: ignore[attr-defined]
_parsed_tails: dict[str, dict[str, str | bool]] = {}


def _attributes(tail: str) -> dict[str, str | bool]:
    """The morsel attributes of a Set-Cookie tail (``Max-Age=...; Path=/; HttpOnly``),
    parsed once per distinct tail: an app sends only a handful."""
    parsed = _parsed_tails.get(tail)
    if parsed is None:
        parsed = dict(_BLANK)
        for attribute in tail.split("; ") if tail else ():
            key, _, val = attribute.partition("=")
            lowered = key.lower()
            if lowered in _ATTRS:
                parsed[lowered] = val
            elif lowered in _FLAGS:
                parsed[lowered] = True
        if len(_parsed_tails) >= 64:  # bounded
            _parsed_tails.clear()
        _parsed_tails[tail] = parsed
    return parsed


class _SetCookie(Morsel[str]):
    """A morsel that writes the core's Set-Cookie value verbatim (attributes included,
    e.g. ``Partitioned``), while still reading like any other in ``response.cookies``.
    The core made the header, so name and value need no re-validation here."""

    def __init__(self, header: str) -> None:
        pair, _, tail = header.partition("; ")
        name, _, value = pair.partition("=")
        dict.update(self, _attributes(tail))
        self._key, self._value, self._coded_value = name, value, value
        self._header = header

    def OutputString(self, attrs: Any = None) -> str:
        return self._header


def client_of(engine: SessionEngine, request: HttpRequest) -> ClientInfo:
    """What the core knows of the client: peer (or trusted proxy's XFF), agent, HTTPS."""
    return engine.wsgi_client(request.META, secure=request.is_secure())


class SessionMiddleware(DjangoSessionMiddleware):
    """Subclasses Django's only so that checks and apps looking for it (``admin.E410``)
    find it; none of its code runs."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        engines()  # validate the settings now: a server refuses to start on a bad one
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        engine = engines().request
        store = self._open(engine, request)
        try:
            response = self.get_response(request)
            session = request.session
            if isinstance(session, SessionStore) and session._managed:
                try:
                    if settings.SESSION_SAVE_EVERY_REQUEST:
                        session._data()
                        session._core.accessed = True
                    plan = engine.commit(session._core, response.status_code)
                    ok = engine.run(plan)
                except (StoreUnavailable, SessionTooLarge) as exc:
                    return refuse(engine, exc, request)
                return self._finish(engine, request, session, plan, ok, response)
            return response
        finally:
            _release_sync(store)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        engine = engines().request
        store = self._open(engine, request)
        try:
            if not store._core.loaded:  # a validly signed cookie: fetch it natively now
                try:
                    await store._adata()
                except StoreUnavailable as exc:
                    return refuse(engine, exc, request)
            response: HttpResponseBase = await self.get_response(request)
            session = request.session
            if isinstance(session, SessionStore) and session._managed:
                try:
                    if settings.SESSION_SAVE_EVERY_REQUEST:
                        await session._adata()
                        session._core.accessed = True
                    plan = engine.commit(session._core, response.status_code)
                    ok = await engine.arun(plan)
                except (StoreUnavailable, SessionTooLarge) as exc:
                    return refuse(engine, exc, request)
                return self._finish(engine, request, session, plan, ok, response)
            return response
        finally:
            await _release_async(store)

    @staticmethod
    def _open(engine: SessionEngine, request: HttpRequest) -> SessionStore:
        header = request.META.get("HTTP_COOKIE")
        core = engine.open(header, client_of(engine, request))
        store = SessionStore.for_request(engine, core, core._ctx.cookie)
        request.session = store
        return store

    def process_exception(self, request: HttpRequest, exception: Exception) -> Any:
        """A store that is down or a lock that stayed taken inside the view (Django calls
        this before its own 500 handling): the core's answer, not a 500."""
        if isinstance(exception, (StoreUnavailable, LockTimeout)):
            return refuse(engines().request, exception, request)
        return None

    @staticmethod
    def _finish(
        engine: SessionEngine, request: HttpRequest, session: SessionStore, plan: CommitPlan,
        ok: bool, response: HttpResponseBase,
    ) -> HttpResponseBase:  # fmt: skip
        if plan.failure is not None:  # a concurrent logout: the write was not made
            return refuse(engine, plan.failure, request)
        for name, value in plan.headers():
            if name == "Set-Cookie":
                morsel = _SetCookie(value)
                response.cookies[morsel.key] = morsel
                session._key = morsel.value or None
            else:
                response.headers[name] = merge_header(name, response.headers.get(name))
        return response


def refuse(
    engine: SessionEngine, cause: BaseException | Failure, request: HttpRequest
) -> HttpResponse:
    """The core's answer for a session failure (see ``sessionkit.failures``)."""
    policy = engine.refuse(cause, f"{request.method} {request.path}", log)
    assert policy is not None and policy.status is not None
    return HttpResponse(policy.body, status=policy.status, headers=dict(policy.response_headers))


# -- @session_lock -------------------------------------------------------------------------
_LOCK_ATTR = "_sessionkit_lock"


def session_lock(
    view: Callable[..., Any] | None = None, *, ttl: float = 30.0, wait: float = 10.0
) -> Any:
    """Run the decorated view alone for its session: concurrent requests of the same
    session wait (up to ``wait`` seconds, then ``LockTimeout``) until this one has been
    committed. The session is (re)loaded under the lock, so the view sees the last
    committed data. Requests without a valid session cookie lock nothing.

    Use ``@session_lock`` or ``@session_lock(ttl=60, wait=5)``; the store must support
    locks (memory, Redis, SQL, file) and the sessionkit middleware must be installed.
    """

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        import functools

        if iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_view(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                store = _managed(request)
                engine = store._engine
                held = engine.alock(_reopen(store), ttl=ttl, wait=wait)
                await held.__aenter__()
                setattr(store, _LOCK_ATTR, held)
                return await func(request, *args, **kwargs)

            return async_view

        @functools.wraps(func)
        def sync_view(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            store = _managed(request)
            held = store._engine.lock(_reopen(store), ttl=ttl, wait=wait)
            held.__enter__()
            setattr(store, _LOCK_ATTR, held)
            return func(request, *args, **kwargs)

        return sync_view

    return decorate(view) if view is not None else decorate


def _managed(request: HttpRequest) -> SessionStore:
    store = getattr(request, "session", None)
    if not isinstance(store, SessionStore) or not store._managed:
        raise RuntimeError(
            "@session_lock needs sessionkit_django.middleware.SessionMiddleware in MIDDLEWARE"
        )
    return store


def _reopen(store: SessionStore) -> Any:
    """If something read the session before the view (e.g. CSRF_USE_SESSIONS), read it
    again once the lock is held; it may have changed while we waited."""
    core = store._core
    if core.loaded and store._key is not None and not core.modified:
        engine = store._engine
        fresh = engine.open(f"{engine.config.cookie_name}={store._key}", core._ctx.client)
        store._core = fresh
        return fresh
    return core


def _release_sync(store: SessionStore) -> None:
    held = store.__dict__.pop(_LOCK_ATTR, None)
    if held is None:
        return
    if hasattr(held, "__aexit__"):
        from asgiref.sync import async_to_sync

        async_to_sync(held.__aexit__)(None, None, None)
    else:
        held.__exit__(None, None, None)


async def _release_async(store: SessionStore) -> None:
    held = store.__dict__.pop(_LOCK_ATTR, None)
    if held is None:
        return
    if hasattr(held, "__aexit__"):
        await held.__aexit__(None, None, None)
    else:
        await sync_to_async(held.__exit__, thread_sensitive=False)(None, None, None)
