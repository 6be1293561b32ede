"""SQLStore on real SQLite files and a real PostgreSQL server: the conformance suite in both
flavours, plus what only SQL has (schema, chunked sweep, shared SQLite files, corrupted rows,
URL handling)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import secrets
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import psycopg
import pytest
import sqlalchemy as sa

from sessionkit import SessionConfig, SessionEngine
from sessionkit.errors import ConfigError, LockTimeout, StoreUnavailable
from sessionkit.ids import digest, handle, new_id
from sessionkit.stores import open_store
from sessionkit.stores.base import RecordMeta, Write
from sessionkit.stores.sql import SQLStore
from sessionkit.testing import (
    Browser,
    ChallengeConformance,
    FakeClock,
    LockConformance,
    ResealConformance,
    ScanConformance,
    ServerStoreConformance,
    SessionLimitConformance,
    SweepConformance,
    UserIndexConformance,
)
from tests.servers import Postgres, free_port

KEY = "tests-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
ROOT = Path(__file__).resolve().parents[2]


def fresh_table() -> str:
    return f"s_{uuid4().hex[:12]}"


class TestSQLiteConformance(
    ServerStoreConformance,
    ChallengeConformance,
    UserIndexConformance,
    LockConformance,
    SweepConformance,
    ScanConformance,
    ResealConformance,
    SessionLimitConformance,
):
    @pytest.fixture(autouse=True)
    def _directory(self, tmp_path: Path) -> None:
        self.path = tmp_path / "sessions.db"

    def make_store(self, clock: FakeClock) -> SQLStore:
        return SQLStore(f"sqlite:///{self.path}", clock=clock)


class TestPostgresConformance(
    ServerStoreConformance,
    ChallengeConformance,
    UserIndexConformance,
    LockConformance,
    SweepConformance,
    ScanConformance,
    ResealConformance,
    SessionLimitConformance,
):
    @pytest.fixture(autouse=True)
    def _server(self, postgres_server: Postgres) -> None:
        self.url = postgres_server.url

    def make_store(self, clock: FakeClock) -> SQLStore:
        return SQLStore(self.url, table=fresh_table(), clock=clock)


# -- helpers for the SQL-specific tests ---------------------------------------------------
@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Iterator[SQLStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'sessions.db'}"
    else:
        url = request.getfixturevalue("postgres_server").url
    made = SQLStore(url, table=fresh_table(), clock=clock)
    yield made
    asyncio.run(made.aclose())


def meta(clock: FakeClock, user: str | None = None) -> RecordMeta:
    return RecordMeta(created=int(clock.now), last_seen=int(clock.now), user=user)


def create(store: SQLStore, clock: FakeClock, items: dict[str, str], ttl: float = 600.0) -> str:
    key = digest(new_id())
    write = Write(key, items, frozenset(), meta(clock), ttl, create=True, replace=True)
    assert store.save(write)
    return key


def count_rows(store: SQLStore) -> int:
    with store._engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(store.table)).scalar_one())


# -- URLs, construction, schema -----------------------------------------------------------
def test_url_forms_pick_the_drivers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "relative").mkdir()
    relative = SQLStore("sqlite:///relative/sessions.db?table=web&sweep_chunk=50")
    assert relative._target.sync_url.drivername == "sqlite+pysqlite"
    assert relative._target.async_url.drivername == "sqlite+aiosqlite"
    assert relative._target.sync_url.database == "relative/sessions.db"
    assert relative.table.name == "web" and relative.sweep_chunk == 50
    assert relative._target.sync_url.query == {}  # our options never reach the driver
    absolute = SQLStore(f"sqlite:///{tmp_path}/abs.db")
    assert absolute._target.sync_url.database == f"{tmp_path}/abs.db"
    for scheme in ("postgres", "postgresql"):
        pg = open_store(f"{scheme}://app:s3cret@db.example:5433/web?sslmode=require")
        assert isinstance(pg, SQLStore) and pg.backend == "postgresql"
        assert pg._target.sync_url.drivername == "postgresql+psycopg"
        assert pg._target.async_url.drivername == "postgresql+psycopg"
        assert pg._target.sync_url.query == {"sslmode": "require"}
        assert pg.table.name == "sessionkit_sessions"
        assert "s3cret" not in repr(pg) and "***" in repr(pg)
    for store_ in (relative, absolute):
        store_.close()


@pytest.mark.parametrize(
    "url",
    ["sqlite://", "sqlite:///:memory:", "mysql://x@y/z", "sqlite:///x.db?sweep_chunk=lots",
     "sqlite:///x.db?sweep_chunk=0", "sqlite:///x.db?table=drop%20table"],
)  # fmt: skip
def test_bad_urls_are_named_config_errors(url: str) -> None:
    with pytest.raises(ConfigError):
        SQLStore(url)


def test_down_server_is_unavailable_with_the_password_masked() -> None:
    url = f"postgresql://app:s3cret@127.0.0.1:{free_port()}/db"
    store = SQLStore(url)
    with pytest.raises(StoreUnavailable) as caught:
        store.load("0" * 64)
    assert "s3cret" not in str(caught.value) and "app:***@127.0.0.1" in str(caught.value)
    with pytest.raises(StoreUnavailable) as acaught:
        asyncio.run(store.aload("0" * 64))
    assert "s3cret" not in str(acaught.value)
    asyncio.run(store.aclose())


def test_a_postgres_host_that_never_answers_fails_fast() -> None:
    """Issue 14: a listener that accepts and never speaks cost 10 s per request."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True).start()
    store = SQLStore(f"postgresql://app:s3cret@127.0.0.1:{listener.getsockname()[1]}/db")
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="connection timeout expired"):
        store.load("0" * 64)
    assert 1.5 < time.monotonic() - started < 4
    store.close()
    for sock in (*accepted, listener):
        sock.close()


