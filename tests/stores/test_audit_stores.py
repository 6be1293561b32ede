"""The audit trail in the stores that keep one, against the real servers: SQLite and
PostgreSQL (the ``<table>_audit`` table), Redis (capped streams), and memory; the
``sessionkit audit`` / ``init`` / ``gc`` / ``erase`` commands on a real SQLite file."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from sessionkit import ClientInfo, SessionConfig, SessionEngine, Store, open_store
from sessionkit.audit import AuditEntry
from sessionkit.testing import Browser
from tests.conftest import store_url

KEY = secrets.token_urlsafe(48)
LAPTOP = ClientInfo("198.51.100.9", "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Firefox/120.0")


@pytest.fixture(params=["memory", "sqlite", "postgresql", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_server").url + f"?table=t{secrets.token_hex(6)}"
    else:  # Redis: a key prefix of its own (the server is shared by the run)
        url = store_url(request.param, tmp_path, request)
    opened = open_store(url)
    yield opened
    opened.close()


def entry(at: float, kind: str = "login", user: str | None = "ann", **more: object) -> AuditEntry:
    fields: dict[str, object] = {
        "handle": "0123456789abcdef", "device": "Firefox on Linux",
        "network": "198.51.100.0/24", "actor": "user", "reason": "",
    }  # fmt: skip
    fields.update(more)
    return AuditEntry(at, kind, user=user, **fields)  # type: ignore[arg-type]


def test_entries_are_written_read_back_and_kept_apart_by_user(store: Store) -> None:
    sink = store.audit_sink()
    assert sink is not None and store.audit_sink() is sink
    now = time.time()
    written = [
        entry(now - 3, "login"), entry(now - 2, "revoke", actor="staff:root"),
        entry(now - 1, "logout"), entry(now - 2, "login", user="bob"),
        entry(now - 1, "cookie_rejected", user=None, handle=None, reason="forged"),
    ]  # fmt: skip
    sink.write(written, retention=3600, max_entries=1000)
    assert sink.entries("ann") == written[:3]  # oldest first, every field intact
    assert sink.entries("bob") == [written[3]]
    assert sink.entries(None) == [written[4]]
    assert sink.entries("ann", limit=2) == written[1:3]  # the newest two
    assert sink.entries("ann", since=now - 1.5) == [written[2]]
    assert sink.entries("nobody") == []


@pytest.mark.parametrize("policy", ["pseudonymise", "delete"])
def test_erasure_through_the_engine(store: Store, policy: str) -> None:
    config = SessionConfig(secret_key=KEY, audit="store", audit_erasure=policy)  # type: ignore[arg-type]
    engine = SessionEngine(config, store=store)
    for user in ("ann", "ann", "bob"):
        Browser(engine, client=LAPTOP).visit(
            lambda s, u=user: (s.__setitem__("a", 1), s.bind_user(u))
        )  # type: ignore[misc]
    document = engine.export_user("ann")
    assert [e["kind"] for e in document["audit"]] == ["login", "login"]
    assert {e["handle"] for e in document["audit"]} == {s["handle"] for s in document["sessions"]}
    assert engine.erase_user("ann") == 2
    assert engine.export_user("ann") == {**engine.export_user("ann"), "sessions": [], "audit": []}
    sink = store.audit_sink()
    assert sink is not None
    pseudonym = engine.audit.pseudonym("ann")  # type: ignore[union-attr]
    kept = sink.entries(pseudonym)
    if policy == "pseudonymise":
        assert sorted(e.kind for e in kept) == ["erasure", "login", "login", "revoke", "revoke"]
        assert {(e.device, e.network) for e in kept} == {(None, None)}
    else:
        assert kept == [] and [e.kind for e in sink.entries(None)] == ["erasure"]
    assert [e.kind for e in engine.audit_entries("bob")] == ["login"]
    assert engine.audit is not None
    engine.audit.close()


def test_a_login_with_the_trail_on_costs_the_request_no_store_round_trip(store: Store) -> None:
    """The entry is queued; the writer thread writes it. The request's plan is unchanged."""
    engine = SessionEngine(SessionConfig(secret_key=KEY, audit="store"), store=store)
    browser = Browser(engine, client=LAPTOP)
    visit = browser.visit(lambda s: s.bind_user("ann"))
    assert visit.saved
    (found,) = engine.audit_entries("ann")
    assert (found.kind, found.handle, found.device) == ("login", visit.session.handle,
                                                        "Firefox on Linux")  # fmt: skip
    assert engine.audit is not None
    engine.audit.close()


