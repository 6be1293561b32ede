"""SessionMiddleware: Starlette's ``SessionMiddleware`` signature on sessionkit's engine.

Pure ASGI, in the style of Starlette's own: the cookie is verified before the app runs (no
I/O), the record is fetched only when that cookie is validly signed, and the commit runs
when ``http.response.start`` passes by, because that is the last moment at which headers can
still be added and the first at which the status is known. Body messages, streaming and
background tasks pass through untouched. Every decision is the engine's; this module only
translates ASGI scopes and messages.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from contextlib import AsyncExitStack
from typing import Any, NoReturn

import anyio.to_thread

from sessionkit import (
    ClientInfo,
    ConfigError,
    DbscRequest,
    DeviceBinding,
    EventBus,
    LockTimeout,
    Session,
    SessionConfig,
    SessionEngine,
    SessionLimitReached,
    SessionNotLoaded,
    SessionTooLarge,
    Store,
    StoreUnavailable,
)
from sessionkit.config import timeouts_for_age
from sessionkit.cookies import MERGERS
from sessionkit.events import Subscriber
from sessionkit.failures import Failure, FailurePolicy
from sessionkit_asgi import loops, routes
from sessionkit_asgi.loops import asyncio_running

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The scope key under which the per-request ``Exchange`` lives (shared by scope copies).
EXCHANGE_KEY = "sessionkit"
#: On excluded paths: the engine alone (``get_engine`` works there; the session does not).
ENGINE_KEY = "sessionkit.engine"
log = logging.getLogger("sessionkit.asgi")

_FOURTEEN_DAYS = 14 * 24 * 3600
_ADAPTER_OPTIONS = frozenset({
    "exclude_paths", "store_error_status", "store_error_body", "clock", "events", "on_event",
})  # fmt: skip
_MERGED = frozenset(name.encode("latin-1") for name in MERGERS)


class Exchange:
    """One request's session state, kept in ``scope["sessionkit"]``.

    An object rather than loose scope keys, so that middleware which copies the scope
    (``{**scope}``) still shares it: the route lock swaps in a freshly loaded session and
    hands over its release, and the commit must see both.
    """

    __slots__ = ("client", "cookie", "locks", "middleware", "session")

    def __init__(
        self, middleware: SessionMiddleware, session: Session, cookie: str | None,
        client: ClientInfo,
    ) -> None:  # fmt: skip
        self.middleware = middleware
        self.session = session
        self.cookie = cookie
        self.client = client
        self.locks: AsyncExitStack | None = None

    async def release(self) -> None:
        """Let go of a route lock, if one is held; a failing unlock is logged, since the
        lock's TTL frees it anyway and the response must still go out."""
        locks, self.locks = self.locks, None
        if locks is not None:
            try:
                await locks.aclose()
            except Exception:
                log.exception("sessionkit: releasing the session lock failed")


class StarletteSession(Session):
    """sessionkit's ``Session`` with the hook Starlette's ``request.session`` calls, so a
    view that merely takes ``request.session`` varies on Cookie exactly as with Starlette's
    own middleware."""

    __slots__ = ()

    def mark_accessed(self) -> None:
        self.accessed = True


class NotLoadedSession:
    """Stands in for the session on excluded paths: any use raises ``SessionNotLoaded``,
    so a view that needs the session there fails loudly instead of seeing it empty."""

    __slots__ = ("_path",)

    def __init__(self, path: str) -> None:
        object.__setattr__(self, "_path", path)

    def raise_not_loaded(self, *args: object, **kwargs: object) -> NoReturn:
        raise SessionNotLoaded(
            f"the session is not loaded on {self._path!r}: the path matches the "
            "SessionMiddleware's exclude_paths. Remove it from exclude_paths to use the "
            "session there."
        )

    def __getattr__(self, name: str) -> NoReturn:
        self.raise_not_loaded()

    __getitem__ = __setitem__ = __delitem__ = __contains__ = __iter__ = __len__ = raise_not_loaded
    __setattr__ = __bool__ = __eq__ = raise_not_loaded
    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<session not loaded on {self._path!r}>"


