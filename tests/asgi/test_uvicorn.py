"""The FastAPI test app under a real uvicorn, in worker processes: a session written
through one worker is read through the others (Redis, and the encrypted cookie), and the
route lock holds across processes."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests import servers
from tests.asgi.apps import KEY

ROOT = Path(__file__).resolve().parents[2]


class Uvicorn:
    """``uvicorn tests.asgi.fastapi_app:app`` on a free loopback port, its output in a file
    (shown if it fails to come up)."""

    def __init__(self, store: str | None, workers: int) -> None:
        self.workers = workers
        port = servers.free_port()
        env = {**os.environ, "SESSIONKIT_SECRET_KEY": KEY}
        if store is not None:
            env["SESSIONKIT_STORE"] = store
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "tests.asgi.fastapi_app:app", "--host",
             "127.0.0.1", "--port", str(port), "--workers", str(workers),
             "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                httpx.get(f"{self.base}/read", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        output = self.output()
        self.stop()
        raise RuntimeError(f"uvicorn did not come up:\n{output}")

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.log.close()


@pytest.fixture(scope="module")
def redis_uvicorn(redis_server: servers.Server) -> Iterator[Uvicorn]:
    server = Uvicorn(f"redis://127.0.0.1:{redis_server.port}/0", 4)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cookie_uvicorn() -> Iterator[Uvicorn]:
    server = Uvicorn(None, 2)
    yield server
    server.stop()


@pytest.fixture(params=["redis", "cookie"])
def server(request: pytest.FixtureRequest) -> tuple[str, int]:
    running: Uvicorn = request.getfixturevalue(f"{request.param}_uvicorn")
    return running.base, running.workers


def test_a_session_written_in_one_worker_is_read_in_the_others(server: tuple[str, int]) -> None:
    base, workers = server
    with httpx.Client(base_url=base) as http:
        http.get("/write", params={"value": "shared"}).raise_for_status()
        cookie = http.cookies["session"]
    seen: set[int] = set()
    for _ in range(200):  # a new connection each time, so the kernel picks a worker
        body = httpx.get(f"{base}/read", cookies={"session": cookie}, timeout=5).json()
        assert body["value"] == "shared"
        seen.add(body["pid"])
        if len(seen) == workers:
            break
    assert len(seen) >= 2, seen


def test_the_route_lock_holds_across_worker_processes(redis_uvicorn: Uvicorn) -> None:
    base = redis_uvicorn.base
    with httpx.Client(base_url=base) as http:
        http.get("/write", params={"value": "x"}).raise_for_status()
        cookie = http.cookies["session"]

    def bump(_: int) -> int:
        response = httpx.post(f"{base}/count", cookies={"session": cookie}, timeout=30)
        response.raise_for_status()
        return int(response.json()["n"])

    with ThreadPoolExecutor(10) as pool:
        counts = sorted(pool.map(bump, range(30)))
    assert counts == list(range(1, 31))
