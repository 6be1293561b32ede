"""The sessions API at ``path("sessions/", include("sessionkit_django.urls"))``, under
sessionkit's middleware and under Django's own SessionMiddleware over sessionkit's engine,
with Django's CSRF enforced, on stores with a user index (memory, file, SQLite, Redis)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import AsyncClient, Client, override_settings

from sessionkit import SessionEngine
from tests.django.conftest import INDEXED
from tests.django.test_middleware import DJANGO_MIDDLEWARE

pytestmark = pytest.mark.django_db(transaction=True)
SAME = {"HTTP_SEC_FETCH_SITE": "same-origin"}


@pytest.fixture(params=["sessionkit", "django"])
def middleware(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "sessionkit":
        yield request.param
        return
    with override_settings(MIDDLEWARE=DJANGO_MIDDLEWARE):
        yield request.param


@pytest.fixture(params=INDEXED)
def sk(request: pytest.FixtureRequest, make_sk: Any, middleware: str) -> SessionEngine:
    engine: SessionEngine = make_sk(request.param)
    return engine


@pytest.fixture
def users(db: None) -> dict[str, User]:
    made = {name: User.objects.create_user(name, password=f"pw-{name}") for name in
            ("alice", "bob")}  # fmt: skip
    made["root"] = User.objects.create_user("root", password="pw-root", is_staff=True)
    return made


def signed_in(name: str) -> Client:
    client = Client(enforce_csrf_checks=True)
    response = client.post("/login/", {"username": name, "password": f"pw-{name}"})
    assert response.json() == {"ok": True}
    return client


def csrf(client: Client) -> dict[str, str]:
    """What a same-origin JavaScript client sends: the CSRF token, and the browser's
    Sec-Fetch-Site."""
    if "csrftoken" not in client.cookies:
        client.get("/sessions/")
    return {"HTTP_X_CSRFTOKEN": client.cookies["csrftoken"].value, **SAME}


def who(client: Client) -> str | None:
    user: str | None = client.get("/whoami/").json()["user"]
    return user


def handle_of(client: Client) -> str:
    rows = client.get("/sessions/").json()["sessions"]
    return str(next(r["handle"] for r in rows if r["current"]))


def test_list_and_revoke_my_other_session(sk: SessionEngine, users: dict[str, User]) -> None:
    phone, laptop = signed_in("alice"), signed_in("alice")
    signed_in("bob")
    response = laptop.get("/sessions/")
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["user"] == str(users["alice"].pk) and len(body["sessions"]) == 2
    assert laptop.cookies["sessionid"].value.split(".")[0] not in response.content.decode()
    revoked = laptop.delete(f"/sessions/{handle_of(phone)}", **csrf(laptop))
    assert revoked.json() == {"revoked": 1, "current": False}
    assert who(phone) is None  # that client's next request is anonymous
    assert who(laptop) == "alice"


def test_revoking_my_own_session_logs_me_out(sk: SessionEngine, users: dict[str, User]) -> None:
    laptop = signed_in("alice")
    response = laptop.delete(f"/sessions/{handle_of(laptop)}", **csrf(laptop))
    assert response.json() == {"revoked": 1, "current": True}
    assert who(laptop) is None


def test_revoke_others_and_extend(sk: SessionEngine, users: dict[str, User]) -> None:
    a, b, c = signed_in("alice"), signed_in("alice"), signed_in("alice")
    assert c.post("/sessions/revoke-others", **csrf(c)).json() == {"revoked": 2}
    assert (who(a), who(b), who(c)) == (None, None, "alice")
    extended = c.post("/sessions/extend", b'{"seconds": 600}', "application/json", **csrf(c))
    assert extended.status_code == 200 and extended.json()["seconds"] == 600
    assert extended.cookies["sessionid"]["max-age"] == 600
    bad = c.post("/sessions/extend", b"{nope", "application/json", **csrf(c))
    assert (bad.status_code, bad.json()["error"]) == (400, "bad_json")


def test_bad_handles_are_404_and_revoke_nothing(sk: SessionEngine, users: dict[str, User]) -> None:
    alice, bob = signed_in("alice"), signed_in("bob")
    for path in (f"/sessions/{handle_of(bob)}", "/sessions/0123456789abcdef", "/sessions/x"):
        response = alice.delete(path, **csrf(alice))
        assert response.status_code == 404, path
    assert who(bob) == "bob"


def test_forged_staff_calls_are_403(sk: SessionEngine, users: dict[str, User]) -> None:
    alice, bob = signed_in("alice"), signed_in("bob")
    pk, bobs = users["bob"].pk, handle_of(bob)
    for response in [
        alice.get(f"/sessions/users/{pk}"),
        alice.delete(f"/sessions/users/{pk}/{bobs}", **csrf(alice)),
        alice.post(f"/sessions/users/{pk}/revoke-all", **csrf(alice)),
    ]:
        assert (response.status_code, response.json()["error"]) == (403, "forbidden")
    assert who(bob) == "bob"


def test_staff_list_and_revoke(sk: SessionEngine, users: dict[str, User]) -> None:
    root, bob1, bob2 = signed_in("root"), signed_in("bob"), signed_in("bob")
    pk = users["bob"].pk
    assert len(root.get(f"/sessions/users/{pk}").json()["sessions"]) == 2
    one = root.delete(f"/sessions/users/{pk}/{handle_of(bob1)}", **csrf(root))
    assert one.json() == {"revoked": 1, "current": False}
    assert (who(bob1), who(bob2)) == (None, "bob")
    every = root.post(f"/sessions/users/{pk}/revoke-all", **csrf(root))
    assert every.json() == {"revoked": 1, "current": False}
    assert (who(bob2), who(root)) == (None, "root")


@pytest.mark.parametrize(
    "headers",
    [
        {},  # no CSRF token: Django's CsrfViewMiddleware refuses
        {"HTTP_ORIGIN": "https://evil.example", "token": True},  # Django refuses the Origin
        {"HTTP_SEC_FETCH_SITE": "cross-site", "token": True},  # sessionkit refuses
    ],
)
def test_cross_site_calls_are_403_and_revoke_nothing(
    sk: SessionEngine, users: dict[str, User], headers: dict[str, Any]
) -> None:
    phone, laptop = signed_in("alice"), signed_in("alice")
    other = handle_of(phone)
    headers = dict(headers)
    if headers.pop("token", False):
        headers["HTTP_X_CSRFTOKEN"] = csrf(laptop)["HTTP_X_CSRFTOKEN"]
    for response in [
        laptop.delete(f"/sessions/{other}", **headers),
        laptop.post("/sessions/revoke-others", **headers),
    ]:
        assert response.status_code == 403
        if "HTTP_SEC_FETCH_SITE" in headers:  # past Django's CSRF check: sessionkit's
            assert response.json()["error"] == "cross_site"
    assert who(phone) == "alice"


def test_not_signed_in_is_401(sk: SessionEngine, users: dict[str, User]) -> None:
    response = Client().get("/sessions/")
    assert (response.status_code, response.json()["error"]) == (401, "not_signed_in")


def test_the_cookie_store_answers_501(make_sk: Any, users: dict[str, User]) -> None:
    make_sk("cookie")
    response = signed_in("alice").get("/sessions/")
    assert response.status_code == 501
    assert "no per-user index" in response.json()["detail"]


@pytest.mark.anyio
@pytest.mark.usefixtures("aclosing")
async def test_under_asgi(make_sk: Any, users: dict[str, User]) -> None:
    make_sk("memory")
    phone, laptop = AsyncClient(), AsyncClient(enforce_csrf_checks=True)
    for client in (phone, laptop):
        login = await client.post("/login/", {"username": "alice", "password": "pw-alice"})
        assert login.json() == {"ok": True}
    rows = (await laptop.get("/sessions/")).json()["sessions"]
    other = next(r["handle"] for r in rows if not r["current"])
    token = laptop.cookies["csrftoken"].value
    headers = {"X-CSRFToken": token, "Sec-Fetch-Site": "same-origin"}
    response = await laptop.delete(f"/sessions/{other}", headers=headers)
    assert response.json() == {"revoked": 1, "current": False}
    assert (await phone.get("/awhoami/")).json() == {"user": None}
    assert (await laptop.get("/awhoami/")).json() == {"user": "alice"}
