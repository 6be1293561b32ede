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
import time
from collections.abc import Callable
from http.cookies import Morsel
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.sessions.exceptions import SessionInterrupted
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.utils.http import http_date

from sessionkit import (
    ClientInfo,
    CommitPlan,
    LockTimeout,
    SessionEngine,
    SessionLimitReached,
    SessionTooLarge,
    StoreUnavailable,
)
from sessionkit.cookies import cookie_values, merge_header
from sessionkit.failures import Failure
from sessionkit_django import dbsc
from sessionkit_django.conf import engines
from sessionkit_django.engine import _INTERRUPTED, RequestSessionStore, serving

Handler = Callable[[HttpRequest], Any]
log = logging.getLogger("sessionkit.django")
_ATTRS = {"expires", "path", "domain", "samesite"}
_FLAGS = {"secure", "httponly"}


_BLANK = dict.fromkeys(Morsel._reserved, "")  # type: ignore[attr-defined]
_parsed_tails: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {}


def _attributes(tail: str) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The morsel attributes of a Set-Cookie tail (``Max-Age=...; Path=/; HttpOnly``), and
    the flags ``Morsel`` does not know (``Partitioned``), parsed once per distinct tail: an
    app sends only a handful."""
    parsed = _parsed_tails.get(tail)
    if parsed is None:
        attrs: dict[str, Any] = dict(_BLANK)
        extra: list[str] = []
        for attribute in tail.split("; ") if tail else ():
            key, _, val = attribute.partition("=")
            lowered = key.lower()
            if lowered == "max-age":
                attrs[lowered] = int(val)  # as Django's set_cookie stores it
            elif lowered in _ATTRS:
                attrs[lowered] = val
            elif lowered in _FLAGS:
                attrs[lowered] = True
            else:
                extra.append(attribute)
        if len(_parsed_tails) >= 64:  # bounded
            _parsed_tails.clear()
        parsed = _parsed_tails[tail] = (attrs, tuple(extra))
    return parsed


_ORDER = sorted(_BLANK)  # the order Morsel.OutputString writes attributes in
_tails: dict[tuple[Any, ...], str] = {}  # rendered attributes, by their values (bounded)
_date: tuple[int, str] = (0, "")  # (epoch second, its HTTP date): one format per second


def _http_date(when: float) -> str:
    global _date
    second, text = _date  # one read: threads may replace it meanwhile
    if second != int(when):
        second = int(when)
        text = http_date(second)
        _date = (second, text)
    return text


class _SetCookie(Morsel[str]):
    """The core's Set-Cookie, as Django's ``set_cookie``/``delete_cookie`` would spell it:
    a morsel in ``response.cookies`` with Django's attributes (an ``expires`` next to
    ``Max-Age``; a deletion is ``name=""`` with the epoch date), plus the flags ``Morsel``
    does not know (``Partitioned``). The core made the cookie, so nothing is re-validated;
    what a later middleware changes in the morsel is written as it says."""

    def __init__(self, header: str) -> None:
        pair, _, tail = header.partition("; ")
        name, _, value = pair.partition("=")
        attrs, self._extra = _attributes(tail)
        dict.update(self, attrs)
        if not value:
            dict.__setitem__(self, "httponly", "")  # Django's delete_cookie leaves it out
        elif not attrs["expires"] and attrs["max-age"] != "":
            dict.__setitem__(self, "expires", _http_date(time.time() + attrs["max-age"]))
        self._key, self._value, self._coded_value = name, value, value or '""'

    def OutputString(self, attrs: Any = None) -> str:
        """``Morsel.OutputString``, its attribute part rendered once per distinct set of
        values (an app sends a handful; the date changes once a second)."""
        if attrs is not None:
            return super().OutputString(attrs) + "".join(f"; {f}" for f in self._extra)
        values = (*map(self.get, _ORDER), self._extra)
        rendered = _tails.get(values)
        if rendered is None:
            probe: Morsel[str] = Morsel()
            dict.update(probe, self)
            probe.set("x", "", "")
            rendered = probe.OutputString()[len("x=") :] + "".join(f"; {f}" for f in self._extra)
            if len(_tails) >= 64:  # bounded
                _tails.clear()
            _tails[values] = rendered
        return f"{self._key}={self._coded_value}{rendered}"


def client_of(engine: SessionEngine, request: HttpRequest) -> ClientInfo:
    """What the core knows of the client: peer (or trusted proxy's XFF), agent, HTTPS."""
    return engine.wsgi_client(request.META, secure=request.is_secure())


def cookie_header(request: HttpRequest, name: str) -> str | None:
    """The Cookie header the core parses (strictly: duplicates, nameless pairs). When the
    request's ``COOKIES`` were already parsed and hold another value for our cookie (a
    test's ``request.COOKIES[...] = key``, an ``HttpRequest()`` built by hand), that value
    is what Django's own middleware reads, so it is ours too; it is verified all the same."""
    header: str | None = request.META.get("HTTP_COOKIE")
    parsed = request.__dict__.get("COOKIES")
    if parsed is not None:
        value = parsed.get(name)
        if value is None:
            return None
        if value not in cookie_values(header, name):
            return f"{name}={value}"
    return header


class SessionMiddleware(DjangoSessionMiddleware):
    """Subclasses Django's so that checks and apps looking for it (``admin.E410``) find it,
    and so that a view which puts another session object on ``request.session`` gets
    Django's handling of it; our own sessions never run Django's code."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        engines()  # validate the settings now: a server refuses to start on a bad one
        _refuse_locked_views()  # and on @session_lock views over a store that cannot lock
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        engine = engines().request
        if engine.dbsc is not None and engine.dbsc.handles(request.path):
            try:
                return dbsc.answer(engine.dbsc, engine, request)
            except StoreUnavailable as exc:
                return refuse(engine, exc, request)
        store = self._open(engine, request)
        token = serving.set(request)
        try:
            return self.process_response(request, self.get_response(request))
        finally:
            serving.reset(token)
            _release_sync(store)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        engine = engines().request
        if engine.dbsc is not None and engine.dbsc.handles(request.path):
            try:
                return await dbsc.aanswer(engine.dbsc, engine, request)
            except StoreUnavailable as exc:
                return refuse(engine, exc, request)
        store = self._open(engine, request)
        token = serving.set(request)
        try:
            if not store.core.loaded:  # a validly signed cookie: fetch it natively now
                try:
                    await store.afetch()
                except StoreUnavailable as exc:
                    return refuse(engine, exc, request)
            response: HttpResponseBase = await self.get_response(request)
            session = request.session
            if not isinstance(session, RequestSessionStore):
                return await sync_to_async(super().process_response)(request, response)
            if session.refused:
                return response
            try:
                if settings.SESSION_SAVE_EVERY_REQUEST:
                    (await session.afetch()).accessed = True
                plan = session.commit(response.status_code)
                ok = await session.engine.arun(plan)
            except (StoreUnavailable, SessionTooLarge, SessionLimitReached) as exc:
                return refuse(engine, exc, request)
            return self._respond(session, plan, ok, response, request) or response
        finally:
            serving.reset(token)
            await _release_async(store)

    def process_request(self, request: HttpRequest) -> None:
        """Django's ``MiddlewareMixin`` step (tests call it by hand): ``request.session``.
        Returns ``None``, as a ``process_request`` that lets the request through must."""
        self._open(engines().request, request)

    def process_response(self, request: HttpRequest, response: Any) -> Any:
        """Commit the request's session (sync), or hand another session object to Django."""
        session = getattr(request, "session", None)
        if not isinstance(session, RequestSessionStore):
            return super().process_response(request, response)
        if session.refused:  # answered by process_exception: nothing more to commit
            return response
        engine = session.engine
        try:
            if settings.SESSION_SAVE_EVERY_REQUEST:
                session.fetch().accessed = True
            plan = session.commit(response.status_code)
            ok = engine.run(plan)
        except (StoreUnavailable, SessionTooLarge, SessionLimitReached) as exc:
            return refuse(engine, exc, request)
        return self._respond(session, plan, ok, response, request) or response

    @staticmethod
    def _open(engine: SessionEngine, request: HttpRequest) -> RequestSessionStore:
        header = cookie_header(request, engine.config.cookie_name)
        core = engine.open(header, client_of(engine, request))
        store = RequestSessionStore(engine=engine, core=core)
        request.session = store
        return store

    def process_exception(self, request: HttpRequest, exception: Exception) -> Any:
        """A store that is down, a lock that stayed taken or a login refused by the session
        limit (a view that saves at once) inside the view (Django calls this before its
        own 500 handling): the core's answer, not a 500."""
        if isinstance(exception, SessionLimitReached):
            session = getattr(request, "session", None)
            if isinstance(session, RequestSessionStore):
                session.refused = True
        if isinstance(exception, (StoreUnavailable, LockTimeout, SessionLimitReached)):
            return refuse(engines().request, exception, request)
        return None

    @staticmethod
    def _respond(
        session: RequestSessionStore, plan: CommitPlan, ok: bool, response: HttpResponseBase,
        request: HttpRequest,
    ) -> HttpResponseBase | None:  # fmt: skip
        """Put the plan's headers on ``response``; the core's answer instead when the plan
        failed (a concurrent logout: the write was not made)."""
        if plan.failure is not None:
            return refuse(session.engine, plan.failure, request)
        if not ok and plan.write is not None:
            raise SessionInterrupted(_INTERRUPTED)
        if plan.set_cookie is None and session.unsent_cookie and response.status_code < 500:
            plan.set_cookie = session.unsent_cookie  # the cookie of a save() in the view
        for name, value in plan.headers():
            if name == "Set-Cookie":
                morsel = _SetCookie(value)
                response.cookies[morsel.key] = morsel
                session._issued(morsel.value or None)
            else:
                response.headers[name] = merge_header(name, response.headers.get(name))
        for name, value in plan.dbsc_headers:  # DBSC: the registration header, bound cookie
            if name == "Set-Cookie":
                morsel = _SetCookie(value)
                response.cookies[morsel.key] = morsel
            else:
                response.headers[name] = value
        return None


def refuse(
    engine: SessionEngine, cause: BaseException | Failure, request: HttpRequest
) -> HttpResponse:
    """The core's answer for a session failure (see ``sessionkit.failures``)."""
    policy = engine.refuse(cause, f"{request.method} {request.path}", log)
    assert policy is not None and policy.status is not None
    return HttpResponse(policy.body, status=policy.status, headers=dict(policy.response_headers))


# -- @session_lock -------------------------------------------------------------------------
_LOCK_ATTR = "_sessionkit_lock"
#: Set on ``@session_lock`` views, so the system check (``sessionkit.E005``) finds them.
LOCK_MARK = "__sessionkit_locks__"
_LOCK_SETTING = "SESSIONKIT['STORE']"


def session_lock(
    view: Callable[..., Any] | None = None, *, ttl: float = 30.0, wait: float = 10.0
) -> Any:
    """Run the decorated view alone for its session: concurrent requests of the same
    session wait (up to ``wait`` seconds, then ``LockTimeout``) until this one has been
    committed. The session is (re)loaded under the lock, so the view sees the last
    committed data. Requests without a valid session cookie lock nothing.

    Use ``@session_lock`` or ``@session_lock(ttl=60, wait=5)``; the store must support
    locks (memory, Redis, SQL, file, memcached) and the sessionkit middleware must be
    installed. On the cookie store the system check ``sessionkit.E005`` names these views
    (``runserver`` and the test runner stop there), the middleware refuses to load (a
    server that runs no checks does not start), and a view that neither saw raises
    ``LocksUnsupported`` on its requests, with or without a session cookie.
    """

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        import functools

        if iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_view(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                store = _managed(request)
                engine = store.engine
                engine.require_locks([f"{request.method} {request.path}"], setting=_LOCK_SETTING)
                held = engine.alock(store.core, ttl=ttl, wait=wait)
                await held.__aenter__()
                setattr(store, _LOCK_ATTR, held)
                store.reread()
                await store.afetch()  # natively, as the middleware read it
                return await func(request, *args, **kwargs)

            setattr(async_view, LOCK_MARK, True)
            return async_view

        @functools.wraps(func)
        def sync_view(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            store = _managed(request)
            route = [f"{request.method} {request.path}"]
            store.engine.require_locks(route, setting=_LOCK_SETTING)
            held = store.engine.lock(store.core, ttl=ttl, wait=wait)
            held.__enter__()
            setattr(store, _LOCK_ATTR, held)
            store.reread()
            return func(request, *args, **kwargs)

        setattr(sync_view, LOCK_MARK, True)
        return sync_view

    return decorate(view) if view is not None else decorate


# -- @fresh_session ------------------------------------------------------------------------
def fresh_session(view: Callable[..., Any]) -> Any:
    """Read the decorated view's session from the store itself, never from the local cache
    (``?cache=on``): a route that must see a logout or a role change the moment it lands
    anywhere (a payment, a password change, an admin action). Works for ``async def``
    views too, and for class-based views through ``method_decorator``.

    The session is loaded lazily under WSGI, so it is marked before the view reads it; one
    already read (by middleware, or by the async middleware, which loads it before the
    view) is read again from the store; one already changed in this request raises
    ``FreshOrderError``. Put it above ``@login_required``; with ``@session_lock``, either
    order reads fresh under the lock. Without a cache every read is the store's own, so
    nothing is read twice.
    """
    import functools

    if iscoroutinefunction(view):

        @functools.wraps(view)
        async def async_view(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            store = _require_fresh(request)
            await store.afetch()  # natively, as the middleware read it
            return await view(request, *args, **kwargs)

        return async_view

    @functools.wraps(view)
    def sync_view(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        _require_fresh(request)
        return view(request, *args, **kwargs)

    return sync_view


def _require_fresh(request: HttpRequest) -> RequestSessionStore:
    store = _managed(request, "@fresh_session")
    core = store.core
    store.engine.require_fresh(core, reload=True)
    if not core.loaded:
        store.reread()  # read on its next use (again, if the cache served it before)
    return store


def _refuse_locked_views() -> None:
    """``LocksUnsupported`` naming the ``@session_lock`` views of ``ROOT_URLCONF`` when the
    store cannot lock: when a server loads the middleware (gunicorn, uWSGI and daphne run
    no system checks), so it does not start, as ``sessionkit.E005`` stops ``runserver``.
    The URLconf is imported here, earlier than Django would, only on such a store."""
    engine = engines().request
    if engine.store.supports_lock or not getattr(settings, "ROOT_URLCONF", None):
        return  # (no URLconf: a middleware built by hand, as Django's own tests do)
    from django.urls import get_resolver

    from sessionkit_django.checks import locked_views

    views = locked_views(get_resolver().url_patterns)
    if views:
        engine.require_locks(views, setting=_LOCK_SETTING)


def _managed(request: HttpRequest, decorator: str = "@session_lock") -> RequestSessionStore:
    store = getattr(request, "session", None)
    if not isinstance(store, RequestSessionStore):
        raise RuntimeError(
            f"{decorator} needs sessionkit_django.middleware.SessionMiddleware in MIDDLEWARE"
        )
    return store


def _release_sync(store: RequestSessionStore) -> None:
    held = store.__dict__.pop(_LOCK_ATTR, None)
    if held is None:
        return
    if hasattr(held, "__aexit__"):
        from asgiref.sync import async_to_sync

        async_to_sync(held.__aexit__)(None, None, None)
    else:
        held.__exit__(None, None, None)


async def _release_async(store: RequestSessionStore) -> None:
    held = store.__dict__.pop(_LOCK_ATTR, None)
    if held is None:
        return
    if hasattr(held, "__aexit__"):
        await held.__aexit__(None, None, None)
    else:
        await sync_to_async(held.__exit__, thread_sensitive=False)(None, None, None)
