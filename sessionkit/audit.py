"""The audit trail: a durable, append-only record of the security-relevant session events.

``SessionConfig(audit="store")`` (or ``"log"``, or both) makes the engine subscribe an
``AuditTrail`` to its event bus. The trail turns each event it keeps into an
``AuditEntry`` -- handle (never the ID or digest), user key, time, device label, network
prefix, kind, actor -- and hands it to its sinks:

- ``"log"``: one JSON line per entry on the ``sessionkit.audit`` logger, written in the
  request (logging is the operator's pipeline; sessionkit cannot read or erase it);
- ``"store"``: the store's own sink (a table in the SQL store, capped streams in Redis, a
  bounded list in memory), written by one background thread in batches, so a request
  only queues the entry (no I/O on the request path, none on an event loop).

What is kept: every security kind (cookie and record rejections, fingerprint mismatches,
lock timeouts, evictions, refused logins), and the others (login, logout, regenerate,
revoke, expiry) only for sessions bound to a user: an anonymous visitor's expiry is no
security event. Cookie rejections are rate limited per process (``audit_rejections_per_minute``),
so a flood of forged cookies cannot fill the trail; the first one let through after a
suppression says how many were dropped.

Retention (``audit_retention``) is enforced by the sink: the SQL store deletes older rows
on a bounded schedule (at most one chunk each ``TRIM_INTERVAL``, and all of them in
``sessionkit gc``), Redis trims each stream by time (``XTRIM MINID``) and length
(``MAXLEN ~``) on every write and lets an idle stream expire. Erasure (``erase_user``)
pseudonymises a user's entries (``audit_erasure="pseudonymise"``, the default: the user key
becomes a keyed hash, the device and network are dropped) or deletes them (``"delete"``).
"""

from __future__ import annotations

import atexit
import dataclasses
import hashlib
import hmac
import json
import logging
import math
import os
import queue
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from sessionkit.cache import BoundedCache
from sessionkit.client import device_label, network_of
from sessionkit.events import Event, EventBus, EventKind

if TYPE_CHECKING:
    from sessionkit.config import SessionConfig
    from sessionkit.engine import SessionEngine

audit_log = logging.getLogger("sessionkit.audit")
log = logging.getLogger("sessionkit")

#: The event kinds the trail keeps, and the entry kind each becomes.
KINDS: dict[EventKind, str] = {
    EventKind.USER_BOUND: "login",
    EventKind.INVALIDATED: "logout",
    EventKind.USER_UNBOUND: "logout",
    EventKind.REGENERATED: "regenerate",
    EventKind.REVOKED: "revoke",
    EventKind.EXPIRED: "expiry",
    EventKind.FINGERPRINT_MISMATCH: "fingerprint_mismatch",
    EventKind.LOCK_TIMEOUT: "lock_timeout",
    EventKind.SESSION_EVICTED: "eviction",
    EventKind.LOGIN_REFUSED: "login_refused",
    EventKind.COOKIE_REJECTED: "cookie_rejected",
    EventKind.RECORD_REJECTED: "record_rejected",
    EventKind.DBSC_MISSING: "dbsc_missing",
}
#: Kept whether or not the session belongs to a user.
ALWAYS = frozenset(
    {"fingerprint_mismatch", "lock_timeout", "eviction", "login_refused", "cookie_rejected",
     "record_rejected"}
)  # fmt: skip
#: Who acts when the event does not say: the session's own request, or sessionkit itself.
_SELF = frozenset({"login", "logout", "regenerate"})
#: An entry written by the trail itself when a user's entries were erased.
ERASURE = "erasure"
#: The writer thread waits this long after an entry for more to come, then writes them
#: all in one batch (an entry reaches the store within about this long).
LINGER = 0.05
#: The writer thread stops after this many idle seconds (the next entry starts it again).
IDLE_EXIT = 30.0
#: The SQL sink deletes expired entries at most once per this many seconds (one chunk).
TRIM_INTERVAL = 600.0
PSEUDONYM_PREFIX = "erased:"


