"""SQLStore: sessions in SQLite or PostgreSQL, through SQLAlchemy Core (sync and async).

One row per session, keyed by the ID digest. Saves are conditional (the row must exist and
be live, so a logout is never undone) and merge key by key inside a transaction that holds
the row (``SELECT ... FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), so two
requests changing different keys both survive. The async flavour is SQLAlchemy's native
async engine (psycopg 3, aiosqlite), never a worker thread. Locks live in a small table
with a token and a deadline, so a crashed holder's lock lapses after its ttl (see
docs/stores/sql.md for why not session-bound advisory locks).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from sessionkit.errors import LockTimeout, StoreError
from sessionkit.ids import handle
from sessionkit.stores.base import Record, RecordMeta, SessionInfo, Write
from sessionkit.stores.sql_engine import SQLEngines
from sessionkit.stores.sql_schema import (
    decode_items,
    decode_meta,
    decode_record,
    reject,
    row_params,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

_HANDLE_RE = re.compile(r"[0-9a-f]{16}")
_MERGE_ATTEMPTS = 5


class SQLStore(SQLEngines):
    supports_user_index = True
    supports_lock = True
    supports_sweep = True
    supports_scan = True

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SQLStore:
        """``table=``, ``clock=``, ``sweep_chunk=``, ``busy_timeout=``, ``engine_options=``;
        see ``SQLEngines.__init__``."""
        return cls(url, **options)

    # -- the protocol ------------------------------------------------------------------------
    def load(self, digest: str) -> Record | None:
        rows = self._rows(self._sql.load, {"d": digest, "now": self._clock()})
        return decode_record(digest, rows[0]) if rows else None

    async def aload(self, digest: str) -> Record | None:
        rows = await self._arows(self._sql.load, {"d": digest, "now": self._clock()})
        return decode_record(digest, rows[0]) if rows else None

    def save(self, write: Write) -> bool:
        now = self._clock()
        if write.create and write.rotated_from is None:
            return self._rowcount(self._sql.create, row_params(write, write.items, now)) == 1
        if write.replace and not write.create:
            return self._rowcount(self._sql.replace, row_params(write, write.items, now)) == 1
        self._ready()

        def run() -> bool:
            with self._engine.connect() as conn:
                conn.execution_options(**self._transaction)
                for _ in range(_MERGE_ATTEMPTS):
                    with conn.begin() as tx:
                        outcome = self._transact_sync(conn, write, now)
                        if outcome is not None:
                            return outcome
                        tx.rollback()
            raise StoreError(f"{self!r}: could not merge session {handle(write.digest)}")

        return self._call(run)

    def _transact_sync(self, conn: sa.Connection, write: Write, now: float) -> bool | None:
        """One attempt of a rotation or a merge; ``None``: lost a version race, retry."""
        sql = self._sql
        if write.create:  # rotated_from: move the session only if the old row is still live
            gone = conn.execute(sql.delete_live, {"d": write.rotated_from, "now": now})
            created = gone.rowcount == 1 and (
                conn.execute(sql.create, row_params(write, write.items, now)).rowcount == 1
            )
            if not created:
                conn.rollback()
            return created
        row = conn.execute(sql.merge_read, {"d": write.digest, "now": now}).first()
        params = self._merged(write, row, now)
        if params is None:
            conn.rollback()
            return False
        return True if conn.execute(sql.merge_write, params).rowcount == 1 else None

    async def asave(self, write: Write) -> bool:
        now = self._clock()
        if write.create and write.rotated_from is None:
            return await self._arowcount(self._sql.create, row_params(write, write.items, now)) == 1
        if write.replace and not write.create:
            return (
                await self._arowcount(self._sql.replace, row_params(write, write.items, now)) == 1
            )
        await self._aready()
        engine = self._async()

        async def run() -> bool:
            async with engine.connect() as conn:
                await conn.execution_options(**self._transaction)
                for _ in range(_MERGE_ATTEMPTS):
                    async with conn.begin() as tx:
                        outcome = await self._transact_async(conn, write, now)
                        if outcome is not None:
                            return outcome
                        await tx.rollback()
            raise StoreError(f"{self!r}: could not merge session {handle(write.digest)}")

        return await self._acall(run)

    async def _transact_async(self, conn: AsyncConnection, write: Write, now: float) -> bool | None:
        sql = self._sql
        if write.create:
            gone = await conn.execute(sql.delete_live, {"d": write.rotated_from, "now": now})
            created = gone.rowcount == 1 and (
                (await conn.execute(sql.create, row_params(write, write.items, now))).rowcount == 1
            )
            if not created:
                await conn.rollback()
            return created
        row = (await conn.execute(sql.merge_read, {"d": write.digest, "now": now})).first()
        params = self._merged(write, row, now)
        if params is None:
            await conn.rollback()
            return False
        return True if (await conn.execute(sql.merge_write, params)).rowcount == 1 else None

    def _merged(self, write: Write, row: Any, now: float) -> dict[str, Any] | None:
        """The UPDATE parameters for merging ``write`` into ``row``; ``None`` when the row is
        gone or corrupted (a merge must not build on data nobody can read)."""
        if row is None:
            return None
        current = decode_items(row[0])
        if current is None or type(row[1]) is not int:
            reject(write.digest, "stored SQL row is corrupted; the save was refused")
            return None
        removed = write.removed
        merged = {k: v for k, v in current.items() if k not in removed}
        merged.update(write.items)
        params = row_params(write, merged, now)
        params["old"] = row[1]
        return params

    def delete(self, digest: str) -> None:
        self._rowcount(self._sql.delete, {"d": digest})

    async def adelete(self, digest: str) -> None:
        await self._arowcount(self._sql.delete, {"d": digest})

    def touch(self, digest: str, last_seen: int, ttl: float) -> bool:
        now = self._clock()
        params = {"d": digest, "now": now, "last_seen": last_seen, "exp": now + ttl}
        return self._rowcount(self._sql.touch, params) == 1

    async def atouch(self, digest: str, last_seen: int, ttl: float) -> bool:
        now = self._clock()
        params = {"d": digest, "now": now, "last_seen": last_seen, "exp": now + ttl}
        return await self._arowcount(self._sql.touch, params) == 1

    # -- per-user index ----------------------------------------------------------------------
    def user_sessions(self, user: str) -> list[SessionInfo]:
        rows = self._rows(self._sql.user_sessions, {"user": user, "now": self._clock()})
        return _infos(user, rows)

    async def auser_sessions(self, user: str) -> list[SessionInfo]:
        rows = await self._arows(self._sql.user_sessions, {"user": user, "now": self._clock()})
        return _infos(user, rows)

    def revoke_user(self, user: str, *, keep: str | None = None) -> int:
        return self._rowcount(self._sql.revoke_user, {"user": user, "keep": keep or ""})

    async def arevoke_user(self, user: str, *, keep: str | None = None) -> int:
        return await self._arowcount(self._sql.revoke_user, {"user": user, "keep": keep or ""})

    def revoke_handle(self, user: str, handle: str) -> bool:
        if not _HANDLE_RE.fullmatch(handle):  # never let "%" or "" match every session
            return False
        return self._rowcount(self._sql.revoke_handle, {"user": user, "prefix": handle + "%"}) > 0

    async def arevoke_handle(self, user: str, handle: str) -> bool:
        if not _HANDLE_RE.fullmatch(handle):
            return False
        params = {"user": user, "prefix": handle + "%"}
        return await self._arowcount(self._sql.revoke_handle, params) > 0

    # -- sweep and scan ----------------------------------------------------------------------
    def delete_expired(self, progress: Callable[[int], None] | None = None) -> int:
        """Delete expired rows ``sweep_chunk`` at a time, each chunk its own short
        transaction, so a sweep of millions of rows never holds a long lock."""
        total = 0
        while True:
            removed = self._rowcount(self._sql.sweep, {"now": self._clock()})
            total += removed
            if progress is not None:
                progress(total)
            if removed < self.sweep_chunk:
                break
        self._rowcount(self._sql.sweep_locks, {"now": self._clock()})
        return total

    def scan(self) -> Iterator[RecordMeta]:
        self._ready()
        try:
            with self._engine.connect() as conn:
                for meta_text, last_seen in conn.execution_options(
                    **self._transaction, yield_per=1000
                ).execute(self._sql.scan):
                    meta = decode_meta(meta_text, last_seen)
                    if meta is not None:
                        yield meta
        except (sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
            raise self._unavailable(exc) from exc

    # -- locks -----------------------------------------------------------------------------
    def _take(self, digest: str, token: str, ttl: float) -> bool:
        now = self._clock()
        params = {"d": digest, "token": token, "exp": now + ttl, "now": now}
        return self._rowcount(self._sql.lock_take, params) == 1

    async def _atake(self, digest: str, token: str, ttl: float) -> bool:
        now = self._clock()
        params = {"d": digest, "token": token, "exp": now + ttl, "now": now}
        return await self._arowcount(self._sql.lock_take, params) == 1

    @contextlib.contextmanager
    def lock(self, digest: str, *, ttl: float = 30.0, wait: float = 10.0) -> Iterator[None]:
        token = secrets.token_hex(16)
        deadline, pause = time.monotonic() + wait, 0.002
        while not self._take(digest, token, ttl):
            left = deadline - time.monotonic()
            if left <= 0:
                raise LockTimeout(handle(digest), wait)
            time.sleep(min(pause, left))
            pause = min(pause * 2, 0.05)
        try:
            yield
        finally:
            self._rowcount(self._sql.lock_free, {"d": digest, "token": token})

    @contextlib.asynccontextmanager
    async def alock(
        self, digest: str, *, ttl: float = 30.0, wait: float = 10.0
    ) -> AsyncIterator[None]:
        token = secrets.token_hex(16)
        deadline, pause = time.monotonic() + wait, 0.002
        while not await self._atake(digest, token, ttl):
            left = deadline - time.monotonic()
            if left <= 0:
                raise LockTimeout(handle(digest), wait)
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 2, 0.05)
        try:
            yield
        finally:
            await self._arowcount(self._sql.lock_free, {"d": digest, "token": token})


def _infos(user: str, rows: list[Any]) -> list[SessionInfo]:
    """Device-list entries: handles, never digests or IDs."""
    return [SessionInfo(handle(row[0]), user, row[1], row[2]) for row in rows]
