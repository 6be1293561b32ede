"""Read-only degraded mode: ``FallbackStore(primary, fallback)``, what ``fallback=`` builds.

While the primary store answers, the fallback is never used. When the primary raises
``StoreUnavailable``, the store switches over, once: reads are served from the fallback (a
replica of the primary: a Redis replica, a SQL read replica), and every change is refused
with ``StoreReadOnly`` (the ``store_read_only`` failure: 503 with Retry-After). At most
every ``probe_interval`` seconds one call tries the primary again (a read of a session
that cannot exist, as ``health()`` does); the others never wait for it, so a primary that
is down costs one connect timeout per interval, not one per request. When a probe
succeeds, the store switches back, once. Each switch is logged once, counted in
``stats()`` and announced on the event bus (``store_fallback``, ``store_recovered``).

Why read-only, and why refused rather than queued (docs/fallback.md says it at length):

- **the fallback is never written**, so no session lives in two places, and when the
  primary returns it holds every session exactly as it was; nothing has to be merged back;
- **nothing is acknowledged that the primary does not hold**: a save, a login, a rotation
  is refused, so no 2xx answers a change that is lost when the primary returns;
- **a logout is refused too**: it cannot reach the primary, and a logout that is only
  remembered somewhere else (this process, a journal) would be forgotten, or not seen by
  the other processes, so the session would come back with the primary. The user sees
  that the logout failed, and retries;
- **a touch (the sliding expiry of a read-only visit) is skipped, not refused**: it is
  housekeeping, not something the user asked for, and skipping it can only make a session
  die sooner, never live longer. Refusing it would refuse every read of a session whose
  ``touch_interval`` has passed, that is, nearly every read of a long outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from sessionkit.errors import ConfigError, StoreReadOnly, StoreUnavailable
from sessionkit.events import Event, EventBus, EventKind
from sessionkit.health import PROBE_DIGEST, Health, aprobe, probe
from sessionkit.ids import handle as handle_of
from sessionkit.stores.base import Record, RecordMeta, SessionInfo, Store, Write, mask_url

if TYPE_CHECKING:
    from sessionkit.audit import AuditSink
    from sessionkit.config import SessionConfig
    from sessionkit.doctor import Finding

log = logging.getLogger("sessionkit")

Mode = Literal["primary", "read_only"]

_CAPABILITIES = (
    "supports_user_index", "supports_lock", "supports_sweep", "supports_scan",
    "supports_session_limit", "supports_reseal", "supports_challenges",
)  # fmt: skip


@dataclass(slots=True)
class FallbackStats:
    """This process's counters (``FallbackStore.stats()``)."""

    to_fallback: int = 0  # switches over
    to_primary: int = 0  # switches back
    fallback_reads: int = 0  # reads served by the fallback
    refused: int = 0  # changes refused (StoreReadOnly)
    touches_skipped: int = 0  # read-only visits whose sliding expiry was not recorded
    probes: int = 0  # tries of the primary while the fallback served
    probe_failures: int = 0
    unconfirmed: int = 0  # deletions the fallback still showed after confirm_timeout