def test_a_sqlite_file_in_a_missing_directory_is_a_config_error(tmp_path: Path) -> None:
    """Issue 14: said at start-up, naming the directory and what to do; not a 503 that
    says to check that a server is running."""
    missing = tmp_path / "missing-dir"
    with pytest.raises(ConfigError) as caught:
        open_store(f"sqlite:///{missing}/sessions.db")
    assert str(caught.value) == (
        f"sessionkit setting 'store': 'sqlite:///{missing}/sessions.db': the directory "
        f"'{missing}' does not exist. SQLite creates the database file but not its "
        f"directory: create it (mkdir -p {missing}) or point the URL at an existing directory"
    )
    (tmp_path / "a-file").touch()
    with pytest.raises(ConfigError, match=r"'.*a-file' is not a directory"):
        SQLStore(f"sqlite:///{tmp_path}/a-file/sessions.db")


def test_a_sqlite_directory_that_vanishes_is_unavailable_saying_why(tmp_path: Path) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    store = SQLStore(f"sqlite:///{gone}/sessions.db")
    gone.rmdir()
    # (sync only: aiosqlite's worker thread of a failed connect outlives asyncio.run's loop,
    # and the async path reports through the same _unavailable)
    with pytest.raises(StoreUnavailable) as caught:
        store.load("0" * 64)
    said = str(caught.value)
    assert f"The directory '{gone}' does not exist (any more): create it" in said
    assert "server is running" not in said
    store.close()


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_sqlite_files_are_created_private(tmp_path: Path, flavour: str) -> None:
    """0600 like the file store's files (issue 14), -wal and -shm included, whatever the
    umask allows; a file that already exists keeps the mode its owner gave it."""
    path = tmp_path / "sessions.db"
    store = SQLStore(f"sqlite:///{path}")

    async def aload() -> None:
        assert await store.aload("0" * 64) is None
        made.update(modes())
        await store.aclose()

    def modes() -> dict[str, int]:
        return {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}

    made: dict[str, int] = {}
    old = os.umask(0o022)
    try:
        if flavour == "sync":
            assert store.load("0" * 64) is None
            made.update(modes())  # while connected: -wal and -shm exist
            store.close()
        else:
            asyncio.run(aload())
    finally:
        os.umask(old)
    assert made == {"sessions.db": 0o600, "sessions.db-wal": 0o600, "sessions.db-shm": 0o600}
    shared = tmp_path / "shared.db"
    shared.touch(0o640)
    shared.chmod(0o640)
    other = SQLStore(f"sqlite:///{shared}")
    other.load("0" * 64)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o640
    other.close()


