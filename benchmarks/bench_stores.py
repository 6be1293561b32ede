"""Per-request cost of the server-side stores, beside the raw client doing the minimum.

One process, one table. Two request cycles per store, driven through the engine exactly as
an adapter drives it:

- read-only: ``engine.open(cookie)`` → read a key (this loads) → ``commit`` → ``run``;
- changing:  ``engine.open(cookie)`` → ``s["n"] += 1`` → ``commit`` → ``run``.

Each store row names a *floor*: the raw client doing the least a server-side session could
do, on a value as big as our session: redis-py ``GET`` / ``GET`` + ``SET EX``; sqlite3 and
psycopg ``SELECT`` / ``SELECT`` + ``UPDATE`` (autocommit, so one round trip each); a file read
/ a read + atomic write (temporary file, fsync, rename, fsync of the directory, as FileStore
does); pymemcache ``get`` / ``get`` + ``set``. The script starts its own ``redis-server``,
PostgreSQL and ``memcached`` on free loopback ports (only those the selected rows need).

Round trips and statements are counted in separate, untimed cycles on a twin store: through
a loopback relay that counts the client's turns (PostgreSQL, memcached; for PostgreSQL it
also counts Query/Execute messages in the wire protocol), by SQLite's trace callback, or by
redis-py's packets and ``INFO commandstats``.

    python benchmarks/bench_stores.py            # 5 repeats x 2000 cycles per row
    python benchmarks/bench_stores.py --quick    # 3 x 300, a smoke run
    python benchmarks/bench_stores.py --only sqlite,postgresql --no-json

Adding a store is one ``StoreCase`` in ``store_cases()`` (and a ``Floor`` if its raw client
is not there yet). Results go to ``benchmarks/results/stores.json``. Speed is measured,
never asserted: the script exits 0 whether the goal is met or not.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import secrets
import socket
import sqlite3
import statistics
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # for tests.servers, when run as a script

import aiosqlite  # noqa: E402
import psycopg  # noqa: E402
import redis  # noqa: E402
import redis.asyncio  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from pymemcache.client.base import Client as MemcacheClient  # type: ignore[import-untyped]  # noqa: E402
from sqlalchemy.util.concurrency import await_  # noqa: E402

import sessionkit  # noqa: E402
from benchmarks.common import PAYLOAD, SECRET, environment, write_results  # noqa: E402
from sessionkit import SessionConfig, SessionEngine  # noqa: E402
from sessionkit.stores.base import Store  # noqa: E402
from sessionkit.stores.file import FileStore  # noqa: E402
from sessionkit.stores.memcached import MemcachedStore  # noqa: E402
from sessionkit.stores.memory import MemoryStore  # noqa: E402
from sessionkit.stores.redis import RedisStore  # noqa: E402
from sessionkit.stores.sql import SQLStore  # noqa: E402
from tests import servers  # noqa: E402

DEFAULT_OUTPUT = HERE / "results" / "stores.json"
GOAL_RATIO = 1.3
KINDS = ("read", "change")

SyncStep = Callable[[], None]
AsyncStep = Callable[[], Awaitable[None]]


# ==========================================================================================
# resources: servers started on demand, stopped at the end
# ==========================================================================================
class Resources:
    """Servers the rows need, started once and closed when the run ends."""

    def __init__(self) -> None:
        self._redis: servers.Server | None = None
        self._stats: redis.Redis | None = None
        self._postgres: servers.Postgres | None = None
        self._memcached: servers.Server | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="sessionkit-bench-")
        self.tmp = Path(self._tmp.name)
        self.relays: list[Relay] = []
        self.closers: list[Callable[[], object]] = []
        self.stores: list[Store] = []
        self.pg_tables: list[str] = []
        self.loop = asyncio.new_event_loop()

    def redis_port(self) -> int:
        if self._redis is None:
            self._redis = servers.redis_server(name="redis-bench")
        return self._redis.port

    def redis_stats(self) -> redis.Redis:
        """One connection kept for INFO, so counting adds no connection handshakes."""
        if self._stats is None:
            self._stats = redis.Redis(port=self.redis_port())
        return self._stats

    def postgres(self) -> servers.Postgres:
        if self._postgres is None:
            self._postgres = servers.postgres_server()
        return self._postgres

    def pg_url(self, port: int | None = None) -> str:
        return f"postgresql://postgres@127.0.0.1:{port or self.postgres().port}/postgres"

    def memcached_port(self) -> int:
        if self._memcached is None:
            self._memcached = servers.memcached_server()
        return self._memcached.port

    def relay(self, port: int, postgres: bool = False) -> Relay:
        made = Relay(port, postgres)
        self.relays.append(made)
        return made

    def close(self) -> None:
        for closer in self.closers:
            with contextlib.suppress(Exception):
                closer()
        for store in self.stores:
            with contextlib.suppress(Exception):
                self.loop.run_until_complete(store.aclose())
        self.loop.close()
        for relay in self.relays:
            relay.close()
        if self._stats is not None:
            self._stats.close()
        for server in (self._redis, self._postgres, self._memcached):
            if server is not None:
                server.close()
        self._tmp.cleanup()


class Relay:
    """A loopback TCP relay for the untimed counting cycles only: a client's burst of bytes
    after the server last spoke is one round trip. With ``postgres``, it also reads the
    frontend protocol and counts statements (``Query`` and ``Execute`` messages)."""

    def __init__(self, target: int, postgres: bool = False) -> None:
        self.target, self.postgres = target, postgres
        self.trips = self.statements = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = [self._listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def reset(self) -> None:
        self.trips = self.statements = 0

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sockets += [client, server]
            turn = ["server"]  # who spoke last on this connection
            parser = _PgMessages(self) if self.postgres else None
            threading.Thread(
                target=self._pump, args=(client, server, turn, parser), daemon=True
            ).start()
            threading.Thread(
                target=self._pump, args=(server, client, turn, None), daemon=True
            ).start()

    def _pump(self, src: socket.socket, dst: socket.socket, turn: list[str], parser: Any) -> None:
        upstream = dst.getpeername()[1] == self.target
        try:
            while chunk := src.recv(65536):
                if upstream:
                    if turn[0] == "server":
                        self.trips += 1
                    if parser is not None:
                        parser.feed(chunk)
                turn[0] = "client" if upstream else "server"
                dst.sendall(chunk)
        except OSError:
            pass
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()


class _PgMessages:
    """Splits the PostgreSQL frontend stream into messages (after the untyped startup and
    SSL/GSS requests) and counts Query (``Q``) and Execute (``E``) messages."""

    def __init__(self, relay: Relay) -> None:
        self.relay, self.buffer, self.started = relay, b"", False

    def feed(self, chunk: bytes) -> None:
        self.buffer += chunk
        while True:
            if not self.started:
                if len(self.buffer) < 8:
                    return
                size, code = struct.unpack("!ii", self.buffer[:8])
                if len(self.buffer) < size:
                    return
                self.buffer = self.buffer[size:]
                self.started = code not in (80877103, 80877104)  # SSLRequest, GSSENCRequest
                continue
            if len(self.buffer) < 5:
                return
            size = struct.unpack("!i", self.buffer[1:5])[0] + 1
            if len(self.buffer) < size:
                return
            if self.buffer[:1] in (b"Q", b"E"):
                self.relay.statements += 1
            self.buffer = self.buffer[size:]


# ==========================================================================================
# the table: floors and stores
# ==========================================================================================
@dataclass
class Floor:
    """The raw client doing the minimum: one step per kind, sync and (optionally) async."""

    name: str
    label: str
    make: Callable[[Resources], dict[str, SyncStep]]
    amake: Callable[[Resources], dict[str, AsyncStep]] | None = None
    trips: dict[str, int] | None = None  # round trips by construction, per kind
    statements: dict[str, int] | None = None


@dataclass
class Counter:
    """What a counting twin counts; a field is ``None`` when it cannot be counted."""

    trips: Callable[[], int] | None = None
    statements: Callable[[], int] | None = None
    reset: Callable[[], None] = lambda: None


@dataclass
class StoreCase:
    """One store in the table. ``make`` returns a fresh store; ``commands`` (optional)
    returns the server's running command count, for "commands per request"; ``twin``
    (optional) returns a second store on the same data wired for counting (relay, trace)."""

    name: str
    label: str
    make: Callable[[Resources], Store]
    floor: str | None = None
    asynchronous: bool = True
    commands: Callable[[Resources], int] | None = None
    twin: Callable[[Resources], tuple[Store, Counter]] | None = None
    notes: list[str] = field(default_factory=list)


def redis_floor(res: Resources) -> dict[str, SyncStep]:
    client = redis.Redis(port=res.redis_port())
    key, value = "bench:floor:" + secrets.token_hex(8), json.dumps(PAYLOAD)
    client.set(key, value, ex=600)

    def read() -> None:
        client.get(key)

    def change() -> None:
        client.get(key)
        client.set(key, value, ex=600)

    return {"read": read, "change": change}


def redis_afloor(res: Resources) -> dict[str, AsyncStep]:
    client = redis.asyncio.Redis(port=res.redis_port())
    key, value = "bench:afloor:" + secrets.token_hex(8), json.dumps(PAYLOAD)
    res.loop.run_until_complete(client.set(key, value, ex=600))

    async def read() -> None:
        await client.get(key)

    async def change() -> None:
        await client.get(key)
        await client.set(key, value, ex=600)

    return {"read": read, "change": change}


def redis_commands(res: Resources) -> int:
    """Commands the server executed so far (INFO commandstats), scripts' calls included."""
    stats = res.redis_stats().info("commandstats")
    return sum(int(entry["calls"]) for entry in stats.values()) - 1  # not this INFO


