"""The engine: every decision about a session, made without I/O, then executed.

``open()`` verifies the cookie (HMAC or AEAD, constant time) and returns a ``Session``
that is either empty or *pending* a load. ``load()``/``aload()`` is the only I/O before the
view. ``commit()`` turns what the view did into a ``CommitPlan``: the store write, deletes or
touch, and the Set-Cookie/Vary/Cache-Control headers. ``run()``/``arun()`` execute a plan.
One decision path and two executors, so sync and async adapters cannot drift apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from sessionkit import sealing, serialization
from sessionkit.audit import (
    AuditEntry,
    AuditSink,
    AuditTrail,
    audit_trail,
    erase_entries,
    pseudonym_key,
    pseudonym_of,
)
from sessionkit.cache import BoundedCache
from sessionkit.client import ClientInfo, client_address, device_label
from sessionkit.config import SessionConfig, limit_unsupported
from sessionkit.cookies import CookieWriter, cookie_values
from sessionkit.crypto import Keyring
from sessionkit.dbsc import DeviceBinding
from sessionkit.errors import (
    ConfigError,
    FreshOrderError,
    LockOrderError,
    LocksUnsupported,
    LockTimeout,
    SessionDataError,
    SessionLimitReached,
    SessionTooLarge,
    StoreUnavailable,
)
from sessionkit.events import Event, EventBus, EventKind
from sessionkit.expiry import browser_cookie, browser_session, deadline_for
from sessionkit.expiry import max_age as cookie_max_age
from sessionkit.export import exported
from sessionkit.failures import Failure, FailurePolicy, failure_of, log_refusal
from sessionkit.fingerprint import fingerprint_material
from sessionkit.health import Health, aprobe, probe
from sessionkit.ids import digest, handle, is_well_formed, new_id
from sessionkit.records import Record, RecordMeta, SessionLimit, Write
from sessionkit.rekey import RekeyReport, rekey_store
from sessionkit.session import Session
from sessionkit.stores import open_store
from sessionkit.stores.base import Store
from sessionkit.stores.cookie import CookieStore
from sessionkit.stores.fallback import with_fallback

_NO_CLIENT = ClientInfo()
_TAG_LENGTH = 22


def _unavailable(exc: StoreUnavailable) -> Callable[[Session], None]:
    """The loader of a session whose async load failed: raises, loads nothing."""

    def loader(session: Session) -> None:
        session._pend(loader)
        raise StoreUnavailable(exc.url, exc.cause)

    return loader


class _Context:
    """The engine's private per-request state, hung on the session. Defaults live on the
    class, so a request only pays for the attributes it actually sets."""

    presented = False  # a cookie with our name arrived
    rejected = False  # ... and it did not lead to a live session
    unverified = False  # ... because its signature or encryption did not verify
    cookie: str | None = None  # the value as presented
    session_id: str | None = None
    digest: str | None = None
    key_index = 0
    plaintext: bytes | None = None
    doomed: tuple[str, ...] = ()  # digests to delete (expired, corrupt, compromised)
    fingerprint = ""  # "keep": the record's fingerprint stays as it is
    material: bytes | bool | None = False  # False: not computed yet
    fresh = False  # load from the store itself, never from a cache (open(fresh=True))
    #: the change flags the load itself set (a fingerprint under an older key to rewrite, a
    #: fingerprint rotation): a reread decides them again, so they are not this request's
    admitted: tuple[bool, bool] = (False, False)
    #: values to write again (sealed under an older key, or not as encrypt_records now
    #: says): key -> (the stored text, the plain tagged-JSON text)
    reseal: Mapping[str, tuple[str, str]] = {}
    stored: Mapping[str, Any] = {}  # the record's data as read (its keys: what is not new)
    # DBSC (sessionkit.dbsc), when config.dbsc is on
    bound: Sequence[str] = ()  # the bound cookie's values as presented
    withheld = False  # a bound session without its bound cookie: absent, its cookie kept
    dbsc_exempt = False  # the DBSC endpoints load a bound session without its bound cookie
    dbsc_start = False  # Session.start_device_binding(): offer registration in this response
    dbsc_register: Any = None  # the registration endpoint's new BoundKey for the record
    dbsc_unsent: Sequence[tuple[str, str]] = ()  # DBSC headers of this request's commits

    def __init__(self, client: ClientInfo) -> None:
        self.client = client

    @property
    def handle(self) -> str | None:
        """The session's opaque name for events and logs. ``digest`` stays what it means,
        the stored record's key (never set for a cookie session), whoever asks for this."""
        if self.digest is not None:
            return handle(self.digest)
        return handle(digest(self.session_id)) if self.session_id is not None else None


class CommitPlan:
    """What to do at the end of a request. Adapters run it, then add ``headers()``."""

    __slots__ = (
        "conflict",
        "dbsc_challenges",
        "dbsc_headers",
        "deletes",
        "events",
        "reseal",
        "secure",
        "set_cookie",
        "touch",
        "vary_cookie",
        "write",
    )  # fmt: skip

    def __init__(self, vary_cookie: bool = False) -> None:
        self.vary_cookie = vary_cookie
        self.set_cookie: str | None = None
        self.write: Write | None = None
        self.deletes: list[str] = []
        self.touch: tuple[str, int, float] | None = None
        self.events: list[Event] = []
        self.conflict = False  # set by run(): the session vanished meanwhile; nothing saved
        self.secure = False
        #: after ``write`` lands: ``(digest, {key: (stored text, new text)})`` for
        #: ``Store.reseal``, the unchanged values ``encrypt_records`` wants written again
        self.reseal: tuple[str, dict[str, tuple[str, str]]] | None = None
        #: DBSC (docs/dbsc.md): headers to add as they are (the registration header, the
        #: bound cookie's Set-Cookie), and the one-use challenges ``run`` stores first
        self.dbsc_headers: list[tuple[str, str]] | tuple[()] = ()
        self.dbsc_challenges: list[tuple[str, str, float]] | tuple[()] = ()

    def __repr__(self) -> str:
        return (
            f"CommitPlan(set_cookie={self.set_cookie!r}, write={self.write!r}, "
            f"deletes={self.deletes!r}, touch={self.touch!r}, vary={self.vary_cookie})"
        )

    @property
    def varies(self) -> bool:
        """Whether the response depends on the Cookie header: the session was read, or the
        response sets (or clears) the session cookie."""
        return self.vary_cookie or self.set_cookie is not None

    def headers(self) -> list[tuple[str, str]]:
        out = []
        if self.vary_cookie or self.set_cookie is not None:
            out.append(("Vary", "Cookie"))
        if self.set_cookie is not None:
            out.append(("Set-Cookie", self.set_cookie))
            out.append(("Cache-Control", "private"))
        return out

    @property
    def has_io(self) -> bool:
        return (
            self.write is not None or bool(self.deletes) or self.touch is not None
            or bool(self.dbsc_challenges)
        )  # fmt: skip

    @property
    def failure(self) -> Failure | None:
        """``CONFLICT`` once ``run()`` found that the session this plan writes was deleted
        or rotated meanwhile (its write was not performed); ``None`` otherwise. A touch
        that finds its session gone only clears the cookie: nothing the view did is lost."""
        return Failure.CONFLICT if self.conflict and self.write is not None else None

    @property
    def cookie_value(self) -> str | None:
        """The value ``set_cookie`` gives the session cookie: ``""`` when it clears it,
        ``None`` when the plan sends no cookie."""
        if self.set_cookie is None:
            return None
        return self.set_cookie.partition(";")[0].partition("=")[2]