def test_create_schema_is_idempotent_and_also_happens_on_first_use(
    store: SQLStore, clock: FakeClock
) -> None:
    assert not sa.inspect(store._engine).has_table(store.table.name)
    assert store.create_schema() is True
    assert store.create_schema() is False
    twin = SQLStore(store.url, table=store.table.name, clock=clock)
    assert twin.create_schema() is False
    twin.close()
    inspector = sa.inspect(store._engine)
    indexed = {tuple(ix["column_names"]) for ix in inspector.get_indexes(store.table.name)}
    assert {("user_id",), ("expires_at",)} <= indexed
    assert inspector.get_pk_constraint(store.table.name)["constrained_columns"] == ["digest"]
    lazy = SQLStore(store.url, table=fresh_table(), clock=clock)
    assert lazy.load("0" * 64) is None  # a read creates the table, never a row
    assert sa.inspect(store._engine).has_table(lazy.table.name)
    assert count_rows(lazy) == 0
    assert asyncio.run(_acreate_twice(lazy)) == (False, False)


async def _acreate_twice(store: SQLStore) -> tuple[bool, bool]:
    try:
        return await store.acreate_schema(), await store.acreate_schema()
    finally:
        await store.aclose()


# -- reads create nothing -------------------------------------------------------------------
def test_thousands_of_random_cookies_create_no_rows(store: SQLStore, clock: FakeClock) -> None:
    engine = SessionEngine(SessionConfig(secret_key=KEY), store=store, clock=clock)
    store.create_schema()
    prefix = engine.config.cookie_name.encode("ascii") + b"\x00"
    for n in range(3000):
        browser = Browser(engine)
        session_id = new_id()
        # every tenth cookie is validly signed (a well-formed ID we never issued)
        tag = engine.keyring.tag(prefix + session_id.encode()) if n % 10 == 0 else "x" * 22
        browser.cookie = f"{session_id}.{tag}"
        assert browser.visit(lambda s: s.get("user")).result is None
    assert count_rows(store) == 0


# -- sweep ----------------------------------------------------------------------------------
def test_sweep_of_twenty_thousand_rows_goes_in_chunks(store: SQLStore, clock: FakeClock) -> None:
    store.create_schema()
    body = {"data": "{}", "meta": "[]", "version": 1, "created": 1, "last_seen": 1}
    expired = [{"digest": f"{n:064x}", "expires_at": clock.now - 1, **body} for n in range(20_000)]
    with store._engine.begin() as conn:
        conn.execute(store.table.insert(), expired)
    live = create(store, clock, {"a": "1"})
    seen: list[int] = []
    started = time.perf_counter()
    assert store.delete_expired(progress=seen.append) == 20_000
    elapsed = time.perf_counter() - started
    assert seen[:3] == [1000, 2000, 3000] and seen[-1] == 20_000
    assert len(seen) in (20, 21)  # one call per 1000-row transaction
    assert count_rows(store) == 1 and store.load(live) is not None
    assert store.delete_expired() == 0
    assert elapsed < 20


def test_sweep_also_removes_lapsed_locks(store: SQLStore, clock: FakeClock) -> None:
    crashed = store.lock("f" * 64, ttl=5)
    crashed.__enter__()
    clock.advance(10)
    store.delete_expired()
    with store._engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(store._sql.locks)).scalar() == 0


