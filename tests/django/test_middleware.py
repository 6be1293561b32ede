"""sessionkit's SessionMiddleware through Django's real handler, WSGI (Client) and ASGI
(AsyncClient), on every store."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.test import AsyncClient, Client, override_settings
from sessionkit_django.signals import session_event

from sessionkit import EventKind, SessionEngine
from sessionkit.testing import FakeClock

DJANGO_MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]


def session_cookie(response):
    return response.cookies.get("sessionid")


def test_counter_sync(sk: SessionEngine) -> None:
    client = Client()
    assert [client.get("/count/").json()["count"] for _ in range(3)] == [1, 2, 3]
    assert client.get("/read/").json()["count"] == 3


@pytest.mark.anyio
@pytest.mark.usefixtures("aclosing")
async def test_counter_async(sk: SessionEngine) -> None:
    client = AsyncClient()
    assert (await client.get("/acount/")).json()["count"] == 1
    assert (await client.get("/count/")).json()["count"] == 2  # sync view under ASGI
    assert (await client.get("/acount/")).json()["count"] == 3


@pytest.mark.anyio
@pytest.mark.usefixtures("aclosing")
async def test_async_middleware_loads_natively(make_sk) -> None:
    engine = make_sk("memory")
    client = AsyncClient()
    await client.get("/acount/")
    used: list[str] = []
    load, aload = engine.load, engine.aload

    def sync_load(session):
        used.append("sync")
        return load(session)

    async def async_load(session):
        used.append("async")
        return await aload(session)

    engine.load, engine.aload = sync_load, async_load  # type: ignore[method-assign]
    assert (await client.get("/acount/")).json()["count"] == 2
    assert used == ["async"]


def test_headers(sk: SessionEngine) -> None:
    client = Client()
    quiet = client.get("/nothing/")
    assert "Vary" not in quiet and session_cookie(quiet) is None
    made = client.get("/count/")
    morsel = session_cookie(made)
    assert morsel is not None and morsel["httponly"] and morsel["samesite"] == "Lax"
    assert morsel["path"] == "/" and int(morsel["max-age"]) > 1_000_000
    assert "Cookie" in made["Vary"] and "private" in made["Cache-Control"]
    read = client.get("/read/")
    assert "Cookie" in read["Vary"]


@override_settings(SESSION_COOKIE_SECURE=True, SESSION_EXPIRE_AT_BROWSER_CLOSE=True)
def test_django_cookie_settings_keep_their_meaning(make_sk) -> None:
    make_sk("memory")
    morsel = session_cookie(Client().get("/count/"))
    assert morsel["secure"] and morsel["max-age"] == ""


def test_no_save_on_5xx(sk: SessionEngine) -> None:
    client = Client(raise_request_exception=False)
    client.get("/count/")
    assert client.get("/boom/").status_code == 500
    assert client.get("/read/").json()["count"] == 1


def test_forged_cookie_never_reaches_the_store(make_sk) -> None:
    engine = make_sk("memory")
    looked: list[str] = []
    original = engine.store.load
    engine.store.load = lambda d: looked.append(d) or original(d)  # type: ignore[method-assign]
    client = Client()
    client.cookies["sessionid"] = "A" * 43 + "." + "B" * 22
    response = client.get("/read/")
    assert response.json()["count"] is None
    assert session_cookie(response)["max-age"] == 0  # cleared
    assert looked == [] and len(engine.store) == 0


def test_unknown_signed_id_creates_nothing(make_sk) -> None:
    engine = make_sk("memory")
    client = Client()
    client.get("/count/")
    stale = client.cookies["sessionid"].value
    engine.store.delete(next(iter(engine.store._records)))
    fresh = Client()
    fresh.cookies["sessionid"] = stale
    for _ in range(5):
        assert fresh.get("/read/").json()["count"] is None
    assert len(engine.store) == 0
    assert fresh.get("/count/").json()["count"] == 1
    assert fresh.cookies["sessionid"].value != stale


def test_fingerprint_change_invalidates(sk: SessionEngine) -> None:
    client = Client(HTTP_USER_AGENT="Mozilla/5.0 Firefox/128.0")
    client.get("/count/")
    assert client.get("/read/").json()["count"] == 1
    thief = Client(HTTP_USER_AGENT="curl/8.0")
    thief.cookies["sessionid"] = client.cookies["sessionid"].value
    assert thief.get("/read/").json()["count"] is None
    if not sk.store.client_side:  # the server-side record is gone for the owner too
        assert client.get("/read/").json()["count"] is None


def test_absolute_timeout(make_sk, clock: FakeClock) -> None:
    make_sk("memory", absolute_timeout=3600, idle_timeout=600)
    client = Client()
    client.get("/count/")
    for _ in range(11):
        clock.advance(300)  # busy: every idle/2
        assert client.get("/count/").json()["count"] > 1
    clock.advance(300)
    assert client.get("/count/").json()["count"] == 1  # dead at the absolute limit


def test_idle_timeout_from_cookie_age(make_sk, clock: FakeClock) -> None:
    with override_settings(SESSION_COOKIE_AGE=600):
        make_sk("memory")
        client = Client()
        client.get("/count/")
        clock.advance(599)
        assert client.get("/read/").json()["count"] == 1
        clock.advance(601)
        assert client.get("/read/").json()["count"] is None


def test_save_every_request_refreshes_the_cookie(make_sk) -> None:
    with override_settings(SESSION_SAVE_EVERY_REQUEST=True):
        make_sk("memory")
        client = Client()
        client.get("/count/")
        assert session_cookie(client.get("/nothing/")) is not None
    make_sk("memory")
    client = Client()
    client.get("/count/")
    assert session_cookie(client.get("/read/")) is None  # touched at most once a minute


def test_messages_and_flash_show_once(sk: SessionEngine) -> None:
    client = Client()
    client.get("/messages/add/")
    first = client.get("/messages/").content.decode()
    assert "Saved!" in first and "flashed once" in first
    second = client.get("/messages/").content.decode()
    assert "Saved!" not in second and "flashed once" not in second


@pytest.mark.anyio
@pytest.mark.usefixtures("aclosing")
async def test_messages_async(sk: SessionEngine) -> None:
    client = AsyncClient()
    await client.get("/messages/add/")
    assert "Saved!" in (await client.get("/messages/")).content.decode()
    assert "Saved!" not in (await client.get("/messages/")).content.decode()


def test_djangos_own_middleware_with_our_engine(sk: SessionEngine) -> None:
    with override_settings(MIDDLEWARE=DJANGO_MIDDLEWARE):
        client = Client()
        assert [client.get("/count/").json()["count"] for _ in range(3)] == [1, 2, 3]
        client.get("/messages/add/")
        assert "Saved!" in client.get("/messages/").content.decode()


@pytest.mark.anyio
@pytest.mark.usefixtures("aclosing")
async def test_djangos_own_middleware_async(sk: SessionEngine) -> None:
    with override_settings(MIDDLEWARE=DJANGO_MIDDLEWARE):
        client = AsyncClient()
        assert (await client.get("/acount/")).json()["count"] == 1
        assert (await client.get("/acount/")).json()["count"] == 2


LOCKED_URLS = override_settings(ROOT_URLCONF="tests.django.project.urls_locked")


@LOCKED_URLS
@pytest.mark.parametrize("kind", ["memory", "file"])
def test_session_lock_serialises_a_session(make_sk, kind: str) -> None:
    make_sk(kind)
    first = Client()
    first.get("/count/")
    cookie = first.cookies["sessionid"].value

    def hit() -> None:
        client = Client()
        client.cookies["sessionid"] = cookie
        for _ in range(5):
            assert client.get("/locked/").status_code == 200

    threads = [threading.Thread(target=hit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert first.get("/read/").json()["count"] == 21


@LOCKED_URLS
@pytest.mark.anyio
@pytest.mark.usefixtures("aclosing")
async def test_session_lock_async(make_sk) -> None:
    import asyncio

    make_sk("memory")
    first = AsyncClient()
    await first.get("/acount/")
    cookie = first.cookies["sessionid"].value

    async def hit() -> None:
        client = AsyncClient()
        client.cookies["sessionid"] = cookie
        for _ in range(5):
            assert (await client.get("/alocked/")).status_code == 200

    await asyncio.gather(*(hit() for _ in range(4)))
    assert (await first.get("/read/")).json()["count"] == 21


LOCKED_ON_COOKIE = (
    "sessionkit setting \"SESSIONKIT['STORE']\": the store cookie:// cannot lock "
    "sessions, but these routes take the session lock: "
    "/locked/ (tests.django.project.views.locked), "
    "/alocked/ (tests.django.project.views.alocked). Locks need a server-side store "
    "(memory://, redis://, sqlite:///, postgresql://, file:/// or memcached://): set "
    "one, or remove the lock from these routes."
)


@LOCKED_URLS
def test_session_lock_views_on_the_cookie_store_stop_the_server(make_sk) -> None:
    """Issue 14: when a server (gunicorn, runs no checks) loads the middleware, not on the
    views' requests; a store that locks loads."""
    from sessionkit_django.middleware import SessionMiddleware

    from sessionkit import LocksUnsupported

    make_sk("cookie")
    with pytest.raises(LocksUnsupported) as caught:
        SessionMiddleware(lambda request: None)
    assert str(caught.value) == LOCKED_ON_COOKIE
    with pytest.raises(LocksUnsupported):
        Client().get("/count/")  # the test client's handler loads it on its first request
    make_sk("memory")
    assert Client().get("/locked/").status_code == 200