def starlette_refreshes_each_request() -> bool:
    """Whether the installed Starlette's own ``SessionMiddleware`` sends the cookie again on
    every response whose session holds data, read or not (so its ``max_age`` slides with
    each request): Starlette before 1.0 did; 1.0 sends it only for a modified session
    (its ``Session`` tracks changes, encode/starlette#3166). Without Starlette (a plain
    ASGI app) there is no older behaviour to keep: False.

    Read from ``starlette.__version__``, not the package metadata: Starlette builds its
    middleware inside the event loop, where a metadata lookup's file system calls block.
    """
    try:
        from starlette import __version__
    except ImportError:
        return False
    major = __version__.split(".", 1)[0]
    return major.isdigit() and int(major) < 1


def build_config(
    secret_key: Any,
    *,
    session_cookie: str = "session",
    max_age: int | None = _FOURTEEN_DAYS,
    path: str = "/",
    same_site: str | None = "lax",
    https_only: bool = False,
    domain: str | None = None,
    partitioned: bool = False,
    store: str | Store | None = None,
    options: dict[str, Any] | None = None,
) -> SessionConfig:
    """Translate Starlette's arguments into a ``SessionConfig``.

    ``max_age`` becomes the idle timeout (``None``: a browser-session cookie, the server
    still enforcing the configured idle and absolute timeouts); a ``max_age`` longer than
    the default absolute timeout raises that too, so a Starlette user's long sessions stay
    long. Under a Starlette before 1.0 the cookie is re-sent on every request, as that
    Starlette did (``refresh_each_request``). Core settings passed in ``options`` win over
    what these arguments imply.
    """
    if not isinstance(secret_key, (str, bytes, list, tuple)):
        secret_key = str(secret_key)  # starlette.datastructures.Secret
    values: dict[str, Any] = {
        "secret_key": secret_key,
        "store": "cookie://" if store is None else store,
        "cookie_name": session_cookie,
        "cookie_path": path,
        "cookie_samesite": same_site,
        "cookie_secure": https_only,
        "cookie_domain": domain,
        "cookie_partitioned": partitioned,
        "cookie_spelling": "starlette",  # the drop-in's headers read as Starlette's did
        "refresh_each_request": starlette_refreshes_each_request(),
    }
    if max_age is None:
        values["browser_session"] = True
    elif max_age > 0:
        values.update(timeouts_for_age(max_age))
    else:  # Starlette: Max-Age=0 goes out, and the cookie is refused when replayed
        values["ephemeral"] = True
    values.update(options or {})
    return SessionConfig.from_mapping(values)