# -- corrupted rows ---------------------------------------------------------------------------
CORRUPTIONS = [
    {"data": "{not json"},
    {"data": "[1, 2]"},
    {"data": '{"a": 1}'},  # values must be tagged-JSON text
    {"data": ""},
    {"meta": "garbage"},
    {"meta": "[99, 1, 1, null, null, null, null, null, [], []]"},  # a foreign format version
    {"meta": "[1, 2]"},
    {"data": "[" * 100_000},  # nesting bomb
]


@pytest.mark.parametrize("corruption", CORRUPTIONS, ids=lambda c: next(iter(c)))
def test_corrupted_rows_read_as_no_session(
    store: SQLStore, clock: FakeClock, corruption: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    key = create(store, clock, {"a": "1"})
    healthy = create(store, clock, {"b": "2"})
    if not corrupt(store, key, corruption):
        return  # PostgreSQL's jsonb column refused text that is not JSON: nothing to read
    with caplog.at_level(logging.WARNING, logger="sessionkit.security"):
        assert store.load(key) is None
        assert asyncio.run(store.aload(key)) is None
    assert [r.name for r in caplog.records].count("sessionkit.security") == 2
    assert handle(key) in caplog.text and key not in caplog.text
    merge = Write(key, {"c": "3"}, frozenset(), meta(clock), 600.0)
    if "data" in corruption:  # a merge must not build on data nobody can read
        assert store.save(merge) is False
    assert len(list(store.scan())) == (2 if "data" in corruption else 1)
    loaded = store.load(healthy)
    assert loaded is not None and dict(loaded.items) == {"b": "2"}
    asyncio.run(store.aclose())


def corrupt(store: SQLStore, key: str, corruption: dict[str, str]) -> bool:
    """Write ``corruption`` into the row as raw text. On PostgreSQL ``data`` is ``jsonb``:
    text that is not JSON is refused by the server (checked here), JSON of the wrong shape
    is stored as it is. Returns whether the row was corrupted."""
    (column, text), t = next(iter(corruption.items())), store.table
    value: Any = sa.bindparam("v", text, type_=sa.Text)
    if column == "data" and store.backend == "postgresql":
        value = sa.cast(value, sa.dialects.postgresql.JSONB)
        try:
            json.loads(text)
        except (ValueError, RecursionError):
            with pytest.raises(sa.exc.DBAPIError), store._engine.begin() as conn:
                conn.execute(sa.update(t).where(t.c.digest == key).values({column: value}))
            record = store.load(key)
            assert record is not None and dict(record.items) == {"a": "1"}
            return False
    with store._engine.begin() as conn:
        conn.execute(sa.update(t).where(t.c.digest == key).values({column: value}))
    return True


# -- one statement per operation ----------------------------------------------------------
@contextlib.contextmanager
def statements(store: SQLStore) -> Iterator[list[str]]:
    """The SQL each operation sends to the driver, and proof that it ran in autocommit mode
    (no BEGIN or COMMIT): on SQLite every statement SQLite itself ran (its trace callback),
    on PostgreSQL every psycopg cursor execution, with psycopg's ``autocommit`` flag."""
    sent: list[str] = []

    class Recording(psycopg.Cursor[Any]):
        def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
            assert self.connection.autocommit is True, "a statement ran inside a transaction"
            sent.append(str(query))
            return super().execute(query, *args, **kwargs)

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        if store.backend == "sqlite":
            dbapi_connection.set_trace_callback(sent.append)
        else:
            dbapi_connection.cursor_factory = Recording

    store._engine.dispose()  # fresh connections, so every one is watched
    sa.event.listen(store._engine, "connect", on_connect)
    try:
        yield sent
    finally:
        sa.event.remove(store._engine, "connect", on_connect)
        store._engine.dispose()


def test_every_operation_is_one_statement_without_a_transaction(
    store: SQLStore, clock: FakeClock
) -> None:
    store.create_schema()
    key, moved = digest(new_id()), digest(new_id())
    m = meta(clock, "alice")
    writes = {
        "create": Write(key, {"a": "1"}, frozenset(), m, 600.0, create=True, replace=True),
        "merge": Write(key, {"b": "2"}, frozenset({"a"}), m, 600.0),
        "replace": Write(key, {"c": "3"}, frozenset(), m, 600.0, replace=True),
        "rotate": Write(
            moved, {"c": "3", "d": "4"}, frozenset(), m, 600.0, create=True, replace=True,
            rotated_from=key,
        ),
    }  # fmt: skip
    for name, write in writes.items():
        with statements(store) as sent:
            assert store.save(write), name
        assert len(sent) == 1, (name, sent)
        assert sent[0].lstrip().upper().startswith(("INSERT", "UPDATE")), (name, sent)
    with statements(store) as sent:
        record = store.load(moved)
        assert store.touch(moved, int(clock.now), 600.0)
    assert record is not None and dict(record.items) == {"c": "3", "d": "4"}
    assert [s.lstrip().split()[0].upper() for s in sent] == ["SELECT", "UPDATE"]
    assert store.load(key) is None  # the rotation moved the row


# -- the server-side merge ---------------------------------------------------------------------
def merge(
    store: SQLStore, key: str, clock: FakeClock, items: dict[str, str], *removed: str
) -> bool:
    return store.save(Write(key, items, frozenset(removed), meta(clock), 600.0))


def test_merge_sets_and_removes_keys_and_keeps_the_rest(store: SQLStore, clock: FakeClock) -> None:
    key = create(store, clock, {"keep": '"k"', "gone": "1", "again": "2"})
    assert merge(store, key, clock, {"new": "[1,2]", "again": "3"}, "gone", "again", "absent")
    record = store.load(key)
    assert record is not None
    assert dict(record.items) == {"keep": '"k"', "new": "[1,2]", "again": "3"}
    assert record.version == 2
    assert asyncio.run(store.asave(Write(key, {}, frozenset({"keep"}), meta(clock), 600.0)))
    record = store.load(key)
    assert record is not None and dict(record.items) == {"new": "[1,2]", "again": "3"}


@pytest.mark.parametrize(
    "value", ["null", '"null"', '""', "{}", '{"a":null}', "[null]", '"\\u0000é\\n\\"'],
)  # fmt: skip
def test_values_that_look_like_json_null_or_objects_survive_merges(
    store: SQLStore, clock: FakeClock, value: str
) -> None:
    """Values are tagged-JSON *text*: ``None`` is stored as the string "null", so neither
    ``json_patch`` (where a JSON null deletes) nor ``jsonb ||`` ever sees a null or an
    object to merge into."""
    key = create(store, clock, {"x": value})
    assert merge(store, key, clock, {"y": value})
    assert merge(store, key, clock, {"z": "1"})
    record = store.load(key)
    assert record is not None and dict(record.items) == {"x": value, "y": value, "z": "1"}


def test_none_round_trips_through_the_engine_and_a_merge(store: SQLStore, clock: FakeClock) -> None:
    engine = SessionEngine(SessionConfig(secret_key=KEY), store=store, clock=clock)
    browser = Browser(engine)
    odd = 'NUL \x00, quote ", backslash \\, \u2028'  # jsonb refuses a raw \u0000 escape
    browser.visit(lambda s: s.update(empty=None, nested={"k": None}, n=0))
    browser.visit(lambda s: s.update(n=1, odd=odd))  # a merge of two keys
    expected = {"empty": None, "nested": {"k": None}, "n": 1, "odd": odd}
    assert browser.visit(dict).result == expected
    browser.visit(lambda s: s.pop("empty"))
    del expected["empty"]
    assert browser.visit(dict).result == expected


def test_replace_sets_the_data_exactly(store: SQLStore, clock: FakeClock) -> None:
    key = create(store, clock, {"a": "1", "b": "2"})
    assert store.save(Write(key, {"c": "3"}, frozenset(), meta(clock), 600.0, replace=True))
    record = store.load(key)
    assert record is not None and dict(record.items) == {"c": "3"}


def test_no_write_brings_back_a_deleted_or_expired_session(
    store: SQLStore, clock: FakeClock
) -> None:
    key = create(store, clock, {"a": "1"})
    store.delete(key)
    assert merge(store, key, clock, {"b": "2"}) is False
    assert (
        store.save(Write(key, {"b": "2"}, frozenset(), meta(clock), 600.0, replace=True)) is False
    )
    rotated = Write(digest(new_id()), {"b": "2"}, frozenset(), meta(clock), 600.0, create=True,
                    replace=True, rotated_from=key)  # fmt: skip
    assert store.save(rotated) is False
    assert asyncio.run(store.asave(rotated)) is False
    assert count_rows(store) == 0
    short = create(store, clock, {"a": "1"}, ttl=10)
    clock.advance(11)
    assert merge(store, short, clock, {"b": "2"}) is False
    assert store.load(short) is None


def test_rotation_moves_the_live_row_and_a_late_merge_to_the_old_id_fails(
    store: SQLStore, clock: FakeClock
) -> None:
    old = create(store, clock, {"a": "1"})
    new = digest(new_id())
    m = meta(clock, "alice")
    rotation = Write(new, {"a": "1", "b": "2"}, frozenset(), m, 600.0, create=True,
                     replace=True, rotated_from=old)  # fmt: skip
    assert asyncio.run(store.asave(rotation))
    assert store.load(old) is None and merge(store, old, clock, {"late": "1"}) is False
    record = store.load(new)
    assert record is not None and dict(record.items) == {"a": "1", "b": "2"}
    assert record.version == 1 and record.meta.user == "alice"
    assert [i.handle for i in store.user_sessions("alice")] == [handle(new)]
    assert store.save(rotation) is False  # the old row is gone: nothing is written twice
    taken = create(store, clock, {"x": "1"})
    clash = rotation._replace(digest=taken, rotated_from=new)
    assert store.save(clash) is False  # the new digest is taken: the old row stays
    assert store.load(new) is not None and count_rows(store) == 2


def test_merge_into_a_legacy_text_column(postgres_server: Postgres, clock: FakeClock) -> None:
    """Tables made before ``data`` became ``jsonb`` keep working (the statements cast)."""
    store = SQLStore(postgres_server.url, table=fresh_table(), clock=clock)
    store.create_schema()
    with store._engine.begin() as conn:
        conn.exec_driver_sql(f"ALTER TABLE {store.table.name} ALTER COLUMN data TYPE text")
    key = create(store, clock, {"a": "1", "b": "2"})
    assert merge(store, key, clock, {"c": "null"}, "a")
    record = store.load(key)
    assert record is not None and dict(record.items) == {"b": "2", "c": "null"}
    store.close()


# -- concurrency ---------------------------------------------------------------------------
def test_threads_with_their_own_store_objects_all_merge(store: SQLStore, clock: FakeClock) -> None:
    first = store
    key = create(first, clock, {"start": "0"})
    stores = [SQLStore(store.url, table=store.table.name, clock=clock) for _ in range(4)]
    errors: list[BaseException] = []

    def worker(n: int, own: SQLStore) -> None:
        try:
            for i in range(25):
                write = Write(key, {f"t{n}_{i}": str(i)}, frozenset(), meta(clock), 600.0)
                assert own.save(write)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n, s)) for n, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    record = first.load(key)
    assert record is not None and len(record.items) == 1 + 4 * 25
    assert record.version == 1 + 4 * 25
    assert dict(record.items)["start"] == "0"
    for store_ in stores:
        store_.close()


