"""SQLStore: sessions in SQLite or PostgreSQL, through SQLAlchemy Core (sync and async).

One row per session, keyed by the ID digest. Every save is one statement: conditional (the
row must exist and be live, so a logout is never undone) and, for a merge, computed by the
database from the row it holds locked for that statement (``jsonb`` operators on PostgreSQL,
``json_patch`` on SQLite), so two requests changing different keys both survive. The async
flavour is SQLAlchemy's native async engine (psycopg 3, aiosqlite), never a worker thread.
Locks live in a small table with a token and a deadline, so a crashed holder's lock lapses
after its ttl (see docs/stores/sql.md for why not session-bound advisory locks).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from sessionkit.ids import handle, is_handle
from sessionkit.records import Record, RecordMeta, SessionInfo, Write
from sessionkit.stores.base import PollingLocks, reject_record, require_digests
from sessionkit.stores.sql.audit import SQLAuditSink
from sessionkit.stores.sql.connections import SQLEngines
from sessionkit.stores.sql.schema import (
    decode_items,
    decode_meta,
    decode_record,
    encode_items,
    row_params,
    user_lock_key,
)


class SQLStore(PollingLocks, SQLEngines):
    supports_user_index = True
    supports_lock = True
    supports_sweep = True
    supports_scan = True
    supports_session_limit = True
    supports_reseal = True
    supports_challenges = True

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SQLStore:
        """``table=``, ``clock=``, ``sweep_chunk=``, ``busy_timeout=``, ``engine_options=``;
        see ``SQLEngines.__init__``."""
        return cls(url, **options)

    # -- the protocol ------------------------------------------------------------------------
    def load(self, digest: str) -> Record | None:
        rows = self._direct_rows(self._sql.load, {"d": digest, "now": self._clock()})
        return decode_record(digest, rows[0]) if rows else None

    async def aload(self, digest: str) -> Record | None:
        rows = await self._adirect_rows(self._sql.load, {"d": digest, "now": self._clock()})
        return decode_record(digest, rows[0]) if rows else None

    def save(self, write: Write) -> bool:
        """One statement whatever the write (see ``Statements``): a changing request costs
        its load and this, two round trips, and holds no transaction between them."""
        stmt, params = self._write_statement(write)
        retried: list[bool] = []
        if self._direct_rowcount(stmt, params, lambda: retried.append(True)) == 1:
            return True
        if write.create and retried:
            return _landed(self._direct_rows(self._sql.created_row, params), params)
        if stmt is self._sql.merge:
            rows = self._direct_rows(self._sql.live_data, params)
            self._report_unreadable(write.digest, rows)
        return False

    async def asave(self, write: Write) -> bool:
        stmt, params = self._write_statement(write)
        retried: list[bool] = []
        if await self._adirect_rowcount(stmt, params, lambda: retried.append(True)) == 1:
            return True
        if write.create and retried:
            return _landed(await self._adirect_rows(self._sql.created_row, params), params)
        if stmt is self._sql.merge:
            rows = await self._adirect_rows(self._sql.live_data, params)
            self._report_unreadable(write.digest, rows)
        return False

    def save_limited(self, write: Write) -> list[str] | None:
        """One transaction: take the user's login lock (PostgreSQL: a transaction-scoped
        advisory lock on the user; SQLite: ``BEGIN IMMEDIATE``, the database's write lock),
        count the user's other live rows, then refuse, or write and delete the least
        recently used. Two logins of one user never count the same rows."""
        self._ready()
        stmt, params = self._write_statement(write)
        lock, others, evict = self._limit_statements(write, params)
        retried: list[bool] = []

        def run() -> list[str] | None:
            with self._engine.connect() as conn:
                conn.execution_options(**self._transaction)
                with conn.begin():
                    if lock is not None:
                        conn.execute(lock)
                    rows = conn.execute(self._sql.user_others, others).all()
                    doomed = write.limit.evictions(map(tuple, rows))  # type: ignore[union-attr]
                    if conn.execute(stmt, params).rowcount != 1:
                        return None
                    if doomed:
                        conn.execute(self._sql.evict, {**evict, "doomed": doomed})
                    return doomed

        evicted = self._call(run, lambda: retried.append(True))
        if evicted is None and write.create and retried:  # the first try may have landed
            return [] if _landed(self._direct_rows(self._sql.created_row, params), params) else None
        return evicted

    async def asave_limited(self, write: Write) -> list[str] | None:
        await self._aready()
        engine = self._async()
        stmt, params = self._write_statement(write)
        lock, others, evict = self._limit_statements(write, params)
        retried: list[bool] = []

        async def run() -> list[str] | None:
            async with engine.connect() as conn:
                await conn.execution_options(**self._transaction)
                async with conn.begin():
                    if lock is not None:
                        await conn.execute(lock)
                    rows = (await conn.execute(self._sql.user_others, others)).all()
                    doomed = write.limit.evictions(map(tuple, rows))  # type: ignore[union-attr]
                    if (await conn.execute(stmt, params)).rowcount != 1:
                        return None
                    if doomed:
                        await conn.execute(self._sql.evict, {**evict, "doomed": doomed})
                    return doomed

        evicted = await self._acall(run, lambda: retried.append(True))
        if evicted is None and write.create and retried:
            rows = await self._adirect_rows(self._sql.created_row, params)
            return [] if _landed(rows, params) else None
        return evicted

    def _limit_statements(
        self, write: Write, params: dict[str, Any]
    ) -> tuple[sa.Select[Any] | None, dict[str, Any], dict[str, Any]]:
        user = write.meta.user
        assert write.limit is not None and user is not None
        lock = None
        if self.backend == "postgresql":
            lock = sa.select(
                sa.func.pg_advisory_xact_lock(self._sql.user_lock_class, user_lock_key(user))
            )
        others = {"user": user, "now": params["now"], "d": write.digest,
                  "skip": write.rotated_from or ""}  # fmt: skip
        return lock, others, {"user": user}

    def _write_statement(self, write: Write) -> tuple[sa.Update | sa.Insert, dict[str, Any]]:
        sql = self._sql
        params = row_params(write, self._clock(), self.backend)
        if write.create:
            return (sql.create if write.rotated_from is None else sql.rotate), params
        return (sql.replace if write.replace else sql.merge), params

    @staticmethod
    def _report_unreadable(digest: str, rows: list[Any]) -> None:
        """A merge that wrote nothing while the row is live: its data was unreadable (a merge
        must not build on data nobody can read). A missing row is the ordinary no-resurrection
        case and is not a security event."""
        if rows:
            reject_record(digest, "stored SQL row is corrupted; the save was refused")

    def delete(self, digest: str) -> None:
        self._direct_rowcount(self._sql.delete, {"d": digest})

    async def adelete(self, digest: str) -> None:
        await self._adirect_rowcount(self._sql.delete, {"d": digest})

    def touch(self, digest: str, last_seen: int, ttl: float) -> bool:
        now = self._clock()
        params = {"d": digest, "now": now, "last_seen": last_seen, "exp": now + ttl}
        return self._direct_rowcount(self._sql.touch, params) == 1

    async def atouch(self, digest: str, last_seen: int, ttl: float) -> bool:
        now = self._clock()
        params = {"d": digest, "now": now, "last_seen": last_seen, "exp": now + ttl}
        return await self._adirect_rowcount(self._sql.touch, params) == 1

    # -- per-user index ----------------------------------------------------------------------
    def user_sessions(self, user: str) -> list[SessionInfo]:
        rows = self._rows(self._sql.user_sessions, {"user": user, "now": self._clock()})
        return _infos(user, rows)

    async def auser_sessions(self, user: str) -> list[SessionInfo]:
        rows = await self._arows(self._sql.user_sessions, {"user": user, "now": self._clock()})
        return _infos(user, rows)

    def user_digests(self, user: str) -> list[str]:
        rows = self._rows(self._sql.user_sessions, {"user": user, "now": self._clock()})
        return [str(row[0]) for row in rows]

    def revoke_user(self, user: str, *, keep: str | None = None) -> int:
        return self._rowcount(self._sql.revoke_user, {"user": user, "keep": keep or ""})

    async def arevoke_user(self, user: str, *, keep: str | None = None) -> int:
        return await self._arowcount(self._sql.revoke_user, {"user": user, "keep": keep or ""})

    def revoke_handle(self, user: str, handle: str) -> bool:
        if not is_handle(handle):  # never let "%" or "" match every session
            return False
        return self._rowcount(self._sql.revoke_handle, {"user": user, "prefix": handle + "%"}) > 0

    async def arevoke_handle(self, user: str, handle: str) -> bool:
        if not is_handle(handle):
            return False
        params = {"user": user, "prefix": handle + "%"}
        return await self._arowcount(self._sql.revoke_handle, params) > 0

    # -- the audit trail ---------------------------------------------------------------------
    def audit_sink(self) -> SQLAuditSink:
        """The audit trail in ``<table>_audit`` (``audit="store"``)."""
        sink = self.__dict__.get("_audit")
        if sink is None:
            sink = self.__dict__.setdefault("_audit", SQLAuditSink(self, self._sql.audit))
        return sink  # type: ignore[no-any-return]

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
        self._rowcount(self._sql.sweep_challenges, {"now": self._clock()})
        return total

    def scan(self) -> Iterator[RecordMeta]:
        self._ready()
        try:
            with self._engine.connect() as conn:
                for meta_text, last_seen in conn.execution_options(
                    **self._streaming, yield_per=1000
                ).execute(self._sql.scan):
                    meta = decode_meta(meta_text, last_seen)
                    if meta is not None:
                        yield meta
        except (sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
            raise self._unavailable(exc) from exc

    def scan_digests(self) -> Iterator[str]:
        self._ready()
        try:
            with self._engine.connect() as conn:
                streaming = conn.execution_options(**self._streaming, yield_per=1000)
                for (digest,) in streaming.execute(self._sql.scan_digests):
                    yield str(digest)
        except (sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
            raise self._unavailable(exc) from exc

    # -- reseal: a short transaction, the row held from its read to its write -------------
    def reseal(self, digest: str, pairs: Mapping[str, tuple[str, str]]) -> int:
        """PostgreSQL: one ``UPDATE`` that compares and sets on the server (see
        ``schema._reseal_statement``), one round trip. SQLite: one short transaction
        (``BEGIN IMMEDIATE``, the database's write lock, held from the read to the write):
        read the live row's data, compare here, write the values that still match in one
        ``UPDATE``. A retry after a lost connection is harmless: a value already replaced
        no longer matches."""
        if self.backend == "postgresql":
            rows = self._direct_rows(
                self._sql.reseal_one, _one_statement(digest, pairs, self._clock())
            )
            return int(rows[0][0]) if rows else 0
        self._ready()
        params = {"d": digest, "now": self._clock()}

        def run() -> int:
            with self._engine.connect() as conn:
                conn.execution_options(**self._transaction)
                with conn.begin():
                    row = conn.execute(self._sql.reseal_read, params).first()
                    same = _still_same(row, pairs)
                    if same:
                        conn.execute(self._sql.reseal_write, _reseal_params(digest, same))
                    return len(same)

        return self._call(run)

    async def areseal(self, digest: str, pairs: Mapping[str, tuple[str, str]]) -> int:
        if self.backend == "postgresql":
            params = _one_statement(digest, pairs, self._clock())
            rows = await self._adirect_rows(self._sql.reseal_one, params)
            return int(rows[0][0]) if rows else 0
        await self._aready()
        engine = await self._aasync()
        params = {"d": digest, "now": self._clock()}

        async def run() -> int:
            async with engine.connect() as conn:
                await conn.execution_options(**self._transaction)
                async with conn.begin():
                    row = (await conn.execute(self._sql.reseal_read, params)).first()
                    same = _still_same(row, pairs)
                    if same:
                        await conn.execute(self._sql.reseal_write, _reseal_params(digest, same))
                    return len(same)

        return await self._acall(run)

    # -- one-use challenges (DBSC): an upsert, and DELETE ... RETURNING to take ---------
    def put_challenge(self, key: str, value: str, ttl: float) -> None:
        require_digests("SQLStore.put_challenge", key)
        params = {"d": key, "value": value, "exp": self._clock() + ttl}
        self._rowcount(self._sql.challenge_put, params)

    def take_challenge(self, key: str) -> str | None:
        require_digests("SQLStore.take_challenge", key)
        self._ready()
        params = {"d": key, "now": self._clock()}

        def run() -> list[Any]:
            with self._engine.begin() as conn:  # committed: the row is gone for good
                return list(conn.execute(self._sql.challenge_take, params))

        rows = self._call(run)
        return str(rows[0][0]) if rows else None

    async def aput_challenge(self, key: str, value: str, ttl: float) -> None:
        require_digests("SQLStore.put_challenge", key)
        params = {"d": key, "value": value, "exp": self._clock() + ttl}
        await self._arowcount(self._sql.challenge_put, params)

    async def atake_challenge(self, key: str) -> str | None:
        require_digests("SQLStore.take_challenge", key)
        await self._aready()
        engine = await self._aasync()
        params = {"d": key, "now": self._clock()}

        async def run() -> list[Any]:
            async with engine.begin() as conn:
                return list(await conn.execute(self._sql.challenge_take, params))

        rows = await self._acall(run)
        return str(rows[0][0]) if rows else None

    # -- locks (a row per held lock, with its expiry; PollingLocks waits) -----------------
    lock_poll_max = 0.05  # each try is a statement: back off

    def _try_lock(self, digest: str, token: str, ttl: float) -> bool:
        now = self._clock()
        params = {"d": digest, "token": token, "exp": now + ttl, "now": now}
        return self._rowcount(self._sql.lock_take, params) == 1

    async def _atry_lock(self, digest: str, token: str, ttl: float) -> bool:
        now = self._clock()
        params = {"d": digest, "token": token, "exp": now + ttl, "now": now}
        return await self._arowcount(self._sql.lock_take, params) == 1

    def _unlock(self, digest: str, token: str) -> None:
        self._rowcount(self._sql.lock_free, {"d": digest, "token": token})

    async def _aunlock(self, digest: str, token: str) -> None:
        await self._arowcount(self._sql.lock_free, {"d": digest, "token": token})


def _infos(user: str, rows: list[Any]) -> list[SessionInfo]:
    """Device-list entries: handles, never digests or IDs (a row whose metadata does not
    parse is still listed, without a device label, so it can be revoked)."""
    out = []
    for digest, created, last_seen, meta_text in rows:
        meta = decode_meta(meta_text, last_seen)
        device = meta.device if meta is not None else None
        out.append(SessionInfo(handle(digest), user, created, last_seen, device))
    return out


def _still_same(row: Any, pairs: Mapping[str, tuple[str, str]]) -> dict[str, str]:
    """The new texts of the keys whose stored text is still the old one (none without a
    readable live row)."""
    items = decode_items(row[0]) if row is not None else None
    if items is None:
        return {}
    return {k: new for k, (old, new) in pairs.items() if items.get(k) == old}


def _reseal_params(digest: str, same: dict[str, str]) -> dict[str, Any]:
    return {"d": digest, "items": encode_items(same)}


def _one_statement(digest: str, pairs: Mapping[str, tuple[str, str]], now: float) -> dict[str, Any]:
    """The parameters of PostgreSQL's one-statement re-seal (``Statements.reseal_one``)."""
    old = encode_items({k: pair[0] for k, pair in pairs.items()})
    new = encode_items({k: pair[1] for k, pair in pairs.items()})
    return {"d": digest, "now": now, "old": old, "new": new}


def _landed(rows: list[Any], params: dict[str, Any]) -> bool:
    """Whether a create or rotation whose retry reported no row had in fact landed on its
    first try, whose reply was lost: the new row is live, at version 1, with this write's
    very metadata. Asked only after a retry (once, on a connection the pool invalidated),
    when the first try's outcome is unknown; a first try that finds the row taken is a
    conflict, as ever. The digest is a fresh
    256-bit ID, so no other writer could have put that row there; reporting it "taken"
    would throw away the session just made and, for a rotation at login, log the user out."""
    return bool(rows) and rows[0][1] == 1 and rows[0][0] == params["meta"]
