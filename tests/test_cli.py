from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sessionkit import MemoryStore, SessionConfig
from sessionkit.cli import age_histogram, build_group
from sessionkit.client import ClientInfo
from sessionkit.testing import Browser, FakeClock
from tests.conftest import make_engine


def test_keygen_prints_a_key_the_config_accepts() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "sessionkit.cli", "keygen"], capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    key = out.stdout.strip()
    assert len(key) == 64
    assert SessionConfig(secret_key=key).secret_keys == (key.encode(),)


def test_keygen_refuses_short_keys() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "sessionkit.cli", "keygen", "--bytes", "8"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 2 and "Traceback" not in out.stderr


# -- store commands, through the adapters' entry point (a store the app already holds) ----


class KeptOpen(MemoryStore):
    """The commands close the store when done; the test keeps looking at it."""

    def close(self) -> None:
        pass


def populated(clock: FakeClock) -> tuple[KeptOpen, list[Browser]]:
    store = KeptOpen(clock=clock)
    engine = make_engine(clock, store=store)
    browsers = [Browser(engine) for _ in range(4)]
    browsers[0].visit(lambda s: s.bind_user("alice"))
    browsers[1].visit(lambda s: s.bind_user("alice"))
    browsers[2].visit(lambda s: s.bind_user("bob"))
    browsers[3].visit(lambda s: s.__setitem__("cart", [1]))
    return store, browsers


def invoke(store: MemoryStore, *args: str) -> Any:
    return CliRunner().invoke(build_group(lambda: store), list(args))


def test_list_shows_handles_never_ids(clock: FakeClock) -> None:
    store, browsers = populated(clock)
    result = invoke(store, "list", "--user", "alice")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 2 and all("created" in line for line in lines)
    assert all("Chrome on Linux" in line for line in lines)  # the testing Browser's agent
    for browser in browsers:
        assert browser.cookie is not None  # each holds a live session whose ID must not show
        assert browser.cookie.partition(".")[0] not in result.output
    rows = json.loads(invoke(store, "list", "--user", "alice", "--json").output)
    assert {len(row["handle"]) for row in rows} == {16}
    assert {row["device"] for row in rows} == {"Chrome on Linux"}


def test_revoke_a_user_or_one_handle(clock: FakeClock) -> None:
    store, browsers = populated(clock)
    rows = json.loads(invoke(store, "list", "--user", "alice", "--json").output)
    one = invoke(store, "revoke", "--user", "alice", "--handle", rows[0]["handle"])
    assert one.exit_code == 0 and "revoked session" in one.output
    assert len(store.user_sessions("alice")) == 1
    missing = invoke(store, "revoke", "--user", "alice", "--handle", "0" * 16)
    assert missing.exit_code == 1 and "no session" in missing.output
    everything = invoke(store, "revoke", "--user", "bob")
    assert everything.exit_code == 0 and "revoked 1 session of user 'bob'" in everything.output
    assert browsers[2].visit(lambda s: s.user_id).result is None


def test_stats_counts_by_age(clock: FakeClock) -> None:
    store, _ = populated(clock)
    report = json.loads(invoke(store, "stats", "--json").output)
    assert report["sessions"] == 4 and report["users"] == 2
    assert sum(report["by_age"].values()) == 4
    text = invoke(store, "stats").output
    assert "4 sessions, 2 signed-in users" in text
    assert report["caches"] is None and "local caches" not in text  # no store a cache fronts


def test_age_histogram_buckets() -> None:
    now = 1_000_000.0
    counts = age_histogram(iter([now - 10, now - 7200, now - 3 * 86400, now - 90 * 86400]), now)
    assert list(counts.values()) == [1, 1, 1, 0, 1]


def test_gc_sweeps_expired_with_progress(clock: FakeClock) -> None:
    store, _ = populated(clock)
    clock.advance(30 * 86400)
    result = invoke(store, "gc")
    assert result.exit_code == 0
    assert "removed 4 so far" in result.output and "removed 4 expired sessions" in result.output
    assert len(store) == 0
    assert invoke(store, "gc", "--quiet").output == "removed 0 expired sessions\n"


def test_counts_are_singular_for_one(clock: FakeClock) -> None:
    store = KeptOpen(clock=clock)
    Browser(make_engine(clock, store=store)).visit(lambda s: s.bind_user("bob"))
    assert "1 session, 1 signed-in user\n" in invoke(store, "stats").output
    clock.advance(30 * 86400)
    assert invoke(store, "gc", "--quiet").output == "removed 1 expired session\n"


def test_gc_on_a_terminal_counts_one_in_the_singular(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The progress line a terminal sees ("1 sessions" was one of issue 14's)."""
    store = KeptOpen(clock=clock)
    Browser(make_engine(clock, store=store)).visit(lambda s: s.bind_user("bob"))
    clock.advance(30 * 86400)
    import sessionkit.cli

    class Terminal:  # what gc asks sys: is stdout a terminal?
        stdout = type("TTY", (), {"isatty": staticmethod(lambda: True)})()
        stderr = sys.stderr

    monkeypatch.setattr(sessionkit.cli, "sys", Terminal)
    output = CliRunner().invoke(build_group(lambda: store), ["gc"]).output
    assert output == "\rremoved 1 expired session so far...\nremoved 1 expired session\n"


def test_list_lines_up_the_device_column(clock: FakeClock) -> None:
    store = KeptOpen(clock=clock)
    engine = make_engine(clock, store=store)
    Browser(engine).visit(lambda s: s.bind_user("alice"))
    curl = Browser(engine, client=ClientInfo("198.51.100.2", "curl/8.0"))
    curl.visit(lambda s: s.bind_user("alice"))
    lines = invoke(store, "list", "--user", "alice").output.strip().splitlines()
    assert len(lines) == 2
    assert len({line.index("created") for line in lines}) == 1, lines


def test_init_on_a_store_with_nothing_to_create(clock: FakeClock) -> None:
    store, _ = populated(clock)
    assert "nothing to create" in invoke(store, "init").output


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sessionkit.cli", *args], capture_output=True, text=True,
        env=env,
    )  # fmt: skip


def test_errors_are_one_line_and_a_nonzero_exit() -> None:
    unknown = run_cli("stats", "nope://user:hunter2@host")
    assert unknown.returncode == 1
    assert unknown.stderr.count("\n") == 1 and "Traceback" not in unknown.stderr
    assert "hunter2" not in unknown.stderr and "available:" in unknown.stderr
    unsupported = run_cli("list", "cookie://", "--user", "alice")
    assert unsupported.returncode == 1 and "per-user index" in unsupported.stderr
    assert "Traceback" not in unsupported.stderr


def test_store_url_from_the_environment(tmp_path: Path) -> None:
    url = f"file://{tmp_path}"
    done = run_cli("stats", "--json", env={**os.environ, "SESSIONKIT_STORE": url})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["sessions"] == 0


def test_a_memory_store_url_is_refused_not_reported_empty() -> None:
    """A fresh process's memory:// store is always empty: reporting "0 sessions" would lie."""
    done = run_cli("stats", "memory://")
    assert done.returncode == 1 and "memory:// lives inside one process" in done.stderr
    assert "0 sessions" not in done.stdout