WORKER = """
import sys
from sessionkit.stores.sql import SQLStore
from sessionkit.stores.base import RecordMeta, Write
url, key, now, name = sys.argv[1], sys.argv[2], int(float(sys.argv[3])), sys.argv[4]
store = SQLStore(url, table=sys.argv[5])
meta = RecordMeta(created=now, last_seen=now)
for i in range(30):  # set a key of our own, and remove our own key of the round before
    removed = frozenset({f"{name}_{i - 1}_tmp"})
    items = {f"{name}_{i}": "1", f"{name}_{i}_tmp": "null"}
    assert store.save(Write(key, items, removed, meta, 600.0))
store.close()
"""


def test_processes_all_merge(store: SQLStore) -> None:
    """Three processes hammer one session with different keys, each also removing a key
    of its own: every set survives and every removal applies, on both backends."""
    now = FakeClock(time.time())
    store._clock = now
    key = create(store, now, {"shared": "null"})
    table = store.table.name
    argv = [sys.executable, "-c", WORKER, store.url, key, str(now.now)]
    procs = [subprocess.Popen([*argv, f"p{n}", table], cwd=ROOT) for n in range(3)]
    assert [p.wait(60) for p in procs] == [0, 0, 0]
    record = store.load(key)
    assert record is not None
    expected = {f"p{n}_{i}": "1" for n in range(3) for i in range(30)}
    expected.update({f"p{n}_29_tmp": "null" for n in range(3)}, shared="null")
    assert dict(record.items) == expected
    assert record.version == 1 + 90
    if store.backend == "sqlite":
        with store._engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000


