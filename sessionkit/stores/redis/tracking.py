"""Redis server-assisted client-side caching as an ``InvalidationSource``.

Two connections per process, owned by this module (the store's data connections are left
exactly as they are)::

    listener:  CLIENT ID                                  -> <id>
               SUBSCRIBE __redis__:invalidate
    writer:    CLIENT TRACKING ON REDIRECT <id> BCAST PREFIX <prefix>{ NOLOOP

so Redis pushes to the listener the name of every session key that any client changes,
deletes, expires or evicts (and ``null`` for a FLUSHDB/FLUSHALL), as RESP2 pub/sub
messages, except the changes the writer itself made. Works with Redis 6.0 and later
(Debian's 7.0 included) and with every redis-py flavour the store uses: it needs no RESP3
and no hook into the store's clients.

Why broadcast mode and not the default mode with ``REDIRECT ... NOLOOP`` on the data
connections: in the default mode Redis forgets that a connection tracks a key as soon as
that key is modified, *also* when the connection itself modified it with ``NOLOOP`` (no
message is sent, and the key leaves the tracking table). A record written through after
our own save would then never be invalidated again; checked against Redis 7.0 in
``tests/stores/test_cache_redis.py``. Broadcast mode tracks by prefix, so nothing is
forgotten; the price is that every process hears about every session write.

Why the writer, and ``NOLOOP`` on it: in broadcast mode Redis collects the keys changed
during one turn of its event loop and sends each key *once* per turn, after the turn. Our
own save and another client's save of the same session in one turn therefore make one
message, so counting messages cannot tell "only ours" from "ours and then theirs". With
``NOLOOP`` Redis leaves a key out of the writer's messages only when the writer made the
*last* change to it in that turn: a change by anyone after our save is always announced
(checked against the real server in the tests). The cache's write-through sends its
merges on the writer for that reason (``save``), one at a time; when the writer is busy,
the save goes through the store as usual and the record is dropped.

Fail safe: both connections are polled without blocking before every cached read
(``sync``). A closed listener or writer (``CLIENT KILL``, a restart, a failover that
drops clients, an output buffer limit), an unanswered health-check ``PING`` or a fork
flushes the cache and sends reads to Redis until a background thread has connected,
subscribed and turned tracking on again.

Counters for ``sessionkit stats``: every ``stats_interval`` seconds the listener thread
writes this process's cache counters into one HASH, ``<prefix>cache:stats`` (a field per
process: ``<host>:<pid>:<n>``, valued ``<published ms> <stale after ms> <JSON>`` in the
server's clock), on the writer when no save holds it. The key is outside the tracked
``<prefix>{`` so nobody is told of it; the script now and then drops the fields of
processes that stopped publishing (the reader skips them until then), and the key
expires when all of them have (``published``).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
import os
import random
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from redis import exceptions as _rx

from sessionkit.stores.base import Store, Write
from sessionkit.stores.cache import CacheStats, InvalidationSource, LocalCache
from sessionkit.stores.redis.scripts import UPDATE_VERSIONED_SCRIPT, Script

CHANNEL = b"__redis__:invalidate"
STATS_KEY = "cache:stats"  # after the prefix: not under the tracked "<prefix>{"

log = logging.getLogger("sessionkit")
_INSTANCES = itertools.count(1)  # the <n> of the field: caches in one process

# KEYS[1] the counters' HASH; ARGV[1] this process's field, ARGV[2] its counters (JSON),
# ARGV[3] the ms after which the field is stale unless published again, ARGV[4] "1" to
# drop the stale fields this time. Stamps the field with the server's clock (no skew
# between hosts), keeps the key alive as long as the longest-lived field, and returns how
# many fields there are: each publication prunes with a chance of 1 in that, so the fleet
# prunes about once per interval whatever its size (a prune reads every field).
PUBLISH_SCRIPT = Script("""
local now = redis.call('TIME')
local ms = now[1] * 1000 + math.floor(now[2] / 1000)
local stale = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], string.format('%.0f %.0f ', ms, ms + stale) .. ARGV[2])
if ARGV[4] == '1' then
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    local until_ = tonumber(string.match(all[i + 1], '^%d+ (%d+) '))
    if until_ == nil or until_ < ms then redis.call('HDEL', KEYS[1], all[i]) end
  end
