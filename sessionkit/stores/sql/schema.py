"""The SQL store's tables, prepared statements and row codec.

Everything here is shared by the sync and the async side of ``SQLStore``, so the two cannot
drift apart: they execute the same statements and read rows through the same codec.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateIndex, CreateTable, ExecutableDDLElement

from sessionkit.records import Record, RecordMeta, Write, in_order
from sessionkit.stores.base import reject_record
from sessionkit.stores.sql.audit import AuditStatements
from sessionkit.stores.sql.url import check_table_name

#: Connection execution option that makes SQLite open a transaction (BEGIN IMMEDIATE);
#: without it each statement commits by itself.
IMMEDIATE = "sessionkit_immediate"


#: ``data`` is JSONB on PostgreSQL (the server keeps it valid JSON and merges keys in place)
#: and JSON text on SQLite (whose json1 functions work on text).
DATA_TYPE = sa.Text().with_variant(postgresql.JSONB(), "postgresql")


class Statements:
    """The store's tables and every statement it runs, built once with bound parameters
    (so each call only binds values; SQLAlchemy caches the compiled SQL).

    Every write is one statement, atomic by itself, so a changing request costs one round
    trip for its save and no transaction is ever held open across round trips: a merge is
    ``UPDATE ... SET data = <data without the removed keys, with the changed keys>`` on the
    live row (``jsonb`` operators on PostgreSQL, ``json_patch`` on SQLite), and a rotation
    moves the live row to its new digest with one ``UPDATE`` of the primary key."""

    def __init__(self, table: str, backend: str, sweep_chunk: int) -> None:
        metadata = sa.MetaData()
        self.backend = backend
        self.sessions = t = sa.Table(
            check_table_name(table), metadata,
            sa.Column("digest", sa.String(64), primary_key=True),
            sa.Column("user_id", sa.Text, nullable=True),
            sa.Column("data", DATA_TYPE, nullable=False),
            sa.Column("meta", sa.Text, nullable=False),
            sa.Column("version", sa.Integer, nullable=False),
            sa.Column("created", sa.BigInteger, nullable=False),
            sa.Column("last_seen", sa.BigInteger, nullable=False),
            sa.Column("expires_at", sa.Float, nullable=False),
            *_order_column(backend),
            sa.Index(f"ix_{table}_user", "user_id"),
            sa.Index(f"ix_{table}_expires", "expires_at"),
        )  # fmt: skip
        self.locks = lk = sa.Table(
            f"{table}_locks", metadata,
            sa.Column("digest", sa.String(64), primary_key=True),
            sa.Column("token", sa.String(32), nullable=False),
            sa.Column("expires_at", sa.Float, nullable=False),
        )  # fmt: skip
        #: one-use DBSC challenges (``Store.take_challenge``: ``DELETE ... RETURNING``)
        self.challenges = ch = sa.Table(
            f"{table}_challenges", metadata,
            sa.Column("digest", sa.String(64), primary_key=True),
            sa.Column("value", sa.Text, nullable=False),
            sa.Column("expires_at", sa.Float, nullable=False),
        )  # fmt: skip
        #: the audit trail's table, ``<table>_audit`` (sessionkit.stores.sql.audit)
        self.audit = AuditStatements(t.name, metadata)
        au = self.audit.table
        self.ddl: list[ExecutableDDLElement] = [
            CreateTable(t, if_not_exists=True),
            *(CreateIndex(ix, if_not_exists=True) for ix in sorted(t.indexes, key=str)),
            CreateTable(lk, if_not_exists=True),
            CreateTable(ch, if_not_exists=True),
            CreateTable(au, if_not_exists=True),
            *(CreateIndex(ix, if_not_exists=True) for ix in sorted(au.indexes, key=str)),
        ]
        if backend == "postgresql":  # a table made before the column existed gains it
            add = f"ALTER TABLE %(table)s ADD COLUMN IF NOT EXISTS {ORDER} jsonb"
            self.ddl.insert(1, sa.DDL(add).against(t))  # type: ignore[no-untyped-call]
        #: a constant per table, for pg_advisory_xact_lock around DDL (racing processes)
        self.ddl_lock_key = zlib.crc32(table.encode())
        #: the first half of a user's login lock (pg_advisory_xact_lock(int4, int4), a key
        #: space apart from the one-bigint form the DDL lock uses)
        self.user_lock_class = _int4(zlib.crc32(table.encode()))
        insert = postgresql.insert if backend == "postgresql" else sqlite.insert
        d: sa.BindParameter[str] = sa.bindparam("d")
        now: sa.BindParameter[float] = sa.bindparam("now")
        live = (t.c.digest == d) & (t.c.expires_at > now)
        row: dict[str, Any] = {
            "data": _json_in("data", backend), "meta": sa.bindparam("meta"),
            "user_id": sa.bindparam("user"), "created": sa.bindparam("created"),
            "last_seen": sa.bindparam("last_seen"), "expires_at": sa.bindparam("exp"),
        }  # fmt: skip
        loaded = [t.c.data, t.c.meta, t.c.version, t.c.last_seen]
        if backend == "postgresql":
            row[ORDER] = _json_in("order", backend)
            loaded.append(t.c[ORDER])

        self.load = sa.select(*loaded).where(live)
        create = insert(t).values(digest=d, version=1, **row)
        # absent, or present but expired (a row the sweep has not reached yet)
        self.create = create.on_conflict_do_update(
            index_elements=[t.c.digest],
            set_={c: getattr(create.excluded, c) for c in (*row, "version")},
            where=t.c.expires_at <= now,
        ).execution_options(preserve_rowcount=True)  # SQLAlchemy keeps INSERT counts only so
        self.replace = sa.update(t).where(live).values(version=t.c.version + 1, **row)
        # regenerate(): the live old row becomes the new one (new digest, data and meta) in
        # one statement, so a rotation racing a logout cannot bring the session back, and a
        # merge waiting on the old row finds it gone. An existing row under the new digest
        # (a fresh 256-bit ID: never, in practice) makes it write nothing.
        other = t.alias("taken")
        self.rotate = (
            sa.update(t)
            .where(
                t.c.digest == sa.bindparam("old", type_=sa.String),
                t.c.expires_at > now,
                ~sa.exists().where(other.c.digest == d),
            )
            .values(digest=d, version=1, **row)
        )
        patch = {k: v for k, v in row.items() if k not in ("data", ORDER)}
        if backend == "postgresql":
            patch[ORDER] = _merged_order(t.c[ORDER])
        self.merge = (
            sa.update(t)
            .where(live, _readable(t.c.data, backend))
            .values(data=_merged(t.c.data, backend), version=t.c.version + 1, **patch)
        )
        #: after a create or rotation wrote nothing: the live row under its new digest
        self.created_row = sa.select(t.c.meta, t.c.version).where(live)
        #: after a merge wrote nothing: is there a live row (so its data was unreadable)?
        self.live_data = sa.select(t.c.data).where(live)
        self.delete = sa.delete(t).where(t.c.digest == d)
        self.touch = (
            sa.update(t)
            .where(live)
            .values(last_seen=sa.bindparam("last_seen"), expires_at=sa.bindparam("exp"))
        )
        user = t.c.user_id == sa.bindparam("user")
        self.user_sessions = (
            sa.select(t.c.digest, t.c.created, t.c.last_seen, t.c.meta)
            .where(user, t.c.expires_at > now)
            .order_by(t.c.digest)
        )
        self.revoke_user = sa.delete(t).where(user, t.c.digest != sa.bindparam("keep"))
        #: max_sessions_per_user: the user's other live sessions, and their eviction
        self.user_others = sa.select(t.c.last_seen, t.c.digest).where(
            user, t.c.expires_at > now, t.c.digest != d, t.c.digest != sa.bindparam("skip")
        )
        self.evict = sa.delete(t).where(
            user, t.c.digest.in_(sa.bindparam("doomed", expanding=True))
        )
        self.revoke_handle = sa.delete(t).where(user, t.c.digest.like(sa.bindparam("prefix")))
        expired = sa.select(t.c.digest).where(t.c.expires_at <= now).limit(sweep_chunk)
        if backend == "postgresql":  # skip rows a concurrent merge holds; the next sweep gets them
            expired = expired.with_for_update(skip_locked=True)
        self.sweep = sa.delete(t).where(t.c.digest.in_(expired))
        self.sweep_locks = sa.delete(lk).where(lk.c.expires_at <= now)
        self.scan = sa.select(t.c.meta, t.c.last_seen)
        take = insert(lk).values(
            digest=d, token=sa.bindparam("token"), expires_at=sa.bindparam("exp")
        )
        self.lock_take = take.on_conflict_do_update(
            index_elements=[lk.c.digest],
            set_={"token": take.excluded.token, "expires_at": take.excluded.expires_at},
            where=lk.c.expires_at <= now,
        ).execution_options(preserve_rowcount=True)
        self.lock_free = sa.delete(lk).where(lk.c.digest == d, lk.c.token == sa.bindparam("token"))
        #: Store.reseal. PostgreSQL: one statement (``_reseal_statement``). SQLite: in a
        #: BEGIN IMMEDIATE transaction, read the live row's data, then write the values that
        #: still matched; nothing else moves (metadata, version, expiry)
        self.reseal_read = sa.select(t.c.data).where(live)
        patched = sa.func.json_patch(t.c.data, sa.bindparam("items", type_=sa.Text))
        self.reseal_write = sa.update(t).where(t.c.digest == d).values(data=patched)
        if backend == "postgresql":
            self.reseal_one = _reseal_statement(t, live)
        self.scan_digests = sa.select(t.c.digest)
        put = insert(ch).values(
            digest=d, value=sa.bindparam("value"), expires_at=sa.bindparam("exp")
        )
        self.challenge_put = put.on_conflict_do_update(
            index_elements=[ch.c.digest],
            set_={"value": put.excluded.value, "expires_at": put.excluded.expires_at},
        )
        # the read and the removal in one statement: of concurrent takers, one gets the row
        self.challenge_take = (
            sa.delete(ch).where(ch.c.digest == d, ch.c.expires_at > now).returning(ch.c.value)
        )
        self.sweep_challenges = sa.delete(ch).where(ch.c.expires_at <= now)


def _reseal_statement(t: sa.Table, live: sa.ColumnElement[bool]) -> sa.Update:
    """PostgreSQL's ``Store.reseal`` in one statement on the request path's direct
    connection (one round trip instead of a transaction's four)::

        UPDATE t SET data = data || (the new texts whose key still holds the old text)
        WHERE live AND (some key still holds its old text)
        RETURNING (how many keys now hold their new text)

    Atomic as the merge is: the row is locked for the statement, and under READ COMMITTED a
    concurrent write that committed first makes PostgreSQL evaluate the condition and the
    new ``data`` again on the row as that write left it. No key is added (only keys that
    hold their old text are set), so ``key_order`` stays as it is. A new text is a fresh
    seal (a random nonce): no other writer can have stored the same text, so the count
    counts this statement's replacements."""
    jsonb = postgresql.JSONB()
    data = sa.cast(t.c.data, jsonb)
    new = sa.cast(sa.bindparam("new", type_=sa.Text), jsonb)
    old = sa.cast(sa.bindparam("old", type_=sa.Text), jsonb)
    fresh = sa.func.jsonb_each(new).table_valued("key", "value").alias("fresh")
    stale = sa.func.jsonb_each(old).table_valued("key", "value").alias("stale")
    done = sa.func.jsonb_each(new).table_valued("key", "value").alias("done")
    at = data.op("->", return_type=jsonb)
    still = (
        sa.select(
            sa.func.coalesce(
                sa.func.jsonb_object_agg(fresh.c.key, fresh.c.value), sa.text("'{}'::jsonb")
            )
        )
        .where(at(fresh.c.key) == old.op("->", return_type=jsonb)(fresh.c.key))
        .scalar_subquery()
    )
    replaced = sa.select(sa.func.count()).select_from(done).where(at(done.c.key) == done.c.value)
    return (
        sa.update(t)
        .where(live, sa.exists().where(at(stale.c.key) == stale.c.value))
        .values(data=data.op("||", return_type=jsonb)(still))
        .returning(replaced.scalar_subquery())
    )


def _int4(value: int) -> int:
    """An unsigned 32-bit value as PostgreSQL's signed ``int4``."""
    return value - (1 << 32) if value >= 1 << 31 else value


def user_lock_key(user: str) -> int:
    """The second half of a user's login lock: 32 bits of SHA-256 of the user key (two
    users that share it only wait for each other's logins)."""
    return int.from_bytes(hashlib.sha256(user.encode()).digest()[:4], "big", signed=True)


def _json_in(name: str, backend: str) -> sa.ColumnElement[Any]:
    """A JSON parameter, bound as text on both paths (SQLAlchemy's and the direct DBAPI
    one) and cast by the server where the column is ``jsonb``."""
    text = sa.bindparam(name, type_=sa.Text)
    return sa.cast(text, postgresql.JSONB()) if backend == "postgresql" else text


def _merged(data: sa.ColumnElement[Any], backend: str) -> sa.ColumnElement[Any]:
    """``data`` without the ``removed`` keys and with ``items`` set, computed by the server.

    PostgreSQL: ``(data - :removed) || :items`` on ``jsonb`` (the cast is a no-op on a
    ``jsonb`` column and keeps a ``text`` column made by an early version working).
    SQLite: ``json_patch(data, :patch)``, an RFC 7396 merge patch in which a JSON ``null``
    deletes a key. That fits because every stored value is a JSON *string* (the tagged-JSON
    text of the session value, so ``None`` is stored as the string ``"null"``): the only
    nulls in a patch are the removals, and no value is an object to be merged recursively.
    """
    if backend == "postgresql":
        jsonb = postgresql.JSONB()
        removed = sa.bindparam("removed", type_=postgresql.ARRAY(sa.Text))
        return (
            sa.cast(data, jsonb)
            .op("-", return_type=jsonb)(removed)
            .op("||", return_type=jsonb)(_json_in("items", backend))
        )
    return sa.func.json_patch(data, sa.bindparam("patch", type_=sa.Text), type_=sa.Text)


#: PostgreSQL only: the session's key order, a ``jsonb`` array of its key names (``jsonb``
#: objects keep none, a session, a dict, does). SQLite's JSON text keeps the order itself.
#: ``NULL`` on a row written before the column existed: its keys come in ``jsonb``'s order.
ORDER = "key_order"


def _order_column(backend: str) -> list[sa.Column[Any]]:
    return [sa.Column(ORDER, postgresql.JSONB(), nullable=True)] if backend == "postgresql" else []


def _merged_order(order: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """The key order after a merge, in the same statement (two merges in a race both land):
    ``(key_order - :dropped) || :appended``, jsonb operators only. ``appended``: the keys
    the write adds (``Write.new_keys``), in the order the request set them; ``dropped``:
    those and the removed ones, so a key two racing requests both add is listed once.
    (make bench, PostgreSQL sync change cycle, x the bare psycopg floor: 2.13 with no key
    order kept, 2.56 with two subqueries over the array, 2.38 with this form.)"""
    jsonb = postgresql.JSONB()
    dropped = sa.bindparam("dropped", type_=postgresql.ARRAY(sa.Text))
    appended = sa.cast(sa.bindparam("appended", type_=sa.Text), jsonb)
    merged = order.op("-", return_type=jsonb)(dropped).op("||", return_type=jsonb)(appended)
    return sa.case((order.is_(None), sa.null()), else_=merged)


def _readable(data: sa.ColumnElement[Any], backend: str) -> sa.ColumnElement[bool]:
    """The stored ``data`` is what a merge may build on: a JSON object whose values are all
    strings. A merge into anything else writes nothing (the session reads as corrupted and
    the engine drops it); it never quietly turns garbage into a "valid" record."""
    if backend == "postgresql":
        value = sa.cast(data, postgresql.JSONB())
        return sa.and_(
            sa.func.jsonb_typeof(value) == "object",
            ~sa.func.jsonb_path_exists(
                value, sa.literal_column("""'$.* ? (@.type() != "string")'::jsonpath""")
            ),
        )
    each = sa.func.json_each(data).table_valued("type")
    strings_only = ~sa.exists().where(each.c.type != "text")
    # CASE fixes the order: json_type() and json_each() raise on text that is not JSON
    return sa.case(
        (sa.func.json_valid(data) == 0, sa.false()),
        (sa.func.json_type(data) != "object", sa.false()),
        else_=strings_only,
    )


def create_private(path: Path) -> None:
    """Create the database file 0600 before SQLite does (it would make it 0644 under the
    usual umask), as the file store makes its files: session records are secrets. SQLite
    gives the ``-wal`` and ``-shm`` files the database file's mode, so they are 0600 too.
    An existing file keeps its mode (its owner chose it)."""
    # FileExistsError: another process made it meanwhile. Any other OSError (no directory,
    # no permission): SQLite's own open fails next and the store says why (sqlite_hint).
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))


