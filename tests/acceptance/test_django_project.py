"""A fresh Django project (``django-admin startproject``) with the README's Django settings
pasted in as they stand, met with each misconfiguration and outage of issue 14 through
``manage.py check`` and the test client, each in a process of its own, as a user runs them.
Each scenario is a settings module of two lines on top of the project's own."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests import servers
from tests.acceptance.conftest import LOCKING, PATTERN_KEY, STORE_SCHEMES, WEAK_KEY

ROOT = Path(__file__).resolve().parents[2]
README_STORE = "redis://localhost:6379/0"
OUTAGE_BODY = "Service unavailable: the session store cannot be reached. Try again shortly."

VIEWS = """
from django.http import JsonResponse
from sessionkit_django.middleware import session_lock


def index(request):
    request.session["visits"] = request.session.get("visits", 0) + 1
    return JsonResponse({"visits": request.session["visits"]})


@session_lock
def checkout(request):
    request.session["orders"] = request.session.get("orders", 0) + 1
    return JsonResponse({"orders": request.session["orders"]})
"""

#: Visit ``/`` with an optional cookie; print status, headers, body and the new cookie.
DRIVE = """
import json, sys
import django
django.setup()
from django.test import Client

client = Client(raise_request_exception=False, HTTP_HOST="localhost")  # runserver's host
if len(sys.argv) > 1:
    client.cookies["sessionid"] = sys.argv[1]
