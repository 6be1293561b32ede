"""``sessionkit doctor`` (``sessionkit.doctor.diagnose``) against real servers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from sessionkit import SessionConfig, SessionEngine, open_store
from sessionkit.doctor import Finding, diagnose, skew_finding, version_finding
from sessionkit.stores.base import Store
from sessionkit.testing import Browser
from tests import servers

KEY = "doctor-key-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDE"


@pytest.fixture
def own_redis() -> Iterator[servers.Server]:
    """A Redis of this test's own: the eviction check changes its settings."""
    server = servers.redis_server()
    yield server
    server.close()


def by_check(findings: list[Finding]) -> dict[str, Finding]:
    return {f.check: f for f in findings}


def sign_in_twice(store: Store, user: str) -> list[Browser]:
    engine = SessionEngine(SessionConfig(secret_key=KEY), store=store)
    browsers = [Browser(engine) for _ in range(2)]
    for browser in browsers:
        browser.visit(lambda s: s.bind_user(user))
    return browsers


def test_a_healthy_redis_passes_every_check(own_redis: servers.Server) -> None:
    store = open_store(f"redis://127.0.0.1:{own_redis.port}/0")
    sign_in_twice(store, "ann")
    found = by_check(diagnose(store))
    assert [f.level for f in found.values()] == ["ok"] * 5, found
    assert set(found) == {"connectivity", "version", "eviction", "clock", "user index"}
    assert found["version"].message.startswith("Redis 7.")
    assert found["user index"].message == "2 entries, all pointing at live sessions"
    store.close()


def test_stale_index_entries_are_found_and_fixed(own_redis: servers.Server) -> None:
    store = open_store(f"redis://127.0.0.1:{own_redis.port}/0")
    sign_in_twice(store, "ann")
    raw = redis.Redis(port=own_redis.port)
    (session_key,) = raw.keys("sessionkit:{*}")[:1]
    raw.delete(session_key)  # gone behind the index's back (say, a FLUSH of one key)
    index = by_check(diagnose(store))["user index"]
    assert index.level == "warn" and index.message.startswith("1 of 2 entries point at")
    assert "doctor --fix" in index.message
    counts: list[int] = []
    fixed = by_check(diagnose(store, fix=True, progress=counts.append))["user index"]
    assert fixed == Finding("ok", "user index", "removed 1 stale of 2 entries")
    assert counts == [2]
    again = by_check(diagnose(store))["user index"]
    assert again.message == "1 entries, all pointing at live sessions"
    raw.close()
    store.close()


def test_an_eviction_policy_that_can_drop_sessions_is_a_warning(
    own_redis: servers.Server,
) -> None:
    raw = redis.Redis(port=own_redis.port)
    raw.config_set("maxmemory", "100mb")
    raw.config_set("maxmemory-policy", "allkeys-lru")
    store = open_store(f"redis://127.0.0.1:{own_redis.port}/0")
    eviction = by_check(diagnose(store))["eviction"]
    assert eviction.level == "warn" and "allkeys-lru" in eviction.message
    assert "set noeviction" in eviction.message
    raw.config_set("maxmemory-policy", "noeviction")
    assert by_check(diagnose(store))["eviction"].level == "ok"
    raw.close()
    store.close()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_sql_stores_report_version_clock_and_index(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path / 's.db'}" if kind == "sqlite"
        else request.getfixturevalue("postgres_server").url
    )  # fmt: skip
    store = open_store(url)
    found = by_check(diagnose(store))
    assert all(f.level == "ok" for f in found.values()), found
    expected = {"connectivity", "version", "user index"} | (
        {"clock"} if kind != "sqlite" else set()
    )
    assert set(found) == expected
    assert found["version"].message.startswith("SQLite 3." if kind == "sqlite" else "PostgreSQL ")
    store.close()


def test_versions_and_clocks_are_judged() -> None:
    assert version_finding("6.2.1", (7, 0), "Redis").level == "error"
    assert version_finding("SQLite 3.40.1", (3, 38), "SQLite").level == "ok"
    assert version_finding(None, (12,), "PostgreSQL").level == "warn"
    assert skew_finding(1000.0, 1000.0, 1000.1).level == "ok"
    late = skew_finding(1005.0, 1000.0, 1000.1)
    assert late.level == "warn" and "+5.0 s" in late.message and "NTP" in late.message


def test_the_command_prints_one_line_per_finding_and_fails_when_down(
    own_redis: servers.Server,
) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sessionkit.cli", "doctor", *args], capture_output=True,
            text=True, env={**os.environ},
        )  # fmt: skip

    up = run(f"redis://127.0.0.1:{own_redis.port}/0")
    assert up.returncode == 0, up.stderr
    lines = up.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["ok"] * 5, lines
    down = run(f"redis://127.0.0.1:{servers.free_port()}/0?socket_timeout=0.5")
    assert down.returncode == 1 and down.stdout.startswith("error connectivity: ")
    assert "Traceback" not in down.stderr
