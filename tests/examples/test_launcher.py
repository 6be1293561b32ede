"""``make demo``'s set-up path: a fresh data folder is set up, three servers start, answer,
and stop; a second run reuses the key; a busy port is refused with a clear message."""

from __future__ import annotations

import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

from tests.examples.demo import PASSWORD, ROOT, USER, start_demo
from tests.servers import free_port


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "example_projects.run", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip


def test_check_sets_up_serves_and_stops(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ports = ",".join(str(free_port()) for _ in range(3))
    first = run("--check", "--data", str(data), "--ports", ports)
    assert first.returncode == 0, first.stdout + first.stderr
    for port in ports.split(","):
        assert f"http://127.0.0.1:{port}/" in first.stdout
    assert f"'{USER}'" in first.stdout and f"'{PASSWORD}'" in first.stdout
    assert "Ready." in first.stdout
    key = data / "secret_key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert (data / "shop.sqlite3").exists() and (data / "sessions.sqlite3").exists()
    secret = key.read_text()
    for port in ports.split(","):  # every server is gone
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", int(port))) != 0

    second = run("--check", "--data", str(data), "--ports", ports)
    assert second.returncode == 0, second.stdout + second.stderr
    assert key.read_text() == secret  # made once, then kept


def test_a_busy_port_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        result = run("--check", "--data", str(tmp_path), "--ports",
                     f"{free_port()},{busy},{free_port()}")  # fmt: skip
    assert result.returncode == 1
    assert f"[{busy}]" in result.stderr and "--ports" in result.stderr
    assert not (tmp_path / "secret_key").exists()


def test_an_unreachable_store_is_named(tmp_path: Path) -> None:
    dead = free_port()
    result = run("--check", "--data", str(tmp_path), "--store", f"redis://127.0.0.1:{dead}/0",
                 "--ports", ",".join(str(free_port()) for _ in range(3)))  # fmt: skip
    assert result.returncode == 1
    assert "unreachable" in result.stderr and f"127.0.0.1:{dead}" in result.stderr


def test_ctrl_c_stops_the_three_servers(tmp_path: Path) -> None:
    demo = start_demo(tmp_path / "data")
    ports = [
        int(url.rsplit(":", 1)[1].strip("/")) for url in (demo.shop, demo.notes, demo.dashboard)
    ]
    demo.process.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal sends
    assert demo.process.wait(timeout=20) == 0
    assert demo.stop() == 0
    assert "Stopping the three servers" in "".join(demo.output)
    for port in ports:
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0
