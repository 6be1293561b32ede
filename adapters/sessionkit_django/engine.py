"""``SESSION_ENGINE = "sessionkit_django.engine"``: Django's ``SessionBase`` on sessionkit.

``session_key`` is the cookie value itself: ``ID.TAG`` for server-side stores (the tag is
an HMAC checked with no I/O before any store lookup, so a forged key never reaches the
store) or the sealed payload for ``cookie://``. Records are keyed by the ID's digest and
hold the core's format (tagged-JSON values, ``RecordMeta``), so the same session is read
by the Flask and ASGI adapters.

Two classes share the dict API, the expiry getters and the key handling
(``SessionStoreBase``), and differ in when the core commits:

- ``SessionStore`` (what ``SESSION_ENGINE`` names): everywhere outside sessionkit's
  middleware (Django's own ``SessionMiddleware``, ``Client.session``, scripts). Every call
  does what Django's contract says, right away, through ``SessionEngine.save``: ``create()``
  stores a record, ``save()`` raises ``UpdateError`` if the record vanished (a concurrent
  logout is never undone), ``cycle_key()`` rotates atomically, ``flush()`` deletes.
- ``RequestSessionStore``: built by ``sessionkit_django.middleware.SessionMiddleware``
  around the core ``Session`` of the request. What the view changes goes to that session,
  and the middleware commits it after the view through the engine: key-level merge, no
  resurrection, logout (``flush``), cookie and cache headers all decided by the core. What
  the view explicitly asks for (``save()``, ``create()``, ``cycle_key()``) happens right
  away, as Django's contract says, so ``session_key`` is always the key the client will
  get; the response then carries that cookie.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Any

from django.contrib.sessions.backends.base import CreateError, SessionBase, UpdateError
from django.contrib.sessions.exceptions import SessionInterrupted
from django.core.signing import JSONSerializer
from django.utils import timezone

from sessionkit import ClientInfo, CommitPlan, Session, SessionEngine, SessionTooLarge
from sessionkit.expiry import FOREVER
from sessionkit_django.conf import engines

_MISSING: Any = object()
_UNSAFE = frozenset(';, \t\r\n"\\')
_INTERRUPTED = (
    "The request's session was deleted before the request completed. The user may have "
    "logged out in a concurrent request, for example."
)


_STORE_SETTING = 'SESSIONKIT = {"STORE": "redis://..."} (or a database or file:// URL)'


@contextmanager
def django_wording() -> Iterator[None]:
    """Errors that name a setting name it as a Django project writes it."""
    try:
        yield
    except SessionTooLarge as exc:
        exc.suggest(_STORE_SETTING)
        raise


def _timestamp(moment: datetime) -> float:
    """Epoch seconds of a Django datetime (naive ones are in the current time zone)."""
    return (timezone.make_aware(moment) if timezone.is_naive(moment) else moment).timestamp()


class SessionStoreBase(SessionBase):
    """Django's session API over one core ``Session`` (``self._core``)."""

    _core: Session
    _key: str | None
    _fetched: bool  # the core was loaded for the current key (or there is no key)
    _modified: bool

    @property
    def _engine(self) -> SessionEngine:
        raise NotImplementedError

    @property
    def engine(self) -> SessionEngine:
        """The engine this session runs on (what the middleware and ``@session_lock`` use)."""
        return self._engine

    @property
    def client(self) -> ClientInfo:
        """The request's client as the middleware described it (no I/O)."""
        return self._engine.client_of(self._core)

    # -- the key ---------------------------------------------------------------------------
    def _get_session_key(self) -> str | None:
        return self._key

    def _set_session_key(self, value: str | None) -> None:
        """Django's rule: any string of 8 or more characters is a key (it may be unknown to
        the store). Only a verified one (signature or AEAD, no I/O) opens a session that
        loads; any other reads as empty, and loading it forgets the key."""
        engine = self._engine
        valid = isinstance(value, str) and len(value) >= 8
        header = None
        if valid and not _UNSAFE.intersection(value):  # type: ignore[arg-type]
            header = f"{engine.config.cookie_name}={value}"
        previous = getattr(self, "_core", None)
        client = engine.client_of(previous) if previous is not None else None
        self._core = engine.open(header) if client is None else engine.open(header, client)
        self._key = value if valid else None
        self._fetched = self._key is None

    session_key = property(_get_session_key)
    _session_key = property(_get_session_key, _set_session_key)

    # -- loading ---------------------------------------------------------------------------
    def _data(self) -> Session:
        core = self._core
        if not self._fetched:
            if not core.loaded:
                self._engine.load(core)
            self._fetched = True
            if core.new:  # expired, revoked, never ours: Django then forgets the key
                self._key = None
        return core

    def reread(self) -> None:
        """Once the session's lock is held, or a fresh read was demanded
        (``@fresh_session``): what was read before (by CSRF_USE_SESSIONS, auth or other
        middleware) is read again from the store on next use (the core's rule; a session
        changed before was refused by the core itself)."""
        self._fetched = self._key is None

    def fetch(self) -> Session:
        """The core session, read from the store first if it was not yet (the middleware's
        ``SESSION_SAVE_EVERY_REQUEST``)."""
        return self._data()

    async def afetch(self) -> Session:
        """``fetch()`` for async code: read natively, off no thread."""
        return await self._adata()

    async def _adata(self) -> Session:
        core = self._core
        if not self._fetched:
            if not core.loaded:
                await self._engine.aload(core)
            self._fetched = True
            if core.new:
                self._key = None
        return core

    def _get_session(self, no_load: bool = False) -> Session:
        self.accessed = True
        return self._data()

    async def _aget_session(self, no_load: bool = False) -> Session:
        self.accessed = True
        return await self._adata()

    _session = property(_get_session)

    @property
    def _session_cache(self) -> Session:
        """Django's name for the loaded data: absent until loaded; ``del`` forgets it, so
        the next access reads the store again."""
        if not self._fetched:
            raise AttributeError("_session_cache")
        return self._core

    @_session_cache.deleter
    def _session_cache(self) -> None:
        self._set_session_key(self._key)

    def _fresh(self) -> Session | None:
        """A new core for the current key, to read what the store holds now."""
        if self._key is None or _UNSAFE.intersection(self._key):
            return None
        engine = self._engine
        return engine.open(f"{engine.config.cookie_name}={self._key}")

    def load(self) -> dict[str, Any]:
        """What the store holds under this key (not what this object holds in memory);
        ``{}``, and the key forgotten, when it holds nothing. Never creates anything."""
        if not self._fetched:
            return self._data().copy()
        fresh = self._fresh()
        if fresh is not None:
            self._engine.load(fresh)
            if not fresh.new:
                return fresh.copy()
        self._key = None
        return {}

    async def aload(self) -> dict[str, Any]:
        if not self._fetched:
            return (await self._adata()).copy()
        fresh = self._fresh()
        if fresh is not None:
            await self._engine.aload(fresh)
            if not fresh.new:
                return fresh.copy()
        self._key = None
        return {}

    # -- the dict API (writes mark the Django flag; the core tracks which keys) ----------
    @property
    def modified(self) -> bool:
        return self._modified

    @modified.setter
    def modified(self, value: bool) -> None:
        self._modified = bool(value)
        if value:
            self._marked()

    def _marked(self) -> None:
        """Django's flag was set; the request's store also tells the core (below)."""

    def __setitem__(self, key: str, value: Any) -> None:
        self._session[key] = value
        self.modified = True

    async def aset(self, key: str, value: Any) -> None:
        (await self._aget_session())[key] = value
        self.modified = True

    def __delitem__(self, key: str) -> None:
        del self._session[key]
        self.modified = True

    def pop(self, key: str, default: Any = _MISSING) -> Any:
        data = self._session
        if key in data:
            self.modified = True
        return data.pop(key) if default is _MISSING else data.pop(key, default)

    async def apop(self, key: str, default: Any = _MISSING) -> Any:
        data = await self._aget_session()
        if key in data:
            self.modified = True
        return data.pop(key) if default is _MISSING else data.pop(key, default)

    def update(self, dict_: Any) -> None:
        self._session.update(dict_)
        self.modified = True

    async def aupdate(self, dict_: Any) -> None:
        (await self._aget_session()).update(dict_)
        self.modified = True

    # Django 5.0 added the async API to SessionBase; defining it here gives it to 4.2 too.
    async def aget(self, key: str, default: Any = None) -> Any:
        return (await self._aget_session()).get(key, default)

    async def asetdefault(self, key: str, value: Any) -> Any:
        data = await self._aget_session()
        if key in data:
            return data[key]
        await self.aset(key, value)
        return value

    async def ahas_key(self, key: str) -> bool:
        return key in await self._aget_session()

    async def akeys(self) -> Any:
        return (await self._aget_session()).keys()

    async def avalues(self) -> Any:
        return (await self._aget_session()).values()

    async def aitems(self) -> Any:
        return (await self._aget_session()).items()

    async def aset_test_cookie(self) -> None:
        await self.aset(self.TEST_COOKIE_NAME, self.TEST_COOKIE_VALUE)

    async def atest_cookie_worked(self) -> bool:
        return bool(await self.aget(self.TEST_COOKIE_NAME) == self.TEST_COOKIE_VALUE)

    async def adelete_test_cookie(self) -> None:
        del (await self._aget_session())[self.TEST_COOKIE_NAME]
        self.modified = True

    def clear(self) -> None:
        self._data().clear()
        self.accessed = True
        self.modified = True

    def is_empty(self) -> bool:
        core = self._core
        return self._key is None and not (core.loaded and dict.__len__(core))

    # -- sessionkit extras (flash data, user binding) -------------------------------------
    def flash(self, key: str, value: Any) -> None:
        """Keep ``value`` for this request and the next one (see ``Session.flash``)."""
        self._session.flash(key, value)
        self.modified = True

    def now(self, key: str, value: Any) -> None:
        self._session.now(key, value)
        self.modified = True

    def reflash(self) -> None:
        self._session.reflash()

    def keep(self, *keys: str) -> None:
        self._session.keep(*keys)

    @property
    def user_id(self) -> str | None:
        """The user this session is bound to (its entry in the per-user index)."""
        return self._get_session().user_id

    @property
    def handle(self) -> str | None:
        """An opaque name for this session, safe to show and log; never the ID."""
        core = self._get_session()
        return None if core.new else core.handle

    @property
    def digest(self) -> str | None:
        """The store key of the current record (``None`` before one exists)."""
        return self._engine.digest_of(self._core)

    def bind_user(self, user_id: object, *, regenerate: bool = False) -> None:
        raise NotImplementedError

    def start_device_binding(self) -> None:
        """Offer this response's browser to bind the session to a key it holds (DBSC; see
        ``Session.start_device_binding``)."""
        self._session.start_device_binding()

    async def abind_user(self, user_id: object, *, regenerate: bool | None = None) -> None:
        await self._aget_session()
        if regenerate is None:
            self.bind_user(user_id)
        else:
            self.bind_user(user_id, regenerate=regenerate)

    # -- expiry ----------------------------------------------------------------------------
    def set_expiry(self, value: Any) -> None:
        self._set_expiry(self._session, value)

    async def aset_expiry(self, value: Any) -> None:
        self._set_expiry(await self._aget_session(), value)

    def _set_expiry(self, core: Session, value: Any) -> None:
        """Django's meanings: seconds of inactivity (0: browser close), a ``datetime``/
        ``timedelta`` fixed moment, ``None``: the defaults."""
        if isinstance(value, timedelta):
            value = timezone.now() + value
        elif isinstance(value, str):
            value = datetime.fromisoformat(value)
        elif isinstance(value, (int, float)) and value < 0:
            value = timezone.now() + timedelta(seconds=value)
        if isinstance(value, datetime) and timezone.is_naive(value):
            value = timezone.make_aware(value)
        core.set_expiry(value)
        self.modified = True

    def _seconds_left(self, modification: datetime) -> float:
        at = _timestamp(modification)
        end = self._engine.expiry_if_saved(self._data(), at)
        return float(self.get_session_cookie_age()) if end == FOREVER else end - at

    def get_expiry_age(self, **kwargs: Any) -> int:
        if "expiry" in kwargs:
            return int(super().get_expiry_age(**kwargs))
        delta = timedelta(seconds=self._seconds_left(kwargs.get("modification") or timezone.now()))
        return delta.days * 86400 + delta.seconds

    async def aget_expiry_age(self, **kwargs: Any) -> int:
        await self._adata()
        return self.get_expiry_age(**kwargs)

    def get_expiry_date(self, **kwargs: Any) -> datetime:
        if "expiry" in kwargs:
            result: datetime = super().get_expiry_date(**kwargs)
            return result
        moment: datetime = kwargs.get("modification") or timezone.now()
        return moment + timedelta(seconds=self._seconds_left(moment))

    async def aget_expiry_date(self, **kwargs: Any) -> datetime:
        await self._adata()
        return self.get_expiry_date(**kwargs)

    def get_expire_at_browser_close(self) -> bool:
        return self._engine.browser_session_of(self._session)

    async def aget_expire_at_browser_close(self) -> bool:
        return self._engine.browser_session_of(await self._aget_session())

    def get_session_cookie_age(self) -> int:
        config = self._engine.config
        return int(config.idle_timeout or config.absolute_timeout or 0)

    # -- Django's storage contract ---------------------------------------------------------
    def _live(self, session_key: str | None) -> Session | None:
        """A core opened from ``session_key`` when it verifies (no I/O), else ``None``."""
        engine = self._engine
        if not session_key or engine.store.client_side or _UNSAFE.intersection(session_key):
            return None  # a cookie:// key has no record to look up (as Django's signed_cookies)
        core = engine.open(f"{engine.config.cookie_name}={session_key}")
        return None if core.loaded else core

    def exists(self, session_key: str | None) -> bool:
        """Whether ``session_key`` names a live stored session."""
        core = self._live(session_key)
        if core is None:
            return False
        self._engine.load(core)
        return not core.new

    async def aexists(self, session_key: str | None) -> bool:
        core = self._live(session_key)
        if core is None:
            return False
        await self._engine.aload(core)
        return not core.new

    def _doomed(self, session_key: str | None) -> str | None:
        """The store key ``delete(session_key)`` removes (``None``: nothing to do)."""
        if session_key is None:
            return self.digest
        core = self._live(session_key)
        return self._engine.digest_of(core) if core is not None else None

    def delete(self, session_key: str | None = None) -> None:
        doomed = self._doomed(session_key)
        if doomed is not None:
            self._engine.store.delete(doomed)

    async def adelete(self, session_key: str | None = None) -> None:
        doomed = self._doomed(session_key)
        if doomed is not None:
            await self._engine.store.adelete(doomed)

    # -- writing: each decision is the core's (SessionEngine.save) -------------------------
    def _for_create(self) -> Session:
        """``create()`` stores the data in hand under a new key; it never loads a pending
        record (Django's ``no_load``), and a stored one moves to the new key."""
        core = self._core
        if not self._fetched and not core.loaded:
            engine = self._engine
            core = self._core = engine.open(None, engine.client_of(core))
            self._fetched = True
        elif not core.new:
            core.regenerate()
        core.modified = True
        return core

    def _save(self, core: Session) -> CommitPlan:
        with django_wording():
            return self._engine.save(core)

    async def _asave(self, core: Session) -> CommitPlan:
        with django_wording():
            return await self._engine.asave(core)

    def _settled(self, plan: CommitPlan, error: type[Exception]) -> None:
        if plan.conflict:
            raise error(_INTERRUPTED) if error is SessionInterrupted else error
        if plan.cookie_value:  # "" (cleared: saved already expired, so deleted) keeps the
            self._key = plan.cookie_value  # key, which now names nothing, as Django's do

    def create(self) -> None:
        self._settled(self._save(self._for_create()), CreateError)
        self.modified = True

    async def acreate(self) -> None:
        self._settled(await self._asave(self._for_create()), CreateError)
        self.modified = True

    def _saving(self, core: Session) -> Session:
        if core.new:  # the key names nothing (any more): UpdateError, as Django's backends
            raise UpdateError
        core.modified = True  # Django's save() writes the whole session
        return core

    def save(self, must_create: bool = False) -> None:
        """Django's ``save``: no key (or ``must_create``) means ``create()``; otherwise
        update the stored record, or raise ``UpdateError`` if it is gone (never resurrect)."""
        if self._key is None:
            return self.create()
        if must_create:
            if self.exists(self._key):
                raise CreateError
            return self.create()
        self._settled(self._save(self._saving(self._data())), UpdateError)

    async def asave(self, must_create: bool = False) -> None:
        if self._key is None:
            return await self.acreate()
        if must_create:
            if await self.aexists(self._key):
                raise CreateError
            return await self.acreate()
        core = self._saving(await self._adata())
        self._settled(await self._asave(core), UpdateError)

    def cycle_key(self) -> None:
        """A new key for the same data; the old key dies in the same atomic write."""
        self._data().regenerate()
        self._core.modified = True
        self._settled(self._save(self._core), SessionInterrupted)
        self.modified = True  # as Django's (create() marks it): the new key must be sent

    async def acycle_key(self) -> None:
        (await self._adata()).regenerate()
        self._core.modified = True
        self._settled(await self._asave(self._core), SessionInterrupted)
        self.modified = True

    @classmethod
    def clear_expired(cls) -> None:
        """Sweep expired records (``manage.py clearsessions``); stores that expire records
        themselves (Redis, memcached, cookies) have nothing to do."""
        store = engines().request.store
        if store.supports_sweep:
            store.delete_expired()

    @classmethod
    async def aclear_expired(cls) -> None:
        from asgiref.sync import sync_to_async

        await sync_to_async(cls.clear_expired, thread_sensitive=False)()