end
if redis.call('PTTL', KEYS[1]) < stale then redis.call('PEXPIRE', KEYS[1], stale) end
return redis.call('HLEN', KEYS[1])
""")


class RedisTracking(InvalidationSource):
    """Invalidations for the session keys under ``prefix`` (``<prefix>{<digest>}``).

    ``connect`` makes a new, unconnected redis-py ``Connection`` to the server the store
    uses (``for_client`` builds it from a client's pool). ``health_interval``: seconds
    between PINGs on the idle connection; if no reply comes within ``2 *
    health_interval`` the cache is flushed (a link that died without a FIN or RST).
    ``stats_interval``: seconds between publications of the counters (``None``: never);
    ``stats_expiry``: how long a process's last publication is shown (3 intervals).
    """

    def __init__(
        self,
        connect: Callable[[], Any],
        prefix: str,
        *,
        health_interval: float = 1.0,
        retry_pause: float = 0.05,
        stats_interval: float | None = 5.0,
        stats_expiry: float | None = None,
    ) -> None:
        self._connect = connect
        self.stats_interval = stats_interval
        self.stats_expiry = stats_expiry
        self._stats_key = f"{prefix}{STATS_KEY}"
        self._instance = next(_INSTANCES)
        self._published = -math.inf  # monotonic time of the last publication (none yet)
        self._publish_failed = False  # (logged once)
        self._fields = 1  # how many processes published, as of our last publication
        self._key_prefix = f"{prefix}{{".encode()
        self._key_length = len(self._key_prefix) + 65
        self.health_interval = health_interval
        self.retry_pause = retry_pause
        self._cache: LocalCache | None = None
        self._conn: Any = None
        self._poller: Any = None  # select.poll() on the connection's socket, when it has one
        self._live = False
        self._last_pong = 0.0
        self._ping_sent = 0.0
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self.connects = 0  # how many times tracking was (re)established (for tests, stats)
        self.client_id: int | None = None  # the invalidation connection's CLIENT ID
        self._writer: Any = None  # the connection whose tracking feeds the listener
        self._writer_fd = -1
        self._writer_lock = threading.Lock()  # one write-through at a time on it
        self._writer_pinged = 0.0
        self._drain_always = False  # the listener cannot be polled (TLS): ask redis-py
        self.writer_id: int | None = None  # the writer's CLIENT ID

    @classmethod
    def for_client(cls, client: Any, prefix: str, **options: Any) -> RedisTracking:
        """A source beside a sync redis-py ``Redis`` (or Sentinel ``master_for``) client:
        its connection class and arguments (TLS, credentials, Sentinel master discovery),
        with RESP2 for the pub/sub messages."""
        pool = client.connection_pool

        def connect() -> Any:
            kwargs = dict(pool.connection_kwargs)
            kwargs["protocol"] = 2
            return pool.connection_class(**kwargs)

        return cls(connect, prefix, **options)

    def attach(self, cache: LocalCache) -> None:
        self._cache = cache

    # -- the hot path ----------------------------------------------------------------------
    def sync(self) -> bool:
        """Apply every invalidation that has reached us; ``True`` when hits may be served."""
        if self._pid != os.getpid():
            self._forked()
        if not self._live:
            self._start()
            return False
        with self._lock:
            if not self._live:
                return False
            if time.monotonic() - self._last_pong > 2 * self.health_interval + 1.0:
                self._down("no reply to the health check")
                return False
            events = self._poller.poll(0)  # data or a hang-up on the listener, a hang-up
            if events:  # on the writer
                writer_fd = self._writer_fd
                for fd, _ in events:
                    if fd == writer_fd:
                        self._down("the tracking connection closed")
                        return False
                self._drain()
            elif self._drain_always:
                self._drain()
            return self._live

    @property
    def writes_through(self) -> bool:
        return self._live and self._writer is not None

    def save(self, store: Store, write: Write) -> int | None:
        """Run ``write``'s merge on the writer connection (whose own changes are not
        announced to us, and any change after it is) and return the version it wrote,
        ``0`` if nothing was written; ``None`` when the writer is busy or down, or the
        store is not the one we track (the cache then saves through the store)."""
        from sessionkit.stores.redis.store import RedisStore

        writer = self._writer
        if writer is None or not self._live or type(store) is not RedisStore or store.cluster:
            return None
        if store.prefix.encode() + b"{" != self._key_prefix:
            return None
        lock = self._writer_lock
        if not lock.acquire(blocking=False):  # another thread's write is on it
            return None
        try:
            if self._writer is not writer:
                return None
            keys, args = store._update_args(write)
            try:
                reply = _merge(writer, UPDATE_VERSIONED_SCRIPT.sha, "EVALSHA", keys, args)
                if isinstance(reply, _rx.NoScriptError):  # flushed: send the source
                    source = UPDATE_VERSIONED_SCRIPT.source
                    reply = _merge(writer, source, "EVAL", keys, args)
                if isinstance(reply, Exception):
                    raise reply
            except _rx.ResponseError:
                raise
            except Exception as exc:  # the write may have landed: the caller merges again
                with self._lock:
                    if self._writer is writer:
                        self._down(f"tracking connection lost ({type(exc).__name__}: {exc})")
                return None
            self._writer_pinged = time.monotonic()
            return int(reply)
        finally:
            lock.release()

    def _drain(self) -> None:
        """Read what is buffered, without blocking (the caller holds the lock). It reads
        until redis-py's parser holds nothing either, so an empty socket afterwards means
        nothing is waiting: ``sync`` then checks the socket alone (one ``poll``)."""
        conn = self._conn
        try:
            while conn.can_read(timeout=0):
                self._apply(conn.read_response())
        except Exception as exc:  # closed, killed, garbled: we may have missed messages
            self._down(f"invalidation connection lost ({type(exc).__name__}: {exc})")

    def _apply(self, message: Any) -> None:
        cache = self._cache
        if type(message) is not list or len(message) < 2 or cache is None:
            return
        kind = message[0]
        if kind == b"message" and len(message) == 3 and message[1] == CHANNEL:
            keys = message[2]
            if keys is None:  # FLUSHDB / FLUSHALL
                cache.flush("the Redis database was flushed")
                return
            prefix, length = self._key_prefix, self._key_length
            for key in keys:
                if len(key) == length and key.startswith(prefix):
                    cache.invalidate(key[len(prefix) : -1].decode())
        elif kind == b"pong":
            self._last_pong = time.monotonic()
        elif kind in (b"unsubscribe", b"tracking-redir-broken"):
            self._down("tracking stopped")

    def _down(self, reason: str) -> None:
        """Stop serving hits and flush (the caller holds the lock, so no hit is served
        until the flush is done, even by a thread that already sees ``_live`` off)."""
        was_live, self._live = self._live, False
        conn, self._conn, self._poller = self._conn, None, None
        writer, self._writer, self._writer_fd = self._writer, None, -1
        for each in (conn, writer):  # (a write on the writer then fails, and falls back)
            if each is not None:
                with contextlib.suppress(Exception):
                    each.disconnect()
        if self._cache is not None:
            self._cache.flush(reason if was_live else f"{reason} (while not live)")

    def _forked(self) -> None:
        """A child process: the parent's socket and thread are not ours."""
        self._pid, self._conn, self._live, self._thread = os.getpid(), None, False, None
        self._poller, self._writer, self._writer_fd = None, None, -1
        self._lock, self._writer_lock = threading.Lock(), threading.Lock()
        self._published = -math.inf
        if self._cache is not None:  # the counts so far are the parent's (its own field)
            self._cache.stats = CacheStats()
            self._cache.flush("forked: the parent's invalidations are not ours")

    @property
    def live(self) -> bool:
        """Whether hits may be served now (tracking is on and the link answers)."""
        return self._live

    def wait_live(self, timeout: float = 5.0) -> bool:
        """Start listening now rather than on the first read, and wait until tracking is
        on (a process that warms up before taking traffic; tests)."""
        deadline = time.monotonic() + timeout
        while not self.sync():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True

    # -- the listener thread ---------------------------------------------------------------
    def _start(self) -> None:
        if self._thread is not None or self._closed.is_set():
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="sessionkit-cache-invalidation", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        pause = self.retry_pause
        while not self._closed.is_set():
            if not self._live:
                try:
                    self._establish()
                    pause = self.retry_pause
                except Exception:
                    self._closed.wait(pause)
                    pause = min(pause * 2, 2.0)
                continue
            self._listen()

    def _establish(self) -> None:
        conn, writer = self._connect(), self._connect()
        try:
            conn.connect()
            conn.send_command("CLIENT", "ID")
            client_id = conn.read_response()
            conn.send_command("SUBSCRIBE", CHANNEL)  # before tracking: no message is lost
            conn.read_response()
            writer.connect()
            writer.send_command("CLIENT", "ID")
            writer_id = writer.read_response()
            writer.send_command(
                "CLIENT", "TRACKING", "ON", "REDIRECT", client_id, "BCAST",
                "PREFIX", self._key_prefix, "NOLOOP",
            )  # fmt: skip
            writer.read_response()
            writer.send_command("SCRIPT", "LOAD", UPDATE_VERSIONED_SCRIPT.source)
            writer.read_response()  # (a server that restarted has forgotten it)
            poller, drain_always, writer_fd = _poller_for(conn, writer)
        except BaseException:
            for each in (conn, writer):
                with contextlib.suppress(Exception):
                    each.disconnect()
            raise
        with self._lock:
            if self._closed.is_set():
                conn.disconnect()
                writer.disconnect()
                return
            # Nothing was cached while we were not live (reads bypassed the cache, fills
            # that spanned the drop were poisoned by its flush): serving may start now.
            self._conn, self._live, self.client_id = conn, True, client_id
            self._writer, self._writer_fd, self.writer_id = writer, writer_fd, writer_id
            self._poller, self._drain_always = poller, drain_always
            self._drain()  # anything that came with the subscription's reply
            self._last_pong = self._ping_sent = self._writer_pinged = time.monotonic()
            self.connects += 1

    def _listen(self) -> None:
        """Wait for data (without the lock), drain it (with), and keep the link checked."""
        conn = self._conn
        sock = getattr(conn, "_sock", None)
        wait = min(self.health_interval / 2, self.stats_interval or math.inf)
        if sock is not None:
            with contextlib.suppress(OSError, ValueError):
                select.select([sock], [], [], wait)
        else:  # pragma: no cover - a connection class without a socket attribute
            self._closed.wait(wait)
        with self._lock:
            if not self._live or self._conn is not conn:
                return
            self._drain()
            now = time.monotonic()
            if self._live and now - self._ping_sent >= self.health_interval:
                try:
                    conn.send_command("PING")
                    self._ping_sent = now
                except Exception as exc:
                    self._down(f"invalidation connection lost ({type(exc).__name__})")
            elif self._live and now - self._last_pong > 2 * self.health_interval:
                self._down("no reply to the health check")
        interval = self.stats_interval
        if self._live and interval is not None and time.monotonic() - self._published >= interval:
            self._publish(interval)
        if self._live and time.monotonic() - self._writer_pinged >= self.health_interval:
            self._on_writer(_ping)

    def _on_writer(self, work: Callable[[Any], object]) -> bool:
        """Run ``work(writer)`` when no save holds the writer (``False``: busy or gone);
        it also keeps the writer's link checked (and out of the server's idle
        ``timeout``). A broken link takes tracking down, as in ``save``."""
        writer = self._writer
        if writer is None or not self._writer_lock.acquire(blocking=False):
            return False
        try:
            if self._writer is not writer:
                return False
            work(writer)
            self._writer_pinged = time.monotonic()
            return True
        except Exception as exc:
            with self._lock:
                if self._writer is writer:
                    self._down(f"tracking connection lost ({type(exc).__name__})")
            return False
        finally:
            self._writer_lock.release()

    def _publish(self, interval: float) -> None:
        """Write this process's counters for ``sessionkit stats`` (``PUBLISH_SCRIPT``). A
        refusal (a full Redis under ``noeviction``, an ACL, a key of another type) is
        logged once and changes nothing else: the cache carries on."""
        cache = self._cache
        if cache is None:
            return
        host, pid = socket.gethostname(), os.getpid()
        counts = {"host": host, "pid": pid, "cache": self._instance, "connects": self.connects,
                  **cache.counters()}  # fmt: skip
        expiry = self.stats_expiry if self.stats_expiry is not None else 3 * interval
        prune = random.random() * self._fields < 1  # (spreads the prunes: no secret)
        args = [f"{host}:{pid}:{self._instance}", json.dumps(counts, separators=(",", ":")),
                max(1, round(expiry * 1000)), int(prune)]  # fmt: skip

        def publish(writer: Any) -> None:
            def call(*command: Any) -> Any:
                writer.send_command(*command)
                return writer.read_response()

            try:
                self._fields = max(1, int(PUBLISH_SCRIPT.run(call, [self._stats_key], args)))
            except _rx.ResponseError as exc:  # (its reply was read: the link is in step)
                if not self._publish_failed:
                    self._publish_failed = True
                    log.warning("sessionkit cache: cannot publish its counters to %s for "
                                "`sessionkit stats` (%s); the cache itself is unaffected",
                                self._stats_key, exc)  # fmt: skip

        if self._on_writer(publish):
            self._published = time.monotonic()

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            self._down("closed")
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)