def prepare_sqlite(engine: sa.Engine, busy_timeout: float, path: Path | None = None) -> None:
    """WAL (readers never block the writer, so several processes share one file) and a busy
    timeout on every connection. The driver's own transaction handling is switched off (as
    the SQLAlchemy docs recommend for pysqlite and aiosqlite): a lone statement is atomic by
    itself and runs without BEGIN/COMMIT, and a connection marked ``IMMEDIATE`` opens its
    transaction with BEGIN IMMEDIATE, taking the write lock before it reads, so two
    read-modify-write transactions never deadlock upgrading their read locks."""

    if path is not None:

        @sa.event.listens_for(engine, "do_connect")
        def _create(*_: Any) -> None:
            if not path.exists():
                create_private(path)

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.fetchall()
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(connection: sa.Connection) -> None:
        if connection.get_execution_options().get(IMMEDIATE, False):
            connection.exec_driver_sql("BEGIN IMMEDIATE")


# -- the row codec ------------------------------------------------------------------------
def row_params(write: Write, now: float, backend: str) -> dict[str, Any]:
    """The bound values of a row written for ``write``: the whole record for a create, a
    rotation or a replace, and for a merge the changes alone (the server merges them)."""
    meta = write.meta
    params: dict[str, Any] = {
        "d": write.digest, "meta": encode_meta(meta), "user": meta.user,
        "created": meta.created, "last_seen": meta.last_seen, "exp": now + write.ttl,
        "now": now,
    }  # fmt: skip
    if write.create or write.replace:
        params["data"] = encode_items(write.items)
        if backend == "postgresql":
            params["order"] = json.dumps(list(write.items), ensure_ascii=False)
    elif backend == "postgresql":
        params["removed"] = sorted(write.removed)
        params["items"] = encode_items(write.items)
        new = set(write.items) if write.new_keys is None else write.new_keys
        params["dropped"] = sorted(write.removed | new)
        params["appended"] = json.dumps([k for k in write.items if k in new], ensure_ascii=False)
    else:
        patch: dict[str, str | None] = dict.fromkeys(write.removed)
        patch.update(write.items)  # a key both removed and set again is set
        params["patch"] = encode_items(patch)
    if write.rotated_from is not None:
        params["old"] = write.rotated_from
    return params


