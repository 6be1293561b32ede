"""Upgrades log nobody out: what an earlier release wrote (``tests/fixtures/formats``, made by
``generate.py`` with the release in ``manifest.json``) is restored into a fresh store and
read by this release, sync and async: each session's data, flash message and user, the
user's index, and a route lock the old release still holds. docs/compatibility.md is the
policy these tests keep."""

from __future__ import annotations

import asyncio
import base64
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

MANIFEST: dict[str, Any] = json.loads((HERE / "manifest.json").read_text())


def raw(text: str) -> bytes:
    return base64.b64decode(text)


def expected(name: str) -> dict[str, Any]:
    data, _, flash = SESSIONS[name]
    return {**data, "message": flash} if flash else dict(data)


def engine_on(store: Store | str) -> SessionEngine:
    return SessionEngine(SessionConfig(secret_key=KEY, store=store), clock=FakeClock(READ_AT))


def read_back(store: Store, kind: str) -> None:
    """Every session of the fixture reads as written, sync and async; the index lists the
    signed-in one; the lock the old release holds still excludes. Closes the store."""
    fixture = MANIFEST["stores"][kind]
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
@pytest.mark.parametrize("written_as", ["v2-orjson", "v2-stdlib", "v1"])
def test_cookie_values_read_back(written_as: str) -> None:
    engine = engine_on("cookie://")
    want = BIG if written_as != "v2-orjson" else expected("signed_in")
    session = engine.open(MANIFEST["cookies"][written_as], CLIENT)
    assert dict(session) == want


def test_every_current_format_has_a_fixture() -> None:
    """A format version this release writes that no fixture holds fails here: generate
    the fixtures of the new format (and keep the old ones) before releasing it."""
    from sessionkit import serialization
    from sessionkit.stores import base, cookie

    written = MANIFEST["formats"]
    assert written == {
        "cookie": cookie.PREFIX, "record": serialization.FORMAT_VERSION,
        "document": base.DOCUMENT_VERSION,
    }, "a format changed: regenerate into a new fixtures directory and keep this one"  # fmt: skip
    assert set(MANIFEST["stores"]) == {"file", "sqlite", "postgresql", "redis", "memcached"}


# -- server-side stores, restored from what they held ---------------------------------------
def test_file_store(tmp_path: Path) -> None:
    root = tmp_path / "store"
    for name, content in json.loads((HERE / "file.json").read_text()).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw(content))
    store = open_store(f"file://{root}?fsync=false", clock=FakeClock(READ_AT))
    read_back(store, "file")


def test_sqlite_store(tmp_path: Path) -> None:
    db = tmp_path / "sessions.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.executescript((HERE / "sqlite.sql").read_text())
    store = open_store(f"sqlite:///{db}", clock=FakeClock(READ_AT))
    read_back(store, "sqlite")


@pytest.fixture
def fresh_database(postgres_server: servers.Postgres) -> Iterator[str]:
    name = f"fixture_{secrets.token_hex(4)}"
    psql = servers._binary("psql", "/usr/lib/postgresql/*/bin/psql", first="glob")
    base = [psql, "-h", "127.0.0.1", "-p", str(postgres_server.port), "-U", "postgres", "-q"]
    subprocess.run([*base, "-c", f"CREATE DATABASE {name}"], check=True, capture_output=True)
    # a dump from an older pg_dump may carry settings a newer server no longer knows:
    # those lines fail alone, the tables and rows still load (the test then checks them)
    subprocess.run([*base, "-d", name, "-f", str(HERE / "postgresql.sql")], capture_output=True,
                   check=True, timeout=60)  # fmt: skip
    yield postgres_server.url.rsplit("/", 1)[0] + f"/{name}"
    subprocess.run([*base, "-c", f"DROP DATABASE {name} WITH (FORCE)"], capture_output=True)


def test_postgresql_store(fresh_database: str) -> None:
    store = open_store(fresh_database, clock=FakeClock(READ_AT))
    read_back(store, "postgresql")


def test_redis_store(redis_server: servers.Server) -> None:
    import redis

    db = 9  # the fixture's keys carry their own prefix; a database of their own besides
    client = redis.Redis(port=redis_server.port, db=db)
    client.flushdb()
    for entry in json.loads((HERE / "redis.json").read_text()):
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
        read_back(store, "redis")
    finally:
        client.flushdb()
        client.close()


def test_memcached_store(memcached_server: servers.Server) -> None:
    from pymemcache.client.base import Client  # type: ignore[import-untyped]

    prefix = f"fx{secrets.token_hex(3)}:"  # the fixture's keys, moved into a space of our own
    client = Client(("127.0.0.1", memcached_server.port))
    for key, value in json.loads((HERE / "memcached.json").read_text()).items():
        assert key.startswith(PREFIX)
        client.set(prefix + key.removeprefix(PREFIX), raw(value), expire=600)
    client.close()
    url = f"memcached://127.0.0.1:{memcached_server.port}?prefix={prefix}"
    store = open_store(url, clock=FakeClock(READ_AT))
    read_back(store, "memcached")
