"""``SESSION_ENGINE = "sessionkit_django.engine"``: Django's ``SessionBase`` on sessionkit.

``session_key`` is the cookie value itself: ``ID.TAG`` for server-side stores (the tag is
an HMAC checked with no I/O before any store lookup, so a forged key never reaches the
store) or the sealed payload for ``cookie://``. Records are keyed by the ID's digest and
hold the core's format (tagged-JSON values, ``RecordMeta``), so the same session is read
by the Flask and ASGI adapters.

A ``SessionStore`` runs in one of two modes:

- *managed*: built by ``sessionkit_django.middleware.SessionMiddleware`` around the core
  ``Session`` of the request. Data, rotation (``cycle_key``), logout (``flush``) and expiry
  go to that session, and the middleware commits it once through the engine: key-level
  merge, atomic rotation, no resurrection, cookie and cache headers all decided by the core.
  ``save()`` therefore waits for the end of the request, and a rotated ``session_key`` is
  known once the response is committed.
- *standalone*: everywhere else (Django's own ``SessionMiddleware``, ``Client.session``,
  scripts). Every call does what Django's contract says, right away: ``create()`` stores a
  record, ``save()`` raises ``UpdateError`` if the record vanished (a concurrent logout is
  never undone), ``cycle_key()`` rotates atomically, ``flush()`` deletes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.contrib.sessions.backends.base import CreateError, SessionBase, UpdateError
from django.contrib.sessions.exceptions import SessionInterrupted
from django.core.signing import JSONSerializer
from django.utils import timezone

from sessionkit import Session, SessionEngine, Write, serialization
from sessionkit.expiry import browser_cookie, deadline
from sessionkit.ids import digest, handle, new_id
from sessionkit.stores.base import RecordMeta
from sessionkit_django.conf import engines

_MISSING: Any = object()
_EXPIRED_TTL = 0.001
_UNSAFE = frozenset(';, \t\r\n"\\')
_INTERRUPTED = (
    "The request's session was deleted before the request completed. The user may have "
    "logged out in a concurrent request, for example."
)


class SessionStore(SessionBase):
    """Django's session backend contract, sync and async, on a sessionkit engine."""

    def __init__(self, session_key: str | None = None) -> None:
        self._engine: SessionEngine = engines().standalone
        self._managed = False
        self._modified = False
        self._record_id: str | None = None  # the stored record's raw ID (standalone)
        self._stored = False  # a record exists under _record_id, as far as we know
        super().__init__(session_key)

    @classmethod
    def for_request(cls, engine: SessionEngine, core: Session, cookie: str | None) -> SessionStore:
        """The managed store the middleware hangs on ``request.session``."""
        self = cls.__new__(cls)
        self._engine, self._core, self._managed = engine, core, True
        self._modified = self.accessed = self._stored = False
        self._record_id = None
        self._key = cookie if not core.loaded else None
        self.serializer = JSONSerializer
        return self

    # -- the key ---------------------------------------------------------------------------
    def _get_session_key(self) -> str | None:
        return self._key

    def _set_session_key(self, value: str | None) -> None:
        """Verify ``value`` (signature or AEAD, no I/O); anything invalid becomes ``None``."""
        header = None
        if value and isinstance(value, str) and not _UNSAFE.intersection(value):
            header = f"{self._engine.config.cookie_name}={value}"
        self._core = core = self._engine.open(header)
        self._key = value if header is not None and not core.loaded else None
        self._stored = False
        self._record_id = None
        if self._key is not None and not self._engine.store.client_side:
            self._record_id = core._ctx.session_id  # verified by open()

    session_key = property(_get_session_key)
    _session_key = property(_get_session_key, _set_session_key)

    def _verified_id(self, session_key: str | None) -> str | None:
        if not session_key or self._engine.store.client_side:
            return None
        probe = SessionStore.__new__(SessionStore)
        probe._engine = self._engine
        probe._set_session_key(session_key)
        return probe._record_id

    # -- loading ---------------------------------------------------------------------------
    def _data(self) -> Session:
        core = self._core
        if not core.loaded:
            self._engine.load(core)
            self._loaded()
        return core

    async def _adata(self) -> Session:
        core = self._core
        if not core.loaded:
            await self._engine.aload(core)
            self._loaded()
        return core

    def _loaded(self) -> None:
        core = self._core
        if core.new:  # expired, revoked, never stored: Django then makes a new key on save
            self._key = self._record_id = None
            self._stored = False
            return
        self._stored = True
        if self._engine.store.client_side:
            self._record_id = core._ctx.session_id

    def _get_session(self, no_load: bool = False) -> Session:
        self.accessed = True
        return self._data()

    async def _aget_session(self, no_load: bool = False) -> Session:
        self.accessed = True
        return await self._adata()

    _session = property(_get_session)

    def load(self) -> dict[str, Any]:
        """The session's data; never creates anything."""
        return self._data().copy()

    async def aload(self) -> dict[str, Any]:
        return (await self._adata()).copy()

    # -- the dict API (writes mark the Django flag; the core tracks which keys) ----------
    @property
    def modified(self) -> bool:
        return self._modified

    @modified.setter
    def modified(self, value: bool) -> None:
        self._modified = bool(value)
        core = getattr(self, "_core", None)
        if value and self._managed and core is not None and not core.modified:
            core.modified = True  # an explicit "save this" with nothing else changed

    def __setitem__(self, key: str, value: Any) -> None:
        self._session[key] = value
        self._modified = True

    async def aset(self, key: str, value: Any) -> None:
        (await self._aget_session())[key] = value
        self._modified = True

    def __delitem__(self, key: str) -> None:
        del self._session[key]
        self._modified = True

    def pop(self, key: str, default: Any = _MISSING) -> Any:
        data = self._session
        self._modified = self._modified or key in data
        return data.pop(key) if default is _MISSING else data.pop(key, default)

    async def apop(self, key: str, default: Any = _MISSING) -> Any:
        data = await self._aget_session()
        self._modified = self._modified or key in data
        return data.pop(key) if default is _MISSING else data.pop(key, default)

    def update(self, dict_: Any) -> None:
        self._session.update(dict_)
        self._modified = True

    async def aupdate(self, dict_: Any) -> None:
        (await self._aget_session()).update(dict_)
        self._modified = True

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
        self._modified = True

    def clear(self) -> None:
        self._data().clear()
        self.accessed = True
        self._modified = True

    def is_empty(self) -> bool:
        core = self._core
        return self._key is None and not (core.loaded and dict.__len__(core))

    # -- sessionkit extras (flash data, user binding) -------------------------------------
    def flash(self, key: str, value: Any) -> None:
        """Keep ``value`` for this request and the next one (see ``Session.flash``)."""
        self._session.flash(key, value)
        self._modified = True

    def now(self, key: str, value: Any) -> None:
        self._session.now(key, value)
        self._modified = True

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
        if self._managed:
            return self._get_session().handle
        return handle(digest(self._record_id)) if self._record_id and self._stored else None

    def bind_user(self, user_id: object) -> None:
        """Put this session in ``user_id``'s index. Managed sessions also rotate their ID
        (binding is a login); standalone ones leave rotation to ``cycle_key``."""
        self._session.bind_user(user_id, regenerate=self._managed)
        self._modified = True

    async def abind_user(self, user_id: object) -> None:
        await self._aget_session()
        self.bind_user(user_id)

    @property
    def digest(self) -> str | None:
        """The store key of the current record (``None`` before one exists)."""
        if self._managed:
            ctx = self._core._ctx
            return ctx.digest if ctx.session_id is not None else None
        return digest(self._record_id) if self._record_id is not None else None

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
        self._modified = True

    def _deadline(self, modification: datetime | None) -> tuple[datetime, float]:
        core = self._data()
        moment = modification if modification is not None else timezone.now()
        if timezone.is_naive(moment):
            moment = timezone.make_aware(moment)
        at = moment.timestamp()
        meta = core._meta
        created = meta.created if meta is not None else at
        policy = RecordMeta(created, at, core._idle, core._browser, core._until)  # type: ignore[arg-type]
        return moment, deadline(policy, self._engine.config) - at

    def get_expiry_age(self, **kwargs: Any) -> int:
        if "expiry" in kwargs:
            return int(super().get_expiry_age(**kwargs))
        _, seconds = self._deadline(kwargs.get("modification"))
        delta = timedelta(seconds=seconds)
        return delta.days * 86400 + delta.seconds

    async def aget_expiry_age(self, **kwargs: Any) -> int:
        await self._adata()
        return self.get_expiry_age(**kwargs)

    def get_expiry_date(self, **kwargs: Any) -> datetime:
        if "expiry" in kwargs:
            result: datetime = super().get_expiry_date(**kwargs)
            return result
        moment, seconds = self._deadline(kwargs.get("modification"))
        return moment + timedelta(seconds=seconds)

    async def aget_expiry_date(self, **kwargs: Any) -> datetime:
        await self._adata()
        return self.get_expiry_date(**kwargs)

    def get_expire_at_browser_close(self) -> bool:
        return browser_cookie(self._session._browser, self._engine.config)

    async def aget_expire_at_browser_close(self) -> bool:
        await self._adata()
        return self.get_expire_at_browser_close()

    def get_session_cookie_age(self) -> int:
        return int(self._engine.config.idle_timeout or self._engine.config.absolute_timeout or 0)

    # -- Django's storage contract ---------------------------------------------------------
    def exists(self, session_key: str | None) -> bool:
        record_id = self._verified_id(session_key)
        return record_id is not None and self._engine.store.load(digest(record_id)) is not None

    async def aexists(self, session_key: str | None) -> bool:
        record_id = self._verified_id(session_key)
        if record_id is None:
            return False
        return await self._engine.store.aload(digest(record_id)) is not None

    def create(self) -> None:
        if self._managed:
            return self._managed_create()
        self._fresh_core()
        for _ in range(8):
            if self._put(new_id(), create=True):
                self._modified = True
                return
        raise RuntimeError("could not create a session (IDs kept colliding)")

    async def acreate(self) -> None:
        if self._managed:
            return self._managed_create()
        self._fresh_core()
        for _ in range(8):
            if await self._aput(new_id(), create=True):
                self._modified = True
                return
        raise RuntimeError("could not create a session (IDs kept colliding)")

    def save(self, must_create: bool = False) -> None:
        if self._managed:
            self.modified = True  # the middleware writes at the end of the request
            return
        if self.session_key is None:
            return self.create()
        self._data()
        if self._key is None:  # the record was gone when we loaded it
            return self.create()
        if not self._put(self._record_id or new_id(), create=must_create):
            raise CreateError if must_create else UpdateError

    async def asave(self, must_create: bool = False) -> None:
        if self._managed:
            self.modified = True
            return
        if self.session_key is None:
            return await self.acreate()
        await self._adata()
        if self._key is None:
            return await self.acreate()
        if not await self._aput(self._record_id or new_id(), create=must_create):
            raise CreateError if must_create else UpdateError

    def delete(self, session_key: str | None = None) -> None:
        doomed = self._doomed(session_key)
        if doomed is not None:
            self._engine.store.delete(doomed)

    async def adelete(self, session_key: str | None = None) -> None:
        doomed = self._doomed(session_key)
        if doomed is not None:
            await self._engine.store.adelete(doomed)

    def _doomed(self, session_key: str | None) -> str | None:
        if self._engine.store.client_side:
            return None
        if session_key is None:
            if self._managed:
                return self.digest
            if self._record_id is None:
                return None
            self._stored = False
            return digest(self._record_id)
        record_id = self._verified_id(session_key)
        return digest(record_id) if record_id is not None else None

    def cycle_key(self) -> None:
        """A new key for the same data; the old key dies in the same atomic write."""
        if self._managed:
            self._session.regenerate()
            self._modified = True
            return
        self._data()
        rotated = digest(self._record_id) if self._stored and self._record_id else None
        if not self._put(new_id(), create=True, rotated_from=rotated):
            raise SessionInterrupted(_INTERRUPTED)
        self._modified = True

    async def acycle_key(self) -> None:
        if self._managed:
            (await self._aget_session()).regenerate()
            self._modified = True
            return
        await self._adata()
        rotated = digest(self._record_id) if self._stored and self._record_id else None
        if not await self._aput(new_id(), create=True, rotated_from=rotated):
            raise SessionInterrupted(_INTERRUPTED)
        self._modified = True

    def flush(self) -> None:
        """Logout: the data goes, the record is deleted server-side, the key is forgotten."""
        if self._managed:
            self._data().invalidate()
        else:
            self.delete()
            self._core = self._engine.open(None)
        self._key = self._record_id = None
        self.accessed = self._modified = True

    async def aflush(self) -> None:
        if self._managed:
            (await self._adata()).invalidate()
        else:
            await self.adelete()
            self._core = self._engine.open(None)
        self._key = self._record_id = None
        self.accessed = self._modified = True

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

    # -- writing (standalone mode) ---------------------------------------------------------
    def _fresh_core(self) -> None:
        """A new record starts from the data in hand, without loading a pending one."""
        if not self._core.loaded:
            self._core = self._engine.open(None)

    def _managed_create(self) -> None:
        if self._key is not None:
            self._session.regenerate()
        self._modified = True

    def _put(self, record_id: str, *, create: bool, rotated_from: str | None = None) -> bool:
        write, meta = self._write(record_id, create, rotated_from)
        ok = True if write is None else self._engine.store.save(write)
        return self._settle(record_id, ok, write, meta)

    async def _aput(self, record_id: str, *, create: bool, rotated_from: str | None = None) -> bool:
        write, meta = self._write(record_id, create, rotated_from)
        ok = True if write is None else await self._engine.store.asave(write)
        return self._settle(record_id, ok, write, meta)

    def _write(
        self, record_id: str, create: bool, rotated_from: str | None
    ) -> tuple[Write | None, RecordMeta]:
        """The full-replace write Django's ``save()`` means, in the core's record format.
        ``None`` for ``cookie://``, where saving is sealing the new key."""
        engine, core = self._engine, self._core
        now = engine.clock()
        old = core._meta
        keeps_age = old is not None and (not create or rotated_from is not None)
        meta = RecordMeta(
            old.created if keeps_age else int(now),  # type: ignore[union-attr]
            int(now), core._idle, core._browser, core._until, core._user,
            old.fingerprint if old is not None else None,
            tuple(core._flash_new), tuple(core._flash_old),
            old.device if old is not None else None,  # no client here: keep what is known
        )  # fmt: skip
        data = dict(dict.items(core))
        if engine.store.client_side:
            self._seal(record_id, meta, data)
            return None, meta
        items = {key: serialization.dumps(value) for key, value in data.items()}
        ttl = deadline(meta, engine.config) - now
        write = Write(
            digest(record_id), items, frozenset(), meta, max(ttl, _EXPIRED_TTL),
            create=create, replace=True, rotated_from=rotated_from,
            previous_user=old.user if old is not None else None,
        )  # fmt: skip
        return write, meta

    def _seal(self, record_id: str, meta: RecordMeta, data: dict[str, Any]) -> None:
        self._key = self._engine.seal(record_id, meta, data)  # SessionTooLarge when too big

    def _settle(self, record_id: str, ok: bool, write: Write | None, meta: RecordMeta) -> bool:
        if not ok:
            return False
        core = self._core
        core._meta, core._new = meta, False
        self._record_id, self._stored = record_id, True
        if write is not None:
            self._key = self._engine.sign(record_id)
            if write.ttl <= _EXPIRED_TTL:  # saved already expired (set_expiry in the past)
                self._engine.store.delete(write.digest)
                self._stored = False
        return True