def encode_items(items: Mapping[str, str | None]) -> str:
    return json.dumps(dict(items), ensure_ascii=False, separators=(",", ":"))


def encode_meta(meta: RecordMeta) -> str:
    return json.dumps(meta.to_list(), ensure_ascii=False, separators=(",", ":"))


def decode_items(stored: Any) -> dict[str, str] | None:
    """The ``data`` column (JSON text, or on PostgreSQL the object psycopg already decoded)
    as a dict of key → tagged-JSON text; ``None`` when it is not that."""
    if type(stored) is dict:
        items: Any = stored
    else:
        try:
            items = json.loads(stored)
        except (TypeError, ValueError, RecursionError):
            return None
    if type(items) is not dict or any(type(v) is not str for v in items.values()):
        return None
    return items


def decode_meta(text: Any, last_seen: Any) -> RecordMeta | None:
    """The ``meta`` column; ``last_seen`` comes from its own column (``touch`` moves only that)."""
    if type(last_seen) is not int:
        return None
    try:
        return RecordMeta.from_list(json.loads(text), last_seen)
    except (TypeError, ValueError, RecursionError):
        return None


def decode_record(digest: str, row: Any) -> Record | None:
    """A loaded row as a ``Record``, or ``None`` plus a security log line when it is
    corrupted or foreign: never an exception, never partial data."""
    data, meta_text, version, last_seen, *order = row
    items = decode_items(data)
    if items is not None and order and order[0] is not None:
        try:
            items = in_order(items, order[0])
        except ValueError:
            items = None
    meta = decode_meta(meta_text, last_seen) if items is not None else None
    if items is None or meta is None or type(version) is not int:
        reject_record(digest, "stored SQL row is corrupted or foreign; read as no session")
        return None
    return Record(items, meta, version)