def _ping(writer: Any) -> None:
    writer.send_command("PING")
    writer.read_response()


def published(store: Store) -> list[dict[str, Any]] | None:
    """The counters published by the live processes with a cache on ``store``'s prefix
    (the ones whose last publication is not stale), by host and pid, each with the
    server's time of its publication (``published``, epoch seconds); ``None`` when
    ``store`` is no RedisStore a cache can front (a Cluster, another kind)."""
    from sessionkit.stores.redis.store import RedisStore

    if not isinstance(store, RedisStore) or store.cluster:
        return None
    client = store._client()
    with store._guard():
        seconds, micros = client.time()
        try:
            fields = client.hgetall(f"{store.prefix}{STATS_KEY}")
        except _rx.ResponseError:  # not a HASH: nothing of ours
            return []
    now = int(seconds) * 1000 + int(micros) // 1000
    rows = []
    for value in fields.values():
        text = value.decode() if isinstance(value, bytes) else value
        try:
            at, until, counts = text.split(" ", 2)
            row = json.loads(counts)
            fresh = int(until) >= now and isinstance(row, dict)
        except ValueError:  # (JSONDecodeError is one) a field that is not ours
            continue
        if fresh:
            rows.append({**row, "published": int(at) / 1000})
    return sorted(rows, key=lambda r: (str(r.get("host")), r.get("pid", 0), r.get("cache", 0)))


