"""The examples in docs/django.md, run against the test project (the docs test only
checks their syntax, because they need a configured Django)."""

from __future__ import annotations

import logging
import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import AsyncClient, Client, override_settings
from django.urls import include, path
from sessionkit_django.signals import session_event

from sessionkit import SessionEngine

PAGE = Path(__file__).resolve().parents[2] / "docs" / "django.md"
BLOCKS = re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def docs() -> Iterator[dict[str, Any]]:
    namespace: dict[str, Any] = {"__name__": "docs_django"}
    for code in BLOCKS:
        if "INSTALLED_APPS" in code or code.startswith("SESSIONKIT") or "mypackage" in code:
            continue  # settings (the test project has them), or a reader's own package
        exec(compile(code, str(PAGE), "exec"), namespace)  # noqa: S102 - our own docs
    urls = types.ModuleType("docs_django_urls")
    urls.urlpatterns = [  # type: ignore[attr-defined]
        path("devices/", namespace["devices"]),
        path("elsewhere/", namespace["log_out_elsewhere"]),
        path("revoke/<str:handle>/", namespace["revoke"]),
        path("change-password/", namespace["change_password"]),
        path("close/", namespace["close_account"]),
        path("cart/", namespace["add_to_cart"]),
        path("save/", namespace["save"]),
        path("visits/", namespace["visits"]),
        path("stash/", namespace["stash"]),
        path("", include("tests.django.project.urls")),
    ]
    sys.modules[urls.__name__] = urls
    try:
        with override_settings(ROOT_URLCONF=urls.__name__):
            yield namespace
    finally:
        del sys.modules[urls.__name__]
        session_event.disconnect(namespace["audit"])


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_device_list_and_revocation(docs: dict[str, Any], make_sk: Any, kind: str) -> None:
    make_sk(kind)
    User.objects.create_user("carol", password="pw-carol-1")
    phone, laptop, tablet = Client(), Client(), Client()
    for client in (phone, laptop, tablet):
        assert client.login(username="carol", password="pw-carol-1")
    listed = phone.get("/devices/").json()
    assert len(listed["sessions"]) == 3 and listed["this"] in listed["sessions"]
    other = next(h for h in listed["sessions"] if h != listed["this"])
    assert phone.get(f"/revoke/{other}/").json() == {"revoked": True}
    assert phone.get("/elsewhere/").json() == {"revoked": 1}
    assert [c.get("/whoami/").json()["user"] for c in (phone, laptop, tablet)].count(None) == 2
    again = Client()
    assert again.login(username="carol", password="pw-carol-1")
    assert phone.post("/change-password/", {"password": "pw-carol-2"}).json() == {"ok": True}
    assert phone.get("/whoami/").json() == {"user": "carol"}
    assert again.get("/whoami/").json() == {"user": None}


def test_fresh_session_example(docs: dict[str, Any], make_sk: Any) -> None:
    make_sk("memory")
    User.objects.create_user("dora", password="pw-dora-1")
    client = Client()
    assert client.get("/close/").status_code == 302  # @login_required still guards it
    assert client.login(username="dora", password="pw-dora-1")
    assert client.get("/close/").json() == {"closing": "dora"}


def test_locked_cart_flash_and_async(docs: dict[str, Any], sk: SessionEngine) -> None:
    client = Client(raise_request_exception=False)
    if not sk.store.supports_lock:  # the locked cart view: the middleware refuses to load
        from sessionkit import LocksUnsupported

        with pytest.raises(LocksUnsupported, match=r"lock: /cart/ \(docs_django\.add_to_cart\)"):
            client.get("/save/")
        return
    assert client.get("/cart/?item=apple").json() == {"items": 1}
    assert client.get("/cart/?item=pear").json() == {"items": 2}
    client.get("/save/")
    assert "Saved!" in client.get("/messages/").content.decode()
    assert "Saved!" not in client.get("/messages/").content.decode()


@pytest.mark.parametrize("kind", ["memory", "redis"])  # (the docs' URLs lock: no cookie://)
def test_a_view_reopens_its_session_by_key(docs: dict[str, Any], make_sk: Any, kind: str) -> None:
    from sessionkit_django.engine import SessionStore

    make_sk(kind)
    client = Client()
    assert client.get("/stash/?state=s1").json() == {"seen": "s1"}
    saved = SessionStore(client.cookies["sessionid"].value)
    assert (saved["state"], saved["seen"]) == ("s1", "s1")


@pytest.mark.anyio
@pytest.mark.usefixtures("aclosing")
async def test_async_visits(docs: dict[str, Any], make_sk: Any) -> None:
    make_sk("redis")
    client = AsyncClient()
    assert (await client.get("/visits/")).json() == {"visits": 1}
    assert (await client.get("/visits/")).json() == {"visits": 2}


def test_audit_signal_and_use_engine(
    docs: dict[str, Any], make_sk: Any, caplog: pytest.LogCaptureFixture
) -> None:
    make_sk("memory")
    owner = Client(HTTP_USER_AGENT="Firefox/128.0")
    owner.get("/count/")
    thief = Client(HTTP_USER_AGENT="curl/8")
    thief.cookies["sessionid"] = owner.cookies["sessionid"].value
    with caplog.at_level(logging.WARNING, logger="audit"):
        thief.get("/read/")
    audited = [r.getMessage() for r in caplog.records if r.name == "audit"]
    assert any("fingerprint_mismatch" in message for message in audited)
    assert docs["engine"].clock is docs["clock"]
