"""engine.health() / ahealth() and ``sessionkit health`` against real servers, up and down."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sessionkit import Health, SessionConfig, SessionEngine
from tests import servers
from tests.conftest import store_url

KEY = "health-key-0123456789-abcdefghijklmnopqrstuvwxyz-ABCD"
VERSIONED = {  # what each server reports as its version
    "redis": r"^7\.\d+\.\d+", "postgresql": r"^\d+(\.\d+)?", "sqlite": r"^SQLite 3\.\d+",
}  # fmt: skip


def engine_on(url: str) -> SessionEngine:
    return SessionEngine(SessionConfig(secret_key=KEY, store=url))


def url_for(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "postgresql":
        return request.getfixturevalue("postgres_server").url  # type: ignore[no-any-return]
    if kind == "redis-cached":
        return store_url("redis", tmp_path, request) + "&cache=on"
    return store_url(kind, tmp_path, request)


@pytest.mark.parametrize(
    "kind", ["memory", "file", "sqlite", "postgresql", "redis", "redis-cached", "memcached"]
)
def test_a_reachable_store_is_ok_with_its_round_trip_and_version(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    engine = engine_on(url_for(kind, tmp_path, request))
    try:
        found = engine.health()
        again = asyncio.run(engine.ahealth())
    finally:
        asyncio.run(engine.store.aclose())
        engine.store.close()
    for health in (found, again):
        assert health.ok and health.error is None, health
        assert health.latency_ms is not None and 0 <= health.latency_ms < 5000
        pattern = VERSIONED.get(kind.removesuffix("-cached"))
        if pattern is not None:
            assert health.server_version is not None
            assert re.match(pattern, health.server_version), health.server_version
    assert json.loads(json.dumps(found.as_dict()))["ok"] is True


def test_the_probe_creates_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    engine = engine_on(url)
    assert engine.health().ok
    assert list(engine.store.scan()) == []  # a read of a session that cannot exist
    engine.store.close()


def test_the_cookie_store_has_no_server_and_is_always_ok() -> None:
    found = engine_on("cookie://").health()
    assert found == Health(True, "cookie://")


@pytest.mark.parametrize("kind", ["redis", "postgresql", "memcached"])
def test_a_store_that_is_down_is_reported_not_raised(kind: str) -> None:
    port = servers.free_port()  # nothing listens there
    url = {
        "redis": f"redis://127.0.0.1:{port}/0?socket_timeout=0.5",
        "postgresql": f"postgresql://app:s3cret@127.0.0.1:{port}/db?connect_timeout=1",
        "memcached": f"memcached://127.0.0.1:{port}?timeout=0.5",
    }[kind]
    engine = engine_on(url)
    try:
        for found in (engine.health(), asyncio.run(engine.ahealth())):
            assert not found.ok and found.latency_ms is None
            assert found.error is not None and str(port) in found.error
            assert "s3cret" not in found.error and "s3cret" not in found.store
    finally:
        asyncio.run(engine.store.aclose())
        engine.store.close()


def test_the_health_command_exits_1_when_the_store_is_down(
    redis_server: servers.Server,
) -> None:
    def run(url: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sessionkit.cli", "health", url], capture_output=True,
            text=True, env={**os.environ},
        )  # fmt: skip

    up = run(f"redis://127.0.0.1:{redis_server.port}/0")
    assert up.returncode == 0, up.stderr
    assert re.match(r"ok: redis://127\.0\.0\.1:\d+/0 answered in [\d.]+ ms \(7\.", up.stdout)
    down = run(f"redis://127.0.0.1:{servers.free_port()}/0?socket_timeout=0.5")
    assert down.returncode == 1 and down.stderr.startswith("down: ")
    assert "Traceback" not in down.stderr


def test_the_error_says_nothing_of_a_session() -> None:
    """A probe touches no session: the store's message loses "the session was left
    unchanged" (the rest, the masked URL, the cause and the advice, stays)."""
    port = servers.free_port()
    found = engine_on(f"redis://127.0.0.1:{port}/0?socket_timeout=0.5").health()
    assert found.error is not None and found.error.endswith("running and reachable.")
    assert "session was left" not in found.error and f"127.0.0.1:{port}" in found.error


def test_the_health_command_probes_the_fallback_and_shows_the_mode(
    redis_server: servers.Server, tmp_path: Path
) -> None:
    """``--fallback`` (the app's ``fallback`` setting): both stores probed, the mode shown;
    the primary down is still exit 1 while the fallback serves reads."""
    replica = f"sqlite:///{tmp_path / 'replica.db'}"

    def run(url: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sessionkit.cli", "health", url, "--fallback", replica],
            capture_output=True, text=True, env={**os.environ},
        )  # fmt: skip

    up = run(f"redis://127.0.0.1:{redis_server.port}/0")
    assert up.returncode == 0, up.stderr
    lines = up.stdout.splitlines()
    assert re.match(r"ok: redis://127\.0\.0\.1:\d+/0 answered in [\d.]+ ms", lines[0])
    assert re.match(r"fallback ok: sqlite:///.*replica\.db answered in [\d.]+ ms", lines[1])
    assert lines[2] == "mode: primary (the fallback stands by)"
    down = run(f"redis://127.0.0.1:{servers.free_port()}/0?socket_timeout=0.5")
    assert down.returncode == 1
    assert any(line.startswith("down: session store redis://") for line in down.stderr.splitlines())
    assert down.stdout.startswith("fallback ok: sqlite:///")
    assert "mode: read_only: sessions are read from the fallback" in down.stdout
    # nothing about serving requests (a switch over's log line): the command serves none
    assert "refusing changes" not in down.stderr and "trying it every" not in down.stderr
    as_json = subprocess.run(
        [sys.executable, "-m", "sessionkit.cli", "health", "--json",
         f"redis://127.0.0.1:{servers.free_port()}/0?socket_timeout=0.5"],
        capture_output=True, text=True, env={**os.environ, "SESSIONKIT_FALLBACK": replica},
    )  # fmt: skip
    found = json.loads(as_json.stdout)
    assert as_json.returncode == 1 and found["ok"] and found["mode"] == "read_only"
    assert found["fallback"]["ok"] and found["fallback"]["store"].endswith("replica.db")