class FallbackStore(Store):
    """``primary``, with ``fallback`` serving reads, read-only, while it is down.

    ``probe_interval``: how often (seconds) the primary is tried while the fallback serves.
    ``confirm_timeout``: how long a deletion waits for the fallback to show it too (0: it
    does not wait). ``events``: the engine's bus (the engine sets it when it builds the
    store from ``fallback=``). ``clock``: monotonic seconds, for the probe interval (the
    confirmation really waits, so it keeps real time)."""

    def __init__(
        self,
        primary: Store,
        fallback: Store,
        *,
        probe_interval: float = 5.0,
        confirm_timeout: float = 1.0,
        events: EventBus | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if primary.client_side or fallback.client_side:
            raise ConfigError("fallback", "the cookie store can be neither primary nor fallback")
        self.primary = primary
        self.fallback = fallback
        self.probe_interval = probe_interval
        self.confirm_timeout = confirm_timeout
        self.events = events
        self.url = primary.url
        for flag in _CAPABILITIES:  # the primary's, per instance
            setattr(self, flag, getattr(primary, flag))
        self.caches_reads = primary.caches_reads or fallback.caches_reads  # type: ignore[misc]
        self._clock = clock
        self._lock = threading.Lock()
        self._degraded = False
        self._since: float | None = None  # wall-clock time of the switch over
        self._next_probe = 0.0
        self._probing = False
        self._cause = ""
        self._counts = FallbackStats()

    # -- the state -------------------------------------------------------------------------
    @property
    def mode(self) -> Mode:
        """``"primary"``, or ``"read_only"`` while the fallback serves."""
        return "read_only" if self._degraded else "primary"

    def _claim_probe(self) -> bool | None:
        """Whether this call probes the primary (the interval passed, and no other call is
        probing it); it then must end with ``_recover`` or ``_probe_failed``. ``None``: the
        store switched back meanwhile, so the call just uses the primary."""
        if self._probing or self._clock() < self._next_probe:
            return False
        with self._lock:
            if not self._degraded:
                return None
            if self._probing or self._clock() < self._next_probe:
                return False
            self._probing = True
            self._counts.probes += 1
            return True

    def _fail_over(self, exc: StoreUnavailable) -> None:
        with self._lock:
            if self._degraded:
                return
            self._degraded, self._probing = True, False
            self._since = time.time()
            self._next_probe = self._clock() + self.probe_interval
            self._cause = str(exc.cause)
            self._counts.to_fallback += 1
        fallback = mask_url(self.fallback.url)
        log.warning(
            "sessionkit: session store %s is unavailable (%s); reading sessions from the "
            "fallback %s, refusing changes (503) until it is back; trying it every %gs",
            mask_url(self.url), self._cause, fallback, self.probe_interval,
        )  # fmt: skip
        self._emit(
            Event(
                EventKind.STORE_FALLBACK, None,
                f"session store {mask_url(self.url)} is unavailable; reading from {fallback}",
                {"primary": mask_url(self.url), "fallback": fallback, "cause": self._cause},
            )
        )  # fmt: skip

    def _recover(self) -> None:
        with self._lock:
            if not self._degraded:
                return
            self._degraded, self._probing = False, False
            since, self._since = self._since, None
            self._counts.to_primary += 1
            counts = self._counts
            reads, refused = counts.fallback_reads, counts.refused
        lasted = round(time.time() - since, 3) if since is not None else None
        log.warning(
            "sessionkit: session store %s is back after %ss; sessions are read and saved "
            "there again (the fallback served %d reads and refused %d changes in all)",
            mask_url(self.url), lasted, reads, refused,
        )  # fmt: skip
        self._emit(
            Event(
                EventKind.STORE_RECOVERED, None, f"session store {mask_url(self.url)} is back",
                {"primary": mask_url(self.url), "seconds": lasted, "fallback_reads": reads,
                 "refused": refused},
            )
        )  # fmt: skip

    def _probe_failed(self) -> None:
        with self._lock:
            self._probing = False
            self._next_probe = self._clock() + self.probe_interval
            self._counts.probe_failures += 1

    def _emit(self, event: Event) -> None:
        events = self.events
        if events is not None and events.wants(event.kind):
            events.emit(event)

    def _use_primary(self) -> bool:
        """Whether this call goes to the primary: always while it is the one in use; while
        the fallback serves, only after this call's own probe found it back."""
        if not self._degraded:
            return True
        claimed = self._claim_probe()
        if not claimed:
            return claimed is None
        try:
            self.primary.load_fresh(PROBE_DIGEST)
        except StoreUnavailable:
            self._probe_failed()
            return False
        except BaseException:
            self._probe_failed()
            raise
        self._recover()
        return True

    async def _ause_primary(self) -> bool:
        if not self._degraded:
            return True
        claimed = self._claim_probe()
        if not claimed:
            return claimed is None
        try:
            await self.primary.aload_fresh(PROBE_DIGEST)
        except StoreUnavailable:
            self._probe_failed()
            return False
        except BaseException:
            self._probe_failed()
            raise
        self._recover()
        return True

    def _refused(self, exc: StoreUnavailable | None = None) -> StoreReadOnly:
        with self._lock:
            self._counts.refused += 1
        cause: BaseException | str = exc.cause if exc is not None else self._cause
        ambiguous = exc is not None and exc.ambiguous
        return StoreReadOnly(self.url, self.fallback.url, cause, ambiguous=ambiguous)

    def _read(self, name: str, *args: Any) -> Any:
        """``store.name(*args)`` on the primary; on the fallback while it serves, or when
        the primary fails now (which switches over)."""
        if self._use_primary():
            try:
                return getattr(self.primary, name)(*args)
            except StoreUnavailable as exc:
                self._fail_over(exc)
        with self._lock:
            self._counts.fallback_reads += 1
        return getattr(self.fallback, name)(*args)

    async def _aread(self, name: str, *args: Any) -> Any:
        if await self._ause_primary():
            try:
                return await getattr(self.primary, name)(*args)
            except StoreUnavailable as exc:
                self._fail_over(exc)
        with self._lock:
            self._counts.fallback_reads += 1
        return await getattr(self.fallback, name)(*args)

    # -- reads: the primary's, else the fallback's ---------------------------------------
    def load(self, digest: str) -> Record | None:
        found: Record | None = self._read("load", digest)
        return found

    def load_fresh(self, digest: str) -> Record | None:
        found: Record | None = self._read("load_fresh", digest)
        return found

    async def aload(self, digest: str) -> Record | None:
        found: Record | None = await self._aread("aload", digest)
        return found

    async def aload_fresh(self, digest: str) -> Record | None:
        found: Record | None = await self._aread("aload_fresh", digest)
        return found

    def user_sessions(self, user: str) -> list[SessionInfo]:
        try:  # a listing may tidy its index as it reads (Redis): a replica refuses that
            listed: list[SessionInfo] = self._read("user_sessions", user)
        except StoreUnavailable as exc:  # (the primary's failure switched over inside)
            raise self._refused(exc) from exc
        return listed

    async def auser_sessions(self, user: str) -> list[SessionInfo]:
        try:
            listed: list[SessionInfo] = await self._aread("auser_sessions", user)
        except StoreUnavailable as exc:
            raise self._refused(exc) from exc
        return listed

    # -- changes: the primary's, else refused ----------------------------------------------
    def _change(self, call: Callable[[], Any]) -> Any:
        if not self._use_primary():
            raise self._refused()
        try:
            return call()
        except StoreReadOnly:
            raise
        except StoreUnavailable as exc:
            self._fail_over(exc)
            raise self._refused(exc) from exc

    async def _achange(self, call: Callable[[], Any]) -> Any:
        if not await self._ause_primary():
            raise self._refused()
        try:
            return await call()
        except StoreReadOnly:
            raise
        except StoreUnavailable as exc:
            self._fail_over(exc)
            raise self._refused(exc) from exc

    def save(self, write: Write) -> bool:
        done: bool = self._change(lambda: self.primary.save(write))
        if done and write.rotated_from is not None:
            self._confirm_gone((write.rotated_from,))
        return done

    async def asave(self, write: Write) -> bool:
        done: bool = await self._achange(lambda: self.primary.asave(write))
        if done and write.rotated_from is not None:
            await self._aconfirm_gone((write.rotated_from,))
        return done

    def save_limited(self, write: Write) -> list[str] | None:
        evicted: list[str] | None = self._change(lambda: self.primary.save_limited(write))
        if evicted is not None:
            self._confirm_gone((*evicted, *_rotated(write)))
        return evicted

    async def asave_limited(self, write: Write) -> list[str] | None:
        evicted: list[str] | None = await self._achange(lambda: self.primary.asave_limited(write))
        if evicted is not None:
            await self._aconfirm_gone((*evicted, *_rotated(write)))
        return evicted

    def delete(self, digest: str) -> None:
        self._change(lambda: self.primary.delete(digest))
        self._confirm_gone((digest,))

    async def adelete(self, digest: str) -> None:
        await self._achange(lambda: self.primary.adelete(digest))
        await self._aconfirm_gone((digest,))

    def revoke_user(self, user: str, *, keep: str | None = None) -> int:
        doomed = self._change(lambda: self._listed(user, lambda d: d != keep))
        count: int = self._change(lambda: self.primary.revoke_user(user, keep=keep))
        self._confirm_gone(doomed)
        return count

    async def arevoke_user(self, user: str, *, keep: str | None = None) -> int:
        doomed = await self._achange(
            lambda: asyncio.to_thread(self._listed, user, lambda d: d != keep)
        )
        count: int = await self._achange(lambda: self.primary.arevoke_user(user, keep=keep))
        await self._aconfirm_gone(doomed)
        return count

    def revoke_handle(self, user: str, handle: str) -> bool:
        doomed = self._change(lambda: self._listed(user, lambda d: handle_of(d) == handle))
        done: bool = self._change(lambda: self.primary.revoke_handle(user, handle))
        self._confirm_gone(doomed)
        return done

    async def arevoke_handle(self, user: str, handle: str) -> bool:
        doomed = await self._achange(
            lambda: asyncio.to_thread(self._listed, user, lambda d: handle_of(d) == handle)
        )
        done: bool = await self._achange(lambda: self.primary.arevoke_handle(user, handle))
        await self._aconfirm_gone(doomed)
        return done

    # -- re-seals (encrypt_records) and DBSC challenges change the primary: refused too -----
    def reseal(self, digest: str, pairs: Mapping[str, tuple[str, str]]) -> int:
        done: int = self._change(lambda: self.primary.reseal(digest, pairs))
        return done

    async def areseal(self, digest: str, pairs: Mapping[str, tuple[str, str]]) -> int:
        done: int = await self._achange(lambda: self.primary.areseal(digest, pairs))
        return done

    def put_challenge(self, key: str, value: str, ttl: float) -> None:
        self._change(lambda: self.primary.put_challenge(key, value, ttl))

    async def aput_challenge(self, key: str, value: str, ttl: float) -> None:
        await self._achange(lambda: self.primary.aput_challenge(key, value, ttl))

    def take_challenge(self, key: str) -> str | None:
        value: str | None = self._change(lambda: self.primary.take_challenge(key))
        return value

    async def atake_challenge(self, key: str) -> str | None:
        value: str | None = await self._achange(lambda: self.primary.atake_challenge(key))
        return value

    def scan_digests(self) -> Iterator[str]:
        return self.primary.scan_digests()

    def _listed(self, user: str, chosen: Callable[[str], bool]) -> list[str]:
        """The user's sessions a revoke is about to delete (to confirm them gone after)."""
        if not self.primary.supports_user_index:
            return []
        return [d for d in self.primary.user_digests(user) if chosen(d)]

    # -- a deletion is acknowledged once the fallback has it too -----------------------------
    # A replica lags its primary a little. A logout the primary acknowledged, followed at
    # once by an outage, would leave the session on the replica, and the replica would
    # serve it: the logged-out cookie would work again (for reads) until the primary is
    # back. So every deletion the primary made (a logout, a revoke, the old ID of a
    # rotation, an eviction) waits until the fallback no longer holds it either, at most
    # ``confirm_timeout`` seconds; usually the first read already finds it gone.
    def _confirm_gone(self, digests: Iterable[str]) -> None:
        pending, deadline, pause = list(digests), None, 0.001
        while pending and self.confirm_timeout > 0:
            try:
                pending = [d for d in pending if self.fallback.load_fresh(d) is not None]
            except Exception as exc:  # the fallback's trouble never fails the primary's work
                self._unconfirmed(len(pending), _why(exc))
                return
            deadline = deadline or time.monotonic() + self.confirm_timeout
            if pending and time.monotonic() >= deadline:
                self._unconfirmed(len(pending), f"still there after {self.confirm_timeout}s")
                return
            if pending:
                time.sleep(pause)
                pause = min(pause * 2, 0.05)

    async def _aconfirm_gone(self, digests: Iterable[str]) -> None:
        pending, deadline, pause = list(digests), None, 0.001
        while pending and self.confirm_timeout > 0:
            try:
                pending = [d for d in pending if await self.fallback.aload_fresh(d) is not None]
            except Exception as exc:
                self._unconfirmed(len(pending), _why(exc))
                return
            deadline = deadline or time.monotonic() + self.confirm_timeout
            if pending and time.monotonic() >= deadline:
                self._unconfirmed(len(pending), f"still there after {self.confirm_timeout}s")
                return
            if pending:
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.05)

    def _unconfirmed(self, count: int, why: str) -> None:
        with self._lock:
            self._counts.unconfirmed += count
        log.warning(
            "sessionkit: %d deleted session(s) not yet gone from the fallback %s (%s): were "
            "the primary to fail now, the fallback could serve them until it is back",
            count, mask_url(self.fallback.url), why,
        )  # fmt: skip

    # -- touch: the primary's, else skipped (see the module's docstring) -----------------
    def touch(self, digest: str, last_seen: int, ttl: float) -> bool:
        if self._use_primary():
            try:
                return self.primary.touch(digest, last_seen, ttl)
            except StoreUnavailable as exc:
                self._fail_over(exc)
        return self._skip_touch()

    async def atouch(self, digest: str, last_seen: int, ttl: float) -> bool:
        if await self._ause_primary():
            try:
                return await self.primary.atouch(digest, last_seen, ttl)
            except StoreUnavailable as exc:
                self._fail_over(exc)
        return self._skip_touch()

    def _skip_touch(self) -> bool:
        with self._lock:
            self._counts.touches_skipped += 1
        return True  # the session was just read, so it is there

    # -- locks: a locked route changes its session, so none while read-only -----------------
    @contextlib.contextmanager
    def lock(self, digest: str, *, ttl: float = 30.0, wait: float = 10.0) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            self._change(lambda: stack.enter_context(self.primary.lock(digest, ttl=ttl, wait=wait)))
            yield

    @contextlib.asynccontextmanager
    async def alock(
        self, digest: str, *, ttl: float = 30.0, wait: float = 10.0
    ) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            await self._achange(
                lambda: stack.enter_async_context(self.primary.alock(digest, ttl=ttl, wait=wait))
            )
            yield

    # -- maintenance: the primary's only -------------------------------------------------
    def user_digests(self, user: str) -> list[str]:
        return self.primary.user_digests(user)

    def delete_expired(self, progress: Callable[[int], None] | None = None) -> int:
        return self.primary.delete_expired(progress)

    def scan(self) -> Iterator[RecordMeta]:
        return self.primary.scan()

    def server_version(self) -> str | None:
        return self.primary.server_version()

    async def aserver_version(self) -> str | None:
        return await self.primary.aserver_version()

    def diagnostics(
        self, *, fix: bool = False, progress: Callable[[int], None] | None = None
    ) -> list[Finding]:
        return self.primary.diagnostics(fix=fix, progress=progress)

    def create_schema(self) -> bool:
        return self.primary.create_schema()

    def audit_sink(self) -> AuditSink | None:
        """The primary's trail (an entry the primary cannot take is logged, then dropped)."""
        return self.primary.audit_sink()

    def close(self) -> None:
        try:
            self.primary.close()
        finally:
            self.fallback.close()

    async def aclose(self) -> None:
        try:
            await self.primary.aclose()
        finally:
            await self.fallback.aclose()

    # -- what it tells ---------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """This process's counters, the mode, and since when the fallback serves (epoch
        seconds, ``None`` while the primary is in use)."""
        with self._lock:
            counts: dict[str, Any] = asdict(self._counts)
            counts.update(mode=self.mode, since=self._since)
        return counts

    def health(self) -> Health:
        """Both stores probed; a probe of the primary also decides the mode, as a request's
        probe would (a health route polled every few seconds keeps the mode current)."""
        return self._health(probe(self.primary), probe(self.fallback))

    async def ahealth(self) -> Health:
        return self._health(await aprobe(self.primary), await aprobe(self.fallback))

    def _health(self, primary: Health, fallback: Health) -> Health:
        if primary.ok:
            self._recover()
        elif not self._degraded:  # the probe's message names the store: keep its cause
            said = (primary.error or "the probe failed").removeprefix(
                f"session store {mask_url(self.url)} is unavailable: "
            )
            self._fail_over(StoreUnavailable(self.url, said))
        # ok: sessions can be served (read-only, when only the fallback answers)
        return replace(primary, ok=primary.ok or fallback.ok, mode=self.mode, fallback=fallback)

    def __repr__(self) -> str:
        return (
            f"<FallbackStore {mask_url(self.url)} falling back to "
            f"{mask_url(self.fallback.url)} ({self.mode})>"
        )


def _why(exc: Exception) -> str:
    return str(exc.cause) if isinstance(exc, StoreUnavailable) else f"{type(exc).__name__}: {exc}"


def _rotated(write: Write) -> tuple[str, ...]:
    return () if write.rotated_from is None else (write.rotated_from,)


def with_fallback(store: Store, config: SessionConfig, events: EventBus) -> Store:
    """``store`` as the engine uses it: behind a ``FallbackStore`` when ``config.fallback``
    names one (a ``FallbackStore`` handed over as the store gets the engine's bus)."""
    if isinstance(store, FallbackStore):
        if store.events is None:
            store.events = events
        return store
    chosen = config.fallback
    if chosen is None:
        return store
    from sessionkit.stores import open_store

    if store.client_side:
        raise ConfigError(
            "fallback", "the cookie store has no server to go down: it needs no fallback"
        )
    fallback = open_store(chosen) if isinstance(chosen, str) else chosen
    return FallbackStore(
        store, fallback, probe_interval=config.fallback_probe_interval, events=events
    )
