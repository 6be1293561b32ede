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

    def __init__(self, store: str, workers: int) -> None:
        self.port = servers.free_port()
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
            self._connect(workers)
        except BaseException:
            self.stop()
            raise

    def _connect(self, workers: int) -> None:
        """Open connections until each worker holds one (the kernel picks the worker that
        accepts each; the connections that landed twice are closed)."""
        deadline = time.monotonic() + 60
        found: dict[int, Worker] = {}
        while len(found) < workers:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"uvicorn: {len(found)} of {workers} workers answered:\n"
                                   + self.output())  # fmt: skip
            try:
                worker = Worker(self.port)
            except (ConnectionError, OSError):
                time.sleep(0.1)
                continue
            if worker.pid in found:
                worker.close()
            else:
                found[worker.pid] = worker
        self.workers = list(found.values())

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self) -> None:
        for worker in self.workers:
            worker.close()
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.log.close()