FLOOR_SQL = {
    "create": "CREATE TABLE IF NOT EXISTS {t} (digest VARCHAR(64) PRIMARY KEY, data TEXT, "
    "expires_at FLOAT)",
    "insert": "INSERT INTO {t} VALUES (?, ?, ?)",
    "read": "SELECT data FROM {t} WHERE digest = ? AND expires_at > ?",
    "write": "UPDATE {t} SET data = ?, expires_at = ? WHERE digest = ?",
}


def _sql(name: str, table: str, postgres: bool = False) -> str:
    text = FLOOR_SQL[name].format(t=table)
    return text.replace("?", "%s") if postgres else text


def sqlite_connect(path: Path) -> sqlite3.Connection:
    """The settings SQLStore uses: autocommit (no BEGIN/COMMIT), WAL, synchronous=NORMAL."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL").fetchall()
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


def sqlite_floor(res: Resources) -> dict[str, SyncStep]:
    conn = sqlite_connect(res.tmp / "floor.db")
    key, value, table = secrets.token_hex(32), json.dumps(PAYLOAD), "floor"
    conn.execute(_sql("create", table))
    conn.execute(_sql("insert", table), (key, value, time.time() + 600))

    def read() -> None:
        conn.execute(_sql("read", table), (key, time.time())).fetchone()

    def change() -> None:
        conn.execute(_sql("read", table), (key, time.time())).fetchone()
        conn.execute(_sql("write", table), (value, time.time() + 600, key))

    return {"read": read, "change": change}


def sqlite_afloor(res: Resources) -> dict[str, AsyncStep]:
    async def connect() -> aiosqlite.Connection:
        conn = await aiosqlite.connect(res.tmp / "floor.db", isolation_level=None)
        await conn.execute("PRAGMA synchronous = NORMAL")
        await conn.execute("PRAGMA busy_timeout = 5000")
        return conn

    conn = res.loop.run_until_complete(connect())
    key, value, table = secrets.token_hex(32), json.dumps(PAYLOAD), "floor"
    res.loop.run_until_complete(
        conn.execute(_sql("insert", table), (key, value, time.time() + 600))
    )

    async def read() -> None:
        async with conn.execute(_sql("read", table), (key, time.time())) as cursor:
            await cursor.fetchone()

    async def change() -> None:
        async with conn.execute(_sql("read", table), (key, time.time())) as cursor:
            await cursor.fetchone()
        await conn.execute(_sql("write", table), (value, time.time() + 600, key))

    res.closers.append(lambda: res.loop.run_until_complete(conn.close()))
    return {"read": read, "change": change}


def pg_floor(res: Resources) -> dict[str, SyncStep]:
    conn = psycopg.connect(res.pg_url(), autocommit=True)
    key, value, table = secrets.token_hex(32), json.dumps(PAYLOAD), "floor"
    conn.execute(_sql("create", table, True))
    conn.execute(_sql("insert", table, True), (key, value, time.time() + 600))

    def read() -> None:
        conn.execute(_sql("read", table, True), (key, time.time())).fetchone()

    def change() -> None:
        conn.execute(_sql("read", table, True), (key, time.time())).fetchone()
        conn.execute(_sql("write", table, True), (value, time.time() + 600, key))

    res.closers.append(conn.close)
    return {"read": read, "change": change}


def pg_afloor(res: Resources) -> dict[str, AsyncStep]:
    conn = res.loop.run_until_complete(
        psycopg.AsyncConnection.connect(res.pg_url(), autocommit=True)
    )
    key, value, table = secrets.token_hex(32), json.dumps(PAYLOAD), "floor"
    params = (key, value, time.time() + 600)
    res.loop.run_until_complete(conn.execute(_sql("insert", table, True), params))

    async def read() -> None:
        await (await conn.execute(_sql("read", table, True), (key, time.time()))).fetchone()

    async def change() -> None:
        await (await conn.execute(_sql("read", table, True), (key, time.time()))).fetchone()
        await conn.execute(_sql("write", table, True), (value, time.time() + 600, key))

    res.closers.append(lambda: res.loop.run_until_complete(conn.close()))
    return {"read": read, "change": change}


def file_floor(res: Resources) -> dict[str, SyncStep]:
    """What FileStore must do at least: read the file; write a temporary file, fsync it,
    rename it over the record and fsync the directory (an atomic, durable replace)."""
    directory = res.tmp / "floor-files"
    directory.mkdir(exist_ok=True)
    path, value = directory / secrets.token_hex(32), json.dumps(PAYLOAD).encode()
    path.write_bytes(value)

    def read() -> None:
        path.read_bytes()

    def change() -> None:
        path.read_bytes()
        temp = directory / f".tmp-{secrets.token_hex(4)}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, value)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    return {"read": read, "change": change}


def memcached_floor(res: Resources) -> dict[str, SyncStep]:
    # default_noreply=False: pymemcache's default sends set without waiting for the reply,
    # which is no round trip at all; a session store must know whether its write landed.
    client = MemcacheClient(
        ("127.0.0.1", res.memcached_port()), no_delay=True, default_noreply=False
    )
    key, value = "bench:floor:" + secrets.token_hex(8), json.dumps(PAYLOAD)
    client.set(key, value, expire=600)

    def read() -> None:
        client.get(key)

    def change() -> None:
        client.get(key)
        client.set(key, value, expire=600)

    res.closers.append(client.close)
    return {"read": read, "change": change}


def threaded(
    make: Callable[[Resources], dict[str, SyncStep]],
) -> Callable[[Resources], dict[str, AsyncStep]]:
    """The async floor of a client without native asyncio: the sync steps in a worker thread,
    which is how FileStore and MemcachedStore serve their async flavour."""

    def amake(res: Resources) -> dict[str, AsyncStep]:
        steps = make(res)

        def wrap(step: SyncStep) -> AsyncStep:
            async def run() -> None:
                await asyncio.to_thread(step)

            return run

        return {kind: wrap(step) for kind, step in steps.items()}

    return amake


ONE_TWO = {"read": 1, "change": 2}


def floors() -> list[Floor]:
    return [
        Floor("redis-py", "redis-py GET / GET+SET EX", redis_floor, redis_afloor, ONE_TWO),
        Floor("sqlite3", "sqlite3 SELECT / +UPDATE", sqlite_floor, sqlite_afloor,
              statements=ONE_TWO),
        Floor("psycopg", "psycopg SELECT / +UPDATE", pg_floor, pg_afloor, ONE_TWO, ONE_TWO),
        Floor("files", "file read / +atomic write", file_floor, threaded(file_floor)),
        Floor("pymemcache", "pymemcache get / get+set", memcached_floor,
              threaded(memcached_floor), ONE_TWO),
    ]  # fmt: skip


def sqlite_store(res: Resources) -> Store:
    return SQLStore(f"sqlite:///{res.tmp / 'sessions.db'}")


def sqlite_twin(res: Resources) -> tuple[Store, Counter]:
    """A second store on the same file whose connections report every statement SQLite
    runs (BEGIN and COMMIT included) through ``set_trace_callback``."""
    store = SQLStore(f"sqlite:///{res.tmp / 'sessions.db'}")
    seen = [0]

    def traced(_sql: str) -> None:
        seen[0] += 1

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        raw = getattr(dbapi_connection, "driver_connection", dbapi_connection)
        if isinstance(raw, aiosqlite.Connection):
            await_(raw.set_trace_callback(traced))
        else:
            raw.set_trace_callback(traced)

    sa.event.listen(store._engine, "connect", on_connect)
    sa.event.listen(store._async().sync_engine, "connect", on_connect)
    return store, Counter(statements=lambda: seen[0], reset=lambda: seen.__setitem__(0, 0))


def pg_table() -> str:
    return "bench_" + secrets.token_hex(6)


def pg_twin(res: Resources) -> tuple[Store, Counter]:
    relay = res.relay(res.postgres().port, postgres=True)
    store = SQLStore(res.pg_url(relay.port), table=res.pg_tables[-1])
    return store, Counter(lambda: relay.trips, lambda: relay.statements, relay.reset)


def pg_store(res: Resources) -> Store:
    res.pg_tables.append(pg_table())
    return SQLStore(res.pg_url(), table=res.pg_tables[-1])


def memcached_twin(res: Resources) -> tuple[Store, Counter]:
    relay = res.relay(res.memcached_port())
    store = MemcachedStore.from_url(f"memcached://127.0.0.1:{relay.port}", prefix="bench:")
    return store, Counter(trips=lambda: relay.trips, reset=relay.reset)


def store_cases() -> list[StoreCase]:
    return [
        StoreCase("memory", "MemoryStore", lambda res: MemoryStore()),
        StoreCase(
            "redis",
            "RedisStore (redis://)",
            lambda res: RedisStore.from_url(
                f"redis://127.0.0.1:{res.redis_port()}/0", prefix="bench:"
            ),
            floor="redis-py",
            commands=redis_commands,
        ),
        StoreCase("sqlite", "SQLStore (sqlite:///)", sqlite_store, floor="sqlite3",
                  twin=sqlite_twin),
        StoreCase("postgresql", "SQLStore (postgresql://)", pg_store, floor="psycopg",
                  twin=pg_twin),
        StoreCase("file", "FileStore (file://)",
                  lambda res: FileStore(res.tmp / "file-store"), floor="files"),
        StoreCase(
            "memcached", "MemcachedStore",
            lambda res: MemcachedStore.from_url(
                f"memcached://127.0.0.1:{res.memcached_port()}", prefix="bench:"
            ),
            floor="pymemcache", twin=memcached_twin,
        ),
    ]  # fmt: skip


# ==========================================================================================
# request cycles through the engine
# ==========================================================================================
def engine_steps(store: Store) -> tuple[dict[str, SyncStep], dict[str, AsyncStep]]:
    engine = SessionEngine(SessionConfig(secret_key=SECRET), store=store)
    first = engine.open(None)
    first.update(PAYLOAD)
    plan = engine.commit(first, 200)
    engine.run(plan)
    assert plan.set_cookie is not None
    cookie = plan.set_cookie.split(";", 1)[0]

    def read() -> None:
        s = engine.open(cookie)
        assert s.get("user_id") == PAYLOAD["user_id"]
        engine.run(engine.commit(s, 200))

    def change() -> None:
        s = engine.open(cookie)
        s["n"] = s.get("n", 0) + 1
        assert engine.run(engine.commit(s, 200))

    async def aread() -> None:
        s = engine.open(cookie)
        await engine.aload(s)
        assert s.get("user_id") == PAYLOAD["user_id"]
        await engine.arun(engine.commit(s, 200))

    async def achange() -> None:
        s = engine.open(cookie)
        await engine.aload(s)
        s["n"] = s.get("n", 0) + 1
        assert await engine.arun(engine.commit(s, 200))

    return {"read": read, "change": change}, {"read": aread, "change": achange}


@dataclass
class Row:
    """One line of the table: a store (or floor), a kind of request, a flavour."""

    name: str
    label: str
    kind: str
    flavour: str
    floor: str | None
    step: SyncStep | None = None
    astep: AsyncStep | None = None
    samples: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    round_trips: float | None = None
    commands: float | None = None
    statements: float | None = None

    def run(self, loop: asyncio.AbstractEventLoop, iterations: int) -> tuple[float, float]:
        """Wall-clock and this process's CPU time per cycle, in µs."""
        if self.step is not None:
            step = self.step
            start, cpu = time.perf_counter(), time.process_time()
            for _ in range(iterations):
                step()
        else:
            astep = self.astep
            assert astep is not None

            async def cycles() -> None:
                for _ in range(iterations):
                    await astep()

            start, cpu = time.perf_counter(), time.process_time()
            loop.run_until_complete(cycles())
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        return wall / iterations * 1e6, cpu / iterations * 1e6

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