# -- SQL ----------------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgresql"])
def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return request.getfixturevalue("postgres_server").url + f"?table=t{secrets.token_hex(6)}"
    return f"sqlite:///{tmp_path / 'sessions.db'}"


def test_sql_init_creates_the_audit_table_and_trim_is_chunked(sql_url: str) -> None:
    store = open_store(sql_url, sweep_chunk=7)
    try:
        store.create_schema()
        name = store.table.name + "_audit"  # type: ignore[attr-defined]
        inspector = sa.inspect(store._engine)  # type: ignore[attr-defined]
        assert inspector.has_table(name)
        assert {ix["name"] for ix in inspector.get_indexes(name)} == {
            f"ix_{name}_user",
            f"ix_{name}_at",
        }
        sink = store.audit_sink()
        assert sink is not None
        now = time.time()
        sink.write([entry(now - 1000 + i) for i in range(20)] + [entry(now)],
                   retention=3600, max_entries=10)  # fmt: skip
        assert sink.trim(now - 500, chunk=5) == 5  # one bounded chunk (the writer's trim)
        assert sink.trim(now - 500) == 15  # all of them, in chunks of sweep_chunk (gc)
        assert [e.at for e in sink.entries("ann")] == [now]
    finally:
        store.close()


def test_sql_the_writer_trims_past_the_retention_on_its_schedule(sql_url: str) -> None:
    store = open_store(sql_url)
    try:
        sink = store.audit_sink()
        assert sink is not None
        sink.write([entry(time.time() - 7200)], retention=3600, max_entries=10)
        engine = SessionEngine(
            SessionConfig(secret_key=KEY, audit="store", audit_retention=3600), store=store
        )
        Browser(engine).visit(lambda s: s.bind_user("ann"))
        assert engine.audit is not None and engine.audit.flush()
        assert [e.kind for e in sink.entries("ann")] == ["login"]  # the old row is gone
        engine.audit.close()
    finally:
        store.close()


# -- Redis ----------------------------------------------------------------------------------
@pytest.fixture
def redis_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opened = open_store(store_url("redis", tmp_path, request))
    yield opened
    opened.close()


def test_redis_streams_are_capped_trimmed_by_time_and_expire(redis_store: Store) -> None:
    sink = redis_store.audit_sink()
    client = redis_store._client()  # type: ignore[attr-defined]
    key = sink.key("ann")  # type: ignore[union-attr]
    assert "ann" not in key  # user keys never appear in key names
    now = time.time()
    for _ in range(4):
        sink.write([entry(now)] * 500, retention=3600, max_entries=200)  # type: ignore[union-attr]
    length = client.xlen(key)
    assert 200 <= length < 400  # MAXLEN ~ 200: about the cap, never the 2000 written
    assert 3500_000 < client.pttl(key) <= 3600_000  # PEXPIRE: an idle stream goes
    time.sleep(1.1)
    sink.write([entry(time.time())], retention=1, max_entries=200)  # type: ignore[union-attr]
    assert client.xlen(key) == 1  # XTRIM MINID: what is past the retention is gone


def test_redis_reads_filter_each_entry_by_its_time(redis_store: Store) -> None:
    engine = SessionEngine(
        SessionConfig(secret_key=KEY, audit="store", audit_retention=3600), store=redis_store
    )
    sink = redis_store.audit_sink()
    sink.write([entry(time.time() - 7200), entry(time.time())], retention=86400, max_entries=9)  # type: ignore[union-attr]
    assert len(sink.entries("ann")) == 2  # type: ignore[union-attr]
    assert len(engine.audit_entries("ann")) == 1  # past the engine's retention: not shown
    assert engine.audit is not None
    engine.audit.close()


