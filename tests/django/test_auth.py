"""django.contrib.auth, messages, CSRF and admin with sessionkit: rotation on login, dead
cookies after logout, revocation of other sessions, and no resurrection after a concurrent
logout."""

from __future__ import annotations

import re
import threading
from typing import Any

import django
import pytest
from django.contrib.auth.models import User
from django.test import AsyncClient, Client, override_settings
from sessionkit_django import auth as sk_auth

from sessionkit import SessionEngine, StoreError
from sessionkit.testing import FakeClock
from tests.django.project import views

pytestmark = pytest.mark.django_db(transaction=True)
SERVER_SIDE = ["memory", "file", "sqlite", "redis"]


@pytest.fixture
def alice(db: None) -> User:
    return User.objects.create_user("alice", password="pw-alice-1")


def login(client: Client) -> str:
    response = client.post("/login/", {"username": "alice", "password": "pw-alice-1"})
    assert response.json() == {"ok": True}
    return client.cookies["sessionid"].value


def replay(cookie: str) -> Client:
    client = Client()
    client.cookies["sessionid"] = cookie
    return client


def test_login_rotates_the_id(sk: SessionEngine, alice: User) -> None:
    client = Client()
    client.get("/count/")
    before = client.cookies["sessionid"].value
    after = login(client)
    assert after != before
    assert client.get("/whoami/").json() == {"user": "alice"}
    assert client.get("/read/").json()["count"] == 1  # data survives the rotation
    if not sk.store.client_side:
        assert replay(before).get("/whoami/").json() == {"user": None}
        assert replay(before).get("/read/").json()["count"] is None


@pytest.mark.parametrize("kind", SERVER_SIDE)
def test_logout_kills_the_cookie_server_side(make_sk, kind: str, alice: User) -> None:
    make_sk(kind)
    client = Client()
    cookie = login(client)
    client.post("/logout/")
    assert client.get("/whoami/").json() == {"user": None}
    assert replay(cookie).get("/whoami/").json() == {"user": None}


def test_cookie_store_logout_clears_the_cookie(make_sk, alice: User) -> None:
    make_sk("cookie")
    client = Client()
    login(client)
    response = client.post("/logout/")
    assert response.cookies["sessionid"]["max-age"] == 0  # an int, as Django stores it
    assert client.get("/whoami/").json() == {"user": None}


@pytest.mark.parametrize("kind", SERVER_SIDE)
def test_login_binds_the_session_to_the_user(make_sk, kind: str, alice: User) -> None:
    make_sk(kind)
    phone, laptop = Client(), Client()
    login(phone)
    login(laptop)
    listed = sk_auth.user_sessions(alice)
    assert len(listed) == 2
    assert all(len(info.handle) == 16 for info in listed)
    assert not any(info.handle in phone.cookies["sessionid"].value for info in listed)
    assert sk_auth.revoke_session(alice, listed[0].handle)
    states = {phone.get("/whoami/").json()["user"], laptop.get("/whoami/").json()["user"]}
    assert states == {None, "alice"}


@pytest.mark.parametrize("kind", SERVER_SIDE)
def test_password_change_revokes_the_other_sessions(make_sk, kind: str, alice: User) -> None:
    make_sk(kind)
    mine, other = Client(), Client()
    before = login(mine)
    login(other)
    assert mine.post("/password/", {"password": "pw-alice-2"}).json() == {"revoked": 1}
    assert mine.cookies["sessionid"].value != before  # rotated, still logged in
    assert mine.get("/whoami/").json() == {"user": "alice"}
    assert other.get("/whoami/").json() == {"user": None}
    assert len(sk_auth.user_sessions(alice)) == 1


@pytest.mark.parametrize("kind", SERVER_SIDE)
def test_log_out_my_other_sessions(make_sk, kind: str, alice: User) -> None:
    make_sk(kind)
    mine, others = Client(), [Client() for _ in range(3)]
    for client in [mine, *others]:
        login(client)
    assert mine.post("/others/").json() == {"revoked": 3}
    assert mine.get("/whoami/").json() == {"user": "alice"}
    assert {c.get("/whoami/").json()["user"] for c in others} == {None}


def test_cookie_store_cannot_list_sessions(make_sk, alice: User) -> None:
    make_sk("cookie")
    with pytest.raises(StoreError):
        sk_auth.user_sessions(alice)


