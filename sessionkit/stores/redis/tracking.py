"""Redis server-assisted client-side caching as an ``InvalidationSource``.

One connection per process, owned by this module (the store's data connections are left
exactly as they are), runs::

    CLIENT ID                                             -> <id>
    CLIENT TRACKING ON REDIRECT <id> BCAST PREFIX <prefix>{
    SUBSCRIBE __redis__:invalidate

so Redis pushes the name of every session key that any client changes, deletes, expires or
evicts (and ``null`` for a FLUSHDB/FLUSHALL) to it, as RESP2 pub/sub messages. Works with
Redis 6.0 and later (Debian's 7.0 included) and with every redis-py flavour the store uses:
it needs no RESP3 and no hook into the store's clients.

Why broadcast mode and not the default mode with ``REDIRECT ... NOLOOP`` on the data
connections: in the default mode Redis forgets that a connection tracks a key as soon as
that key is modified, *also* when the connection itself modified it with ``NOLOOP`` (no
message is sent, and the key leaves the tracking table). A record written through after
our own save would then never be invalidated again; checked against Redis 7.0 in
``tests/stores/test_cache_redis.py``. Broadcast mode tracks by prefix, so nothing is
forgotten; the price is that our own writes invalidate us too (the record is re-read once
after each write, which the cache does anyway, see ``cache``) and that every process hears
about every session write (one small message per write per process).

Fail safe: the connection is read without blocking before every cached read (``sync``). A
closed connection (``CLIENT KILL``, a restart, a failover that drops clients, an output
buffer limit), an unanswered health-check ``PING`` or a fork flushes the cache and sends
reads to Redis until a background thread has connected and subscribed again.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from sessionkit.stores.base import Store
from sessionkit.stores.cache import InvalidationSource, LocalCache

CHANNEL = b"__redis__:invalidate"


class RedisTracking(InvalidationSource):
    """Invalidations for the session keys under ``prefix`` (``<prefix>{<digest>}``).

    ``connect`` makes a new, unconnected redis-py ``Connection`` to the server the store
    uses (``for_client`` builds it from a client's pool). ``health_interval``: seconds
    between PINGs on the idle connection; if no reply comes within ``2 *
    health_interval`` the cache is flushed (a link that died without a FIN or RST).
    """

    def __init__(
        self,
        connect: Callable[[], Any],
        prefix: str,
        *,
        health_interval: float = 1.0,
        retry_pause: float = 0.05,
    ) -> None:
        self._connect = connect
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
            poller = self._poller
            if poller is None or poller.poll(0):  # data (or a hang-up) waits on the socket
                self._drain()
            return self._live

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
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.disconnect()
        if self._cache is not None:
            self._cache.flush(reason if was_live else f"{reason} (while not live)")

    def _forked(self) -> None:
        """A child process: the parent's socket and thread are not ours."""
        self._pid, self._conn, self._live, self._thread = os.getpid(), None, False, None
        self._poller = None
        self._lock = threading.Lock()
        if self._cache is not None:
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
        conn = self._connect()
        try:
            conn.connect()
            conn.send_command("CLIENT", "ID")
            client_id = conn.read_response()
            conn.send_command(
                "CLIENT", "TRACKING", "ON", "REDIRECT", client_id, "BCAST",
                "PREFIX", self._key_prefix,
            )  # fmt: skip
            conn.read_response()
            conn.send_command("SUBSCRIBE", CHANNEL)
            conn.read_response()
        except BaseException:
            with contextlib.suppress(Exception):
                conn.disconnect()
            raise
        with self._lock:
            if self._closed.is_set():
                conn.disconnect()
                return
            # Nothing was cached while we were not live (reads bypassed the cache, fills
            # that spanned the drop were poisoned by its flush): serving may start now.
            self._conn, self._live, self.client_id = conn, True, client_id
            self._poller = _poller_for(conn)
            self._drain()  # anything that came with the subscription's reply
            self._last_pong = self._ping_sent = time.monotonic()
            self.connects += 1

    def _listen(self) -> None:
        """Wait for data (without the lock), drain it (with), and keep the link checked."""
        conn = self._conn
        sock = getattr(conn, "_sock", None)
        wait = self.health_interval / 2
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

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            self._down("closed")
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)


def _poller_for(conn: Any) -> Any:
    """A ``poll`` object on ``conn``'s socket (redis-py keeps it in ``_sock``), or ``None``
    when there is none to poll or it is TLS (the drain then asks redis-py every time)."""
    sock = getattr(conn, "_sock", None)
    poll = getattr(select, "poll", None)
    if type(sock) is not socket.socket or poll is None:  # TLS may hold decrypted bytes back
        return None
    poller = poll()
    poller.register(sock, select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP)
    return poller


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
