"""The test project in real server processes: gunicorn (WSGI, two workers) and uvicorn
(ASGI) share one store and one database, so a session made by one is used and ended by the
other, over real HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import servers

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "pw-alice-1"
Project = tuple[str, str, dict[str, str]]


def environment(store: str, db: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="tests.django.project.settings",
        SESSIONKIT_TEST_STORE=store,
        SESSIONKIT_TEST_DB=str(db),
        PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "adapters")]),
        DJANGO_SUPERUSER_PASSWORD=PASSWORD,
    )
    return env


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "django", *args], env=env, cwd=ROOT, capture_output=True,
        text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def serve(argv: list[str], env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/nothing/", timeout=1)
            return proc
        except httpx.TransportError:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"server did not start:\n{log.read_text()[-3000:]}")


@pytest.fixture(params=["file", "sqlite"])
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Project]:
    store = (
        f"file://{tmp_path / 'sessions'}" if request.param == "file"
        else f"sqlite:///{tmp_path / 'sessions.sqlite3'}"
    )  # fmt: skip
    env = environment(store, tmp_path / "db.sqlite3")
    manage(env, "migrate", "-v0")
    manage(env, "createsuperuser", "--noinput", "--username", "alice", "--email", "a@x.org")
    manage(env, "sessionkit", "init")
    wsgi_port, asgi_port = servers.free_port(), servers.free_port()
    procs = [
        serve([sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{wsgi_port}",
               "tests.django.project.wsgi:application"], env, wsgi_port, tmp_path / "wsgi.log"),
        serve([sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port",
               str(asgi_port), "--log-level", "warning", "tests.django.project.asgi:application"],
              env, asgi_port, tmp_path / "asgi.log"),
    ]  # fmt: skip
    try:
        yield f"http://127.0.0.1:{wsgi_port}", f"http://127.0.0.1:{asgi_port}", env
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)


def test_one_session_across_wsgi_and_asgi(project: Project) -> None:
    wsgi, asgi, env = project
    with httpx.Client(base_url=wsgi) as browser:
        assert browser.get("/count/").json() == {"count": 1}
        anonymous = browser.cookies["sessionid"]
        assert browser.post("/login/", data={"username": "alice", "password": PASSWORD}).json()
        cookie = browser.cookies["sessionid"]
        assert cookie != anonymous  # login rotated the ID
        for _ in range(4):  # both gunicorn workers see the same session
            assert browser.get("/whoami/").json() == {"user": "alice"}
        assert browser.get("/count/").json() == {"count": 2}
    with httpx.Client(base_url=asgi, cookies={"sessionid": cookie}) as other:
        assert other.get("/awhoami/").json() == {"user": "alice"}
        assert other.get("/acount/").json() == {"count": 3}
        assert "alice" not in manage(env, "sessionkit", "stats")
        assert len(manage(env, "sessionkit", "list", "--user", "1").splitlines()) == 1
        assert other.post("/logout/").json() == {"ok": True}
    for base in (wsgi, asgi):
        replayed = httpx.get(f"{base}/whoami/", cookies={"sessionid": cookie}).json()
        assert replayed == {"user": None}
        old = httpx.get(f"{base}/read/", cookies={"sessionid": anonymous}).json()
        assert old["count"] is None