response = client.get("/")
cookie = response.cookies.get("sessionid")
print(json.dumps({
    "status": response.status_code, "headers": dict(response.headers.items()),
    "body": response.content.decode(), "cookie": cookie.value if cookie else None,
}))
"""


def readme_django_settings() -> str:
    readme = (ROOT / "README.md").read_text()
    found = re.search(r"\*\*Django\*\*.*?```python\n(.*?)```", readme, re.S)
    assert found, "README.md has no Django settings block"
    return found.group(1)


class Project:
    """The fresh project in a directory: ``check()`` and ``visit()`` under a scenario's
    settings module (``mysite.settings`` plus its lines)."""

    def __init__(self, root: Path, state: Path) -> None:
        self.root, self.state = root, state

    def settings(self, name: str, lines: str) -> str:
        module = f"settings_{name}"
        body = "from mysite.settings import *  # noqa\n" + textwrap.dedent(lines)
        (self.root / "mysite" / f"{module}.py").write_text(body)
        return f"mysite.{module}"

    def run(self, settings: str, *argv: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "SESSIONKIT"))}
        env.update(
            DJANGO_SETTINGS_MODULE=settings, XDG_STATE_HOME=str(self.state),
            PYTHONPATH=os.pathsep.join([str(self.root), str(ROOT), str(ROOT / "adapters")]),
        )  # fmt: skip
        return subprocess.run(
            [sys.executable, *argv], cwd=self.root, env=env, capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip

    def check(self, settings: str) -> subprocess.CompletedProcess[str]:
        return self.run(settings, "manage.py", "check")

    def visit(self, settings: str, cookie: str | None = None) -> dict[str, Any]:
        done = self.run(settings, "drive.py", *([cookie] if cookie else []))
        assert done.returncode == 0, done.stderr
        answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return answer


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, redis_server: servers.Server) -> Project:
    root = tmp_path_factory.mktemp("fresh-django")
    made = subprocess.run(
        [sys.executable, "-m", "django", "startproject", "mysite", str(root)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    block = readme_django_settings()
    assert README_STORE in block
    block = block.replace(README_STORE, f"redis://127.0.0.1:{redis_server.port}/0")
    settings = root / "mysite" / "settings.py"
    settings.write_text(settings.read_text() + "\n# as README.md says\n" + block)
    (root / "mysite" / "views.py").write_text(VIEWS)
    urls = root / "mysite" / "urls.py"
    urls.write_text(
        urls.read_text().replace("from django.urls import path", "from django.urls import path\n"
                                 "from mysite import views")
        .replace("path('admin/', admin.site.urls),", "path('admin/', admin.site.urls),\n"
                 "    path('', views.index),\n    path('checkout/', views.checkout),")
        .replace('path("admin/", admin.site.urls),', 'path("admin/", admin.site.urls),\n'
                 '    path("", views.index),\n    path("checkout/", views.checkout),')
    )  # fmt: skip
    assert "views.checkout" in urls.read_text()
    (root / "drive.py").write_text(DRIVE)
    return Project(root, tmp_path_factory.mktemp("state"))


def test_the_readme_settings_work(project: Project) -> None:
    settings = project.settings("readme", "")
    checked = project.check(settings)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.strip() == "System check identified no issues (0 silenced)."
    first = project.visit(settings)
    assert (first["status"], first["body"]) == (200, '{"visits": 1}')
    again = project.visit(settings, first["cookie"])
    assert again["body"] == '{"visits": 2}'


def test_without_a_store_sessions_are_files_that_survive_a_reboot(project: Project) -> None:
    settings = project.settings("files", "SESSIONKIT = {}  # leave out: files on this machine")
    assert project.check(settings).returncode == 0
    first = project.visit(settings)
    assert project.visit(settings, first["cookie"])["body"] == '{"visits": 2}'
    (directory,) = (project.state / "sessionkit").iterdir()
    assert directory.name.startswith("mysite-")  # not under /tmp


@pytest.mark.parametrize(
    ("lines", "said"),
    [
        pytest.param(
            'SECRET_KEY = "changeme"',
            "E001) sessionkit setting 'secret_key': " + WEAK_KEY,
            id="short-key",
        ),
        pytest.param(
            'SECRET_KEY = "changeme-changeme-changeme-changeme"',
            "E001) sessionkit setting 'secret_key': " + PATTERN_KEY,
            id="weak-key",
        ),
        pytest.param(
            'SESSIONKIT = {"STOER": "redis://localhost:6379/0"}',
            "E001) sessionkit setting 'STOER': unknown setting; did you mean 'STORE'?",
            id="misspelt-setting",
        ),
        pytest.param(
            'SESSIONKIT = {"STORE": "rdis://localhost:6379/0"}',
            "E001) sessionkit setting 'store': no store for 'rdis://localhost:6379/0'; "
            f"available: {STORE_SCHEMES}",
            id="scheme-typo",
        ),
        pytest.param(
            "del SESSION_ENGINE  # only the middleware swapped",
            "E004) sessionkit's SessionMiddleware is installed but SESSION_ENGINE is "
            "'django.contrib.sessions.backends.db': Client.login(), Client.session and code "
            "that builds a SessionStore would write sessions the middleware cannot read (it "
            "rejects their cookie as an invalid signature).\n"
            "\tHINT: Set SESSION_ENGINE = 'sessionkit_django.engine'.",
            id="no-session-engine",
        ),
        pytest.param(
            'SESSIONKIT = {"STORE": "cookie://"}',
            "E005) sessionkit setting \"SESSIONKIT['STORE']\": the store cookie:// cannot lock "
            "sessions, but these routes take the session lock: /checkout/ "
            "(mysite.views.checkout). Locks need a server-side store "
            f"({LOCKING}): set one, or remove the lock from these routes.",
            id="locked-on-cookie",
        ),
    ],
)
def test_manage_py_check_names_the_mistake(project: Project, lines: str, said: str) -> None:
    checked = project.check(project.settings(re.sub(r"\W", "_", lines)[:40], lines))
    assert checked.returncode == 1
    assert f"?: (sessionkit.{said}\n" in checked.stderr, checked.stderr
    assert "Traceback" not in checked.stderr
    assert checked.stderr.rstrip().endswith("System check identified 1 issue (0 silenced).")


def _assert_outage(answer: dict[str, Any]) -> None:
    assert answer["status"] == 503
    assert answer["body"] == OUTAGE_BODY
    assert answer["headers"]["Retry-After"] == "5"
    assert answer["headers"]["Cache-Control"] == "no-store"
    assert answer["cookie"] is None


def test_a_wrong_service_on_the_store_port_is_a_503(project: Project, http_port: int) -> None:
    settings = project.settings(
        "http_port", f'SESSIONKIT = {{"STORE": "redis://127.0.0.1:{http_port}/0"}}'
    )
    _assert_outage(project.visit(settings))


def test_a_store_that_goes_down_is_a_503_not_a_500(
    project: Project, own_redis: servers.Server
) -> None:
    settings = project.settings(
        "own_redis", f'SESSIONKIT = {{"STORE": "redis://127.0.0.1:{own_redis.port}/0"}}'
    )
    first = project.visit(settings)
    assert first["status"] == 200
    own_redis.stop()
    _assert_outage(project.visit(settings, first["cookie"]))  # the load fails
    _assert_outage(project.visit(settings))  # the save fails


def test_a_wsgi_server_with_a_locked_view_on_cookie_does_not_start(project: Project) -> None:
    """gunicorn runs no system checks: loading ``mysite.wsgi`` (which loads the
    middleware) is what fails, naming the view."""
    settings = project.settings("wsgi_cookie", 'SESSIONKIT = {"STORE": "cookie://"}')
    loaded = project.run(settings, "-c", "from mysite.wsgi import application")
    assert loaded.returncode == 1
    last = loaded.stderr.strip().splitlines()[-1]
    assert last == (
        "sessionkit.errors.LocksUnsupported: sessionkit setting \"SESSIONKIT['STORE']\": the "
        "store cookie:// cannot lock sessions, but these routes take the session lock: "
        "/checkout/ (mysite.views.checkout). Locks need a server-side store "
        f"({LOCKING}): set one, or remove the lock from these routes."
    )
    fine = project.run(project.settings("readme", ""), "-c", "from mysite.wsgi import application")
    assert fine.returncode == 0, fine.stderr
