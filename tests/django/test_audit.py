"""The audit trail through Django, on real SQLite and Redis: ``django.contrib.auth``'s login
and logout are entries, the admin's sessions page shows a user's entries and names the
staff member who revoked, the "Export sessions" admin action downloads the export, and
``manage.py sessionkit audit|export|erase`` use the project's store and settings."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

from tests.django.test_auth import login

pytestmark = pytest.mark.django_db(transaction=True)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
)


@pytest.fixture
def alice(db: None) -> User:
    return User.objects.create_user("alice", password="pw-alice-1")


def staff_client() -> Client:
    """A superuser signed in (after ``make_sk``: on the engine under test)."""
    User.objects.create_superuser("root", "root@example.com", "pw-root-1")
    client = Client()
    assert client.login(username="root", password="pw-root-1")
    return client


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_django_login_and_logout_are_entries(make_sk, kind: str, alice: User) -> None:
    engine = make_sk(kind, audit="store")
    client = Client(HTTP_USER_AGENT=IPHONE, REMOTE_ADDR="192.0.2.10")
    login(client)
    handle = client.session.handle
    client.post("/logout/")
    entries = engine.audit_entries(str(alice.pk))
    assert [e.kind for e in entries] == ["login", "logout"]
    assert {e.handle for e in entries} == {handle}
    assert (entries[0].device, entries[0].network) == ("Safari on iOS", "192.0.2.0/24")
    assert entries[0].actor == "user"


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_the_admin_page_shows_the_trail_and_names_the_staff_member(
    make_sk, kind: str, alice: User
) -> None:
    engine = make_sk(kind, audit="store")
    staff = staff_client()
    login(Client(HTTP_USER_AGENT=IPHONE))
    page = f"/admin/auth/user/{alice.pk}/sessions/"
    html = staff.get(page).content.decode()
    assert 'id="sessionkit-audit"' in html
    (handle,) = re.findall(
        r"<td><code>([0-9a-f]{16})</code></td>", html.split("sessionkit-audit")[0]
    )
    assert "<td>login</td>" in html and "<td>Safari on iOS</td>" in html
    assert staff.post(page, {"handle": handle}).status_code == 302
    root = User.objects.get(username="root")
    last = engine.audit_entries(str(alice.pk))[-1]
    assert (last.kind, last.handle, last.actor) == ("revoke", handle, f"staff:{root.pk}")
    assert f"staff:{root.pk}" in staff.get(page).content.decode()


def test_the_export_sessions_admin_action(make_sk, alice: User) -> None:
    make_sk("sqlite", audit="store")
    staff = staff_client()
    login(Client())
    response = staff.post(
        "/admin/auth/user/", {"action": "export_sessions", "_selected_action": [alice.pk]}
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "attachment" in response["Content-Disposition"]
    (document,) = json.loads(response.content)
    assert document["user"] == str(alice.pk) and len(document["sessions"]) == 1
    assert [e["kind"] for e in document["audit"]] == ["login"]


def test_manage_py_sessionkit_audit_export_and_erase(
    make_sk, alice: User, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = make_sk("sqlite", audit="store")
    login(Client())
    # the command stands for another process: it reads what the app's trail has written
    engine.audit.flush()
    user = str(alice.pk)
    call_command("sessionkit", "audit", "--user", user, "--json")
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["kind"] for line in lines] == ["login"]
    call_command("sessionkit", "export", "--user", user)
    assert [e["kind"] for e in json.loads(capsys.readouterr().out)["audit"]] == ["login"]
    call_command("sessionkit", "erase", "--user", user, "--yes")
    assert "erased 1 session" in capsys.readouterr().out
    assert engine.export_user(user)["audit"] == [] and engine.export_user(user)["sessions"] == []
    # the project's own keys made the pseudonym
    kinds = [e.kind for e in engine.audit_entries(engine.audit.pseudonym(user))]
    assert kinds == ["login", "revoke", "erasure"]
