"""The fallback under load: uvicorn (two worker processes) on a Redis primary with a
replica as ``fallback=``, four concurrent clients logging in, writing, reading and logging
out, and the real primary stopped and started again in the middle of it.

What must hold (issue 18): no write answered 2xx is lost, no session logged out with a
2xx answer is ever served again (during the outage or after it), every change during
the outage is refused with the read-only 503, reads go on, and the switch over and back
shows in the log once per worker and each way. The responses by status and phase are
printed (``pytest -s`` shows them) and docs/fallback.md quotes a run.
"""

from __future__ import annotations

import collections
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests import servers
from tests.asgi.apps import KEY

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = 4
WORKERS = 2
INTERVAL = 0.5
BEFORE, OUTAGE, AFTER = 1.5, 3.0, 2.5  # seconds of load in each phase


class App:
    """``uvicorn tests.asgi.fallback_app:app`` on a free port, its output in a file."""

    def __init__(self, primary: servers.Server, replica: servers.Server) -> None:
        options = "socket_timeout=0.5&socket_connect_timeout=0.5"
        env = {
            **os.environ, "SESSIONKIT_SECRET_KEY": KEY,
            "SESSIONKIT_STORE": f"redis://127.0.0.1:{primary.port}/0?{options}",
            "SESSIONKIT_FALLBACK": f"redis://127.0.0.1:{replica.port}/0?{options}",
            "SESSIONKIT_FALLBACK_PROBE_INTERVAL": str(INTERVAL),
        }  # fmt: skip
        port = servers.free_port()
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "tests.asgi.fallback_app:app", "--host",
             "127.0.0.1", "--port", str(port), "--workers", str(WORKERS),
             "--log-level", "warning", "--no-access-log"],
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


@pytest.fixture(scope="module")
def running() -> Iterator[tuple[App, servers.Server]]:
    primary = servers.redis_persistent()
    replica = servers.redis_replica(primary)
    app = App(primary, replica)
    yield app, primary
    app.stop()
    app.log.close()
    replica.close()
    primary.close()


@dataclass
class Client:
    """One user's browser, driven by a thread; remembers what the server acknowledged."""

    name: str
    base: str
    rng: random.Random
    cookie: str | None = None
    acked: int = 0  # the last n a 2xx acknowledged for the current session
    attempted: int = 0  # the last n sent (a refused write may still have landed)
    logout_tried: bool = False  # a logout was refused: it may still have landed
    revoked: list[str] = field(default_factory=list)  # cookies logged out with a 2xx
    live: list[tuple[str, int, int]] = field(default_factory=list)  # at the end
    log: list[tuple[float, str, int]] = field(default_factory=list)  # (time, action, status)
    wrong: list[str] = field(default_factory=list)

    def request(
        self, http: httpx.Client, method: str, path: str, cookie: str | None
    ) -> httpx.Response:
        http.cookies.clear()
        headers = {"Cookie": f"session={cookie}"} if cookie else {}
        response = http.request(method, path, headers=headers)
        self.log.append((time.monotonic(), path.partition("?")[0].strip("/"), response.status_code))
        return response

    def step(self, http: httpx.Client) -> None:
        if self.cookie is None:
            response = self.request(http, "POST", f"/login?user={self.name}", None)
            if response.status_code == 200:
                self.cookie = response.cookies["session"]
                self.acked = self.attempted = 0
                self.logout_tried = False
            return
        roll = self.rng.random()
        if roll < 0.45:
            self.attempted += 1
            response = self.request(http, "POST", f"/write?n={self.attempted}", self.cookie)
            if response.status_code == 200:
                self.acked = self.attempted
        elif roll < 0.85:
            self.check_own(http)
        elif roll < 0.92 and self.revoked:
            self.check_revoked(http, self.rng.choice(self.revoked))
        else:
            response = self.request(http, "POST", "/logout", self.cookie)
            if response.status_code == 200:
                self.revoked.append(self.cookie)
                self.cookie = None
            else:
                self.logout_tried = True

    def check_own(self, http: httpx.Client) -> None:
        response = self.request(http, "GET", "/read", self.cookie)
        if response.status_code != 200:
            return
        body = response.json()
        if body["user"] is None and self.logout_tried:
            self.cookie = None  # the refused logout had landed before its reply was lost
            return
        if body["user"] != self.name or not self.acked <= body["n"] <= self.attempted:
            self.wrong.append(f"{self.name} read {body}, acked {self.acked}, sent {self.attempted}")

    def check_revoked(self, http: httpx.Client, cookie: str) -> None:
        response = self.request(http, "GET", "/read", cookie)
        if response.status_code == 200 and response.json()["user"] is not None:
            self.wrong.append(f"{self.name}: a logged-out session was served: {response.json()}")

    def run(self, stop: threading.Event) -> None:
        with httpx.Client(base_url=self.base, timeout=10) as http:
            while not stop.is_set():
                self.step(http)