# -- the commands ---------------------------------------------------------------------------
def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONKIT_")}
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-m", "sessionkit.cli", *args], capture_output=True, text=True,
        env=environ,
    )  # fmt: skip


def test_the_commands_on_a_real_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert run("init", url).returncode == 0
    store = open_store(url)
    engine = SessionEngine(SessionConfig(secret_key=KEY, audit="store"), store=store)
    Browser(engine, client=LAPTOP).visit(lambda s: s.bind_user("ann"))
    assert engine.audit is not None
    engine.audit.close()
    store.audit_sink().write([entry(time.time() - 86400 * 100)], retention=1e9, max_entries=9)  # type: ignore[union-attr]
    store.close()

    shown = run("audit", url, "--user", "ann")
    assert shown.returncode == 0 and "login" in shown.stdout and "Firefox on Linux" in shown.stdout
    lines = [
        json.loads(line)
        for line in run("audit", url, "--user", "ann", "--json").stdout.splitlines()
    ]
    assert [line["kind"] for line in lines] == ["login", "login"]
    recent = run("audit", url, "--user", "ann", "--json", "--since", "30d").stdout.splitlines()
    assert len(recent) == 1
    assert "give --user" in run("audit", url).stderr

    swept = run("gc", url, "--audit-retention", "90d")
    assert "removed 1 audit entry older than the retention" in swept.stdout
    assert len(run("audit", url, "--user", "ann", "--json").stdout.splitlines()) == 1

    revoked = run(
        "revoke", url, "--user", "ann", SESSIONKIT_AUDIT="store", SESSIONKIT_SECRET_KEY=KEY
    )
    assert "revoked 1 session" in revoked.stdout
    last = json.loads(run("audit", url, "--user", "ann", "--json").stdout.splitlines()[-1])
    assert (last["kind"], last["actor"]) == ("revoke", "cli")

    exported = json.loads(run("export", url, "--user", "ann", SESSIONKIT_SECRET_KEY=KEY).stdout)
    assert [e["kind"] for e in exported["audit"]] == ["login", "revoke"]
    assert run("erase", url, "--user", "ann", "--yes", SESSIONKIT_SECRET_KEY=KEY).returncode == 0
    after = json.loads(run("export", url, "--user", "ann", SESSIONKIT_SECRET_KEY=KEY).stdout)
    assert after["sessions"] == [] and after["audit"] == []
    assert "no audit entries for 'ann'" in run("audit", url, "--user", "ann").stdout


def test_redis_cluster_streams_across_slots(redis_cluster: list[object]) -> None:
    """Each user's stream in its own slot: the write pipeline spans nodes."""
    nodes = ",".join(f"127.0.0.1:{n.port}" for n in redis_cluster)  # type: ignore[attr-defined]
    store = open_store(f"redis+cluster://{nodes}?socket_timeout=10&prefix=a{secrets.token_hex(6)}:")
    try:
        engine = SessionEngine(SessionConfig(secret_key=KEY, audit="store"), store=store)
        users = [f"user-{n}" for n in range(8)]
        for user in users:
            Browser(engine, client=LAPTOP).visit(lambda s, u=user: s.bind_user(u))  # type: ignore[misc]
        for user in users:
            assert [e.kind for e in engine.audit_entries(user)] == ["login"]
        assert engine.erase_user("user-3") == 1
        assert engine.export_user("user-3")["audit"] == []
        pseudonym = engine.audit.pseudonym("user-3")  # type: ignore[union-attr]
        assert [e.kind for e in engine.audit_entries(pseudonym)] == ["login", "revoke", "erasure"]
        engine.audit.close()  # type: ignore[union-attr]
    finally:
        store.close()