@dataclasses.dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of the trail. ``at`` is epoch seconds; ``as_dict`` shows it as ISO 8601."""

    at: float
    kind: str
    handle: str | None
    user: str | None
    device: str | None
    network: str | None
    actor: str
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        when = datetime.fromtimestamp(self.at, timezone.utc).isoformat(timespec="milliseconds")
        return {
            "time": when.replace("+00:00", "Z"), "kind": self.kind, "handle": self.handle,
            "user": self.user, "device": self.device, "network": self.network,
            "actor": self.actor, "reason": self.reason,
        }  # fmt: skip

    def replace(self, **changes: Any) -> AuditEntry:
        return dataclasses.replace(self, **changes)


class AuditSink:
    """Where entries go. A readable sink (a store's) also lists, erases and trims them."""

    readable = True

    def write(self, entries: Sequence[AuditEntry], *, retention: float, max_entries: int) -> None:
        raise NotImplementedError

    def entries(
        self, user: str | None, *, since: float | None = None, limit: int | None = None
    ) -> list[AuditEntry]:
        """``user``'s entries (``None``: those of no user, e.g. cookie rejections), oldest
        first; ``limit``: the newest that many."""
        raise NotImplementedError

    def erase(self, user: str, pseudonym: str | None) -> int:
        """Give ``user``'s entries the user key ``pseudonym`` and drop their device and
        network (``None``: delete them); returns how many."""
        raise NotImplementedError

    def trim(self, before: float, *, chunk: int | None = None) -> int:
        """Delete entries older than ``before`` (at most ``chunk`` of them)."""
        return 0


class LogSink(AuditSink):
    """JSON lines on ``sessionkit.audit`` at INFO; each record also carries the entry as
    ``record.audit`` (a dict) for structured handlers."""

    readable = False

    def __init__(self, logger: logging.Logger = audit_log) -> None:
        self.logger = logger

    def write(self, entries: Sequence[AuditEntry], *, retention: float, max_entries: int) -> None:
        for entry in entries:
            document = entry.as_dict()
            self.logger.info(
                "%s", json.dumps(document, ensure_ascii=False, separators=(",", ":")),
                extra={"audit": document},
            )  # fmt: skip


class MemoryAuditSink(AuditSink):
    """The memory store's sink: the newest ``max_entries`` entries of this process."""

    def __init__(self) -> None:
        self._entries: deque[AuditEntry] = deque()
        self._lock = threading.Lock()

    def write(self, entries: Sequence[AuditEntry], *, retention: float, max_entries: int) -> None:
        with self._lock:
            self._entries.extend(entries)
            while len(self._entries) > max_entries:
                self._entries.popleft()
            self._trim(time.time() - retention)

    def entries(
        self, user: str | None, *, since: float | None = None, limit: int | None = None
    ) -> list[AuditEntry]:
        with self._lock:
            found = [
                e for e in self._entries if e.user == user and (since is None or e.at >= since)
            ]
        return found if limit is None else found[-limit:] if limit else []

    def erase(self, user: str, pseudonym: str | None) -> int:
        with self._lock:
            kept: deque[AuditEntry] = deque()
            count = 0
            for entry in self._entries:
                if entry.user == user:
                    count += 1
                    if pseudonym is None:
                        continue
                    entry = entry.replace(user=pseudonym, device=None, network=None)
                kept.append(entry)
            self._entries = kept
        return count

    def trim(self, before: float, *, chunk: int | None = None) -> int:
        with self._lock:
            return self._trim(before)

    def _trim(self, before: float) -> int:
        count = 0
        while self._entries and self._entries[0].at < before:
            self._entries.popleft()
            count += 1
        return count


class RejectionLimit:
    """At most ``per_minute`` cookie rejections a minute pass (a fixed window); the first
    one let through after some were dropped says how many."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._window = -1.0
        self._count = 0
        self.suppressed = 0
        self._lock = threading.Lock()

    def admit(self) -> int | None:
        """``None``: drop this one; else how many were dropped before it."""
        with self._lock:
            now = self.clock()
            if now - self._window >= 60.0:
                self._window, self._count = now, 0
            if self._count >= self.per_minute:
                self.suppressed += 1
                return None
            self._count += 1
            dropped, self.suppressed = self.suppressed, 0
            return dropped


class AuditTrail:
    """The event-bus subscriber that keeps the trail (``engine.audit``)."""

    def __init__(
        self,
        config: SessionConfig,
        *,
        log_sink: AuditSink | None = None,
        store_sink: AuditSink | None = None,
        pseudonym_key: bytes,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.log_sink = log_sink
        self.store_sink = store_sink
        self.retention = float(config.audit_retention)
        self.max_entries = config.audit_max_entries
        self.clock = clock
        self._key = pseudonym_key
        self.rejections = RejectionLimit(config.audit_rejections_per_minute)
        self._queue: queue.SimpleQueue[AuditEntry | None] = queue.SimpleQueue()
        self._pending = 0
        self._idle = threading.Condition()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._last_trim = -math.inf  # the first batch trims (monotonic starts near boot)
        self._flushing = 0  # callers waiting in flush(): the writer does not linger
        self._wake = threading.Event()
        self._unsubscribe: Callable[[], None] | None = None
        self.bus: EventBus | None = None
        self.dropped = 0  # entries a store sink failed to take
        self._devices: BoundedCache[str, str | None] = BoundedCache()
        self._networks: BoundedCache[str, str] = BoundedCache()

    def _network_of(self, address: str) -> str:
        return network_of(address, self.config)

    # -- feeding ---------------------------------------------------------------------------
    def attach(self, bus: EventBus) -> None:
        self.bus = bus
        self._unsubscribe = bus.subscribe(self, kinds=list(KINDS))

    def __call__(self, event: Event) -> None:
        kind = KINDS.get(event.kind)
        if kind is None or (event.user is None and kind not in ALWAYS):
            return
        if event.detail.get("unbinds"):  # the rotation of a logout: its logout entry says it
            return
        reason = event.reason
        if kind == "cookie_rejected":
            dropped = self.rejections.admit()
            if dropped is None:
                return
            if dropped:
                reason = f"{reason} ({dropped} more rejections were not recorded: rate limit)"
        client = event.client
        device = network = None
        if client is not None:
            if client.user_agent:
                device = self._devices.get(client.user_agent, device_label)
            if client.remote_addr:
                network = self._networks.get(client.remote_addr, self._network_of)
        actor = event.actor or ("user" if kind in _SELF else "sessionkit")
        if kind == "eviction":
            reason = f"{reason}; for the login of session {event.detail.get('by', '-')}"
        self.record(
            AuditEntry(self.clock(), kind, event.handle, event.user, device, network, actor, reason)
        )

    def record(self, entry: AuditEntry) -> None:
        """Write one entry: to the log now, to the store by the writer thread."""
        if self.log_sink is not None:
            try:
                self.log_sink.write([entry], retention=self.retention, max_entries=self.max_entries)
            except Exception:
                log.exception("sessionkit audit: the log sink failed")
        if self.store_sink is not None:
            with self._idle:  # the writer decides to stop under this lock too
                pid = os.getpid()
                if self._pid != pid:  # a forked child: the parent's queue and thread are not its
                    self._queue, self._pending, self._thread = queue.SimpleQueue(), 0, None
                    self._pid = pid
                self._pending += 1
                self._queue.put(entry)
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._write_loop, name="sessionkit-audit", daemon=True
                    )
                    self._thread.start()

    # -- the writer thread -----------------------------------------------------------------
    def _write_loop(self) -> None:
        sink = self.store_sink
        assert sink is not None
        while True:
            try:
                first = self._queue.get(timeout=IDLE_EXIT)
            except queue.Empty:
                with self._idle:
                    if self._queue.empty():  # idle: stop (the next entry starts another)
                        self._thread = None
                        return
                continue
            if first is None:
                return
            if LINGER and not self._flushing:
                # let a burst gather: one write (and one wake-up of this thread, which
                # shares the interpreter with the requests) per LINGER, not per entry
                self._wake.wait(LINGER)
            batch = [first]
            while len(batch) < 500:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)
                    break
                batch.append(more)
            self._write(sink, batch)
            with self._idle:
                self._pending -= len(batch)
                self._idle.notify_all()

    def _write(self, sink: AuditSink, batch: list[AuditEntry]) -> None:
        for attempt in range(2):
            try:
                sink.write(batch, retention=self.retention, max_entries=self.max_entries)
                break
            except Exception:
                if attempt:
                    self.dropped += len(batch)
                    log.exception(
                        "sessionkit audit: the store did not take %d entries (dropped)", len(batch)
                    )
                else:
                    time.sleep(0.5)
        now = time.monotonic()
        if now - self._last_trim >= TRIM_INTERVAL:
            self._last_trim = now
            try:
                sink.trim(self.clock() - self.retention, chunk=1000)
            except Exception:
                log.exception("sessionkit audit: trimming old entries failed")

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued entry is written (tests, scripts, before an erasure)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            if self._pending <= 0:
                return True
            self._flushing += 1
        self._wake.set()  # no lingering while someone waits
        try:
            with self._idle:
                while self._pending > 0:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._idle.wait(left)
            return True
        finally:
            with self._idle:
                self._flushing -= 1
                if not self._flushing:
                    self._wake.clear()

    def close(self) -> None:
        """Write what is queued, stop the thread and unsubscribe."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        thread = self._thread
        if thread is not None and thread.is_alive():
            self.flush()
            self._queue.put(None)
            thread.join(5.0)
            with self._idle:
                if self._thread is thread:
                    self._thread = None

    # -- reading and erasing ----------------------------------------------------------------
    def pseudonym(self, user: str) -> str:
        """What an erased user's entries say instead of their key (``pseudonym_of``)."""
        return pseudonym_of(self._key, user)


def erase_entries(
    sink: AuditSink, user: str, policy: str, pseudonym: str, actor: str, now: float,
    *, retention: float, max_entries: int,
) -> int:  # fmt: skip
    """Apply the erasure policy to ``user``'s entries in ``sink``, then record that it was
    done (under the pseudonym, or under no user when they were deleted)."""
    count = sink.erase(user, pseudonym if policy == "pseudonymise" else None)
    erased_as = pseudonym if policy == "pseudonymise" else None
    done = "pseudonymised" if erased_as else "deleted"
    entry = AuditEntry(now, ERASURE, None, erased_as, None, None, actor, f"{count} entries {done}")
    sink.write([entry], retention=retention, max_entries=max_entries)
    return count


def pseudonym_of(key: bytes, user: str) -> str:
    """A keyed hash of ``user``: the same for the same user and key, and nobody without
    the secret key can reverse it or test a guess against it."""
    mac = hmac.new(key, user.encode("utf-8", "surrogatepass"), hashlib.sha256)
    return PSEUDONYM_PREFIX + mac.hexdigest()[:32]


def pseudonym_key(secret: bytes) -> bytes:
    """The erasure pseudonyms' HMAC key: an HKDF sub-key of the newest secret key."""
    from sessionkit.crypto import _derive

    return _derive(secret, b"audit-pseudonym")


def parse_audit(value: Any) -> tuple[str, ...]:
    """``audit=`` as the sinks it names: ``None``/``""``/``"off"``/``False`` none, ``"log"``,
    ``"store"``, ``"log,store"`` or a sequence of those."""
    if value is None or value is False or value == "" or value == "off":
        return ()
    items = [v.strip() for v in value.split(",")] if isinstance(value, str) else list(value)
    if not items or any(v not in ("log", "store") for v in items):
        raise ValueError(value)
    return tuple(dict.fromkeys(items))


_TRAILS: weakref.WeakSet[AuditTrail] = weakref.WeakSet()
#: the trail on each bus (a trail keeps its bus alive, so an id is not reused meanwhile)
_BY_BUS: dict[int, weakref.ref[AuditTrail]] = {}


@atexit.register
def _flush_all() -> None:  # entries queued when the process ends are written, if it can
    for trail in list(_TRAILS):
        trail.flush(2.0)


def audit_trail(engine: SessionEngine) -> AuditTrail:
    """The trail ``engine``'s config asks for, subscribed to its bus. ``"store"`` on a
    store that keeps no trail is a ``ConfigError`` at start-up."""
    from sessionkit.errors import ConfigError

    config = engine.config
    shared = _BY_BUS.get(id(engine.events))
    trail = shared() if shared is not None else None
    store_sink = None
    if "store" in config.audit_sinks:
        store_sink = engine.store.audit_sink()
        if store_sink is None:
            raise ConfigError(
                "audit",
                f"{engine.store!r} keeps no audit trail; use audit='log', or a store that "
                "does (memory://, sqlite:///, postgresql://, redis://)",
            )
    if (
        trail is not None and trail.bus is engine.events and trail.store_sink is store_sink
        and (trail.log_sink is not None) == ("log" in config.audit_sinks)
    ):  # fmt: skip
        return trail  # engines sharing a bus share its trail (each entry once)
    trail = AuditTrail(
        config, log_sink=LogSink() if "log" in config.audit_sinks else None,
        store_sink=store_sink, pseudonym_key=pseudonym_key(config.secret_keys[0]),
        clock=engine.clock,
    )  # fmt: skip
    trail.attach(engine.events)
    _TRAILS.add(trail)
    if len(_BY_BUS) > 256:  # forget the buses of trails gone
        for key in [k for k, ref in _BY_BUS.items() if ref() is None]:
            del _BY_BUS[key]
    _BY_BUS[id(engine.events)] = weakref.ref(trail)
    return trail