def test_stopping_the_primary_under_load(
    running: tuple[App, servers.Server],
    capsys: pytest.CaptureFixture[str],
    record_property: Callable[[str, object], None],
) -> None:
    app, primary = running
    clients = [Client(f"user{i}", app.base, random.Random(i)) for i in range(CLIENTS)]
    stop = threading.Event()
    threads = [threading.Thread(target=c.run, args=(stop,)) for c in clients]
    modes: list[tuple[float, str | None]] = []
    started = time.monotonic()
    for thread in threads:
        thread.start()
    try:
        time.sleep(BEFORE)
        stopping = time.monotonic()
        primary.stop()  # SIGTERM: Redis lets its replica catch up, then exits
        down = time.monotonic()  # the port is closed: the outage starts here
        deadline = down + OUTAGE
        while time.monotonic() < deadline:
            modes.append((time.monotonic(), httpx.get(f"{app.base}/healthz").json()["mode"]))
            time.sleep(0.2)
        up = time.monotonic()
        primary.start()
        answering = time.monotonic()  # it answers again (its data loaded from the AOF)
        time.sleep(AFTER)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    ended = time.monotonic()

    # after the run, with the primary back: every acknowledged write is there, every
    # acknowledged logout holds
    with httpx.Client(base_url=app.base, timeout=10) as http:
        for client in clients:
            if client.cookie is not None:
                client.check_own(http)
            for cookie in client.revoked:
                client.check_revoked(http, cookie)

    phases = ("before", "stopping", "outage", "starting", "after")
    ends = (stopping, down, up, answering, float("inf"))
    table: dict[str, collections.Counter[str]] = {p: collections.Counter() for p in phases}
    for client in clients:
        for at, action, status in client.log:
            phase = next(p for p, end in zip(phases, ends, strict=True) if at < end)
            table[phase][f"{action} {status}"] += 1
    # A worker learns the primary is back from its first probe after the interval: a request
    # or a health check. One that none of the clients' kept-alive connections reaches (one
    # that switched over on a health check) learns it from the health checks asked here, on a
    # new connection each, until every worker that switched over has answered one
    switched = workers(app.output(), "reading sessions from the fallback")
    asked = time.monotonic() + 20
    unanswered = set(switched)
    while unanswered and time.monotonic() < asked:
        body = httpx.get(f"{app.base}/healthz").json()
        assert body["mode"] == "primary", body
        unanswered.discard(body["pid"])
    output = app.output()
    over = workers(output, "reading sessions from the fallback")
    back = workers(output, "is back after")
    lines = [
        f"load: {CLIENTS} clients x {ended - started:.1f} s, uvicorn x {WORKERS} workers; "
        f"primary stopping {down - stopping:.2f} s, down {up - down:.1f} s, starting "
        f"{answering - up:.2f} s; probe interval {INTERVAL} s",
        *(f"  {phase:8} " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
          for phase, counts in table.items()),
        f"  switched over in {len(over)} worker(s), back in {len(back)}; health modes seen: "
        f"{sorted({m for _, m in modes if m})}",
    ]  # fmt: skip
    with capsys.disabled():  # the report is the point of the test: shown on success too
        print("\n" + "\n".join(lines))
    record_property("responses", "\n".join(lines))

    wrong = [w for c in clients for w in c.wrong]
    assert not wrong, wrong
    everything = sum(table.values(), collections.Counter())
    assert not [k for k in everything if k.endswith(" 500")], (everything, output[-3000:])
    outage = table["outage"]
    assert outage["read 200"] > 0  # reads went on, from the replica
    refused = outage["write 503"] + outage["login 503"] + outage["logout 503"]
    assert refused > 0
    # a request the primary answered just before it went may reach its client just after
    assert outage["write 200"] + outage["login 200"] + outage["logout 200"] <= CLIENTS
    after = table["after"]
    assert after["write 200"] > 0 and after["login 200"] + after["logout 200"] > 0
    assert "read_only" in {m for _, m in modes}
    assert not unanswered, f"workers {unanswered} answered no health check in 20 s"
    # every worker that switched over did so once, and switched back once
    assert 1 <= len(over) <= WORKERS and set(over.values()) == {1} and back == over, output[-3000:]


def workers(output: str, said: str) -> collections.Counter[int]:
    """How many lines of the app's output say ``said``, by worker (fallback_app's pid)."""
    found = re.findall(rf"^\[pid (\d+)\] .*{re.escape(said)}", output, re.MULTILINE)
    return collections.Counter(int(pid) for pid in found)
