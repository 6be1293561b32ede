"""The example demo as the tests run it: ``python -m example_projects.run`` on three free
loopback ports with a fresh data folder, exactly what ``make demo`` starts.

The three apps must share 127.0.0.1 (cookies ignore ports, not hosts), and each one's
links to the others come from the environment the launcher sets from ``--ports``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
COOKIE = "sessionkit"
USER, PASSWORD = "demo", "sessionkit-demo"
#: One User-Agent for every client of a test: sessions are bound to the browser's UA.
AGENT = "Mozilla/5.0 (X11; Linux x86_64) sessionkit-example-tests"


@dataclass
class Demo:
    data: Path
    shop: str
    notes: str
    dashboard: str
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        """What an app built in the test process needs to join this demo."""
        return {
            "SESSIONKIT_DEMO_DATA": str(self.data),
            "SESSIONKIT_DEMO_SHOP_URL": self.shop,
            "SESSIONKIT_DEMO_NOTES_URL": self.notes,
            "SESSIONKIT_DEMO_DASHBOARD_URL": self.dashboard,
        }

    def drain(self) -> None:
        """Keep reading the servers' output (a full pipe would block their logging)."""
        stream = self.process.stdout
        assert stream is not None
        thread = threading.Thread(target=lambda: self.output.extend(stream), daemon=True)
        thread.start()
        self._drainer = thread

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        drainer = getattr(self, "_drainer", None)
        if drainer is not None:
            drainer.join(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return code


def start_demo(data: Path, *extra: str, timeout: float = 60.0) -> Demo:
    ports = [free_port() for _ in range(3)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "example_projects.run", "--data", str(data),
         "--ports", ",".join(map(str, ports)), *extra],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    urls = [f"http://127.0.0.1:{port}/" for port in ports]
    demo = Demo(data, urls[0], urls[1], urls[2], process=process)
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    for line in process.stdout:
        demo.output.append(line)
        if line.startswith("Ready."):
            demo.drain()
            return demo
        if time.monotonic() > deadline:
            break
    demo.stop()
    raise RuntimeError("the demo did not start:\n" + "".join(demo.output))


def cookie_from(set_cookie_headers: list[str]) -> str | None:
    """The session cookie's value in a response's Set-Cookie headers ('' when cleared)."""
    for header in set_cookie_headers:
        match = re.match(rf"{COOKIE}=([^;]*)", header)
        if match:
            return match.group(1)
    return None


def browser_like(agent: str = AGENT) -> httpx.Client:
    """A client that keeps cookies per host like a browser (ports ignored)."""
    return httpx.Client(headers={"User-Agent": agent}, follow_redirects=True, timeout=10)


def shop_login(client: httpx.Client, demo: Demo, next_url: str = "") -> httpx.Response:
    """Sign in through the shop's form (CSRF token included), as a person would."""
    client.get(demo.shop + "login/")
    return client.post(
        demo.shop + "login/",
        data={
            "csrfmiddlewaretoken": client.cookies["csrftoken"],
            "username": USER,
            "password": PASSWORD,
            "next": next_url,
        },
    )


def shop_post(client: httpx.Client, demo: Demo, path: str) -> httpx.Response:
    if "csrftoken" not in client.cookies:
        client.get(demo.shop)
    return client.post(demo.shop + path, data={"csrfmiddlewaretoken": client.cookies["csrftoken"]})


def signed_in_as(html: str) -> str | None:
    match = re.search(r'data-user="([^"]*)"', html)
    return match.group(1) if match else None


def session_cookie(client: httpx.Client) -> str | None:
    return client.cookies.get(COOKIE)


def replay(demo: Demo, url: str, value: str | None) -> httpx.Response:
    """A fresh client presenting only ``value`` as the session cookie."""
    assert value, "no cookie to replay"
    with httpx.Client(headers={"User-Agent": AGENT, "Cookie": f"{COOKIE}={value}"}) as client:
        return client.get(url)
