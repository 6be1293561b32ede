"""The machinery under SQLStore: engines (sync and native async), SQLite pragmas, schema
creation, and the translation of connection failures into ``StoreUnavailable``.

Kept apart from ``sql.py`` so the store's operations read as a list of statements and
decisions, and the pooling and error policy is in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import sqlite3
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.sql.compiler import SQLCompiler

from sessionkit.doctor import Finding, skew_finding, version_finding
from sessionkit.errors import ConfigError, StoreUnavailable
from sessionkit.stores.base import Store
from sessionkit.stores.sql.schema import IMMEDIATE, Statements, prepare_sqlite
from sessionkit.stores.sql.url import (
    DEFAULT_TABLE,
    check_sqlite_directory,
    parse_url,
    sqlite_hint,
    sqlite_path,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

T = TypeVar("T")
#: SQLite learnt ``RETURNING`` in 3.35 (2021); before that a write costs aiosqlite two hops
_SQLITE_RETURNING = sqlite3.sqlite_version_info >= (3, 35)
#: Whether a PostgreSQL server is a hot standby (read-only: it cannot run DDL).
_IN_RECOVERY = sa.text("SELECT pg_is_in_recovery()")
_UNAVAILABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError,
                sa_exc.TimeoutError)  # fmt: skip


class SQLEngines(Store):
    """Engines, schema and error policy shared by every SQLStore operation."""

    def __init__(
        self,
        url: str,
        *,
        table: str | None = None,
        clock: Callable[[], float] = time.time,
        sweep_chunk: int | None = None,
        busy_timeout: float | None = None,
        engine_options: Mapping[str, Any] | None = None,
    ) -> None:
        """``url``: ``sqlite:///path`` or ``postgresql://user:pw@host/db``. ``clock`` sets
        expiry columns (a fake clock in tests). ``sweep_chunk`` rows per sweep transaction;
        ``busy_timeout`` seconds SQLite waits for a lock; ``engine_options`` go to
        ``create_engine`` (pool sizes...). Query-string options of the same names work too."""
        target, query = parse_url(url)
        try:
            table = table or query.get("table", DEFAULT_TABLE)
            chunk = sweep_chunk if sweep_chunk is not None else query.get("sweep_chunk", "1000")
            busy = busy_timeout if busy_timeout is not None else query.get("busy_timeout", "5")
            self.sweep_chunk, busy = int(chunk), float(busy)
            options: dict[str, Any] = {
                k: int(query[k]) for k in ("pool_size", "max_overflow") if k in query
            }
        except ValueError as exc:
            raise ConfigError("store", f"bad SQL store option: {exc}") from exc
        if self.sweep_chunk < 1:
            raise ConfigError("sweep_chunk", "must be at least 1")
        if target.backend == "sqlite":
            check_sqlite_directory(target, url)
        self.url = url
        self.backend = target.backend
        self._target = target
        self._clock = clock
        self._busy = busy
        self._sql = Statements(table, target.backend, self.sweep_chunk)
        if self.backend == "sqlite":  # autocommit: nothing to roll back when a connection
            options["pool_reset_on_return"] = None  # returns (aiosqlite: a thread hop saved)
        if self.backend == "postgresql" and "connect_timeout" not in target.sync_url.query:
            # fail fast on a host that never answers (libpq's least: 2 s; it was 10 s, a
            # whole worker tied up per request); ?connect_timeout= in the URL says otherwise
            options["connect_args"] = {"connect_timeout": 2}
        options.update(engine_options or {})
        options["hide_parameters"] = True  # session data never lands in logs or errors
        if self.backend == "postgresql":  # one statement, one round trip: no BEGIN/COMMIT
            options["isolation_level"] = "AUTOCOMMIT"
        self._options = options
        #: what turns a connection into a real transaction (merges, rotations, DDL)
        self._transaction = (
            {IMMEDIATE: True} if self.backend == "sqlite" else {"isolation_level": "READ COMMITTED"}
        )
        #: a server-side cursor needs a transaction on PostgreSQL; a lone SQLite SELECT is its
        #: own read snapshot (and BEGIN IMMEDIATE would block writers for the whole scan)
        self._streaming = {} if self.backend == "sqlite" else self._transaction
        self._engine = sa.create_engine(target.sync_url, **options)
        # A store dropped without close() (an app torn down in tests, a config reloaded)
        # still closes its pooled connections rather than leaving them to the collector.
        weakref.finalize(self, self._engine.dispose)
        if self.backend == "sqlite":
            prepare_sqlite(self._engine, busy, sqlite_path(target))
        self._aengine: AsyncEngine | None = None
        self._schema_ready = False
        self._schema_mutex = threading.Lock()
        self._aengine_mutex = threading.Lock()
        self._compiled: dict[tuple[int, int], _Direct] = {}
        self._dbapi_error: type[Exception] = self._engine.dialect.loaded_dbapi.Error

    @property
    def table(self) -> sa.Table:
        """The sessions table (its name is ``<table>``; locks live in ``<table>_locks``)."""
        return self._sql.sessions

    async def _aasync(self) -> AsyncEngine:
        """The async engine, made on first async use (only then is its driver needed), in a
        worker thread: importing the driver and SQLAlchemy's engine setup touch the file
        system (SQLite resolves its path), which would block the event loop."""
        if self._aengine is not None:
            return self._aengine
        return await asyncio.to_thread(self._async)

    def _async(self) -> AsyncEngine:
        with self._aengine_mutex:  # one engine, however many first calls race to make it
            return self._make_async()

    def _make_async(self) -> AsyncEngine:
        if self._aengine is None:
            # the imports too: without greenlet, SQLAlchemy 2.1's sqlalchemy.ext.asyncio
            # refuses to load, and 2.0's loads but fails at the first query (a ValueError)
            try:
                importlib.import_module("greenlet")
                from sqlalchemy.ext.asyncio import create_async_engine

                engine = create_async_engine(self._target.async_url, **self._options)
            except ImportError as exc:
                missing = exc.name or "greenlet"
                if missing == "greenlet":
                    missing = "sqlalchemy[asyncio] (greenlet)"
                raise ConfigError(
                    "store", f"async use of {self!r} needs {missing}; "
                    "pip install 'sessionkit[sql]' (aiosqlite) or 'sessionkit[postgres]'",
                ) from exc  # fmt: skip
            if self.backend == "sqlite":
                prepare_sqlite(engine.sync_engine, self._busy, sqlite_path(self._target))
            self._aengine = engine
        return self._aengine

    # -- errors ------------------------------------------------------------------------------
    def _unavailable(self, exc: Exception) -> StoreUnavailable:
        cause = getattr(exc, "orig", None) or exc  # the driver's message, no SQL or parameters
        if self.backend == "sqlite" and "unable to open database file" in str(cause):
            return StoreUnavailable(self.url, cause, hint=sqlite_hint(self._target))
        return StoreUnavailable(self.url, cause)

    def _call(self, op: Callable[[], T], retrying: Callable[[], None] | None = None) -> T:
        """Run ``op``; retry once on a connection the pool found dead (the server restarted),
        and turn connection failures into ``StoreUnavailable``. ``retrying`` hears of a
        retry: the first try's outcome is then unknown (it may have landed)."""
        try:
            return op()
        except (sa_exc.DBAPIError, *_UNAVAILABLE) as exc:
            self._judge(exc, first_attempt=True)
        if retrying is not None:
            retrying()
        try:
            return op()
        except (sa_exc.DBAPIError, *_UNAVAILABLE) as exc:
            self._judge(exc, first_attempt=False)
            raise  # pragma: no cover - _judge always raises on a second attempt

    async def _acall(
        self, op: Callable[[], Awaitable[T]], retrying: Callable[[], None] | None = None
    ) -> T:
        """``_call`` for the async engine: the same policy."""
        try:
            return await op()
        except (sa_exc.DBAPIError, *_UNAVAILABLE) as exc:
            self._judge(exc, first_attempt=True)
        if retrying is not None:
            retrying()
        try:
            return await op()
        except (sa_exc.DBAPIError, *_UNAVAILABLE) as exc:
            self._judge(exc, first_attempt=False)
            raise  # pragma: no cover - _judge always raises on a second attempt

    def _judge(self, exc: Exception, *, first_attempt: bool) -> None:
        """Return (retry) only for a connection the pool invalidated, on the first attempt;
        raise ``StoreUnavailable`` for connection failures and the error itself otherwise."""
        if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated and first_attempt:
            return
        if isinstance(exc, _UNAVAILABLE) or type(exc) is sa_exc.DatabaseError:
            raise self._unavailable(exc) from exc
        raise exc

    # -- schema ------------------------------------------------------------------------------
    def create_schema(self) -> bool:
        """Create the table, its indexes and the locks table if missing (``sessionkit
        init``); ``True`` when the sessions table was created now."""

        def run() -> bool:
            with self._engine.connect() as conn:
                conn.execution_options(**self._transaction)  # SQLite: one creator at a time
                with conn.begin():
                    if self.backend == "postgresql":
                        if conn.execute(_IN_RECOVERY).scalar():
                            return self._standby(
                                sa.inspect(conn).has_table(self._sql.sessions.name)
                            )
                        conn.execute(
                            sa.select(sa.func.pg_advisory_xact_lock(self._sql.ddl_lock_key))
                        )
                    existed = sa.inspect(conn).has_table(self._sql.sessions.name)
                    for ddl in self._sql.ddl:
                        conn.execute(ddl)
                    return not existed

        created = self._call(run)
        self._schema_ready = True
        return created

    async def acreate_schema(self) -> bool:
        engine = await self._aasync()

        async def run() -> bool:
            async with engine.connect() as conn:
                await conn.execution_options(**self._transaction)
                async with conn.begin():
                    name = self._sql.sessions.name
                    if self.backend == "postgresql":
                        if (await conn.execute(_IN_RECOVERY)).scalar():
                            found = await conn.run_sync(lambda c: sa.inspect(c).has_table(name))
                            return self._standby(found)
                        await conn.execute(
                            sa.select(sa.func.pg_advisory_xact_lock(self._sql.ddl_lock_key))
                        )
                    existed = await conn.run_sync(lambda c: sa.inspect(c).has_table(name))
                    for ddl in self._sql.ddl:
                        await conn.execute(ddl)
                    return not existed

        created = await self._acall(run)
        self._schema_ready = True
        return created

    def _standby(self, found: bool) -> bool:
        """A PostgreSQL hot standby (a read replica, e.g. a ``fallback=``) creates nothing:
        its tables are the primary's, replicated. It serves reads once they are there."""
        if not found:
            raise StoreUnavailable(
                self.url, f"table {self._sql.sessions.name!r} does not exist on this read-only "
                "server (a hot standby)", hint="Create it on the primary (`sessionkit init`)",
            )  # fmt: skip
        return False

    def _ready(self) -> None:
        if not self._schema_ready:
            with self._schema_mutex:
                if not self._schema_ready:
                    self.create_schema()

    async def _aready(self) -> None:
        if not self._schema_ready:
            await self.acreate_schema()

    # -- the request path: one statement on a pooled DBAPI connection ----------------------
    def _direct(self, stmt: sa.ClauseElement, dialect: sa.Dialect) -> _Direct:
        """``stmt`` compiled once for ``dialect`` (after the first connection, so the dialect
        knows its server), with the values of SQLAlchemy's own literals."""
        found = self._compiled.get((id(stmt), id(dialect)))
        if found is None:
            compiled = stmt.compile(dialect=dialect)
            assert isinstance(compiled, SQLCompiler)
            fixed = {n: b.effective_value for n, b in compiled.binds.items() if not b.required}
            order = tuple(compiled.positiontup or ()) if compiled.positional else None
            found = _Direct(compiled.string, order, fixed)
            self._compiled[(id(stmt), id(dialect))] = found
        return found

    def _run_direct(
        self,
        stmt: sa.ClauseElement,
        params: dict[str, Any],
        fetch: bool,
        retrying: Callable[[], None] | None = None,
    ) -> Any:
        """Run one request-path statement (load, save, touch, delete) on a pooled DBAPI
        connection, without SQLAlchemy's per-execution machinery (which costs several times
        the statement itself on SQLite, and about as much as the round trip on PostgreSQL).
        The pool, the dialect, the compiled SQL and the error policy stay SQLAlchemy's:
        driver errors become SQLAlchemy's exceptions, a dead connection is invalidated with
        its pool, and ``_call`` retries once and reports ``StoreUnavailable``. Values are
        plain (JSON as text): every statement casts what needs casting."""
        self._ready()
        direct = self._direct(stmt, self._engine.dialect)
        args = direct.args(params)

        def run() -> Any:
            try:
                conn = self._engine.raw_connection()
            except self._dbapi_error as exc:  # could not connect: SQLAlchemy's wrapping
                raise self._wrap(exc, direct.sql, None, None) from exc
            cursor = None
            try:
                cursor = conn.cursor()
                cursor.execute(direct.sql, args)
                return cursor.fetchall() if fetch else cursor.rowcount
            except self._dbapi_error as exc:
                raise self._wrap(exc, direct.sql, conn, cursor) from exc
            finally:
                if cursor is not None:
                    with contextlib.suppress(Exception):
                        cursor.close()
                conn.close()

        return self._call(run, retrying)

    def _wrap(self, exc: Any, sql: str, conn: Any, cursor: Any) -> sa_exc.StatementError:
        """A driver error as the SQLAlchemy exception ``Connection.execute`` would raise; a
        disconnect invalidates the connection and, as SQLAlchemy does, the whole pool (after
        a server restart every pooled connection is dead)."""
        dialect = self._engine.dialect
        gone = conn is not None and dialect.is_disconnect(exc, conn.dbapi_connection, cursor)
        if gone:
            conn.invalidate(exc)
            self._engine.dispose(close=False)
        return self._wrapped(exc, sql, dialect, gone)

    def _wrapped(
        self, exc: Any, sql: str, dialect: sa.Dialect, gone: bool
    ) -> sa_exc.StatementError:
        wrapped: sa_exc.StatementError = sa_exc.DBAPIError.instance(
            sql, None, exc, self._dbapi_error, hide_parameters=True,
            connection_invalidated=gone, dialect=dialect,
        )  # fmt: skip
        return wrapped

    def _direct_rowcount(
        self,
        stmt: sa.ClauseElement,
        params: dict[str, Any],
        retrying: Callable[[], None] | None = None,
    ) -> int:
        return int(self._run_direct(stmt, params, False, retrying))

    def _direct_rows(self, stmt: sa.ClauseElement, params: dict[str, Any]) -> list[Any]:
        return list(self._run_direct(stmt, params, fetch=True))

    async def _arun_direct(
        self,
        stmt: sa.ClauseElement,
        params: dict[str, Any],
        fetch: bool,
        retrying: Callable[[], None] | None = None,
    ) -> Any:
        """The async twin of ``_run_direct``: a connection from the async engine's pool, and
        the statement run with the native driver's own coroutines (psycopg's
        ``AsyncConnection``, aiosqlite), skipping SQLAlchemy's greenlet-wrapped execution."""
        await self._aready()
        engine = await self._aasync()
        direct = self._direct(stmt, engine.dialect)
        args = direct.args(params)

        async def run() -> Any:
            async with engine.connect() as conn:
                raw = await conn.get_raw_connection()
                driver: Any = raw.driver_connection
                try:
                    if self.backend == "sqlite":  # each aiosqlite call is a hop to its thread
                        if fetch:
                            return await driver.execute_fetchall(direct.sql, args)
                        if _SQLITE_RETURNING:  # a write and its count in one hop
                            rows = await driver.execute_fetchall(direct.returning, args)
                            return len(list(rows))
                        async with driver.execute(direct.sql, args) as cursor:
                            return cursor.rowcount
                    async with driver.cursor() as cursor:
                        await cursor.execute(direct.sql, args)
                        return await cursor.fetchall() if fetch else cursor.rowcount
                except engine.dialect.loaded_dbapi.Error as exc:
                    gone = engine.dialect.is_disconnect(exc, raw.dbapi_connection, None)
                    if gone:
                        await conn.invalidate(exc)
                        await engine.dispose(close=False)
                    raise self._wrapped(exc, direct.sql, engine.dialect, gone) from exc

        return await self._acall(run, retrying)

    async def _adirect_rowcount(
        self,
        stmt: sa.ClauseElement,
        params: dict[str, Any],
        retrying: Callable[[], None] | None = None,
    ) -> int:
        return int(await self._arun_direct(stmt, params, False, retrying))

    async def _adirect_rows(self, stmt: sa.ClauseElement, params: dict[str, Any]) -> list[Any]:
        return list(await self._arun_direct(stmt, params, fetch=True))

    # -- one-statement helpers -----------------------------------------------------------
    def _rowcount(self, stmt: sa.Executable, params: dict[str, Any]) -> int:
        self._ready()

        def run() -> int:
            with self._engine.begin() as conn:
                return conn.execute(stmt, params).rowcount

        return self._call(run)

    def _rows(self, stmt: sa.Executable, params: dict[str, Any]) -> list[Any]:
        self._ready()

        def run() -> list[Any]:
            with self._engine.connect() as conn:
                return list(conn.execute(stmt, params))

        return self._call(run)

    async def _arowcount(self, stmt: sa.Executable, params: dict[str, Any]) -> int:
        await self._aready()
        engine = await self._aasync()

        async def run() -> int:
            async with engine.begin() as conn:
                return (await conn.execute(stmt, params)).rowcount

        return await self._acall(run)

    async def _arows(self, stmt: sa.Executable, params: dict[str, Any]) -> list[Any]:
        await self._aready()
        engine = await self._aasync()

        async def run() -> list[Any]:
            async with engine.connect() as conn:
                return list(await conn.execute(stmt, params))

        return await self._acall(run)

    # -- health ------------------------------------------------------------------------------
    def _version_query(self) -> sa.Executable:
        if self.backend == "postgresql":
            return sa.text("SHOW server_version")
        return sa.text("SELECT 'SQLite ' || sqlite_version()")

    def server_version(self) -> str | None:
        rows = self._rows(self._version_query(), {})
        return str(rows[0][0]) if rows else None

    async def aserver_version(self) -> str | None:
        rows = await self._arows(self._version_query(), {})
        return str(rows[0][0]) if rows else None

    def diagnostics(
        self, *, fix: bool = False, progress: Callable[[int], None] | None = None
    ) -> list[Finding]:
        """The server's version (PostgreSQL 12+, SQLite 3.38+) and, on PostgreSQL, the
        clock skew (expiry times are written by this machine's clock, compared by the
        server's in the sweep). The user index is a column: it cannot go stale."""
        if self.backend == "sqlite":
            found = [version_finding(self.server_version(), (3, 38), "SQLite")]
        else:
            found = [version_finding(self.server_version(), (12,), "PostgreSQL")]
            before = time.time()
            rows = self._rows(sa.text("SELECT extract(epoch FROM clock_timestamp())"), {})
            found.append(skew_finding(float(rows[0][0]), before, time.time()))
        found.append(Finding("ok", "user index", "a column of the sessions table: always exact"))
        return found

    # -- lifecycle ---------------------------------------------------------------------------
    def close(self) -> None:
        """Close the sync pool. Call ``aclose()`` instead when the async side was used, so
        its connections close on their own event loop."""
        self._engine.dispose()

    async def aclose(self) -> None:
        self._engine.dispose()
        if self._aengine is not None:
            await self._aengine.dispose()
            self._aengine = None


class _Direct(NamedTuple):
    """A statement compiled for the request path: SQL text, the names of its positional
    parameters in order (``None`` for named parameters) and SQLAlchemy's literal values."""

    sql: str
    order: tuple[str, ...] | None
    fixed: dict[str, Any]

    @property
    def returning(self) -> str:
        """The write with ``RETURNING 1``: one row per row it changed."""
        return f"{self.sql} RETURNING 1"

    def args(self, params: dict[str, Any]) -> Any:
        merged = {**self.fixed, **params}
        return [merged[n] for n in self.order] if self.order is not None else merged