def slow_request_across_a_logout(cookie: str) -> int:
    """The status of a slow request on ``cookie`` that a logout overtakes: it reads the
    session, the logout runs, then it tries to save."""
    views.slow_gate.clear()
    views.slow_entered.clear()
    result: dict[str, int] = {}

    def slow() -> None:
        slow_client = Client(raise_request_exception=False)
        slow_client.cookies["sessionid"] = cookie
        result["status"] = slow_client.post("/slow/").status_code

    thread = threading.Thread(target=slow)
    thread.start()
    assert views.slow_entered.wait(10)
    replay(cookie).post("/logout/")
    views.slow_gate.set()
    thread.join(10)
    return result["status"]


@pytest.mark.parametrize("kind", SERVER_SIDE)
def test_concurrent_logout_is_not_undone(make_sk, kind: str, alice: User) -> None:
    """A slow request that read the session before a logout and writes after it ends in
    400; the session stays dead (Rack CVE-2025-46336, starsessions #58)."""
    make_sk(kind)
    cookie = login(Client())
    assert slow_request_across_a_logout(cookie) == 400
    assert replay(cookie).get("/whoami/").json() == {"user": None}
    assert replay(cookie).get("/read/").json()["count"] is None
    assert sk_auth.user_sessions(alice) == []


def test_concurrent_logout_with_djangos_middleware(make_sk, alice: User) -> None:
    from tests.django.test_middleware import DJANGO_MIDDLEWARE

    make_sk("memory")
    with override_settings(MIDDLEWARE=DJANGO_MIDDLEWARE):
        cookie = login(Client())
        assert slow_request_across_a_logout(cookie) == 400
        assert replay(cookie).get("/whoami/").json() == {"user": None}


def test_test_client_login_logout_and_session(sk: SessionEngine, alice: User) -> None:
    client = Client()
    assert client.login(username="alice", password="pw-alice-1")
    assert client.get("/whoami/").json() == {"user": "alice"}
    if not sk.store.client_side:  # like signed_cookies, the cookie store's key is its data
        session = client.session
        session["count"] = 41
        session.save()
        assert client.get("/count/").json()["count"] == 42
    client.logout()
    assert client.get("/whoami/").json() == {"user": None}
    client.force_login(alice)
    assert client.get("/whoami/").json() == {"user": "alice"}


if django.VERSION >= (5, 0):  # alogin, auser, aforce_login: Django 5.0+

    @pytest.mark.anyio
    @pytest.mark.usefixtures("aclosing")
    async def test_async_login_and_test_client(sk: SessionEngine, alice: User) -> None:
        client = AsyncClient()
        await client.get("/acount/")
        before = client.cookies["sessionid"].value
        assert (await client.post("/alogin/")).json() == {"ok": True}
        assert client.cookies["sessionid"].value != before
        assert (await client.get("/awhoami/")).json() == {"user": "alice"}
        await client.alogout()
        assert (await client.get("/awhoami/")).json() == {"user": None}
        await client.aforce_login(alice)
        assert (await client.get("/awhoami/")).json() == {"user": "alice"}