class SessionStore(SessionStoreBase):
    """Django's session backend contract, sync and async, on a sessionkit engine: every
    write happens when it is called, through ``SessionEngine.save``."""

    def __init__(self, session_key: str | None = None) -> None:
        self._modified = False
        super().__init__(session_key)

    @property
    def _engine(self) -> SessionEngine:
        return engines().standalone  # read per call: settings may change (override_settings)

    def bind_user(self, user_id: object, *, regenerate: bool = False) -> None:
        """Put this session in ``user_id``'s index; rotation stays ``cycle_key``'s job."""
        self._session.bind_user(user_id, regenerate=regenerate)
        self.modified = True

    def _forget_key(self) -> None:
        self._set_session_key(None)
        self._fetched = True
        self.accessed = self.modified = True

    def flush(self) -> None:
        """Logout: the data goes, the record is deleted server-side, the key is forgotten."""
        self.delete()
        self._forget_key()

    async def aflush(self) -> None:
        await self.adelete()
        self._forget_key()


#: The request sessionkit's middleware is serving in this context (set around the view), so
#: that ``type(request.session)(key)`` knows whether ``key`` is that request's session.
serving: ContextVar[Any] = ContextVar("sessionkit_django_serving", default=None)


class RequestSessionStore(SessionStoreBase):
    """``request.session`` under sessionkit's middleware: what the view does goes to the
    request's core session, which the middleware commits once, after the view.

    ``RequestSessionStore(session_key)`` keeps Django's backend contract
    (``SessionBase(session_key)``). Code that reopens the request's own session by its key,
    ``request.session = request.session.__class__(request.session.session_key)`` (as
    django-allauth does to read it again after a save), or starts a new one with
    ``request.session.__class__()``, gets the request's session again: on the request's
    engine and client (bound to the same browser, judged by the same fingerprint rule) and
    committed by the middleware after the view. Any other key, and any key outside a request
    the middleware serves, gives what ``SESSION_ENGINE`` gives, a ``SessionStore(key)``
    whose every call takes effect at once, judged against no client."""

    def __new__(
        cls, session_key: str | None = None, *, engine: SessionEngine | None = None,
        core: Session | None = None,
    ) -> Any:  # fmt: skip
        if core is None:
            current = getattr(serving.get(), "session", None)
            if not isinstance(current, RequestSessionStore) or session_key not in (
                None, current.session_key,
            ):  # fmt: skip
                return SessionStore(session_key)
        return super().__new__(cls)

    def __init__(
        self, session_key: str | None = None, *, engine: SessionEngine | None = None,
        core: Session | None = None,
    ) -> None:  # fmt: skip
        self._modified = self.accessed = False
        self.serializer = JSONSerializer
        if core is not None:  # the middleware's: the core it opened from the cookie
            assert engine is not None
            self._request_engine = engine
            self._core = core
            self._key = engine.cookie_of(core) if not core.loaded else None
            self._fetched = core.loaded
        else:  # the request's session reopened (__new__ checked): its engine and client
            current: RequestSessionStore = serving.get().session
            self._request_engine = current.engine
            self._core = current.engine.open(None, current.client)
            self._set_session_key(session_key)  # opened with that client, as a new key is
        #: The Set-Cookie of a save the view asked for (``save()``, ``create()``,
        #: ``cycle_key()``), sent with the response unless its own commit sends another.
        self.unsent_cookie: str | None = None
        #: A save in the view was refused by the session limit and answered already: the
        #: request commits nothing more (the session stays as it was before the login).
        self.refused = False

    @property
    def _engine(self) -> SessionEngine:
        return self._request_engine

    @property
    def core(self) -> Session:
        """The request's core session (what the middleware commits)."""
        return self._core

    def commit(self, status: int) -> CommitPlan:
        """The core's plan for the end of the request (the middleware runs it)."""
        try:
            return self._engine.commit(self._core, status)
        except SessionTooLarge as exc:  # not django_wording(): this runs on every request
            exc.suggest(_STORE_SETTING)
            raise

    def _issued(self, value: str | None) -> None:
        """The middleware's word on the cookie the response sets (``None``: cleared)."""
        self._key = value

    def _marked(self) -> None:
        core = self._core
        if not core.modified:
            core.modified = True  # an explicit "save this" with nothing else changed

    def bind_user(self, user_id: object, *, regenerate: bool = True) -> None:
        """Put this session in ``user_id``'s index and, by default, rotate its ID at the
        end of the request (binding is a login)."""
        self._session.bind_user(user_id, regenerate=regenerate)
        self.modified = True

    def _settled(self, plan: CommitPlan, error: type[Exception]) -> None:
        super()._settled(plan, error)
        self.unsent_cookie = plan.set_cookie

    def flush(self) -> None:
        """Logout: the data goes, the record is deleted when the request commits."""
        self._data().invalidate()
        self._key = self.unsent_cookie = None
        self.accessed = self.modified = True

    async def aflush(self) -> None:
        (await self._adata()).invalidate()
        self._key = self.unsent_cookie = None
        self.accessed = self.modified = True