def _merge(writer: Any, script: str, how: str, keys: list[str], args: list[Any]) -> Any:
    """One round trip: ``MULTI``, the versioned merge, ``HDEL <key> w``, ``EXEC``; the
    merge's reply (a version, 0, or the error object). The plain HDEL is the last change
    to the key in the transaction and it is the writer's own, so NOLOOP leaves the key out
    of our messages for this turn of Redis's loop unless another client changes it after
    us in the same turn (Redis records the last client to change each key)."""
    writer.send_packed_command(writer.pack_commands([
        ("MULTI",), (how, script, len(keys), *keys, *args), ("HDEL", keys[0], "w"), ("EXEC",),
    ]))  # fmt: skip
    for _ in range(3):  # OK, QUEUED, QUEUED
        writer.read_response()
    return writer.read_response()[0]


def _poller_for(conn: Any, writer: Any) -> tuple[Any, bool, int]:
    """A ``poll`` object on the listener's socket (for data and hang-ups; redis-py keeps
    it in ``_sock``) and on the writer's (for hang-ups only: its replies are the writing
    thread's business), whether the listener must be drained on every ``sync`` instead
    (TLS may hold decrypted bytes back from a poll), and the writer's descriptor."""
    sock, wsock = getattr(conn, "_sock", None), getattr(writer, "_sock", None)
    rdhup = getattr(select, "POLLRDHUP", 0)
    if wsock is None or not rdhup:  # no way to see the writer close: refuse to go live
        raise OSError("the tracking connection cannot be watched on this platform")
    poller = select.poll()
    drain_always = type(sock) is not socket.socket
    if sock is not None and not drain_always:
        poller.register(sock, select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP)
    writer_fd = wsock.fileno()
    poller.register(writer_fd, rdhup | select.POLLERR | select.POLLHUP)
    return poller, drain_always, writer_fd


def source_for(store: Store, client: Any = None) -> InvalidationSource | None:
    """The tracking source for a ``RedisStore`` on one server or behind Sentinel; ``None``
    for anything else (a Cluster: invalidations would need one listener per master).
    ``client``: the sync client the store was given (its pool says how to connect)."""
    try:
        from sessionkit.stores.redis import RedisStore
    except ImportError:  # redis-py is not installed: this is no RedisStore
        return None
    if not isinstance(store, RedisStore) or store.target.kind == "cluster":
        return None
    if client is None:
        client, _helpers = store.target.sync_client()
    return RedisTracking.for_client(client, store.prefix)