def test_lock_of_a_crashed_holder_lapses_in_real_time(store: SQLStore) -> None:
    store._clock = time.time
    key = digest(new_id())
    taken = time.monotonic()
    crashed = store.lock(key, ttl=1.0)
    crashed.__enter__()  # never released (the reference keeps the generator from cleanup)
    with pytest.raises(LockTimeout), store.lock(key, wait=0.05):
        pass  # pragma: no cover
    with store.lock(key, ttl=5, wait=10):
        assert time.monotonic() - taken >= 0.95  # not before the holder's ttl ran out
    assert crashed is not None


def test_revoke_handle_matches_exactly_one_wellformed_handle(
    store: SQLStore, clock: FakeClock
) -> None:
    keys = []
    for _ in range(3):
        key = digest(new_id())
        write = Write(key, {"a": "1"}, frozenset(), meta(clock, "alice"), 600.0, create=True)
        assert store.save(write)
        keys.append(key)
    for hostile in ("", "%", "_" * 16, keys[0][:15] + "%", keys[0][:8], keys[0].upper()[:16]):
        assert store.revoke_handle("alice", hostile) is False
    assert len(store.user_sessions("alice")) == 3
    assert store.revoke_handle("bob", handle(keys[0])) is False
    listed = asyncio.run(store.auser_sessions("alice"))
    assert sorted(i.handle for i in listed) == sorted(handle(k) for k in keys)
    assert all(i.user == "alice" and i.created == int(clock.now) for i in listed)
    assert asyncio.run(store.arevoke_handle("alice", handle(keys[0]))) is True
    assert sorted(i.handle for i in store.user_sessions("alice")) == sorted(
        handle(k) for k in keys[1:]
    )