class SessionMiddleware:
    """A drop-in replacement for ``starlette.middleware.sessions.SessionMiddleware``.

    The Starlette arguments mean what they mean there. ``store`` is a store object or URL
    (default: the encrypted cookie, ``cookie://``). Other keywords are ``SessionConfig``
    settings, plus:

    - ``exclude_paths``: path prefixes on which no session is loaded at all (static files,
      health checks); using the session there raises ``SessionNotLoaded``;
    - ``store_error_status``: the status answered when the store is down (default: the
      core's policy, 503); ``None`` lets ``StoreUnavailable`` propagate instead;
    - ``events`` (an ``EventBus``) and ``on_event`` (a callback for every event), for
      logging and metrics; ``clock`` for tests.
    """

    def __init__(
        self,
        app: ASGIApp,
        secret_key: Any,
        session_cookie: str = "session",
        max_age: int | None = _FOURTEEN_DAYS,
        path: str = "/",
        same_site: str | None = "lax",
        https_only: bool = False,
        domain: str | None = None,
        partitioned: bool = False,
        store: str | Store | None = None,
        *unexpected: Any,
        **options: Any,
    ) -> None:
        # ``*unexpected`` exists only so that mypy matches this signature against
        # Starlette's ``Middleware``/``add_middleware`` ParamSpec (it fails to with
        # ``**options`` alone); nothing may be passed through it.
        if unexpected:
            raise TypeError(
                "SessionMiddleware takes at most 10 positional arguments; pass store "
                "settings as keywords (e.g. idle_timeout=3600)"
            )
        self.app = app
        #: A fatal setting found while Starlette/FastAPI built the middleware stack lazily,
        #: inside their first call: answered by refusing the lifespan startup.
        self.startup_error: ConfigError | None = None
        self._engine: SessionEngine | None = None
        self._engine_args: tuple[SessionConfig, EventBus, dict[str, Any]] | None = None
        try:
            adapter = {k: options.pop(k) for k in list(options) if k in _ADAPTER_OPTIONS}
            config = build_config(
                secret_key, session_cookie=session_cookie, max_age=max_age, path=path,
                same_site=same_site, https_only=https_only, domain=domain,
                partitioned=partitioned, store=store, options=options,
            )  # fmt: skip
            engine_options: dict[str, Any] = {}
            if "clock" in adapter:
                engine_options["clock"] = adapter["clock"]
            events: EventBus = adapter.get("events") or EventBus()
            on_event: Subscriber | None = adapter.get("on_event")
            if on_event is not None:
                events.subscribe(on_event)
            self._engine_args = (config, events, engine_options)
            if not (isinstance(config.store, str) and loops.in_event_loop()):
                self._engine = self._make_engine()
            # else Starlette is building its middleware inside the event loop, on its first
            # call: opening the store here (importing its client library, touching the file
            # system) would block the loop, so the first call opens it in a worker thread
            self.exclude_paths = _prefixes(adapter.get("exclude_paths", ()))
            status = adapter.get(
                "store_error_status", config.failure_policies[Failure.STORE_DOWN].status
            )
            if status is not None and not (isinstance(status, int) and 400 <= status <= 599):
                raise ConfigError("store_error_status", f"{status!r}: use a 4xx/5xx status or None")
            self.store_error_status: int | None = status
            body = adapter.get("store_error_body", "auto")
            if body not in ("auto", "json", "text"):
                raise ConfigError("store_error_body", f"{body!r}: use 'auto', 'json' or 'text'")
            self.store_error_body: str = body
            self._trusted = bool(config.trusted_networks)
            self._owns_store = not isinstance(config.store, Store)  # opened here from a URL
            self._clients: dict[tuple[str | None, str, str | None, str | None], ClientInfo] = {}
        except ConfigError as exc:
            if not loops.in_event_loop():
                raise  # built eagerly (plain ASGI, module level): fail right here
            # Starlette builds its middleware on its first call, which under uvicorn is the
            # lifespan startup: raising there reads to uvicorn as "lifespan unsupported", and
            # it would go on to serve 500s. Refusing that startup makes it exit instead.
            self.startup_error = exc
            log.critical("sessionkit: %s", exc)

    def _make_engine(self) -> SessionEngine:
        if self._engine_args is None:  # the settings were refused: there is no engine
            raise self.startup_error or ConfigError("store", "the middleware was not set up")
        config, events, engine_options = self._engine_args
        engine = SessionEngine(config, events=events, **engine_options)
        engine.session_class = StarletteSession
        return engine

    @property
    def engine(self) -> SessionEngine:
        """The engine. Built inside the event loop, the middleware opens its store on its
        first call (in a worker thread); read before that, the store opens right here."""
        if self._engine is None:
            self._engine = self._make_engine()
        return self._engine

    async def _open_engine(self) -> None:
        """Open the store in a worker thread (see ``__init__``). A setting the store refuses
        (an unknown scheme, a bad option) is a startup error, as if found at build time."""
        try:
            engine = await anyio.to_thread.run_sync(self._make_engine)
        except ConfigError as exc:
            if self.startup_error is None:
                self.startup_error = exc
                log.critical("sessionkit: %s", exc)
            return
        if self._engine is None:
            self._engine = engine
        else:  # a concurrent first call opened it first: keep one store
            await anyio.to_thread.run_sync(engine.store.close)

    # ------------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if self._engine is None and self.startup_error is None:
            await self._open_engine()
        if self.startup_error is not None:
            await self._refuse_startup(scope, receive, send, self.startup_error)
            return
        if kind != "http" and kind != "websocket":
            if kind == "lifespan" and not self.engine.store.supports_lock:
                locked = routes.locked_routes(scope.get("app", self.app))
                if locked:
                    try:
                        self.engine.require_locks(locked)
                    except ConfigError as exc:
                        self.startup_error = exc
                        log.critical("sessionkit: %s", exc)
                        await self._refuse_startup(scope, receive, send, exc)
                        return
            if kind == "lifespan" and self._owns_store:
                send = self._closing_on_shutdown(send)
            await self.app(scope, receive, send)
            return
        if self.exclude_paths and scope["path"].startswith(self.exclude_paths):
            path = scope["path"]
            if any(path == p or path.startswith(p.rstrip("/") + "/") for p in self.exclude_paths):
                scope["session"] = NotLoadedSession(path)
                scope[ENGINE_KEY] = self.engine
                await self.app(scope, receive, send)
                return
        dbsc = self.engine.dbsc
        if dbsc is not None and kind == "http" and dbsc.handles(scope["path"]):
            await self._device_binding(scope, receive, send, dbsc)
            return
        exchange = self.open(scope)
        session = exchange.session
        if not session.loaded:  # a validly signed cookie: fetch its record
            try:
                await loops.aload(self.engine, session)
            except StoreUnavailable as exc:
                if self.store_error_status is None:
                    raise
                await self._refuse(scope, send, exc)
                return
        scope["session"] = session
        scope[EXCHANGE_KEY] = exchange
        if kind == "websocket":
            await self._websocket(scope, receive, send, exchange)
            return

        started = False
        failed = False  # the store failed at commit time: the app's own response is dropped

        async def send_wrapper(message: Message) -> None:
            nonlocal failed, started
            if message["type"] != "http.response.start":
                if not failed:
                    await send(message)
                return
            started = True
            try:
                plan = self.engine.commit(exchange.session, message["status"])
                await loops.arun(self.engine, plan)
            except (StoreUnavailable, SessionTooLarge, SessionLimitReached) as exc:
                if self.store_error_status is None and isinstance(exc, StoreUnavailable):
                    raise
                failed = True
                await exchange.release()
                await self._refuse(scope, send, exc)
                return
            await exchange.release()
            if plan.failure is not None:  # a concurrent logout: the write was not made
                failed = True
                await self._refuse(scope, send, plan.failure)
                return
            headers = plan.headers()
            if plan.dbsc_headers:
                headers.extend(plan.dbsc_headers)
            if headers:
                message["headers"] = _merge(message.get("headers") or (), headers)
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except (StoreUnavailable, LockTimeout, SessionLimitReached) as exc:  # a view's own call
            if started or (self.store_error_status is None and isinstance(exc, StoreUnavailable)):
                raise
            await exchange.release()
            await self._refuse(scope, send, exc)
        finally:
            await exchange.release()

    # ------------------------------------------------------------------------------------
    def open(self, scope: Scope) -> Exchange:
        """Verify the request's cookie (no I/O) and describe the client to the engine."""
        cookie = None
        user_agent = ""
        forwarded = None
        for name, value in scope["headers"]:
            if name == b"cookie":
                text = value.decode("latin-1")
                cookie = text if cookie is None else f"{cookie}; {text}"
            elif name == b"user-agent":
                user_agent = value.decode("latin-1")
            elif name == b"x-forwarded-for" and self._trusted:
                text = value.decode("latin-1")
                forwarded = text if forwarded is None else f"{forwarded}, {text}"
        peer = scope.get("client")
        key = (peer[0] if peer else None, user_agent, scope.get("scheme"), forwarded)
        client = self._clients.get(key)
        if client is None:  # ClientInfo is immutable: one per distinct client, bounded
            secure = key[2] in ("https", "wss")
            client = self.engine.client(key[0], user_agent, secure=secure, forwarded_for=forwarded)
            if len(self._clients) >= 4096:
                self._clients.clear()
            self._clients[key] = client
        opened = self.engine.open(cookie, client)
        return Exchange(self, opened, cookie, client)

    async def _device_binding(
        self, scope: Scope, receive: Receive, send: Send, dbsc: DeviceBinding
    ) -> None:
        """Answer DBSC's registration or refresh endpoint (``sessionkit.dbsc``): the core
        decides everything; this only reads the request and writes the answer."""
        exchange = self.open(scope)
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        while True:  # the body is not used: drain it
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        host = headers.get("host") or "localhost"
        url = f"{scope.get('scheme', 'http')}://{host}{scope.get('root_path', '')}{scope['path']}"
        request = DbscRequest(
            scope["method"], scope["path"], url, headers, exchange.cookie, exchange.client
        )
        try:
            if asyncio_running():
                answer = await dbsc.ahandle(request)
            else:  # trio: the stores' async clients speak asyncio only
                answer = await anyio.to_thread.run_sync(dbsc.handle, request)
        except StoreUnavailable as exc:
            if self.store_error_status is None:
                raise
            await self._refuse(scope, send, exc)
            return
        body = answer.content()
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers]
        raw.append((b"content-length", str(len(body)).encode("ascii")))
        await send({"type": "http.response.start", "status": answer.status, "headers": raw})
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    async def _refuse_startup(
        scope: Scope, receive: Receive, send: Send, error: ConfigError
    ) -> None:
        """A fatal setting: the lifespan startup fails with its message, then the error is
        raised, as Starlette's router does: uvicorn exits (it ignores an exception after
        ``startup.failed``) and Starlette's ``with TestClient(app)`` raises it (returning
        instead would let the client go on and hang at shutdown). Any request before
        that (a server without lifespan) raises it too."""
        if scope["type"] != "lifespan":
            raise error
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.failed", "message": f"sessionkit: {error}"})
        raise error

    def _closing_on_shutdown(self, send: Send) -> Send:
        """Close the store this middleware opened (its connection pools belong to the
        server's event loop) when the app reports a finished shutdown."""

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                try:
                    await loops.aclose(self.engine.store)
                except Exception:
                    log.exception("sessionkit: closing the session store failed")
            await send(message)

        return send_wrapper

    async def _websocket(
        self, scope: Scope, receive: Receive, send: Send, exchange: Exchange
    ) -> None:
        """A WebSocket sees the session its handshake carried. Nothing is written back: an
        accepted socket cannot set cookies, so a write could never reach the browser
        consistently; changes live only as long as the connection."""
        try:
            await self.app(scope, receive, send)
        finally:
            await exchange.release()
            if exchange.session.modified:
                log.warning(
                    "sessionkit: the session was changed on the WebSocket %r; changes made "
                    "on a WebSocket are not saved (make them in an HTTP request)",
                    scope.get("path"),
                )

    async def _refuse(self, scope: Scope, send: Send, cause: BaseException | Failure) -> None:
        """Answer the core's policy for ``cause`` (see ``sessionkit.failures``)."""
        where = f"{scope.get('method', 'WEBSOCKET')} {scope.get('path')}"
        policy: FailurePolicy = self.engine.refuse(cause, where, log)  # type: ignore[assignment]
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1011, "reason": policy.failure.value})
            return
        status = policy.status
        if policy.failure is Failure.STORE_DOWN and self.store_error_status is not None:
            status = self.store_error_status
        headers = [(k.lower().encode("latin-1"), v.encode("latin-1"))
                   for k, v in policy.response_headers]  # fmt: skip
        if self._json_body(scope):
            body = json.dumps({"detail": policy.body}).encode()
            headers = [(k, v) for k, v in headers if k != b"content-type"]
            headers.append((b"content-type", b"application/json"))
        else:
            body = policy.body.encode("utf-8")
        headers.append((b"content-length", str(len(body)).encode("ascii")))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _json_body(self, scope: Scope) -> bool:
        """``store_error_body="auto"``: JSON ``{"detail": ...}`` where the app answers its own
        errors so (a FastAPI app) or the client asks for JSON first; plain text otherwise."""
        if self.store_error_body != "auto":
            return self.store_error_body == "json"
        if type(scope.get("app")).__module__.partition(".")[0] == "fastapi":
            return True
        for name, value in scope.get("headers", ()):
            if name == b"accept":
                first = value.split(b",", 1)[0].split(b";", 1)[0].strip().lower()
                return bool(first == b"application/json")
        return False


