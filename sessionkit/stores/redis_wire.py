"""One Redis round trip with as little client-side work as redis-py allows.

``Redis.execute_command`` is general: per command it checks a connection out of the pool
under a lock, polls the socket for stray data, records observability metrics, wraps the
call in a retry closure, runs a response callback and checks the connection back in. For
the two or three commands a session request sends, that machinery costs more client CPU
than the session work itself: about 18 µs sync and 25 µs async of client CPU per command
over the lane's, measured with redis-py 8.1, hiredis and Python 3.11 on a 2-core machine
(``benchmarks/bench_stores.py`` measures whole requests).

A ``Lane`` keeps a few of the pool's own connections checked out and sends commands on
them directly, with the connection's public ``pack_command``/``send_packed_command``/
``read_response``. What stays redis-py's: connecting, AUTH, TLS, Sentinel master
discovery, hiredis parsing, error replies raised as exceptions (``NoScriptError``,
``ResponseError``), and the client's ``Retry`` policy (a failed round trip disconnects and
is retried by the connection's own ``retry``, so a restarted server is reached again).
A connection goes back to the lane only after a complete reply (an error reply counts);
after anything else (a timeout, a cancelled task) it is disconnected first, so a late reply
can never be read as the answer to the next command. A disconnected connection reconnects
on its next use.

Replies are raw (no response callbacks): ``HGETALL`` gives a flat list. Used for a single
server and Sentinel; a Cluster routes by slot and follows redirections, so it keeps
redis-py's full path.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import sys
from typing import Any

from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

#: ``asyncio.timeout`` (Python 3.11+); on 3.10 connections keep redis-py's own timeouts.
_deadline: Any = getattr(asyncio, "timeout", None)

_hiredis_pack: Any
try:  # hiredis packs a command in C, a third of the time redis-py's wrapper around it takes
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover - hiredis comes with the redis extra
    _hiredis_pack = None


#: Linux: the lane's plain TCP/Unix sockets block, with the socket timeout enforced by the
#: kernel (SO_RCVTIMEO/SO_SNDTIMEO). A Python socket with a timeout polls before every send
#: and every receive: two extra system calls a round trip, about 4 µs. A kernel timeout
#: surfaces as redis-py's ConnectionError (the retry policy and the store treat both alike).
_KERNEL_TIMEOUTS = sys.platform == "linux"


def pack(conn: Any, args: tuple[Any, ...]) -> list[bytes]:
    """The wire form of one command (str, bytes, int and float arguments)."""
    if _hiredis_pack is not None:
        return [_hiredis_pack(args)]
    packed: list[bytes] = conn.pack_command(*args)
    return packed


class Lane:
    """Round trips on connections borrowed from a sync redis-py pool (thread-safe: a
    thread pops an idle connection or borrows a new one; ``list.pop``/``append`` are
    atomic)."""

    def __init__(self, client: Any) -> None:
        self._pool = client.connection_pool
        self._idle: list[Any] = []
        self._pid = os.getpid()

    def call(self, *args: Any) -> Any:
        """Send one command and return its raw reply."""
        conn = self._take()
        try:
            packed = pack(conn, args)
            return conn.retry.call_with_retry(
                lambda: self._round_trip(conn, packed), lambda _error: conn.disconnect()
            )
        except ResponseError:  # an error reply, read in full: the connection is clean
            raise
        except BaseException:  # e.g. interrupted mid-read: a reply may still be on its way
            conn.disconnect()
            raise
        finally:
            self._idle.append(conn)

    @staticmethod
    def _round_trip(conn: Any, packed: list[bytes]) -> Any:
        conn.send_packed_command(packed)
        return conn.read_response()

    def _take(self) -> Any:
        if self._pid != os.getpid():  # forked: the parent's sockets are not ours to use
            self._idle, self._pid = [], os.getpid()
        try:
            return self._idle.pop()
        except IndexError:
            conn = self._pool.get_connection()
            if _KERNEL_TIMEOUTS and conn.socket_timeout:
                conn.register_connect_callback(self._on_connect)
                self._on_connect(conn)  # already connected by the pool
            return conn

    def _on_connect(self, conn: Any) -> None:
        """Make a fresh socket blocking, with the same timeout kept by the kernel."""
        sock, timeout = getattr(conn, "_sock", None), conn.socket_timeout
        if type(sock) is not socket.socket or not timeout:  # e.g. TLS: left as it is
            return
        whole = int(timeout)
        limit = struct.pack("ll", whole, int((timeout - whole) * 1_000_000))  # a timeval
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, limit)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, limit)
        sock.settimeout(None)

    def close(self) -> None:
        """Hand the borrowed connections back to the pool (which the client then closes)."""
        idle, self._idle = self._idle, []
        if self._pid != os.getpid():
            return
        for conn in idle:
            conn.deregister_connect_callback(self._on_connect)
            conn.disconnect()
            self._pool.release(conn)


class AsyncLane:
    """``Lane`` for a ``redis.asyncio`` pool. Belongs to one event loop, like its client;
    concurrent tasks each take their own connection.

    The socket timeout: redis.asyncio enforces it per send (``asyncio.wait_for``, a new
    task on Python < 3.12) and per read (a timeout context), about 25 µs a round trip. On
    Python 3.11+ the lane instead clears it on the connections it borrows and bounds each
    whole round trip (send and read) with one ``asyncio.timeout``: the same limit, applied
    once. A round trip that runs out of time disconnects and raises redis-py's
    ``TimeoutError``, which the retry policy and the store treat like redis-py's own."""

    def __init__(self, client: Any) -> None:
        self._pool = client.connection_pool
        self._idle: list[Any] = []
        timeout = self._pool.connection_kwargs.get("socket_timeout")
        self._timeout: float | None = timeout if timeout and _deadline is not None else None

    async def call(self, *args: Any) -> Any:
        conn = self._idle.pop() if self._idle else await self._borrow()
        reusable = False
        try:
            reply = await self._exchange(conn, pack(conn, args))
            reusable = True
            return reply
        except ResponseError:
            reusable = True
            raise
        except BaseException:  # e.g. the task was cancelled while waiting for the reply
            await conn.disconnect(nowait=True)
            reusable = True  # (not if that await is itself cancelled: then it is dropped)
            raise
        finally:
            if reusable:
                self._idle.append(conn)

    async def _exchange(self, conn: Any, packed: list[bytes]) -> Any:
        timeout = self._timeout

        async def round_trip() -> Any:
            if timeout is None:
                await conn.send_packed_command(packed)
                return await conn.read_response()
            try:
                async with _deadline(timeout):
                    await conn.send_packed_command(packed)
                    return await conn.read_response()
            except TimeoutError:  # asyncio's (the built-in): our deadline ran out
                await conn.disconnect(nowait=True)
                raise RedisTimeoutError(f"Timeout talking to Redis after {timeout} s") from None

        async def fail(_error: Exception) -> None:
            await conn.disconnect()

        return await conn.retry.call_with_retry(round_trip, fail)

    async def _borrow(self) -> Any:
        conn = await self._pool.get_connection()
        if self._timeout is not None:
            conn.socket_timeout = None  # the lane bounds each round trip instead
        return conn

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.disconnect()
            if self._timeout is not None:
                conn.socket_timeout = self._timeout
            await self._pool.release(conn)