@override_settings(CSRF_USE_SESSIONS=True)
def test_csrf_use_sessions(sk: SessionEngine) -> None:
    client = Client(enforce_csrf_checks=True)
    page = client.get("/form/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    assert "csrftoken" not in client.cookies
    assert client.post("/csrf/", {"csrfmiddlewaretoken": token}).status_code == 200
    assert client.post("/csrf/", {"csrfmiddlewaretoken": "x" * 64}).status_code == 403


def test_admin_login(sk: SessionEngine, db: None) -> None:
    User.objects.create_superuser("root", "root@example.com", "pw-root-1")
    client = Client(enforce_csrf_checks=True)
    page = client.get("/admin/login/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": "root", "password": "pw-root-1", "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_admin_lists_and_revokes_a_users_sessions(make_sk, kind: str, alice: User) -> None:
    make_sk(kind)
    User.objects.create_superuser("root", "root@example.com", "pw-root-1")
    staff = Client()
    assert staff.login(username="root", password="pw-root-1")
    iphone = (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
    )
    phone, laptop = Client(HTTP_USER_AGENT=iphone), Client()  # the laptop sends no agent
    cookies = [login(phone), login(laptop)]
    page = staff.get(f"/admin/auth/user/{alice.pk}/sessions/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "<td>Safari on iOS</td>" in html and "<td>unknown device</td>" in html
    handles = re.findall(r"<code>([0-9a-f]{16})</code>", html)
    assert len(handles) == 2
    assert not any(cookie.partition(".")[0] in html for cookie in cookies)  # never an ID
    assert staff.post(page.request["PATH_INFO"], {"handle": handles[0]}).status_code == 302
    users = [phone.get("/whoami/").json()["user"], laptop.get("/whoami/").json()["user"]]
    assert set(users) == {None, "alice"}
    staff.post(page.request["PATH_INFO"])  # revoke all
    assert {phone.get("/whoami/").json()["user"], laptop.get("/whoami/").json()["user"]} == {None}
    assert staff.get("/admin/").status_code == 200  # the admin's own session survived
    assert Client().get(f"/admin/auth/user/{alice.pk}/sessions/").status_code == 302  # login


@pytest.mark.parametrize(
    ("how", "expected"),
    [("pk", None), ("username", "alice"), ("tests.django.test_auth.upper_name", "ALICE")],
)
def test_user_key_setting_chooses_the_neutral_user_key(
    make_sk, how: str, expected: str | None, alice: User
) -> None:
    with override_settings(SESSIONKIT={"USER_KEY": how}):
        engine = make_sk("memory")
        client = Client()
        login(client)
        key = expected if expected is not None else str(alice.pk)
        assert [len(i.handle) for i in engine.store.user_sessions(key)] == [16]
        assert sk_auth.user_sessions(alice)[0].user == key
        assert sk_auth.revoke_all(alice) == 1  # what the admin's "Revoke all" calls
        assert engine.store.user_sessions(key) == []


def upper_name(user: User) -> str:
    return user.get_username().upper()


def test_a_bad_user_key_is_a_config_error() -> None:
    from sessionkit_django.conf import build_config

    from sessionkit import ConfigError

    with override_settings(SESSIONKIT={"USER_KEY": "nope.nothing"}):
        with pytest.raises(ConfigError, match="USER_KEY"):
            build_config()
    with override_settings(SESSIONKIT={"USER_KEY": 42}):
        with pytest.raises(ConfigError, match="USER_KEY"):
            build_config()


# -- the admin sessions page from the user's change page (issue 14) --------------------------
def _root_with_two_sessions(make_sk: Any) -> tuple[User, Client, Client]:
    make_sk("memory")
    root = User.objects.create_superuser("root", "root@example.com", "pw-root-1")
    here, elsewhere = Client(), Client(HTTP_USER_AGENT="Mozilla/5.0 (X11; Linux) Firefox/130.0")
    assert here.login(username="root", password="pw-root-1")
    assert elsewhere.login(username="root", password="pw-root-1")
    return root, here, elsewhere


def test_the_users_change_page_links_to_their_sessions(make_sk: Any, alice: User) -> None:
    _, staff, _ = _root_with_two_sessions(make_sk)
    html = staff.get(f"/admin/auth/user/{alice.pk}/change/").content.decode()
    link = f'<a href="/admin/auth/user/{alice.pk}/sessions/" class="sessionkit-sessions">'
    assert link + "Sessions</a>" in html
    assert "/history/" in html  # Django's own object tools are still there
    assert 'id="user_form"' in html  # the stock change form, extended
    assert "sessionkit-sessions" not in staff.get("/admin/auth/user/add/").content.decode()


def test_the_sessions_page_marks_this_session_on_your_own_account(
    make_sk: Any, alice: User
) -> None:
    root, here, _ = _root_with_two_sessions(make_sk)
    html = here.get(f"/admin/auth/user/{root.pk}/sessions/").content.decode()
    assert html.count("(this session)") == 1
    mine = here.session.handle
    assert re.search(rf"<code>{mine}</code> <strong>\(this session\)</strong>", html)
    assert "Revoke all other sessions" in html
    login(Client())  # alice's page: none of them is the viewer's
    other = here.get(f"/admin/auth/user/{alice.pk}/sessions/").content.decode()
    assert "(this session)" not in other and "Revoke all other sessions" not in other


def test_revoke_all_on_your_own_account_asks_first(make_sk: Any) -> None:
    root, here, elsewhere = _root_with_two_sessions(make_sk)
    page = f"/admin/auth/user/{root.pk}/sessions/"
    asked = here.post(page, {"action": "revoke-all"})
    assert asked.status_code == 200  # a confirmation page, nothing revoked yet
    html = asked.content.decode()
    assert "revoking all 2 of its sessions logs you out here too" in html
    assert 'name="confirm" value="yes"' in html
    assert here.get("/whoami/").json()["user"] == "root"
    assert elsewhere.get("/whoami/").json()["user"] == "root"
    confirmed = here.post(page, {"action": "revoke-all", "confirm": "yes"})
    assert confirmed.status_code == 302
    assert here.get("/whoami/").json()["user"] is None
    assert elsewhere.get("/whoami/").json()["user"] is None


def test_revoke_the_other_sessions_of_your_own_account_keeps_this_one(make_sk: Any) -> None:
    root, here, elsewhere = _root_with_two_sessions(make_sk)
    response = here.post(f"/admin/auth/user/{root.pk}/sessions/", {"action": "revoke-others"})
    assert response.status_code == 302
    assert here.get("/whoami/").json()["user"] == "root"
    assert elsewhere.get("/whoami/").json()["user"] is None


def test_revoke_all_of_another_user_needs_no_confirmation(make_sk: Any, alice: User) -> None:
    _, staff, _ = _root_with_two_sessions(make_sk)
    theirs = Client()
    login(theirs)
    response = staff.post(f"/admin/auth/user/{alice.pk}/sessions/", {"action": "revoke-all"})
    assert response.status_code == 302
    assert theirs.get("/whoami/").json()["user"] is None
    assert staff.get("/whoami/").json()["user"] == "root"


def test_revoking_this_session_from_the_page_is_a_logout(make_sk: Any) -> None:
    root, here, elsewhere = _root_with_two_sessions(make_sk)
    page = f"/admin/auth/user/{root.pk}/sessions/"
    response = here.post(page, {"handle": here.session.handle})
    assert response.status_code == 302
    assert here.get("/whoami/").json()["user"] is None
    assert elsewhere.get("/whoami/").json()["user"] == "root"


@pytest.mark.parametrize("kind", SERVER_SIDE)
def test_django_login_keeps_max_sessions_per_user(
    make_sk, kind: str, alice: User, clock: FakeClock
) -> None:
    make_sk(kind, MAX_SESSIONS_PER_USER=2)
    devices = [Client() for _ in range(3)]
    for device in devices:  # a minute apart: the first is the least recently used
        login(device)
        clock.advance(60)
    assert len(sk_auth.user_sessions(alice)) == 2
    assert devices[0].get("/whoami/").json() == {"user": None}  # evicted: logged out
    assert [d.get("/whoami/").json() for d in devices[1:]] == [{"user": "alice"}] * 2


@pytest.mark.parametrize("kind", SERVER_SIDE)
def test_django_login_over_the_limit_is_refused(make_sk, kind: str, alice: User) -> None:
    make_sk(kind, MAX_SESSIONS_PER_USER=1, SESSION_LIMIT_POLICY="refuse")
    first, second = Client(), Client()
    login(first)
    response = second.post("/login/", {"username": "alice", "password": "pw-alice-1"})
    assert response.status_code == 409
    assert b"maximum number of sessions" in response.content
    assert second.get("/whoami/").json() == {"user": None}
    assert first.get("/whoami/").json() == {"user": "alice"}
    assert len(sk_auth.user_sessions(alice)) == 1


def test_a_view_that_saves_at_once_gets_the_409_too(make_sk, alice: User) -> None:
    """``request.session.save()`` inside the view raises ``SessionLimitReached`` there;
    the middleware answers it like the save at the end of the request."""
    from django.urls import path

    from tests.django.project import urls as project_urls

    def bind_and_save(request):  # type: ignore[no-untyped-def]
        request.session.bind_user(alice.pk, regenerate=True)  # the user key login() binds
        request.session.save()
        raise AssertionError("the save above is refused")

    urls = type("urls", (), {"urlpatterns": [
        *project_urls.urlpatterns, path("bind-now/", bind_and_save),
    ]})  # fmt: skip
    with override_settings(ROOT_URLCONF=urls):  # before the engine: a settings change rebuilds
        make_sk("memory", MAX_SESSIONS_PER_USER=1, SESSION_LIMIT_POLICY="refuse")
        login(Client())
        response = Client(raise_request_exception=False).get("/bind-now/")
    assert response.status_code == 409
    assert len(sk_auth.user_sessions(alice)) == 1
