"""Metrics and traces: one source in the core, read by Prometheus and OpenTelemetry.

Everything measured comes from two places, both in the core, so no adapter counts anything
and the three frameworks report alike:

- **the event bus**: one subscriber (``EventTally``) counts events by kind (``created``,
  ``regenerated``, ``cookie_rejected``, ``store_error``, ``lock_timeout``, ...);
- **one store wrapper**: ``InstrumentedStore`` times every store call the engine makes, sync
  and async, and tells each observer (a Prometheus histogram, an OpenTelemetry histogram and
  span) the operation, the store and the outcome. It also reads the hits and misses that a
  local cache in front of the store (``?cache=on``) counts anyway.

The number of active sessions is sampled from the store (``scan``, what ``sessionkit stats``
counts) by a background thread every ``interval`` seconds, never on a request.

``install(engine, "prometheus")`` (or the ``metrics`` setting) sets it up. Without it nothing
here runs: the engine's store is the store itself and the bus has no subscriber, so a request
pays nothing. This module imports no third-party library; ``sessionkit.metrics.prometheus``
and ``sessionkit.metrics.otel`` do, when installed.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from time import perf_counter
from typing import TYPE_CHECKING, Any, Protocol

from sessionkit.errors import (
    ConfigError,
    SessionLimitReached,
    SessionTooLarge,
    StoreUnavailable,
)
from sessionkit.events import Event, EventBus, EventKind
from sessionkit.expiry import deadline_for
from sessionkit.stores.base import Record, RecordMeta, SessionInfo, Store, Write
from sessionkit.stores.cache import CacheStats, CachingStore
from sessionkit.urls import mask_url

if TYPE_CHECKING:
    from sessionkit.audit import AuditSink
    from sessionkit.doctor import Finding
    from sessionkit.engine import SessionEngine

log = logging.getLogger("sessionkit")

#: The backends ``install`` and the ``metrics`` setting know, and the extra each needs.
BACKENDS = {"prometheus": "metrics", "otel": "otel"}

#: Event kinds counted. ``loaded``, ``saved`` and ``touched`` happen on most requests and
#: are already counted by the store latency histogram (its count per operation), so the
#: request path does not build those events just to count them.
COUNTED = tuple(k for k in EventKind if k not in (EventKind.LOADED, EventKind.SAVED,
                                                 EventKind.TOUCHED))  # fmt: skip
#: What a local cache in front of the store counts, reported as two more event kinds.
CACHE_KINDS = ("cache_hit", "cache_miss")

#: Histogram buckets for store latency, in seconds: from an in-process store (microseconds)
#: to a store timing out (seconds).
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
)  # fmt: skip

DEFAULT_INTERVAL = 30.0


def store_label(url: str, fallback: str = "") -> str:
    """The ``store`` label: the store's URL without its query and with any password masked
    (``redis://app:***@cache:6379/0``); a label must not change with a tuning option."""
    if not url:
        return fallback
    return mask_url(url).partition("?")[0]


def outcome_of(error: BaseException) -> str:
    """The outcome of a store call that raised."""
    if isinstance(error, StoreUnavailable):
        return "unavailable"
    if isinstance(error, SessionTooLarge):
        return "too_large"
    if isinstance(error, SessionLimitReached):
        return "refused"
    return "error"


class StoreObserver(Protocol):
    """What a backend does around one store call. ``begin`` runs before the call when
    ``around`` is true (a tracer opens its span there, so spans made inside the call are its
    children) and returns what ``end`` needs (``None`` otherwise); ``end`` gets the outcome
    (``ok``, ``absent``, ``conflict``, ``unavailable``, ``too_large``, ``refused``,
    ``error``) and the time taken."""

    around: bool

    def begin(self, store: InstrumentedStore, operation: str) -> Any: ...

    def end(
        self, token: Any, store: InstrumentedStore, operation: str, outcome: str,
        seconds: float, error: BaseException | None,
    ) -> None: ...  # fmt: skip


class EventTally:
    """Events counted by kind: the one subscriber of a bus (shared by every engine on it).
    It holds no reference to the bus, so a backend may keep it (and its counts, which must
    never go down) after the bus and its engines are gone."""

    def __init__(self, bus: EventBus) -> None:
        self.counts: dict[str, int] = dict.fromkeys((k.value for k in COUNTED), 0)
        self._lock = threading.Lock()
        bus.subscribe(self, COUNTED)  # for the bus's life (its unsubscribe would hold it)

    def __call__(self, event: Event) -> None:
        kind = event.kind.value
        with self._lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)