def test_a_session_lock_view_the_start_up_did_not_see_refuses_each_request(make_sk) -> None:
    """The backstop (a URLconf changed on a running server): the locked view raises the
    same ``LocksUnsupported`` with or without a session cookie."""
    from sessionkit import LocksUnsupported

    make_sk("cookie")
    client = Client()
    client.get("/count/")  # the middleware is loaded, under the URLs without locked views
    with LOCKED_URLS:
        for _ in range(2):  # with a cookie, then after the error still: alike each time
            with pytest.raises(LocksUnsupported, match=r"take the session lock: GET /locked/\."):
                client.get("/locked/")
        client.cookies.clear()
        with pytest.raises(LocksUnsupported, match=r"SESSIONKIT\['STORE'\]"):
            client.get("/locked/")


@LOCKED_URLS
def test_the_system_check_names_session_lock_views_on_the_cookie_store(make_sk) -> None:
    from sessionkit_django.checks import check_locked_views

    make_sk("cookie")
    errors = check_locked_views()
    assert [e.id for e in errors] == ["sessionkit.E005"]
    assert errors[0].msg == LOCKED_ON_COOKIE
    make_sk("memory")
    assert check_locked_views() == []


def test_core_events_become_a_django_signal(sk: SessionEngine) -> None:
    seen: list[EventKind] = []

    def receiver(sender: object, event, **_: object) -> None:
        seen.append(event.kind)

    session_event.connect(receiver)
    try:
        client = Client()
        client.get("/count/")
        client.cookies["sessionid"] = "forged"
        client.get("/read/")
    finally:
        session_event.disconnect(receiver)
    assert EventKind.CREATED in seen and EventKind.COOKIE_REJECTED in seen


