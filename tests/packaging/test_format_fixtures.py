"""Upgrades log nobody out: what an earlier release wrote (``tests/fixtures/formats``, made by
``generate.py`` with the release in ``manifest.json``) is restored into a fresh store and
read by this release, sync and async: each session's data, flash message and user, the
user's index, and a route lock the old release still holds. docs/compatibility.md is the
policy these tests keep."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sessionkit import LockTimeout, SessionConfig, SessionEngine, Store, open_store
from sessionkit.testing import FakeClock
from tests import servers
from tests.fixtures.formats.spec import BIG, CLIENT, HERE, KEY, PREFIX, READ_AT, SESSIONS, USER

#: the fixtures of each release still read: tests/fixtures/formats/ (0.1.0) and any
#: subdirectory a later release added with ``generate.py --out`` (see docs/compatibility.md)
RELEASES = sorted(p.parent for p in HERE.rglob("manifest.json"))
WRITTEN: dict[Path, dict[str, Any]] = {
    where: json.loads((where / "manifest.json").read_text()) for where in RELEASES
}
written_by = pytest.mark.parametrize(
    "where", RELEASES, ids=lambda p: WRITTEN[p]["written_by"].replace(" ", "-")
)


def raw(text: str) -> bytes:
    return base64.b64decode(text)


def expected(name: str) -> dict[str, Any]:
    data, _, flash = SESSIONS[name]
    return {**data, "message": flash} if flash else dict(data)


def engine_on(store: Store | str) -> SessionEngine:
    return SessionEngine(SessionConfig(secret_key=KEY, store=store), clock=FakeClock(READ_AT))


def read_back(store: Store, where: Path, kind: str) -> None:
    """Every session of the fixture reads as written, sync and async; the index lists the
    signed-in one; the lock the old release holds still excludes. Closes the store."""
    fixture = WRITTEN[where]["stores"][kind]
    engine = engine_on(store)
    try:
        read_sync(engine, store, fixture, kind)
    finally:
        store.close()

    async def aread() -> None:
        try:
            for name, cookie in fixture["cookies"].items():
                session = engine.open(cookie, CLIENT)
                await engine.aload(session)
                assert dict(session) == expected(name), f"{kind}: {name} did not aload"
        finally:
            await store.aclose()

    asyncio.run(aread())


def read_sync(engine: SessionEngine, store: Store, fixture: dict[str, Any], kind: str) -> None:
    for name, cookie in fixture["cookies"].items():
        session = engine.open(cookie, CLIENT)
        assert dict(session) == expected(name), f"{kind}: {name} did not read back"
        assert session.user_id == SESSIONS[name][1]
    if store.supports_user_index:
        (listed,) = store.user_sessions(USER)
        signed_in = engine.open(fixture["cookies"]["signed_in"], CLIENT)
        assert listed.handle == signed_in.handle and listed.user == USER
    if fixture["locked"]:
        locked = engine.open(fixture["cookies"][fixture["locked"]], CLIENT)
        with pytest.raises(LockTimeout), engine.lock(locked, ttl=5, wait=0.2):
            pass


# -- the cookie store: nothing at rest, everything in the value ---------------------------
@written_by
def test_cookie_values_read_back(where: Path) -> None:
    engine = engine_on("cookie://")
    for written_as, cookie in WRITTEN[where]["cookies"].items():
        want = expected("signed_in") if written_as.endswith("orjson") else BIG
        assert dict(engine.open(cookie, CLIENT)) == want, written_as


def test_every_current_format_has_a_fixture() -> None:
    """A format version this release writes that no fixture holds fails here: generate
    the fixtures of the new format (and keep the old ones) before releasing it."""
    from sessionkit import serialization
    from sessionkit.stores import base, cookie

    current = {
        "cookie": cookie.PREFIX, "record": serialization.FORMAT_VERSION,
        "document": base.DOCUMENT_VERSION,
    }  # fmt: skip
    assert any(manifest["formats"] == current for manifest in WRITTEN.values()), (
        "a format version changed: add its fixtures with generate.py --out "
        "tests/fixtures/formats/<version> and keep the older ones"
    )
    for manifest in WRITTEN.values():
        assert set(manifest["stores"]) == {"file", "sqlite", "postgresql", "redis", "memcached"}


# -- server-side stores, restored from what they held ---------------------------------------
@written_by
def test_file_store(where: Path, tmp_path: Path) -> None:
    root = tmp_path / "store"
    for name, content in json.loads((where / "file.json").read_text()).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw(content))
    store = open_store(f"file://{root}?fsync=false", clock=FakeClock(READ_AT))
    read_back(store, where, "file")


@written_by
def test_sqlite_store(where: Path, tmp_path: Path) -> None:
    db = tmp_path / "sessions.sqlite3"
    # sqlite3's own "with" commits but does not close (Python 3.13 warns when one is collected)
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        conn.executescript((where / "sqlite.sql").read_text())
    store = open_store(f"sqlite:///{db}", clock=FakeClock(READ_AT))
    read_back(store, where, "sqlite")


@pytest.fixture
def fresh_database(where: Path, postgres_server: servers.Postgres) -> Iterator[str]:
    name = f"fixture_{secrets.token_hex(4)}"
    psql = servers._binary("psql", "/usr/lib/postgresql/*/bin/psql", first="glob")
    base = [psql, "-h", "127.0.0.1", "-p", str(postgres_server.port), "-U", "postgres", "-q"]
    subprocess.run([*base, "-c", f"CREATE DATABASE {name}"], check=True, capture_output=True)
    # a dump from an older pg_dump may carry settings a newer server no longer knows:
    # those lines fail alone, the tables and rows still load (the test then checks them)
    subprocess.run([*base, "-d", name, "-f", str(where / "postgresql.sql")], capture_output=True,
                   check=True, timeout=60)  # fmt: skip
    yield postgres_server.url.rsplit("/", 1)[0] + f"/{name}"
    subprocess.run([*base, "-c", f"DROP DATABASE {name} WITH (FORCE)"], capture_output=True)


@written_by
def test_postgresql_store(where: Path, fresh_database: str) -> None:
    store = open_store(fresh_database, clock=FakeClock(READ_AT))
    read_back(store, where, "postgresql")


@written_by
def test_redis_store(where: Path, redis_server: servers.Server) -> None:
    import redis

    db = 9  # the fixture's keys carry their own prefix; a database of their own besides
    client = redis.Redis(port=redis_server.port, db=db)
    client.flushdb()
    for entry in json.loads((where / "redis.json").read_text()):
        key = raw(entry["key"])
        assert key.startswith(PREFIX.encode())
        if entry["type"] == "hash":  # in the order the server held the fields
            for field, value in entry["fields"]:
                client.hset(key, raw(field), raw(value))
        elif entry["type"] == "set":
            client.sadd(key, *(raw(m) for m in entry["members"]))
        else:
            client.set(key, raw(entry["value"]))
        if entry["pttl"] > 0:
            client.pexpire(key, entry["pttl"])
    store = open_store(f"redis://127.0.0.1:{redis_server.port}/{db}?prefix={PREFIX}")
    try:
        read_back(store, where, "redis")
    finally:
        client.flushdb()
        client.close()


@pytest.fixture
def own_memcached() -> Iterator[servers.Server]:
    """A memcached of this test's own: the shared one may evict the fixture's items while
    other tests of the worker fill it (large-item tests do)."""
    server = servers.memcached_server()
    yield server
    server.close()


@written_by
def test_memcached_store(where: Path, own_memcached: servers.Server) -> None:
    from pymemcache.client.base import Client  # type: ignore[import-untyped]

    memcached_server = own_memcached

    prefix = f"fx{secrets.token_hex(3)}:"  # the fixture's keys, moved into a space of our own
    client = Client(("127.0.0.1", memcached_server.port))
    for key, value in json.loads((where / "memcached.json").read_text()).items():
        assert key.startswith(PREFIX)
        # noreply=False: a noreply set is still in flight when the store, on a connection
        # of its own (another memcached thread), reads the key back
        client.set(prefix + key.removeprefix(PREFIX), raw(value), expire=600, noreply=False)
    client.close()
    url = f"memcached://127.0.0.1:{memcached_server.port}?prefix={prefix}"
    store = open_store(url, clock=FakeClock(READ_AT))
    read_back(store, where, "memcached")