@contextlib.contextmanager
def counting_round_trips() -> Any:
    """Count redis-py packets written (one per round trip) while the block runs."""
    sent = [0]
    sync_cls: Any = redis.connection.AbstractConnection
    async_cls: Any = redis.asyncio.connection.AbstractConnection
    sync_send, async_send = sync_cls.send_packed_command, async_cls.send_packed_command

    def counted(self: Any, command: Any, check_health: bool = True) -> None:
        sent[0] += 1
        sync_send(self, command, check_health)

    async def acounted(self: Any, command: Any, check_health: bool = True) -> None:
        sent[0] += 1
        await async_send(self, command, check_health)

    sync_cls.send_packed_command = counted
    async_cls.send_packed_command = acounted
    try:
        yield sent
    finally:
        sync_cls.send_packed_command = sync_send
        async_cls.send_packed_command = async_send


def build_rows(res: Resources, with_async: bool, only: set[str] | None = None) -> list[Row]:
    rows: list[Row] = []
    cases = [c for c in store_cases() if only is None or c.name in only]
    wanted = {c.floor for c in cases}
    for floor in floors():
        if floor.name not in wanted:
            continue
        steps = floor.make(res)
        flavours = ("sync", "async") if with_async and floor.amake is not None else ("sync",)
        asteps = floor.amake(res) if "async" in flavours and floor.amake is not None else {}
        for flavour in flavours:
            for k in KINDS:
                row = Row(floor.name, floor.label, k, flavour, None)
                if flavour == "sync":
                    row.step = steps[k]
                else:
                    row.astep = asteps[k]
                if floor.trips is not None:
                    row.round_trips = floor.trips[k]
                if floor.statements is not None:
                    row.statements = floor.statements[k]
                rows.append(row)
    for case in cases:
        store = case.make(res)
        res.stores.append(store)
        sync_steps, async_steps = engine_steps(store)
        twin: tuple[dict[str, SyncStep], dict[str, AsyncStep], Counter] | None = None
        if case.twin is not None:
            twin_store, counter = case.twin(res)
            res.stores.append(twin_store)
            twin = (*engine_steps(twin_store), counter)
        flavours = ("sync", "async") if with_async and case.asynchronous else ("sync",)
        for flavour in flavours:
            for kind in KINDS:
                row = Row(case.name, case.label, kind, flavour, case.floor)
                if flavour == "sync":
                    row.step = sync_steps[kind]
                else:
                    row.astep = async_steps[kind]
                if twin is not None:
                    count_twin(row, res, twin)
                else:
                    count(row, res, case)
                rows.append(row)
    return rows