_tallies: weakref.WeakKeyDictionary[EventBus, EventTally] = weakref.WeakKeyDictionary()
_tallies_lock = threading.Lock()


def tally_for(bus: EventBus) -> EventTally:
    """The bus's tally, subscribed once however many engines share the bus."""
    with _tallies_lock:
        tally = _tallies.get(bus)
        if tally is None:
            tally = _tallies[bus] = EventTally(bus)
        return tally


class Telemetry:
    """What sessionkit measures for one store and the buses of the engines that use it:
    what the backends read (the tallies, ``cache_stats``, ``active``) and the observers the
    store wrapper calls."""

    def __init__(
        self, store: InstrumentedStore, tally: EventTally,
        deadline: Callable[[RecordMeta], float], clock: Callable[[], float],
    ) -> None:  # fmt: skip
        self.store = store
        #: one per bus of an engine on this store (usually one: engines that share a store
        #: share a bus)
        self.tallies: tuple[EventTally, ...] = (tally,)
        self.label = store.label
        self.observers: tuple[StoreObserver, ...] = ()
        self.backends: set[int] = set()  # ids of the backend instances already attached
        #: live sessions at the last sample (``None``: not sampled, or the store failed)
        self.active: int | None = None
        self.sampled_at: float | None = None
        self._deadline, self._clock = deadline, clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def add_tally(self, tally: EventTally) -> None:
        with self._lock:
            if tally not in self.tallies:
                self.tallies = (*self.tallies, tally)

    def attach(self, backend: object, observer: StoreObserver | None = None) -> bool:
        """Add a backend once (``False`` when it was already there)."""
        with self._lock:
            if id(backend) in self.backends:
                return False
            self.backends.add(id(backend))
            if observer is not None:
                self.observers = (*self.observers, observer)
                self.store.observe(self.observers)
            return True

    # -- what the backends read ---------------------------------------------------------
    @property
    def cache_stats(self) -> CacheStats | None:
        """The counters of the local cache in front of the store (``?cache=on``), if any."""
        inner = self.store.store
        return inner.cache.stats if isinstance(inner, CachingStore) else None

    # -- the active-sessions sample ------------------------------------------------------
    def sample(self) -> int | None:
        """Count the live sessions in the store now (``scan``: one pass over every record,
        which is why it runs in the background, never on a request). ``None`` when the
        store cannot enumerate its sessions or failed."""
        inner = self.store.store
        if not inner.supports_scan:
            return None
        try:
            now = self._clock()
            deadline = self._deadline
            count = sum(1 for meta in inner.scan() if deadline(meta) > now)
        except Exception as exc:  # the store is down: no number is better than an old one
            log.info("sessionkit metrics: could not count active sessions: %s", exc)
            self.active = None
            return None
        self.active, self.sampled_at = count, time.time()
        return count

    def start_sampling(self, interval: float) -> None:
        """Sample every ``interval`` seconds in a daemon thread (once; ``0``: never)."""
        if interval <= 0 or not self.store.store.supports_scan:
            return
        with self._lock:
            if self._thread is not None:
                return
            thread = threading.Thread(
                target=_sample_forever, args=(weakref.ref(self), self._stop, interval),
                name=f"sessionkit-metrics {self.label}", daemon=True,
            )  # fmt: skip
            self._thread = thread
        thread.start()

    def close(self) -> None:
        """Stop sampling (the store's ``close`` does this)."""
        self._stop.set()


