"""The app under gunicorn with four worker processes sharing sessions through Redis."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests import servers
from tests.flask.conftest import new_key

ROOT = Path(__file__).resolve().parents[2]


def test_four_gunicorn_workers_share_sessions(redis_server: servers.Server, tmp_path: Path) -> None:
    port = servers.free_port()
    prefix = "gunicorn" + secrets.token_hex(4) + ":"
    env = {
        **os.environ,
        "SECRET_KEY": new_key(),
        "SESSIONKIT_STORE": f"redis://127.0.0.1:{redis_server.port}/0?prefix={prefix}",
    }
    argv = [
        sys.executable, "-m", "gunicorn", "--workers", "4", "--bind", f"127.0.0.1:{port}",
        "--threads", "2", "--timeout", "30", "tests.flask.app:create_app()",
    ]  # fmt: skip
    log = tmp_path / "gunicorn.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(base + "/none", timeout=2)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("gunicorn did not start:\n" + log.read_text()) from None
                time.sleep(0.1)

        with httpx.Client(base_url=base, timeout=30) as browser:
            assert browser.get("/login/erin").text == "logged in"
            cookies = dict(browser.cookies)
        requests = 40

        def hit(_: int) -> tuple[int, int, str]:
            with httpx.Client(base_url=base, cookies=cookies, timeout=30) as client:
                counted = client.get("/locked-incr").json()
                return counted["n"], counted["pid"], client.get("/whoami").text

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(hit, range(requests)))
        counts = sorted(n for n, _, _ in results)
        assert counts == list(range(1, requests + 1))  # one session, every increment kept
        assert {who for _, _, who in results} == {"erin"}  # logged in on every worker
        assert len({pid for _, pid, _ in results}) >= 2, "all requests hit one worker"
    finally:
        proc.terminate()
        proc.wait(20)