class SessionEngine:
    """One per application: holds the config, keyring, store and event bus."""

    #: What ``open`` builds; an adapter may set a subclass that adds its framework's API.
    session_class: type[Session] = Session

    def __init__(
        self,
        config: SessionConfig,
        *,
        store: Store | str | None = None,
        clock: Callable[[], float] = time.time,
        events: EventBus | None = None,
    ) -> None:
        self.config = config
        chosen = config.store if store is None else store
        self.store: Store = open_store(chosen) if isinstance(chosen, str) else chosen
        self.keyring = Keyring(config.secret_keys)
        self.events = events if events is not None else EventBus()
        self.store = with_fallback(self.store, config, self.events)  # docs/fallback.md
        self.clock = clock
        self._cookies = CookieWriter(config)
        self._name = config.cookie_name
        self._sign_prefix = config.cookie_name.encode("ascii") + b"\x00"
        self._client_side = self.store.client_side
        self._sealing = config.encrypt_records and not self._client_side
        self._associated = CookieStore.associated_data(config.cookie_name)
        self._cookie_store = self.store if isinstance(self.store, CookieStore) else CookieStore()
        self._materials: BoundedCache[tuple[str, str | None], bytes | None] = BoundedCache()
        self._devices: BoundedCache[str, str | None] = BoundedCache()  # User-Agent -> label
        self._deadline = deadline_for(config)
        self._always_secure = config.cookie_secure
        limit = config.max_sessions_per_user
        self._limit = (
            None if limit is None else SessionLimit(limit, config.session_limit_policy == "refuse")
        )
        if limit is not None and not self.store.supports_session_limit:
            name = self.store.url.partition("://")[0] + "://" if "://" in self.store.url else ""
            raise ConfigError(
                "max_sessions_per_user", limit_unsupported(name or type(self.store).__name__)
            )
        #: Device Bound Session Credentials (``sessionkit.dbsc``); ``None`` when off
        self.dbsc: DeviceBinding | None = DeviceBinding(self) if config.dbsc else None
        #: The audit trail (``SessionConfig.audit``), subscribed to ``events``; ``None``: off.
        self.audit: AuditTrail | None = audit_trail(self) if config.audit_sinks else None
        if config.metrics:  # one store wrapper and one bus subscriber (docs/metrics.md)
            from sessionkit.metrics import install

            install(self, config.metrics, interval=config.metrics_interval)

    def client(
        self,
        peer: str | None,
        user_agent: str = "",
        *,
        secure: bool = False,
        forwarded_for: str | None = None,
    ) -> ClientInfo:
        """The ``ClientInfo`` an adapter passes to ``open``: the peer address, or the address
        ``X-Forwarded-For`` names when the peer is a configured trusted proxy."""
        address = client_address(peer, forwarded_for, self.config.trusted_networks)
        return ClientInfo(address, user_agent, secure)

    def wsgi_client(self, environ: Mapping[str, Any], *, secure: bool | None = None) -> ClientInfo:
        """``client`` from a WSGI environ (Flask's ``request.environ``, Django's
        ``request.META``). ``secure``: the framework's own HTTPS verdict when it has one
        (Django's ``is_secure()`` honours ``SECURE_PROXY_SSL_HEADER``); otherwise the
        environ's URL scheme decides."""
        return self.client(
            environ.get("REMOTE_ADDR"), environ.get("HTTP_USER_AGENT", ""),
            secure=environ.get("wsgi.url_scheme") == "https" if secure is None else secure,
            forwarded_for=environ.get("HTTP_X_FORWARDED_FOR"),
        )  # fmt: skip

    # ======================================================================================
    # open / load
    # ======================================================================================
    def open(
        self, cookie_header: str | None, client: ClientInfo = _NO_CLIENT, *, fresh: bool = False,
        core: bool = False,
    ) -> Session:  # fmt: skip
        """Verify the request's cookie (no I/O) and return the session the view will see.
        ``fresh``: the record is read from the store itself, never from a local cache in
        front of it (security-sensitive routes; see ``require_fresh``). ``core``: a plain
        ``Session``, whatever ``session_class`` says (the DBSC endpoints' own)."""
        session = Session() if core else self.session_class()
        ctx = session._ctx = _Context(client)
        if fresh:
            ctx.fresh = True
        if self.config.ephemeral:  # its cookies died with their response: none comes back
            return session
        values = cookie_values(cookie_header, self._name)
        values = [v for v in values if v and v != '""']
        if not values:
            # none, or only emptied ones (what a deleted cookie leaves in a client that keeps
            # it, as Django's test client does after a logout): no session, and no tampering
            return session
        ctx.presented = True
        if self.dbsc is not None:
            ctx.bound = self.dbsc.bound_values(cookie_header)
        value = values[0]
        if len(values) > 1 and any(v != value for v in values):
            self._reject(ctx, "several different session cookies were sent; ignoring all")
            return session
        if self._client_side:
            opened = self._cookie_store.unseal(self.keyring, self._associated, value)
            if opened is None:
                ctx.unverified = True
                self._reject(ctx, "cookie failed authentication (tampered, truncated, foreign, "
                             "or sealed with a key that is no longer configured)")  # fmt: skip
                return session
            ctx.plaintext, ctx.key_index = opened
            ctx.cookie = value
            session._pend(self._load_payload)
            return session
        session_id, _, tag = value.partition(".")
        key_index = None
        if is_well_formed(session_id) and len(tag) == _TAG_LENGTH:
            key_index = self.keyring.verify(self._sign_prefix + session_id.encode("ascii"), tag)
        if key_index is None:
            ctx.unverified = True
            self._reject(ctx, "cookie signature invalid (tampered, malformed, or signed with a "
                         "key that is no longer configured)")  # fmt: skip
            return session
        ctx.cookie, ctx.session_id, ctx.key_index = value, session_id, key_index
        ctx.digest = digest(session_id)
        session._pend(self.load)
        return session

    def load(self, session: Session) -> None:
        """Fetch a pending session's record (sync). Called lazily on first use."""
        session._unpend()
        ctx = session._ctx
        if self._client_side:
            self._load_payload(session)
            return
        try:
            load = self.store.load_fresh if ctx.fresh else self.store.load
            record = load(ctx.digest)
        except StoreUnavailable as exc:
            session._pend(self.load)
            self._store_error(exc)
            raise
        self._accept(session, record)

    async def aload(self, session: Session) -> None:
        """Fetch a pending session's record on the event loop; a no-op when not pending."""
        if session._loader is None:
            return
        session._unpend()
        ctx = session._ctx
        if self._client_side:
            self._load_payload(session)
            return
        try:
            if ctx.fresh:
                record = await self.store.aload_fresh(ctx.digest)
            else:
                record = await self.store.aload(ctx.digest)
        except StoreUnavailable as exc:
            # Still pending, but never through the sync ``load``: a later use on the event
            # loop must not block it with I/O. It raises again; ``aload`` retries.
            session._pend(_unavailable(exc))
            self._store_error(exc)
            raise
        self._accept(session, record)

    def require_fresh(self, session: Session, *, reload: bool = False) -> bool:
        """Make a session that is not loaded yet read from the store itself, past any local
        cache (a view decorator's way to say "this route must see a logout at once").
        ``True`` when the session's data is (or will be) the store's own: marked before its
        load, loaded fresh already, nothing to load (no cookie, a cookie store), or read
        through a store with no local cache (``Store.caches_reads``), where every read is.

        Already loaded through the cache: ``False``, and nothing changes; with ``reload``
        it is made pending again instead, to be read from the store on its next use (the
        sync flavour) or by ``await engine.aload(session)``, and ``True`` comes back. Only
        an unchanged session is read again (nothing is lost); one this request already
        changed raises ``FreshOrderError``, since those changes rest on the cached read."""
        ctx = session._ctx
        if session._loader is not None:
            ctx.fresh = True
            return True
        if self._client_side or ctx.digest is None or ctx.fresh or not self.store.caches_reads:
            return True
        if ctx.rejected:  # nothing live was found: the cache holds no misses, so no copy
            return True
        if not reload:
            return False
        what = self._changes_since_load(session)
        if what is not None:
            raise FreshOrderError(
                f"the session was changed{what} in this request before a fresh read was "
                "demanded, on data read from the local cache; demand it first: put "
                "@fresh / @fresh_session outermost (above @login_required), call "
                "fresh_session() before changing the session, and make no session changes "
                "in middleware or before_request hooks of routes marked fresh"
            )
        ctx.fresh = True
        self._reread(session)
        return True

    def _load_payload(self, session: Session) -> None:
        ctx = session._ctx
        try:
            session_id, meta, data = CookieStore.parse(ctx.plaintext)
        except Exception:
            self._reject(ctx, "authenticated cookie holds no readable session (old format?)")
            return
        ctx.session_id = session_id
        self._admit(session, ctx, data, meta)

    def _accept(self, session: Session, record: Record | None) -> None:
        ctx = session._ctx
        if record is None:
            ctx.rejected = True  # expired and swept, revoked, or never ours: start afresh
            return
        try:
            data = self._decoded(ctx, record.items)
        except sealing.SealFailed as exc:
            ctx.doomed = (*ctx.doomed, ctx.digest)
            ctx.rejected = True
            self._emit(EventKind.RECORD_REJECTED, ctx, f"stored record does not decrypt: {exc}")
            return
        except Exception:
            ctx.doomed = (*ctx.doomed, ctx.digest)
            ctx.rejected = True
            self._emit(EventKind.RECORD_REJECTED, ctx, "stored record is corrupted or foreign")
            return
        ctx.stored = data
        self._admit(session, ctx, data, record.meta)

    def _decoded(self, ctx: _Context, items: Mapping[str, str]) -> dict[str, Any]:
        """A record's values, decrypted where sealed (``encrypt_records``). With sealing
        off, a sealed value breaks the one-parse decode; only then is each value looked at,
        so plain records pay nothing for the feature."""
        if not self._sealing:
            try:
                return serialization.loads_items(items)
            except ValueError:
                if not any(sealing.is_sealed(sealing.text_of(v)) for v in items.values()):
                    raise
        opened, stale = sealing.open_items(self.keyring, ctx.digest, items, self._sealing)  # type: ignore[arg-type]
        if stale:
            ctx.reseal = {k: (sealing.text_of(items[k]), opened[k]) for k in stale}
        return serialization.loads_items(opened)

    def _admit(
        self, session: Session, ctx: _Context, data: dict[str, Any], meta: RecordMeta
    ) -> None:
        now = self.clock()
        end = self._deadline(meta)
        if end <= now:
            self._forfeit(ctx)
            self._emit(EventKind.EXPIRED, ctx, "session expired", meta.user, expired_at=end)
            return
        if (
            meta.dbsc is not None and self.dbsc is not None and not ctx.dbsc_exempt
            and not self.dbsc.bound_cookie_ok(ctx.digest, meta, ctx.bound, now)  # type: ignore[arg-type]
        ):  # fmt: skip
            missing = self.config.dbsc_missing_action
            self._emit(
                EventKind.DBSC_MISSING, ctx,
                f"device-bound session without a valid bound cookie; action: {missing}",
                meta.user, action=missing,
            )  # fmt: skip
            if missing == "invalidate":
                self._forfeit(ctx)
            else:
                ctx.rejected = ctx.withheld = True
            return
        rotate = False
        if meta.fingerprint is not None:
            material = ctx.material
            if material is False:
                material = self._material(ctx)
            matched = (
                None if material is None
                else self.keyring.fingerprint_matches(material, meta.fingerprint)  # type: ignore[arg-type]
            )  # fmt: skip
            if material is None or matched == 0:
                ctx.fingerprint = "keep"
            elif matched is not None:  # made with an older key: rewrite under the newest
                session._meta_changed = True
            else:
                ctx.fingerprint = "keep" if self.config.fingerprint_action == "log" else ""
                action = self.config.fingerprint_action
                self._emit(
                    EventKind.FINGERPRINT_MISMATCH, ctx,
                    f"client fingerprint changed; action: {action}", meta.user, action=action,
                )  # fmt: skip
                if action == "invalidate":
                    self._forfeit(ctx)
                    return
                rotate = action == "regenerate"
        session._attach(data, meta, end)
        if rotate:
            session._rotate = True
            session._meta_changed = True
        if session._meta_changed or session._rotate:
            ctx.admitted = (session._meta_changed, session._rotate)
        if self.events.active:
            self._emit(EventKind.LOADED, ctx, "")

    def _forfeit(self, ctx: _Context) -> None:
        if ctx.digest is not None:
            ctx.doomed = (*ctx.doomed, ctx.digest)
        ctx.rejected = True

    def _reject(self, ctx: _Context, reason: str) -> None:
        ctx.rejected = True
        self._emit(EventKind.COOKIE_REJECTED, ctx, reason)

    # ======================================================================================
    # commit
    # ======================================================================================
    def commit(
        self, session: Session, status: int = 200, *, keep_empty: bool = False
    ) -> CommitPlan:
        """Decide, without I/O, what this request does to the session and the response.
        Raises ``SessionTooLarge`` (after its event) when the cookie would be too large.

        ``keep_empty``: store the session even when it holds no data (``save``, where the
        caller asked for a record); requests never store an empty session."""
        if self.dbsc is not None:
            return self._commit_bound(session, status, keep_empty)
        try:
            return self._commit(session, status, keep_empty)
        except SessionTooLarge as exc:
            self._failed(exc)
            raise

    def _commit_bound(self, session: Session, status: int, keep_empty: bool) -> CommitPlan:
        """``commit`` with DBSC on: what the session asks of the device binding too."""
        old, rotated = session._meta, session._rotate
        user_changed, invalidated = session._user_changed, session._invalidated
        try:
            plan = self._commit(session, status, keep_empty)
        except SessionTooLarge as exc:
            self._failed(exc)
            raise
        if status < 500 and session._loader is None:
            self.dbsc.after_commit(  # type: ignore[union-attr]
                session, plan, old, rotated=rotated, user_changed=user_changed,
                invalidated=invalidated,
            )  # fmt: skip
        return plan

    def _commit(self, session: Session, status: int, keep_empty: bool) -> CommitPlan:
        ctx: _Context = session._ctx
        plan = CommitPlan(session._accessed)
        if status >= 500:
            return plan  # never save what a failing view may have half-changed
        if session._loader is not None:  # nobody touched it: no I/O, no cookie
            return plan
        secure = plan.secure = self._always_secure or ctx.client.secure
        if session._accessed and (session._flash_old or session._flash_new):
            session._age_flash()
        if session._snapshots:
            session._nested_changes()
        if ctx.key_index:  # the cookie was made with an older key: re-issue under the newest
            session._meta_changed = True
        if ctx.doomed:
            plan.deletes.extend(ctx.doomed)
        old = session._meta
        empty = not keep_empty and not dict.__len__(session) and session._user is None
        now = self.clock()

        if old is None or session._rotate:
            rotated_from = None
            if old is not None and ctx.digest is not None:
                if session._invalidated:
                    plan.deletes.append(ctx.digest)
                else:
                    rotated_from = ctx.digest
            if old is not None:
                kind = EventKind.INVALIDATED if session._invalidated else EventKind.REGENERATED
                if kind is EventKind.REGENERATED and self._unbinds(session, old):
                    # a logout that keeps the session: the audit trail records the logout
                    self._note(plan, kind, ctx, old.user, unbinds=True)
                    self._note(plan, EventKind.USER_UNBOUND, ctx, old.user)
                else:
                    self._note(plan, kind, ctx, old.user)
            if empty:
                if rotated_from is not None:
                    plan.deletes.append(rotated_from)
                if ctx.presented and self._clears(ctx):
                    plan.set_cookie = self._cookies.clear(secure=secure)
                return plan
            created = self._created(session, now)
            meta = self._meta(session, ctx, created, now, old)
            end = self._deadline(meta)
            if end <= now:  # set_expiry() to a moment already past: nothing to store
                if rotated_from is not None:
                    plan.deletes.append(rotated_from)
                if ctx.presented:
                    plan.set_cookie = self._cookies.clear(secure=secure)
                return plan
            session_id = new_id()
            ctx.session_id, ctx.digest, ctx.cookie, ctx.key_index = (
                session_id, None, None, 0,
            )  # fmt: skip
            if ctx.reseal:  # the old record's: this write seals every value afresh
                ctx.reseal = {}
            if not self._client_side and not self.config.ephemeral:  # ephemeral: dead on arrival
                ctx.digest = digest(session_id)
                items = {k: serialization.dumps_item(k, v) for k, v in dict.items(session)}
                if self._sealing:
                    items = self._sealed(ctx.digest, items)
                previous = old.user if old is not None else None
                plan.write = Write(
                    ctx.digest, items, frozenset(), meta, end - now,
                    create=True, replace=True, rotated_from=rotated_from,
                    previous_user=previous, limit=self._limit_of(meta, previous),
                )  # fmt: skip
            self._note(plan, EventKind.CREATED, ctx, meta.user)
            if session._user_changed and meta.user is not None:
                self._note(plan, EventKind.USER_BOUND, ctx, meta.user)
            plan.set_cookie = self._cookie(session, ctx, meta, end, now, secure)
            self._settle(session, meta, end)
            return plan

        if (
            session._changed
            or session._removed
            or session._cleared
            or session._force
            or session._meta_changed
            or session._rotate
        ):  # session.modified, inline: this runs on every request that touched the session
            if empty:
                if ctx.digest is not None:
                    plan.deletes.append(ctx.digest)
                plan.set_cookie = self._cookies.clear(secure=secure)
                self._note(plan, EventKind.INVALIDATED, ctx, old.user)
                return plan
            meta = self._meta(session, ctx, old.created, now, old)
            end = self._deadline(meta)
            if end <= now:  # e.g. set_expiry() to a moment already past
                if ctx.digest is not None:
                    plan.deletes.append(ctx.digest)
                plan.set_cookie = self._cookies.clear(secure=secure)
                return plan
            if not self._client_side:
                full = session._cleared or session._force
                changed = session._changed
                # the changed keys in the session's order, so a store that merges them in
                # (appending the new ones) keeps the dict's insertion order
                if full:
                    keys: Iterable[str] = dict.keys(session)
                elif len(changed) > 1:
                    keys = [k for k in dict.keys(session) if k in changed]
                else:
                    keys = changed
                items = {k: serialization.dumps_item(k, dict.__getitem__(session, k)) for k in keys}
                if self._sealing:
                    items = self._sealed(ctx.digest, items)  # type: ignore[arg-type]
                stored, removed = ctx.stored, session._removed
                plan.write = Write(
                    ctx.digest, items, frozenset(removed), meta,  # type: ignore[arg-type]
                    end - now, replace=full, previous_user=old.user,
                    limit=self._limit_of(meta, old.user),
                    new_keys=frozenset(k for k in items if k not in stored or k in removed),
                )  # fmt: skip
                if ctx.reseal:
                    self._plan_reseal(plan, session, ctx, items, full)
            if self.events.active:
                self._note(plan, EventKind.SAVED, ctx, meta.user)
                if session._user_changed and meta.user is not None:
                    self._note(plan, EventKind.USER_BOUND, ctx, meta.user)
                if self._unbinds(session, old):
                    self._note(plan, EventKind.USER_UNBOUND, ctx, old.user)
            plan.set_cookie = self._cookie(session, ctx, meta, end, now, secure)
            session._meta, session._expires, session._new = meta, end, False
            return plan

        refresh = self.config.refresh_each_request
        if (session._accessed or refresh) and now - old.last_seen >= self.config.touch_interval:
            meta = old._replace(last_seen=int(now))
            end = self._deadline(meta)
            if not self._client_side:
                plan.touch = (ctx.digest, meta.last_seen, end - now)  # type: ignore[assignment]
            if self._client_side or not browser_session(meta, self.config):
                plan.set_cookie = self._cookie(session, ctx, meta, end, now, secure)
            self._note(plan, EventKind.TOUCHED, ctx, meta.user)
            self._settle(session, meta, end)
        elif refresh and not browser_session(old, self.config):
            # the store write waits for touch_interval; the browser's cookie does not
            plan.set_cookie = self._cookie(session, ctx, old, self._deadline(old), now, secure)
        elif ctx.rejected and ctx.presented and self._clears(ctx):
            plan.set_cookie = self._cookies.clear(secure=secure)
        return plan

    @staticmethod
    def _unbinds(session: Session, old: RecordMeta) -> bool:
        """Whether this commit takes the session from the user it was bound to (a logout
        that keeps the session, as Flask-Login's does), not ending it."""
        return (
            old.user is not None and session._user_changed and session._user != old.user
            and not session._invalidated
        )  # fmt: skip

    def _limit_of(self, meta: RecordMeta, previous_user: str | None) -> SessionLimit | None:
        """``max_sessions_per_user`` for a write that binds its session to a user it was
        not bound to (a login); a save of an already bound session counts nothing."""
        if self._limit is None or meta.user is None or meta.user == previous_user:
            return None
        return self._limit

    def _clears(self, ctx: _Context) -> bool:
        """Whether a presented cookie that led to no session is cleared (see
        ``SessionConfig.clear_unverified_cookie``)."""
        return (self.config.clear_unverified_cookie or not ctx.unverified) and not ctx.withheld

    @staticmethod
    def _created(session: Session, now: float) -> int:
        """The creation time a (re)written record carries: a rotation keeps the session's
        age (the absolute timeout still counts from the first save); a new session, a
        logout or a change of user starts it again."""
        old = session._meta
        fresh = old is None or session._invalidated or session._user_changed
        return int(now) if fresh else old.created  # type: ignore[union-attr]

    def _meta(
        self, session: Session, ctx: _Context, created: int, now: float, old: RecordMeta | None
    ) -> RecordMeta:
        material = ctx.material
        if material is False:
            material = self._material(ctx)
        if material is None:
            fingerprint = None
        elif old is not None and old.fingerprint is not None and ctx.fingerprint == "keep":
            # unchanged, or a mismatch we only log: keep what the record holds
            fingerprint = old.fingerprint
        else:
            fingerprint = self.keyring.fingerprint(material)  # type: ignore[arg-type]
        agent = ctx.client.user_agent
        if agent:
            device = self._devices.get(agent, device_label)
        else:  # nothing said (a script, a test): keep what the record knows
            device = old.device if old is not None else None
        dbsc = None
        if ctx.dbsc_register is not None:
            dbsc = ctx.dbsc_register.to_text()
        elif old is not None and old.dbsc is not None:
            # a new ID or a new user: the browser registers again (DeviceBinding.after_commit)
            keep = not (session._rotate or session._user_changed or session._invalidated)
            dbsc = old.dbsc if keep else None
        return RecordMeta(
            created=created, last_seen=int(now), idle=session._idle,
            browser=session._browser, until=session._until, user=session._user,
            fingerprint=fingerprint, flash_new=tuple(session._flash_new),
            flash_old=tuple(session._flash_old), device=device, dbsc=dbsc,
        )  # fmt: skip

    def _cookie(
        self, session: Session, ctx: _Context, meta: RecordMeta, end: float, now: float,
        secure: bool,
    ) -> str:  # fmt: skip
        if self.config.ephemeral:
            max_age: int | None = 0
        elif browser_session(meta, self.config):
            max_age = None
        else:
            max_age = cookie_max_age(end, now)
        expires = end if self.config.cookie_expires else None
        if self._client_side:
            try:
                value = self._cookie_store.seal(
                    self.keyring, self._associated, ctx.session_id,  # type: ignore[arg-type]
                    meta, serialization.tag_items(dict.items(session)),
                )  # fmt: skip
            except SessionDataError:  # which key? (found only on this rare path)
                for key, item in dict.items(session):
                    serialization.dumps_item(key, item)
                raise
        elif ctx.cookie is not None and ctx.key_index == 0:
            value = ctx.cookie
        else:
            value = ctx.cookie = self.sign(ctx.session_id)  # type: ignore[arg-type]
        return self._cookies.set(value, max_age, secure=secure, expires=expires)

    def _sealed(self, digest_: str, items: dict[str, str]) -> dict[str, str]:
        return sealing.seal_items(self.keyring, digest_, items)

    def _plan_reseal(
        self, plan: CommitPlan, session: Session, ctx: _Context, written: Mapping[str, str],
        full: bool,
    ) -> None:  # fmt: skip
        """Values of the record that ``encrypt_records`` wants written again (sealed under
        an older key, or not as the setting now says) and this request leaves unchanged:
        re-sealed after the save, compare-and-set per value (``Store.reseal``), never in the
        save's merge, which would write a value as this request read it over a change
        another request made meanwhile. A store without ``reseal`` keeps them as they are
        until they change."""
        stale, ctx.reseal = ctx.reseal, {}
        if full or not self.store.supports_reseal:
            return  # a full write has just written them all again
        removed = session._removed
        keep = {
            k: pair for k, pair in stale.items()
            if k not in written and k not in removed and dict.__contains__(session, k)
        }  # fmt: skip
        if not keep:
            return
        plain = {k: text for k, (_, text) in keep.items()}
        new = self._sealed(ctx.digest, plain) if self._sealing else plain  # type: ignore[arg-type]
        plan.reseal = (ctx.digest, {k: (keep[k][0], new[k]) for k in keep})  # type: ignore[assignment]

    def seal(self, session_id: str, meta: RecordMeta, data: Mapping[str, Any]) -> str:
        """The cookie value of a ``cookie://`` session (what ``open`` unseals), for adapters
        that save outside ``commit``. Raises ``SessionTooLarge`` when the Set-Cookie header
        carrying it, attributes and all, would pass ``max_cookie_size``."""
        value = self._cookie_store.seal(
            self.keyring, self._associated, session_id, meta,
            serialization.tag_items(data.items()),
        )  # fmt: skip
        end = self._deadline(meta)
        now = self.clock()
        max_age = None if browser_session(meta, self.config) else cookie_max_age(end, now)
        self._cookies.set(value, max_age, secure=True)  # the longest header it can travel in
        return value

    def sign(self, session_id: str) -> str:
        """The cookie value of a server-side session: ``ID.TAG``, the HMAC tag binding the ID
        to this cookie name under the newest key (what ``open`` verifies)."""
        return f"{session_id}.{self.keyring.tag(self._sign_prefix + session_id.encode('ascii'))}"

    def _material(self, ctx: _Context) -> bytes | None:
        material = ctx.material
        if material is False:
            client = ctx.client
            key = (client.user_agent, client.remote_addr)
            material = self._materials.get(key, lambda _: fingerprint_material(client, self.config))
            ctx.material = material
        return material  # type: ignore[return-value]

    @staticmethod
    def _settle(session: Session, meta: RecordMeta, end: float) -> None:
        session._meta = meta
        session._expires = end
        session._new = False

    # ======================================================================================
    # outside a request: save now, and what adapters may ask of a session
    # ======================================================================================
    def save(self, session: Session) -> CommitPlan:
        """Commit ``session`` and run the plan now, outside a request (a framework's
        standalone session object, a script). Unlike a request, it stores a session that
        holds no data: the caller asked for a record. Afterwards the session counts as
        saved, so it can change and be saved again. ``plan.conflict``: the session was
        deleted or rotated away meanwhile (a logout) and nothing was written."""
        plan = self.commit(session, keep_empty=True)
        if self.run(plan):
            self._saved(session)
        return plan

    async def asave(self, session: Session) -> CommitPlan:
        """The async flavour of ``save``."""
        plan = self.commit(session, keep_empty=True)
        if await self.arun(plan):
            self._saved(session)
        return plan

    @staticmethod
    def _saved(session: Session) -> None:
        session._changed.clear()
        session._removed.clear()
        session._snapshots.clear()
        session._cleared = session._force = session._meta_changed = False
        session._rotate = session._invalidated = session._user_changed = False
        ctx: _Context = session._ctx
        ctx.doomed, ctx.rejected = (), False

    def expiry_if_saved(self, session: Session, at: float) -> float:
        """The epoch second ``session`` would expire at if it were saved at ``at``: its own
        ``set_expiry()`` choice, else the configured timeouts, the absolute one counted from
        the session's creation (``at`` for one not stored yet). A loaded session only."""
        meta = RecordMeta(
            created=self._created(session, at), last_seen=at,  # type: ignore[arg-type]
            idle=session._idle, browser=session._browser, until=session._until,
        )  # fmt: skip
        return self._deadline(meta)

    def browser_session_of(self, session: Session) -> bool:
        """Whether ``session``'s cookie is a browser-session one (no Max-Age): its own
        ``set_expiry(0)``/``set_expiry(None)`` choice, else the configured default."""
        return browser_cookie(session._browser, self.config)

    @staticmethod
    def cookie_of(session: Session) -> str | None:
        """The session's verified cookie value: as presented (``open`` checked its
        signature), or as issued by the last commit of a server-side session."""
        ctx: _Context = session._ctx
        return ctx.cookie

    @staticmethod
    def digest_of(session: Session) -> str | None:
        """The store key of the session's record (``None`` for ``cookie://`` and for a
        session without an ID yet). It is not a secret to keep from the store, but never
        show it: ``session.handle`` is the name to show."""
        ctx: _Context = session._ctx
        return ctx.digest if ctx.session_id is not None else None

    @staticmethod
    def client_of(session: Session) -> ClientInfo:
        """The ``ClientInfo`` the session was opened with."""
        ctx: _Context = session._ctx
        return ctx.client

    # ======================================================================================
    # a user's other sessions
    # ======================================================================================
    def revoke_others(self, session: Session) -> int:
        """ "Log out everywhere else": delete every other session of the user this session
        is bound to, keeping this one. Returns how many were revoked (0 when the session
        is not bound to a user)."""
        user, keep = self._others(session)
        if user is None:
            return 0
        return self.revoke_user(user, keep=keep, actor="user", client=session._ctx.client)

    async def arevoke_others(self, session: Session) -> int:
        """The async flavour of ``revoke_others``."""
        await self.aload(session)
        user, keep = self._others(session)
        if user is None:
            return 0
        return await self.arevoke_user(user, keep=keep, actor="user", client=session._ctx.client)

    def revoke_user(
        self, user: str, *, keep: str | None = None, actor: str = "app",
        client: ClientInfo | None = None,
    ) -> int:  # fmt: skip
        """Delete every session of ``user`` (but the one whose digest is ``keep``) and
        emit one ``REVOKED`` event per session, naming ``actor`` (``"user"``,
        ``"staff:<key>"``, ``"cli"``...): what the audit trail records. Returns how many."""
        listed = self._revocable(self.store.user_sessions, user, keep)
        count = self.store.revoke_user(user, keep=keep)
        self._revoked(user, listed if count else [], actor, client)
        return count

    async def arevoke_user(
        self, user: str, *, keep: str | None = None, actor: str = "app",
        client: ClientInfo | None = None,
    ) -> int:  # fmt: skip
        """The async flavour of ``revoke_user``."""
        listed = None
        if self.events.wants(EventKind.REVOKED):
            listed = self._except(await self.store.auser_sessions(user), keep)
        count = await self.store.arevoke_user(user, keep=keep)
        self._revoked(user, listed if count else [], actor, client)
        return count

    def revoke_handle(
        self, user: str, handle_: str, *, actor: str = "app", client: ClientInfo | None = None
    ) -> bool:
        """Delete ``user``'s session ``handle_`` (``False``: no such session of theirs)
        and emit ``REVOKED`` naming ``actor``."""
        done = self.store.revoke_handle(user, handle_)
        if done:
            self._revoked(user, [handle_], actor, client)
        return done

    async def arevoke_handle(
        self, user: str, handle_: str, *, actor: str = "app", client: ClientInfo | None = None
    ) -> bool:
        """The async flavour of ``revoke_handle``."""
        done = await self.store.arevoke_handle(user, handle_)
        if done:
            self._revoked(user, [handle_], actor, client)
        return done

    def _revocable(
        self, sessions: Callable[[str], list[Any]], user: str, keep: str | None
    ) -> list[str] | None:
        """The handles a revoke is about to end, listed only when someone listens."""
        if not self.events.wants(EventKind.REVOKED):
            return None
        return self._except(sessions(user), keep)

    @staticmethod
    def _except(infos: list[Any], keep: str | None) -> list[str]:
        kept = handle(keep) if keep is not None else None
        return [info.handle for info in infos if info.handle != kept]

    def _revoked(
        self, user: str, handles: list[str] | None, actor: str, client: ClientInfo | None
    ) -> None:
        for each in handles or ():
            self.events.emit(
                Event(EventKind.REVOKED, each, f"revoked by {actor}", user=user, client=client,
                      actor=actor)
            )  # fmt: skip

    @staticmethod
    def _others(session: Session) -> tuple[str | None, str | None]:
        ctx: _Context = session._ctx
        return session.user_id, ctx.digest

    # ======================================================================================
    # export and erasure (GDPR articles 15 and 17)
    # ======================================================================================
    def export_user(self, user: str) -> dict[str, Any]:
        """One JSON-ready document of everything stored about ``user``'s sessions: each
        live session's metadata (handle, created, last seen, expiry settings, device) and
        its data, decrypted (``encrypt_records``) and in sessionkit's tagged JSON, which
        says each value's type, and the user's audit entries from the store's trail. An
        unknown user gets an empty document, not an error."""
        return exported(user, self._user_records(user), self.clock(), self.audit_entries(user))

    def erase_user(self, user: str, *, actor: str = "erasure") -> int:
        """Revoke every session of ``user`` (records and user index entries deleted), then
        pseudonymise or delete their audit entries (``audit_erasure``); returns how many
        sessions there were. ``export_user`` shows nothing of them afterwards."""
        count = self.revoke_user(user, actor=actor)
        sink = self._audit_sink()
        if sink is not None:
            if self.audit is not None:
                self.audit.flush()  # the revokes just queued are erased too
            config = self.config
            erase_entries(
                sink, user, config.audit_erasure, self._pseudonym(user), actor, self.clock(),
                retention=config.audit_retention, max_entries=config.audit_max_entries,
            )  # fmt: skip
        return count

    # ======================================================================================
    # the audit trail
    # ======================================================================================
    def audit_entries(
        self, user: str | None, *, since: float | None = None, limit: int | None = None
    ) -> list[AuditEntry]:
        """``user``'s audit entries in the store's trail, oldest first (``None``: those of
        no user, such as cookie rejections); ``[]`` when the store keeps none. Entries
        still queued for the store are written first."""
        sink = self._audit_sink()
        if sink is None:
            return []
        if self.audit is not None:
            self.audit.flush()
        floor = self.clock() - self.config.audit_retention  # never one past the retention
        return sink.entries(user, since=floor if since is None else max(since, floor), limit=limit)

    async def aaudit_entries(
        self, user: str | None, *, since: float | None = None, limit: int | None = None
    ) -> list[AuditEntry]:
        """``audit_entries`` in a worker thread (it waits for the trail's writer and reads
        the store's sync client), so an async view never blocks its event loop."""
        return await asyncio.to_thread(
            functools.partial(self.audit_entries, user, since=since, limit=limit)
        )

    def _audit_sink(self) -> AuditSink | None:
        if self.audit is not None and self.audit.store_sink is not None:
            return self.audit.store_sink
        return self.store.audit_sink()

    def _pseudonym(self, user: str) -> str:
        if self.audit is not None:
            return self.audit.pseudonym(user)
        return pseudonym_of(pseudonym_key(self.config.secret_keys[0]), user)

    def _user_records(self, user: str) -> list[tuple[str, Record, dict[str, Any]]]:
        found = []
        for digest_ in self.store.user_digests(user):
            record = self.store.load_fresh(digest_)
            if record is None or record.meta.user != user:
                continue  # a stale index entry: nothing stored for it any more
            items: Mapping[str, str] = record.items
            if any(sealing.is_sealed(sealing.text_of(v)) for v in items.values()):
                items, _ = sealing.open_items(self.keyring, digest_, items, self._sealing)
            found.append((digest_, record, {k: json.loads(v) for k, v in items.items()}))
        return found

    # ======================================================================================
    # rekey: re-seal the whole store (encrypt_records; sessionkit.rekey)
    # ======================================================================================
    def rekey(
        self, *, progress: Callable[[RekeyReport], None] | None = None, chunk: int = 500
    ) -> RekeyReport:
        """Re-seal every stored record with the newest key: values sealed under an older
        one and, with ``encrypt_records`` on, plain ones; with it off, sealed values are
        written back plain. ``chunk`` records at a time, ``progress`` called after each
        with the running ``RekeyReport``. A value a request changes meanwhile is left as
        that request wrote it (``Store.reseal`` compares and sets, per value)."""
        return rekey_store(self.store, self.keyring, self._sealing, progress=progress, chunk=chunk)

    # ======================================================================================
    # health
    # ======================================================================================
    def health(self) -> Health:
        """Probe the store once: reachable or not, the round trip, the server's version.
        Never raises; see ``sessionkit.health``."""
        return probe(self.store)

    async def ahealth(self) -> Health:
        """``health()`` on the store's async flavour."""
        return await aprobe(self.store)

    # ======================================================================================
    # locks
    # ======================================================================================
    def lock(
        self, session: Session, *, ttl: float = 30.0, wait: float = 10.0
    ) -> contextlib.AbstractContextManager[None]:
        """Serialise the requests of one session through the store's lock; hold it until
        ``run()`` is done. A request without a valid cookie has nothing to race with and
        locks nothing. The one rule, in every framework: a session already *read* in this
        request (by auth, CSRF or other middleware) is read again once the lock is held, so
        the view sees the last committed data; one already *changed* is refused with
        ``LockOrderError``, since those changes were made without the lock."""
        key = self._lock_key(session)
        if key is None:
            return contextlib.nullcontext()
        self._check_lock_order(session)
        return self._locked(self.store.lock(key, ttl=ttl, wait=wait), session)

    def alock(
        self, session: Session, *, ttl: float = 30.0, wait: float = 10.0
    ) -> contextlib.AbstractAsyncContextManager[None]:
        """The async flavour of ``lock`` (the same rule). A session read before the lock is
        pending again once it is held: ``await engine.aload(session)`` reads it then."""
        key = self._lock_key(session)
        if key is None:
            return contextlib.nullcontext()
        self._check_lock_order(session)
        return self._alocked(self.store.alock(key, ttl=ttl, wait=wait), session)

    @staticmethod
    def _changes_since_load(session: Session) -> str | None:
        """``None`` when this request left a loaded session unchanged (a reread loses
        nothing; the flags its load set do not count, a reread sets them again); else what
        the lock- and fresh-order errors say of the change: ``" (keys 'a', 'b')"``, or
        ``""`` for a change of no key (a flush, a rotation)."""
        meta_changed, rotate = session._ctx.admitted
        if not (
            session._changed or session._removed or session._cleared or session._force
            or (session._meta_changed and not meta_changed) or (session._rotate and not rotate)
        ):  # fmt: skip
            return None
        changed = sorted(session.changed_keys)
        return f" (keys {', '.join(map(repr, changed))})" if changed else ""

    @classmethod
    def _check_lock_order(cls, session: Session) -> None:
        what = cls._changes_since_load(session) if session.loaded else None
        if what is not None:
            raise LockOrderError(
                f"the session was changed{what} before its lock was taken in this request, "
                "so the lock cannot protect those changes; take the lock first: put "
                "@locked / @session_lock outermost (above @login_required), call "
                "lock_session() before changing the session, and make no session changes "
                "in middleware or before_request hooks of locked views"
            )

    def _reread(self, session: Session) -> None:
        """Make a session read before its lock was held pending again, so its next use
        reads what the store holds now (an unchanged session: nothing is lost)."""
        if session._loader is not None:
            return
        ctx = session._ctx
        ctx.admitted = _Context.admitted  # decided again by the next load
        dict.clear(session)
        Session.__init__(session)
        session._ctx = ctx
        session._pend(self.load)

    @contextlib.contextmanager
    def _locked(
        self, held: contextlib.AbstractContextManager[None], session: Session
    ) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(held)
            except LockTimeout as exc:
                self._failed(exc, session)
                raise
            self._reread(session)
            yield

    @contextlib.asynccontextmanager
    async def _alocked(
        self, held: contextlib.AbstractAsyncContextManager[None], session: Session
    ) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            try:
                await stack.enter_async_context(held)
            except LockTimeout as exc:
                self._failed(exc, session)
                raise
            self._reread(session)
            yield

    def require_locks(self, routes: Iterable[str] = (), *, setting: str = "store") -> None:
        """Raise ``LocksUnsupported`` naming ``routes`` when the store cannot lock. Adapters
        call it when the app starts, with the routes that take the session lock, so such a
        setting fails there and not on a request; ``setting`` is the store setting as the
        framework spells it."""
        if not self.store.supports_lock:
            url = self.store.url or type(self.store).__name__
            raise LocksUnsupported(url, tuple(routes), setting=setting)

    def _lock_key(self, session: Session) -> str | None:
        self.require_locks()  # also without a cookie: the same answer on every request
        ctx: _Context = session._ctx
        return ctx.digest

    # ======================================================================================
    # run
    # ======================================================================================
    def run(self, plan: CommitPlan) -> bool:
        """Execute ``plan`` against the store (sync). ``False``: the session vanished
        meanwhile (logout, revoke) and was not brought back; the cookie is cleared."""
        ok = True
        if plan.write is not None or plan.deletes or plan.touch is not None or plan.dbsc_challenges:
            store = self.store
            write = plan.write
            try:
                if write is not None:
                    if write.limit is None:
                        ok = store.save(write)
                    else:
                        ok = self._evicted(plan, write, store.save_limited(write))
                for doomed in plan.deletes:
                    store.delete(doomed)
                if plan.touch is not None:
                    ok = store.touch(*plan.touch)
                if ok and plan.reseal is not None:
                    self._resealed(plan, store.reseal)
                if ok and plan.dbsc_challenges:
                    for challenge in plan.dbsc_challenges:
                        store.put_challenge(*challenge)
            except SessionLimitReached as exc:
                self._refused(exc, write)
                raise
            except (StoreUnavailable, SessionTooLarge) as exc:
                self._failed(exc)
                raise
        return self._finish(plan, ok)

    async def arun(self, plan: CommitPlan) -> bool:
        """Execute ``plan`` against the store on the event loop."""
        ok = True
        if plan.has_io:
            store = self.store
            write = plan.write
            try:
                if write is not None:
                    if write.limit is None:
                        ok = await store.asave(write)
                    else:
                        ok = self._evicted(plan, write, await store.asave_limited(write))
                for doomed in plan.deletes:
                    await store.adelete(doomed)
                if plan.touch is not None:
                    ok = await store.atouch(*plan.touch)
                if ok and plan.reseal is not None:
                    try:
                        await store.areseal(*plan.reseal)
                    except StoreUnavailable as exc:
                        self._reseal_failed(exc)
                if ok and plan.dbsc_challenges:
                    for challenge in plan.dbsc_challenges:
                        await store.aput_challenge(*challenge)
            except SessionLimitReached as exc:
                self._refused(exc, write)
                raise
            except (StoreUnavailable, SessionTooLarge) as exc:
                self._failed(exc)
                raise
        return self._finish(plan, ok)

    def _resealed(
        self, plan: CommitPlan, reseal: Callable[[str, dict[str, tuple[str, str]]], int]
    ) -> None:
        try:
            reseal(*plan.reseal)  # type: ignore[misc]
        except StoreUnavailable as exc:
            self._reseal_failed(exc)

    def _reseal_failed(self, exc: StoreUnavailable) -> None:
        """The save landed; only the re-seal of unchanged values did not: the request
        succeeds (the values stay as they were, readable, and are re-sealed next time)."""
        self._store_error(exc)

    @staticmethod
    def _evicted(plan: CommitPlan, write: Write, evicted: list[str] | None) -> bool:
        """Queue one ``SESSION_EVICTED`` per session the limit deleted (emitted with the
        plan's other events); ``False`` when the write itself did not land."""
        if evicted is None:
            return False
        for doomed in evicted:
            plan.events.append(
                Event(
                    EventKind.SESSION_EVICTED, handle(doomed),
                    "evicted to keep the user within max_sessions_per_user "
                    "(the least recently used session)",
                    {"user": write.meta.user, "by": handle(write.digest),
                     "max_sessions": write.limit.max_sessions if write.limit else None},
                    user=write.meta.user, actor="session_limit",
                )
            )  # fmt: skip
        return True

    def _refused(self, exc: SessionLimitReached, write: Write | None) -> None:
        if write is not None and exc.handle is None:
            exc.handle = handle(write.rotated_from or write.digest)
        self._failed(exc, user=write.meta.user if write is not None else None)

    def _finish(self, plan: CommitPlan, ok: bool) -> bool:
        if not ok:
            plan.conflict = True
            plan.set_cookie = self._cookies.clear(secure=plan.secure)
            plan.dbsc_headers = ()  # no registration for a session that is gone
            target = plan.write.digest if plan.write is not None else None
            self.events.emit(
                Event(EventKind.SAVE_CONFLICT, handle(target) if target else None,
                      "session was deleted or rotated by another request; not saved")
            )  # fmt: skip
            return False
        if self.keyring.opened_records and (plan.deletes or plan.write is not None):
            # (filled whenever sealed values are read: with encrypt_records off too)
            rotated = plan.write.rotated_from if plan.write is not None else None
            sealing.forget(self.keyring, (*plan.deletes, rotated))
        for event in plan.events:
            self.events.emit(event)
        return True

    # ======================================================================================
    # events
    # ======================================================================================
    def _emit(
        self, kind: EventKind, ctx: _Context, reason: str, user: str | None = None,
        **detail: Any,
    ) -> None:  # fmt: skip
        if self.events.wants(kind):
            self.events.emit(Event(kind, ctx.handle, reason, detail, user, ctx.client))

    def _note(
        self, plan: CommitPlan, kind: EventKind, ctx: _Context, user: str | None = None,
        **detail: Any,
    ) -> None:  # fmt: skip
        if self.events.active and self.events.wants(kind):
            plan.events.append(Event(kind, ctx.handle, "", detail, user, ctx.client))

    def _store_error(self, exc: StoreUnavailable) -> None:
        self.events.emit(Event(EventKind.STORE_ERROR, None, str(exc)))

    def _failed(
        self, exc: StoreUnavailable | SessionTooLarge | LockTimeout | SessionLimitReached,
        session: Session | None = None, user: str | None = None,
    ) -> None:  # fmt: skip
        failure = failure_of(exc)
        assert failure is not None
        kind = self.config.failure_policies[failure].event
        if self.events.wants(kind):
            client = None
            if session is not None:
                client = session._ctx.client
                if user is None and session._loader is None:  # never load to say who
                    user = session._user
            event = Event(kind, getattr(exc, "handle", None), str(exc), user=user, client=client)
            self.events.emit(event)

    # ======================================================================================
    # failures
    # ======================================================================================
    def policy(self, failure: Failure) -> FailurePolicy:
        """How a request answers ``failure`` under this engine's config."""
        return self.config.failure_policies[failure]

    def refuse(
        self, cause: BaseException | Failure, where: str = "", logger: logging.Logger | None = None
    ) -> FailurePolicy | None:
        """The policy for the failure a request hit (an exception sessionkit raised, or a
        plan's ``failure``), with its log line written; ``None`` when ``cause`` is not a
        session failure (the adapter lets it propagate). ``where``: e.g. ``"GET /cart"``.
        The adapter answers ``policy.status`` with ``policy.response_headers`` and
        ``policy.body`` in its framework's own response type; the event was already
        emitted where the failure happened. ``logger``: the adapter's own."""
        failure = cause if isinstance(cause, Failure) else failure_of(cause)
        if failure is None:
            return None
        policy = self.config.failure_policies[failure]
        exc = None if isinstance(cause, Failure) else cause
        if logger is None:
            log_refusal(policy, where, exc)
        else:
            log_refusal(policy, where, exc, logger)
        return policy