def _sample_forever(
    ref: weakref.ReferenceType[Telemetry], stop: threading.Event, interval: float
) -> None:
    """The sampler thread. It holds the telemetry only while sampling, so a telemetry
    nobody uses any more goes away, and the thread with it."""
    while not stop.is_set():
        telemetry = ref()
        if telemetry is None:
            return
        telemetry.sample()
        del telemetry
        stop.wait(interval)


class InstrumentedStore(Store):
    """``store``, with every call the engine makes timed and reported to ``observers``.

    The one place store calls are measured: the engine calls its store, and this is its
    store once metrics are installed. Capabilities are the wrapped store's own; anything
    else (``stats``, ``cache``, ``client``) is read through from it."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.url = store.url
        self.label = store_label(store.url, type(store).__name__)
        self.observers: tuple[StoreObserver, ...] = ()
        self.telemetry: Telemetry | None = None
        for flag in (
            "client_side", "supports_user_index", "supports_lock", "supports_sweep",
            "supports_scan", "supports_session_limit", "supports_reseal", "supports_challenges",
            "caches_reads",
        ):  # fmt: skip
            setattr(self, flag, getattr(store, flag))

    def __getattr__(self, name: str) -> Any:  # only for what Store itself does not define
        if name == "store":
            raise AttributeError(name)
        return getattr(self.store, name)

    # -- timing ----------------------------------------------------------------------------
    def observe(self, observers: tuple[StoreObserver, ...]) -> None:
        """Report every call from now on to ``observers`` (``Telemetry.attach`` calls it)."""
        self.observers = observers
        self._around = any(o.around for o in observers)

    _around = False

    def _call(self, operation: str, call: Callable[..., Any], *args: Any) -> Any:
        if self._around:
            return self._traced(operation, call, *args)
        started = perf_counter()
        try:
            result = call(*args)
        except BaseException as exc:
            self._report(self.observers, (), operation, outcome_of(exc), started, exc)
            raise
        seconds = perf_counter() - started
        outcome = "ok" if result else _outcome(operation, result)
        try:
            for observer in self.observers:
                observer.end(None, self, operation, outcome, seconds, None)
        except Exception:
            log.exception("sessionkit metrics observer failed")
        return result

    def _traced(self, operation: str, call: Callable[..., Any], *args: Any) -> Any:
        observers = self.observers
        tokens = [o.begin(self, operation) for o in observers]
        started = perf_counter()
        try:
            result = call(*args)
        except BaseException as exc:
            self._report(observers, tokens, operation, outcome_of(exc), started, exc)
            raise
        outcome = "ok" if result else _outcome(operation, result)
        self._report(observers, tokens, operation, outcome, started, None)
        return result

    async def _acall(self, operation: str, call: Callable[..., Any], *args: Any) -> Any:
        observers = self.observers
        tokens = [o.begin(self, operation) for o in observers] if self._around else ()
        started = perf_counter()
        try:
            result = await call(*args)
        except BaseException as exc:
            self._report(observers, tokens, operation, outcome_of(exc), started, exc)
            raise
        outcome = "ok" if result else _outcome(operation, result)
        self._report(observers, tokens, operation, outcome, started, None)
        return result

    def _report(
        self, observers: tuple[StoreObserver, ...], tokens: Sequence[Any], operation: str,
        outcome: str, started: float, error: BaseException | None,
    ) -> None:  # fmt: skip
        seconds = perf_counter() - started
        if not tokens:
            tokens = (None,) * len(observers)
        # the reverse order of begin: a tracer's context is restored as it was
        for observer, token in zip(reversed(observers), reversed(tokens), strict=True):
            try:
                observer.end(token, self, operation, outcome, seconds, error)
            except Exception:
                log.exception("sessionkit metrics observer %r failed", observer)

    # -- the protocol ----------------------------------------------------------------------
    def load(self, digest: str) -> Record | None:
        return self._call("load", self.store.load, digest)  # type: ignore[no-any-return]

    def load_fresh(self, digest: str) -> Record | None:
        return self._call("load_fresh", self.store.load_fresh, digest)  # type: ignore[no-any-return]

    def save(self, write: Write) -> bool:
        return self._call("save", self.store.save, write)  # type: ignore[no-any-return]

    def save_limited(self, write: Write) -> list[str] | None:
        return self._call("save_limited", self.store.save_limited, write)  # type: ignore[no-any-return]

    def delete(self, digest: str) -> None:
        self._call("delete", self.store.delete, digest)

    def touch(self, digest: str, last_seen: int, ttl: float) -> bool:
        return self._call("touch", self.store.touch, digest, last_seen, ttl)  # type: ignore[no-any-return]

    async def aload(self, digest: str) -> Record | None:
        return await self._acall("load", self.store.aload, digest)  # type: ignore[no-any-return]

    async def aload_fresh(self, digest: str) -> Record | None:
        return await self._acall("load_fresh", self.store.aload_fresh, digest)  # type: ignore[no-any-return]

    async def asave(self, write: Write) -> bool:
        return await self._acall("save", self.store.asave, write)  # type: ignore[no-any-return]

    async def asave_limited(self, write: Write) -> list[str] | None:
        return await self._acall("save_limited", self.store.asave_limited, write)  # type: ignore[no-any-return]

    async def adelete(self, digest: str) -> None:
        await self._acall("delete", self.store.adelete, digest)

    async def atouch(self, digest: str, last_seen: int, ttl: float) -> bool:
        return await self._acall("touch", self.store.atouch, digest, last_seen, ttl)  # type: ignore[no-any-return]

    # -- capabilities ----------------------------------------------------------------------
    def user_sessions(self, user: str) -> list[SessionInfo]:
        return self._call("user_sessions", self.store.user_sessions, user)  # type: ignore[no-any-return]

    def revoke_user(self, user: str, *, keep: str | None = None) -> int:
        return self._call("revoke_user", lambda: self.store.revoke_user(user, keep=keep))  # type: ignore[no-any-return]

    def revoke_handle(self, user: str, handle: str) -> bool:
        return self._call("revoke_handle", self.store.revoke_handle, user, handle)  # type: ignore[no-any-return]

    def user_digests(self, user: str) -> list[str]:
        return self._call("user_digests", self.store.user_digests, user)  # type: ignore[no-any-return]

    async def auser_sessions(self, user: str) -> list[SessionInfo]:
        return await self._acall("user_sessions", self.store.auser_sessions, user)  # type: ignore[no-any-return]

    async def arevoke_user(self, user: str, *, keep: str | None = None) -> int:
        return await self._acall("revoke_user", lambda: self.store.arevoke_user(user, keep=keep))  # type: ignore[no-any-return]

    async def arevoke_handle(self, user: str, handle: str) -> bool:
        return await self._acall("revoke_handle", self.store.arevoke_handle, user, handle)  # type: ignore[no-any-return]

    def reseal(self, digest: str, pairs: Mapping[str, tuple[str, str]]) -> int:
        return self._call("reseal", self.store.reseal, digest, pairs)  # type: ignore[no-any-return]

    async def areseal(self, digest: str, pairs: Mapping[str, tuple[str, str]]) -> int:
        return await self._acall("reseal", self.store.areseal, digest, pairs)  # type: ignore[no-any-return]

    def put_challenge(self, key: str, value: str, ttl: float) -> None:
        self._call("put_challenge", self.store.put_challenge, key, value, ttl)

    def take_challenge(self, key: str) -> str | None:
        return self._call("take_challenge", self.store.take_challenge, key)  # type: ignore[no-any-return]

    async def aput_challenge(self, key: str, value: str, ttl: float) -> None:
        await self._acall("put_challenge", self.store.aput_challenge, key, value, ttl)

    async def atake_challenge(self, key: str) -> str | None:
        return await self._acall("take_challenge", self.store.atake_challenge, key)  # type: ignore[no-any-return]

    def lock(
        self, digest: str, *, ttl: float = 30.0, wait: float = 10.0
    ) -> contextlib.AbstractContextManager[None]:
        return self.store.lock(digest, ttl=ttl, wait=wait)

    def alock(
        self, digest: str, *, ttl: float = 30.0, wait: float = 10.0
    ) -> contextlib.AbstractAsyncContextManager[None]:
        return self.store.alock(digest, ttl=ttl, wait=wait)

    def delete_expired(self, progress: Callable[[int], None] | None = None) -> int:
        return self.store.delete_expired(progress)

    def scan(self) -> Iterator[RecordMeta]:
        return self.store.scan()

    def scan_digests(self) -> Iterator[str]:
        return self.store.scan_digests()

    def audit_sink(self) -> AuditSink | None:
        return self.store.audit_sink()

    def server_version(self) -> str | None:
        return self.store.server_version()

    async def aserver_version(self) -> str | None:
        return await self.store.aserver_version()

    def diagnostics(
        self, *, fix: bool = False, progress: Callable[[int], None] | None = None
    ) -> list[Finding]:
        return self.store.diagnostics(fix=fix, progress=progress)

    def create_schema(self) -> bool:
        return self.store.create_schema()

    def close(self) -> None:
        if self.telemetry is not None:
            self.telemetry.close()
        self.store.close()

    async def aclose(self) -> None:
        if self.telemetry is not None:
            self.telemetry.close()
        await self.store.aclose()

    def __repr__(self) -> str:
        return f"<InstrumentedStore {mask_url(self.url)} over {self.store!r}>"


def _outcome(operation: str, result: Any) -> str:
    """A store call that returned something false: ``absent`` for a load that found
    nothing, a touch of a record that is gone or a challenge already taken, ``conflict``
    for a save whose condition failed, ``ok`` for the rest (a delete, no eviction,
    nothing revoked, no value re-sealed)."""
    if result is None and operation in ("load", "load_fresh", "save_limited", "take_challenge"):
        return "conflict" if operation == "save_limited" else "absent"
    if result is False:
        return "conflict" if operation == "save" else "absent"
    return "ok"


# ==========================================================================================
# install
# ==========================================================================================
def backends_of(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """The ``metrics`` setting as a tuple of backend names: ``"prometheus"``, ``"otel"``,
    ``"prometheus,otel"``, a list of them, or nothing. ``ConfigError`` for anything else."""
    if value is None:
        return ()
    if isinstance(value, str):
        names: list[object] = list(value.split(","))
    elif isinstance(value, Iterable):
        names = list(value)
    else:
        raise ConfigError("metrics", f"{value!r}: use 'prometheus', 'otel' or both")
    out: list[str] = []
    for raw in names:
        if not isinstance(raw, str):
            raise ConfigError("metrics", f"{raw!r}: use 'prometheus', 'otel' or both")
        name = raw.strip().lower()
        if name == "opentelemetry":
            name = "otel"
        if not name:
            continue
        if name not in BACKENDS:
            raise ConfigError(
                "metrics", f"{raw!r} is not a metrics backend; use 'prometheus', 'otel' or both"
            )
        if name not in out:
            out.append(name)
    return tuple(out)


def telemetry_of(engine: SessionEngine) -> Telemetry:
    """The engine's telemetry, made (its store wrapped, its bus tallied) on first use. An
    engine that shares its store and bus with another (Django's two engines) shares it."""
    store = engine.store
    if isinstance(store, InstrumentedStore) and store.telemetry is not None:
        store.telemetry.add_tally(tally_for(engine.events))  # another bus: counted too
        return store.telemetry
    if store.client_side:
        raise ConfigError(
            "metrics", "the cookie store has no server to measure; metrics need a "
            "server-side store (the events would still be counted: subscribe to "
            "engine.events)"
        )  # fmt: skip
    wrapped = store if isinstance(store, InstrumentedStore) else InstrumentedStore(store)
    telemetry = Telemetry(wrapped, tally_for(engine.events), deadline_for(engine.config),
                          engine.clock)  # fmt: skip
    wrapped.telemetry = telemetry
    engine.store = wrapped
    return telemetry


def install(
    engine: SessionEngine,
    backends: str | Iterable[str] = "prometheus",
    *,
    registry: Any = None,
    meter_provider: Any = None,
    tracer_provider: Any = None,
    interval: float = DEFAULT_INTERVAL,
) -> Telemetry:
    """Measure ``engine``: wrap its store, count its events, and export to ``backends``
    (``"prometheus"``, ``"otel"`` or both). Idempotent: installing again adds only what is
    new. ``registry``: the ``prometheus_client`` registry (default: the global
    ``REGISTRY``). ``meter_provider``/``tracer_provider``: OpenTelemetry's (default: the
    global ones). ``interval``: seconds between two counts of the active sessions, in a
    background thread (``0``: never; ``Telemetry.sample()`` counts on demand)."""
    names = backends_of(backends)
    if not names:
        raise ConfigError("metrics", "name a backend: 'prometheus', 'otel' or both")
    telemetry = telemetry_of(engine)
    for name in names:
        if name == "prometheus":
            from sessionkit.metrics import prometheus

            prometheus.install(telemetry, registry)
        else:
            from sessionkit.metrics import otel

            otel.install(telemetry, meter_provider, tracer_provider)
    telemetry.start_sampling(interval)
    return telemetry


def missing(backend: str, exc: ImportError) -> ConfigError:
    """The error for a backend whose library is not installed."""
    return ConfigError(
        "metrics", f"{backend!r} needs {exc.name}, which is not installed; "
        f"pip install 'sessionkit[{BACKENDS[backend]}]'"
    )  # fmt: skip


class Exporter:
    """What a backend reads, over every telemetry installed on it: the event counts (each
    bus's tally and each cache's counters once, kept for good so a count never goes down
    when an engine is dropped) and the active sessions (only of telemetries still alive)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._telemetries: list[weakref.ReferenceType[Telemetry]] = []
        self._tallies: dict[int, EventTally] = {}
        self._caches: dict[int, CacheStats] = {}

    def observer_for(self, telemetry: Telemetry) -> StoreObserver | None:
        """The backend's observer of ``telemetry``'s store calls."""
        return None

    def add(self, telemetry: Telemetry) -> None:
        """Read ``telemetry`` (again: a bus added to it since is read from now on)."""
        attached = telemetry.attach(self, self.observer_for(telemetry))
        with self._lock:
            if attached:
                self._telemetries.append(weakref.ref(telemetry))
            for tally in telemetry.tallies:
                self._tallies[id(tally)] = tally
            stats = telemetry.cache_stats
            if stats is not None:
                self._caches[id(stats)] = stats

    def telemetries(self) -> list[Telemetry]:
        with self._lock:
            alive = [t for t in (ref() for ref in self._telemetries) if t is not None]
            self._telemetries = [weakref.ref(t) for t in alive]
        return alive

    def events(self) -> dict[str, int]:
        """Events by kind: every counted kind (zero until it happens, so a dashboard shows
        it), and ``cache_hit``/``cache_miss`` once a store with a local cache is there."""
        counts = dict.fromkeys((k.value for k in COUNTED), 0)
        with self._lock:
            tallies, caches = list(self._tallies.values()), list(self._caches.values())
        for tally in tallies:
            for kind, count in tally.snapshot().items():
                counts[kind] = counts.get(kind, 0) + count
        if caches:
            counts["cache_hit"] = sum(stats.hits for stats in caches)
            counts["cache_miss"] = sum(stats.misses for stats in caches)
        return counts

    def active(self) -> dict[str, int]:
        """The last sample of active sessions by store label (one per store)."""
        out: dict[str, int] = {}
        for telemetry in self.telemetries():
            if telemetry.active is not None and telemetry.label not in out:
                out[telemetry.label] = telemetry.active
        return out


__all__ = [
    "BACKENDS",
    "CACHE_KINDS",
    "COUNTED",
    "LATENCY_BUCKETS",
    "EventTally",
    "Exporter",
    "InstrumentedStore",
    "StoreObserver",
    "Telemetry",
    "backends_of",
    "install",
    "store_label",
    "telemetry_of",
]
