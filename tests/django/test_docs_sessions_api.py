"""The Django examples of docs/sessions-api.md run against the test project and do what
the page says (the docs test only checks their syntax)."""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings
from django.urls import include, path

PAGE = Path(__file__).resolve().parents[2] / "docs" / "sessions-api.md"
BLOCKS = re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)
DJANGO = [block for block in BLOCKS if "from django.urls" in block]
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(params=range(len(DJANGO)), ids=["include", "custom-staff"])
def urlconf(request: pytest.FixtureRequest) -> Iterator[None]:
    namespace: dict[str, Any] = {"__name__": "docs_sessions_api"}
    exec(compile(DJANGO[request.param], str(PAGE), "exec"), namespace)  # noqa: S102
    urls = types.ModuleType("docs_sessions_api_urls")
    urls.urlpatterns = [  # type: ignore[attr-defined]
        *namespace["urlpatterns"],
        path("", include("tests.django.project.urls")),
    ]
    sys.modules[urls.__name__] = urls
    try:
        with override_settings(ROOT_URLCONF=urls.__name__):
            yield
    finally:
        del sys.modules[urls.__name__]


def test_django_examples(urlconf: None, make_sk: Any) -> None:
    assert len(DJANGO) == 2
    make_sk("memory")
    alice = User.objects.create_user("alice", password="pw-alice")
    User.objects.create_superuser("root", password="pw-root")  # is_staff, every permission
    phone, laptop, root = Client(), Client(enforce_csrf_checks=True), Client()
    for client, name in ((phone, "alice"), (laptop, "alice"), (root, "root")):
        assert client.login(username=name, password=f"pw-{name}")
    rows = laptop.get("/sessions/").json()["sessions"]
    other = next(r["handle"] for r in rows if not r["current"])
    assert laptop.delete(f"/sessions/{other}").status_code == 403  # no CSRF token
    token = laptop.cookies["csrftoken"].value
    revoked = laptop.delete(f"/sessions/{other}", HTTP_X_CSRFTOKEN=token)
    assert revoked.json() == {"revoked": 1, "current": False}
    assert phone.get("/sessions/").status_code == 401
    assert laptop.get(f"/sessions/users/{alice.pk}").status_code == 403
    assert len(root.get(f"/sessions/users/{alice.pk}").json()["sessions"]) == 1