def test_touch_moves_last_seen_and_expiry_only_for_live_rows(
    store: SQLStore, clock: FakeClock
) -> None:
    key = create(store, clock, {"a": "1"}, ttl=100)
    clock.advance(50)
    assert store.touch(key, int(clock.now), 100) is True
    clock.advance(99)
    record = store.load(key)
    assert record is not None and record.meta.last_seen == int(clock.now) - 99
    clock.advance(2)
    assert store.load(key) is None
    assert store.touch(key, int(clock.now), 100) is False  # no resurrection by touch
    assert store.save(Write(key, {"b": "2"}, frozenset(), meta(clock), 100.0)) is False
    assert store.load(key) is None


# -- faults on the real PostgreSQL --------------------------------------------------------
def test_postgres_down_and_up_again_sync_and_async(postgres_server: Postgres) -> None:
    store = SQLStore(postgres_server.url, table=fresh_table())
    loop = asyncio.new_event_loop()
    try:
        key = create(store, FakeClock(time.time()), {"a": "1"})
        assert store.load(key) is not None
        assert loop.run_until_complete(store.aload(key)) is not None
        # a restart while the app is idle: both pools hold connections the server dropped
        postgres_server.stop()
        postgres_server.start(timeout=60)
        assert store.load(key) is not None
        assert loop.run_until_complete(store.aload(key)) is not None
        # down in the middle of traffic, then back
        postgres_server.stop()
        try:
            with pytest.raises(StoreUnavailable):
                store.load(key)
            with pytest.raises(StoreUnavailable):
                loop.run_until_complete(store.aload(key))
            with pytest.raises(StoreUnavailable):
                store.touch(key, int(time.time()), 600)
        finally:
            postgres_server.start(timeout=60)
        assert store.load(key) is not None  # the same object, no restart
        assert loop.run_until_complete(store.aload(key)) is not None
        assert loop.run_until_complete(store.atouch(key, int(time.time()), 600))
    finally:
        loop.run_until_complete(store.aclose())
        loop.close()


