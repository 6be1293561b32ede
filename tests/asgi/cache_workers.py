"""uvicorn with worker processes on the local cache's test app, and one keep-alive
connection per worker: a connection stays with the worker that accepted it, so every
worker can be asked in turn (tests/asgi/test_cache_workers.py, benchmarks/bench_cache_http.py)."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests import servers

ROOT = Path(__file__).resolve().parents[2]
KEY = "cache-tests-key-0123456789-abcdefghijklmnopqrstuvwxyz"


class Worker:
    """One keep-alive HTTP connection, served by one worker process (``pid``)."""

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.pid = self.get("/stats", None)["pid"]

    def get(self, path: str, cookie: str | None) -> dict[str, Any]:
        """The JSON body; the session cookie the response set, if any, as ``cookie``."""
        headers = {} if cookie is None else {"Cookie": cookie}
        self.connection.request("GET", path, headers=headers)
        response = self.connection.getresponse()
        body: dict[str, Any] = json.loads(response.read())
        for value in response.headers.get_all("set-cookie") or []:
            if value.startswith("session="):
                body["cookie"] = value.split(";", 1)[0]
        if response.status != 200:
            raise AssertionError(f"{path}: {response.status} {body}")
        return body

    def close(self) -> None:
        self.connection.close()


class Uvicorn:
    """``uvicorn tests.asgi.cache_app:app --workers N`` on a free loopback port."""

    def __init__(self, store: str, workers: int, connections: int = 1) -> None:
        self.port = servers.free_port()
        self.connections: dict[int, list[Worker]] = {}  # per worker, ``connections`` of them
        env = {**os.environ, "SESSIONKIT_STORE": store, "SESSIONKIT_SECRET_KEY": KEY,
               "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "adapters"),
                                              os.environ.get("PYTHONPATH", "")])}  # fmt: skip
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "tests.asgi.cache_app:app", "--host",
             "127.0.0.1", "--port", str(self.port), "--workers", str(workers),
             "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.workers: list[Worker] = []
        try:
            self._connect(workers, connections)
        except BaseException:
            self.stop()
            raise

    def _connect(self, workers: int, connections: int) -> None:
        """Open connections until each worker holds ``connections`` (the kernel picks the
        worker that accepts each; the ones beyond that are closed)."""
        deadline = time.monotonic() + 60
        found = self.connections
        while len(found) < workers or any(len(c) < connections for c in found.values()):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"uvicorn: {len(found)} of {workers} workers answered:\n"
                                   + self.output())  # fmt: skip
            try:
                worker = Worker(self.port)
            except (ConnectionError, OSError):
                time.sleep(0.1)
                continue
            held = found.setdefault(worker.pid, [])
            if len(held) < connections:
                held.append(worker)
            else:
                worker.close()
        self.workers = [held[0] for held in found.values()]

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self) -> None:
        for held in self.connections.values():
            for worker in held:
                worker.close()
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.log.close()