@pytest.mark.parametrize("kind", ["memory", "file", "sqlite", "redis"])
def test_concurrent_requests_changing_different_keys_both_survive(make_sk, kind: str) -> None:
    from tests.django.project import views

    make_sk(kind)
    client = Client()
    client.get("/count/")
    cookie = client.cookies["sessionid"].value
    views.slow_gate.clear()
    views.slow_entered.clear()

    def slow() -> None:
        other = Client()
        other.cookies["sessionid"] = cookie
        assert other.post("/slow/").json() == {"count": 2}

    thread = threading.Thread(target=slow)
    thread.start()
    assert views.slow_entered.wait(10)
    assert client.get("/put/?colour=blue").json() == {"count": 1, "colour": "blue"}
    views.slow_gate.set()
    thread.join(10)
    assert client.get("/put/").json() == {"count": 2, "colour": "blue"}


def test_nested_mutation_is_saved(sk: SessionEngine) -> None:
    client = Client()
    client.get("/put/?a=1")
    session = client.session
    assert session["a"] == "1"
    from django.test import RequestFactory
    from sessionkit_django.middleware import SessionMiddleware

    def view(request):
        request.session.setdefault("cart", [])
        request.session["cart"].append("apple")  # in place, no assignment
        from django.http import HttpResponse

        return HttpResponse("ok")

    middleware = SessionMiddleware(view)
    cookie = client.cookies["sessionid"].value
    for _ in range(2):
        request = RequestFactory().get("/", HTTP_COOKIE=f"sessionid={cookie}")
        response = middleware(request)
        if "sessionid" in response.cookies:
            cookie = response.cookies["sessionid"].value
    client.cookies["sessionid"] = cookie
    assert client.get("/put/").json()["cart"] == ["apple", "apple"]


def test_the_system_check_finds_locked_class_based_views_and_includes() -> None:
    from django.urls import include, path
    from django.utils.decorators import method_decorator
    from django.views import View
    from sessionkit_django.checks import locked_views
    from sessionkit_django.middleware import session_lock

    @method_decorator(session_lock, name="dispatch")
    class Checkout(View):
        def post(self, request: Any) -> Any:
            return None

    class Plain(View):
        @method_decorator(session_lock)
        def post(self, request: Any) -> Any:
            return None

    patterns = [
        path("shop/", include([path("checkout/", Checkout.as_view())])),
        path("pay/", Plain.as_view()),
        path("free/", View.as_view()),
    ]
    found = locked_views(patterns)
    assert [entry.split(" ")[0] for entry in found] == ["/shop/checkout/", "/pay/"]