# -- the docs page's example runs --------------------------------------------------------------
def test_docs_example_runs() -> None:
    page = (ROOT / "docs" / "stores" / "sql.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, re.S)
    assert blocks
    for number, code in enumerate(blocks):
        namespace: dict[str, Any] = {"SECRET_KEY": secrets.token_urlsafe(48)}
        if "mypackage" in code:
            compile(code, f"sql.md example {number + 1}", "exec")
        else:
            exec(compile(code, f"sql.md example {number + 1}", "exec"), namespace)  # noqa: S102


def test_async_sqlite_writes_without_returning(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite before 3.35 has no RETURNING: async writes then read the cursor's rowcount."""
    monkeypatch.setattr("sessionkit.stores.sql.connections._SQLITE_RETURNING", False)
    store = SQLStore(f"sqlite:///{tmp_path / 'old.db'}", clock=clock)

    async def scenario() -> None:
        key = digest(new_id())
        m = meta(clock)
        assert await store.asave(Write(key, {"a": "1"}, frozenset(), m, 60.0, create=True))
        assert await store.asave(Write(key, {"b": "2"}, frozenset({"a"}), m, 60.0))
        assert await store.atouch(key, int(clock.now), 60.0)
        record = await store.aload(key)
        assert record is not None and dict(record.items) == {"b": "2"}
        await store.adelete(key)
        assert await store.asave(Write(key, {"c": "3"}, frozenset(), m, 60.0)) is False
        await store.aclose()

    asyncio.run(scenario())


def test_postgres_keeps_key_order_on_a_table_made_before_it_did(
    postgres_server: Postgres, clock: FakeClock
) -> None:
    """A table made by a release without the ``key_order`` column gains it on first use; its
    old rows still read (in jsonb's order, the only one they have), and every row written
    from then on keeps the session's order, through merges that race."""
    table = fresh_table()
    old = SQLStore(postgres_server.url, table=table, clock=clock)
    legacy = create(old, clock, {"zz": '"1"', "a": '"2"'})
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        conn.execute(f"ALTER TABLE {table} DROP COLUMN key_order")
    old.close()

    store = SQLStore(postgres_server.url, table=table, clock=clock)
    record = store.load(legacy)
    assert record is not None and dict(record.items) == {"zz": '"1"', "a": '"2"'}
    fresh = create(store, clock, {"zz": '"1"', "a": '"2"'})
    loaded = store.load(fresh)
    assert loaded is not None and list(loaded.items) == ["zz", "a"]  # jsonb alone: a, zz

    def merge(key: str) -> None:
        write = Write(fresh, {key: '"x"'}, frozenset(), meta(clock), 600.0)
        assert store.save(write)

    threads = [threading.Thread(target=merge, args=(f"k{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    merged = store.load(fresh)
    assert merged is not None and list(merged.items)[:2] == ["zz", "a"]
    assert sorted(list(merged.items)[2:]) == [f"k{i}" for i in range(8)]  # every one landed
    store.close()