def count_twin(
    row: Row,
    res: Resources,
    twin: tuple[dict[str, SyncStep], dict[str, AsyncStep], Counter],
    cycles: int = 50,
) -> None:
    """Round trips and statements per request, on the counting twin, outside timed runs."""
    sync_steps, async_steps, counter = twin
    probe = Row(row.name, row.label, row.kind, row.flavour, None)
    if row.flavour == "sync":
        probe.step = sync_steps[row.kind]
    else:
        probe.astep = async_steps[row.kind]
    probe.run(res.loop, 10)  # warm up: connections, statements prepared after 5 runs
    counter.reset()
    probe.run(res.loop, cycles)
    if counter.trips is not None:
        row.round_trips = counter.trips() / cycles
    if counter.statements is not None:
        row.statements = counter.statements() / cycles


def count(row: Row, res: Resources, case: StoreCase, cycles: int = 50) -> None:
    """Round trips and server commands per request, measured outside the timed runs."""
    row.run(res.loop, 5)  # warm up: connections, script cache
    if case.commands is None:
        return
    before = case.commands(res)
    with counting_round_trips() as sent:
        row.run(res.loop, cycles)
    row.commands = (case.commands(res) - before) / cycles
    row.round_trips = sent[0] / cycles


# ==========================================================================================
# running and reporting
# ==========================================================================================
def measure(
    rows: list[Row], loop: asyncio.AbstractEventLoop, repeats: int, iterations: int
) -> None:
    for row in rows:
        row.run(loop, max(iterations // 10, 10))  # warm up
    for repeat in range(repeats):
        shift = repeat % len(rows)
        for row in rows[shift:] + rows[:shift]:  # rotate the order to spread drift
            wall, cpu = row.run(loop, iterations)
            row.samples.append(wall)
            row.cpu.append(cpu)


def ratio(row: Row, rows: list[Row], cpu: bool = False) -> float | None:
    if row.floor is None:
        return None
    for other in rows:
        if (other.name, other.kind, other.flavour) == (row.floor, row.kind, row.flavour):
            if cpu:
                return statistics.median(row.cpu) / statistics.median(other.cpu)
            return row.median / other.median
    return None


def _fmt(value: float | None, width: int) -> str:
    return f"{value:>{width}.2f}" if value is not None else f"{'-':>{width}}"


def report(rows: list[Row], args: argparse.Namespace) -> dict[str, Any]:
    print(
        f"sessionkit {sessionkit.__version__} | Python {platform.python_version()} | "
        f"redis-py {redis.__version__} | SQLAlchemy {sa.__version__} | psycopg "
        f"{psycopg.__version__} | SQLite {sqlite3.sqlite_version} | "
        f"{args.repeats} repeats x {args.iterations} cycles | load {os.getloadavg()[0]:.1f}"
    )
    header = f"{'store':<26} {'request':<7} {'flavour':<7} {'µs/req':>8} {'range':>15} " \
             f"{'cpu µs':>8} {'x floor':>7} {'x cpu':>6} {'trips':>5} {'cmds':>5} " \
             f"{'stmts':>5}"  # fmt: skip
    print(header)
    print("-" * len(header))
    results = []
    for row in rows:
        r, rc = ratio(row, rows), ratio(row, rows, cpu=True)
        cpu = statistics.median(row.cpu)
        spread = f"{min(row.samples):.0f}-{max(row.samples):.0f}"
        print(f"{row.label:<26} {row.kind:<7} {row.flavour:<7} {row.median:>8.1f} "
              f"{spread:>15} {cpu:>8.1f} {_fmt(r, 7)} {_fmt(rc, 6)} {_fmt(row.round_trips, 5)} "
              f"{_fmt(row.commands, 5)} {_fmt(row.statements, 5)}")  # fmt: skip
        results.append({
            "name": row.name, "label": row.label, "request": row.kind, "flavour": row.flavour,
            "us_per_request": round(row.median, 2), "best_us": round(min(row.samples), 2),
            "worst_us": round(max(row.samples), 2),
            "client_cpu_us": round(cpu, 2),
            "floor": row.floor, "ratio_to_floor": round(r, 3) if r is not None else None,
            "cpu_ratio_to_floor": round(rc, 3) if rc is not None else None,
            "round_trips_per_request": row.round_trips, "commands_per_request": row.commands,
            "statements_per_request": row.statements,
        })  # fmt: skip
    judged = [r for r in (ratio(row, rows) for row in rows) if r is not None]
    met = all(r <= GOAL_RATIO for r in judged)
    print(f"\ngoal: every store within {GOAL_RATIO}x of its raw client's floor: "
          f"{'met' if met else 'NOT met'}")  # fmt: skip
    print(
        "µs/req: median of the repeats (range: fastest-slowest repeat); cpu µs: this "
        "process's CPU time per request (for SQLite and files that includes the database "
        "work); x cpu: the same ratio on CPU time.\n"
        "trips: round trips per request (redis-py packets sent; for PostgreSQL and memcached "
        "the client's turns through a counting relay; floors: by construction); cmds: "
        "commands Redis executed (INFO commandstats, a script's own calls included); stmts: "
        "SQL statements per request (SQLite's trace callback, BEGIN/COMMIT included; "
        "PostgreSQL's Query/Execute messages)"
    )
    return {
        "benchmark": "store request cycle",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "environment": environment(
            **{
                "redis-py": redis.__version__,
                "sqlalchemy": sa.__version__,
                "psycopg": psycopg.__version__,
                "sqlite": sqlite3.sqlite_version,
            },
            load_average=[round(x, 2) for x in os.getloadavg()],
        ),
        "repeats": args.repeats,
        "iterations": args.iterations,
        "goal": {"ratio": GOAL_RATIO, "met": met},
        "results": results,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="3 x 300 cycles (smoke run)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats (default 5)")
    parser.add_argument("--iterations", type=int, default=None, help="cycles per repeat")
    parser.add_argument("--no-async", action="store_true", help="sync rows only")
    parser.add_argument(
        "--only", default=None,
        help="comma-separated store names (memory, redis, sqlite, postgresql, file, memcached)",
    )  # fmt: skip
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON file")
    parser.add_argument("--no-json", action="store_true", help="do not write the JSON file")
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (3 if args.quick else 5)
    args.iterations = args.iterations or (300 if args.quick else 2000)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    res = Resources()
    try:
        only = set(args.only.split(",")) if args.only else None
        rows = build_rows(res, with_async=not args.no_async, only=only)
        measure(rows, res.loop, args.repeats, args.iterations)
        document = report(rows, args)
    finally:
        res.close()
    if not args.no_json:
        write_results(document, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