def _prefixes(paths: Iterable[str] | str) -> tuple[str, ...]:
    if isinstance(paths, str):
        paths = [paths]
    out = tuple(paths)
    for item in out:
        if not isinstance(item, str) or not item.startswith("/"):
            raise ConfigError("exclude_paths", f"{item!r}: give path prefixes starting with '/'")
    return out


def _merge(
    existing: Iterable[tuple[bytes, bytes]], ours: list[tuple[str, str]]
) -> list[tuple[bytes, bytes]]:
    """The app's headers plus ours: ``Set-Cookie`` appended, ``Vary`` and ``Cache-Control``
    merged into the app's own values (so ``Vary: Accept`` becomes ``Accept, Cookie``)."""
    headers = list(existing)
    found: dict[bytes, int] | None = None  # where the app's Vary / Cache-Control sit
    for name, value in ours:
        lowered = name.lower()
        key = lowered.encode("latin-1")
        merge = MERGERS.get(lowered)
        if merge is not None:
            if found is None:
                found = {}
                for index, (k, _) in enumerate(headers):
                    k = k.lower()
                    if k in _MERGED and k not in found:
                        found[k] = index
            index = found.get(key, -1)
            if index >= 0:
                k, v = headers[index]
                headers[index] = (k, merge(v.decode("latin-1")).encode("latin-1"))
                continue
        headers.append((key, value.encode("latin-1")))
    return headers
