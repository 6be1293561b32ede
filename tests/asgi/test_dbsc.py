"""DBSC through the ASGI middleware (Starlette and FastAPI): registration, refresh, a
stolen cookie, logout and the bad-input cases, with a real key signed by PyJWT, against the
memory, Redis and SQLite stores."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sessionkit_asgi import SessionMiddleware
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sessionkit import ConfigError, Event, EventBus, EventKind
from sessionkit.testing import FakeClock
from tests.asgi.apps import KEY, TestClient
from tests.conftest import store_url
from tests.dbsc_client import Browser, DeviceKey, parse_registration

ORIGIN = "https://testserver"
REG = "/sessionkit/dbsc/registration"
REFRESH = "/sessionkit/dbsc/refresh"


async def login(request: Request) -> JSONResponse:
    request.session["cart"] = ["apple"]
    request.session.bind_user(request.query_params.get("user", "alice"))
    return JSONResponse({"ok": True})


async def me(request: Request) -> JSONResponse:
    return JSONResponse({"user": request.session.user_id, "data": dict(request.session)})


async def logout(request: Request) -> JSONResponse:
    request.session.invalidate()
    return JSONResponse({"ok": True})


async def rotate(request: Request) -> JSONResponse:
    request.session.regenerate()
    return JSONResponse({"ok": True})


async def bind_here(request: Request) -> JSONResponse:
    request.session.start_device_binding()
    return JSONResponse({"ok": True})


ROUTES = [
    Route("/login", login), Route("/me", me), Route("/logout", logout),
    Route("/rotate", rotate), Route("/bind", bind_here),
]  # fmt: skip


def build(
    store: str, clock: FakeClock, events: EventBus | None = None, **options: Any
) -> Starlette:
    options.setdefault("dbsc", True)
    return Starlette(
        routes=ROUTES,
        middleware=[
            Middleware(
                SessionMiddleware,
                secret_key=KEY,
                store=store,
                clock=clock,
                events=events or EventBus(),
                **options,
            )
        ],
    )


@pytest.fixture(params=["memory", "redis", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return store_url(request.param, tmp_path, request)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def events() -> list[Event]:
    return []


@pytest.fixture
def client(store: str, clock: FakeClock, events: list[Event]) -> Iterator[TestClient]:
    bus = EventBus()
    bus.subscribe(events.append)
    with TestClient(build(store, clock, bus), base_url=ORIGIN) as test_client:
        yield test_client


def poster(client: TestClient) -> Any:
    def post(path: str, headers: dict[str, str]) -> tuple[int, Any, Any]:
        response = client.post(path, headers=headers)
        body = response.json() if response.content else None
        return response.status_code, response.headers, body

    return post


def registered(client: TestClient, key: DeviceKey | None = None) -> Browser:
    response = client.get("/login")
    assert response.status_code == 200
    browser = Browser(poster(client), ORIGIN, key)
    status, body = browser.register(response.headers["secure-session-registration"])
    assert status == 200, body
    return browser


def test_login_offers_registration(client: TestClient) -> None:
    response = client.get("/login")
    header = response.headers["secure-session-registration"]
    params = parse_registration(header)
    assert params["algs"] == "ES256 RS256"
    assert params["path"] == REG
    assert len(params["challenge"]) >= 40
    assert client.get("/me").headers.get("secure-session-registration") is None


def test_register_then_the_bound_cookie_keeps_the_session(
    client: TestClient, events: list[Event]
) -> None:
    browser = registered(client)
    assert browser.instructions is not None
    assert browser.instructions["refresh_url"] == REFRESH
    assert browser.instructions["scope"] == {
        "origin": ORIGIN, "include_site": False, "scope_specification": []
    }  # fmt: skip
    credential = browser.instructions["credentials"][0]
    assert credential["type"] == "cookie" and credential["name"] == "session_bound"
    assert "HttpOnly" in credential["attributes"] and "Path=/" in credential["attributes"]
    assert "session_bound" in client.cookies
    assert client.get("/me").json()["user"] == "alice"
    assert any(e.kind is EventKind.DBSC_REGISTERED for e in events)


def test_registration_response_headers(client: TestClient) -> None:
    response = client.get("/login")
    params = parse_registration(response.headers["secure-session-registration"])
    proof = DeviceKey().proof(params["challenge"], ORIGIN + REG)
    answer = client.post(REG, headers={"Secure-Session-Response": f'"{proof}"'})
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert "access-control-allow-origin" not in answer.headers
    assert answer.headers["secure-session-challenge"].startswith('"')


def test_bound_cookie_expiry_then_refresh(client: TestClient, clock: FakeClock,
                                          events: list[Event]) -> None:  # fmt: skip
    browser = registered(client)
    clock.advance(601)  # the bound cookie (600 s) has expired
    assert client.get("/me").json() == {"user": None, "data": {}}
    assert any(e.kind is EventKind.DBSC_MISSING for e in events)
    status, body = browser.refresh()
    assert status == 200, body
    assert body["session_identifier"] == browser.session_id
    assert client.get("/me").json()["data"] == {"cart": ["apple"]}


def test_refresh_without_cached_challenge_gets_one(client: TestClient, clock: FakeClock) -> None:
    browser = registered(client)
    browser.cached = None
    clock.advance(700)
    status, _ = browser.refresh()  # 403 + challenge, then signed: 200
    assert status == 200
    assert client.get("/me").json()["user"] == "alice"


def test_stale_challenge_gets_a_new_one_not_a_logout(client: TestClient, clock: FakeClock) -> None:
    browser = registered(client)
    old = browser.cached
    clock.advance(601)
    assert browser.refresh()[0] == 200
    browser.cached = old  # used already: a valid signature over a stale challenge
    headers = {
        "Sec-Secure-Session-Id": f'"{browser.session_id}"',
        "Secure-Session-Response": '"'
        + browser.key.proof(old, ORIGIN + REFRESH, sub=browser.session_id)
        + '"',
    }  # type: ignore[arg-type]
    answer = client.post(REFRESH, headers=headers)
    assert answer.status_code == 403
    assert answer.headers["secure-session-challenge"].endswith(f';id="{browser.session_id}"')
    assert client.get("/me").json()["user"] == "alice"  # still signed in


def test_previous_challenge_accepted_during_overlap(client: TestClient) -> None:
    browser = registered(client)
    first = browser.cached
    headers = {"Sec-Secure-Session-Id": f'"{browser.session_id}"'}
    answer = client.post(REFRESH, headers=headers)  # no proof: a newer challenge is issued
    assert answer.status_code == 403
    browser.cached = first  # the earlier, still unused one still works
    assert browser.refresh()[0] == 200


def test_stolen_cookie_stops_working(store: str, clock: FakeClock) -> None:
    app = build(store, clock)
    with TestClient(app, base_url=ORIGIN) as victim, TestClient(app, base_url=ORIGIN) as thief:
        browser = registered(victim)
        thief.cookies.set("session", victim.cookies["session"])
        assert thief.get("/me").json()["user"] is None  # no bound cookie at all
        thief.cookies.set("session_bound", victim.cookies["session_bound"])
        assert thief.get("/me").json()["user"] == "alice"  # within its minutes
        clock.advance(601)
        assert thief.get("/me").json()["user"] is None  # ... and then never again
        # the thief cannot refresh: it has no key
        status, _, _ = poster(thief)(REFRESH, {"Sec-Secure-Session-Id": f'"{browser.session_id}"'})
        assert status == 403  # a challenge it cannot sign
        status, _ = browser.refresh()
        assert status == 200
        assert victim.get("/me").json()["user"] == "alice"  # the browser goes on


def test_invalidate_policy_deletes_the_session(store: str, clock: FakeClock) -> None:
    app = build(store, clock, dbsc_missing_action="invalidate")
    with TestClient(app, base_url=ORIGIN) as victim, TestClient(app, base_url=ORIGIN) as thief:
        browser = registered(victim)
        thief.cookies.set("session", victim.cookies["session"])
        assert thief.get("/me").json()["user"] is None
        assert browser.refresh()[0] == 200
        assert browser.instructions is not None
        assert victim.get("/me").json()["user"] is None  # deleted: the thief ended it


def test_session_without_key_unchanged(client: TestClient, clock: FakeClock) -> None:
    client.get("/login")  # a browser without DBSC ignores the header
    clock.advance(3600)
    assert client.get("/me").json()["user"] == "alice"
    assert "session_bound" not in client.cookies


def test_logout_ends_the_dbsc_session(client: TestClient) -> None:
    browser = registered(client)
    response = client.get("/logout")
    cleared = [c for c in response.headers.get_list("set-cookie") if c.startswith("session_bound=")]
    assert cleared and "Max-Age=0" in cleared[0]
    status, body = browser.refresh()
    assert (status, body) == (200, {"continue": False})


def test_regenerate_restarts_registration(client: TestClient) -> None:
    browser = registered(client)
    response = client.get("/rotate")
    assert "secure-session-registration" in response.headers
    _, body = browser.refresh()  # the old DBSC session is over
    assert body == {"continue": False}
    second = Browser(poster(client), ORIGIN)
    assert second.register(response.headers["secure-session-registration"])[0] == 200
    assert client.get("/me").json()["user"] == "alice"


def test_explicit_start(client: TestClient) -> None:
    client.get("/login")
    response = client.get("/bind")
    assert "secure-session-registration" in response.headers
    assert "private" in response.headers["cache-control"]  # never in a shared cache


def test_older_header_names_accepted(client: TestClient, clock: FakeClock) -> None:
    response = client.get("/login")
    params = parse_registration(response.headers["secure-session-registration"])
    proof = DeviceKey().proof(params["challenge"], ORIGIN + REG, key_in="payload")
    answer = client.post(REG, headers={"Sec-Session-Response": proof})  # unquoted, old name
    assert answer.status_code == 200
    browser = Browser(poster(client), ORIGIN)
    browser.key = DeviceKey()
    browser.session_id = answer.json()["session_identifier"]
    browser.refresh_url = REFRESH
    clock.advance(601)
    status, _ = browser.refresh(header="Sec-Session-Response", id_header="Sec-Session-Id")
    assert status == 400  # another key than the registered one: refused


def test_rsa_key(client: TestClient) -> None:
    registered(client, DeviceKey("rsa"))
    assert client.get("/me").json()["user"] == "alice"


# -- bad input: a 4xx and nothing stored ------------------------------------------------------
def _challenge(client: TestClient) -> str:
    response = client.get("/login")
    return parse_registration(response.headers["secure-session-registration"])["challenge"]


def _register(client: TestClient, proof: str) -> int:
    return client.post(REG, headers={"Secure-Session-Response": f'"{proof}"'}).status_code


def _not_bound(client: TestClient, clock: FakeClock, user: str = "alice") -> None:
    """Nothing was stored: the session has no key, so it needs no bound cookie."""
    assert "session_bound" not in client.cookies
    clock.advance(3600)
    assert client.get("/me").json()["user"] == user


def test_replayed_challenge(client: TestClient) -> None:
    challenge = _challenge(client)
    proof = DeviceKey().proof(challenge, ORIGIN + REG)
    assert _register(client, proof) == 200
    assert _register(client, DeviceKey().proof(challenge, ORIGIN + REG)) == 400


def test_signed_by_another_key(client: TestClient, clock: FakeClock) -> None:
    key, other = DeviceKey(), DeviceKey()
    proof = key.proof(_challenge(client), ORIGIN + REG, signer=other.private)
    assert _register(client, proof) == 400
    _not_bound(client, clock)


@pytest.mark.parametrize("alg", ["none", "HS256"])
def test_none_and_hmac_refused(client: TestClient, clock: FakeClock, alg: str) -> None:
    import jwt

    payload = {"jti": _challenge(client), "aud": ORIGIN + REG}
    key = DeviceKey()
    secret = None if alg == "none" else "k" * 32
    proof = jwt.encode(payload, secret, algorithm=alg,  # type: ignore[arg-type]
                       headers={"typ": "dbsc+jwt", "jwk": key.jwk()})  # fmt: skip
    assert _register(client, proof) == 400
    _not_bound(client, clock)


def test_oversized_proof(client: TestClient, clock: FakeClock) -> None:
    proof = DeviceKey().proof(_challenge(client), ORIGIN + REG, padding=9000)
    assert _register(client, proof) == 413
    _not_bound(client, clock)


def test_wrong_curve(client: TestClient, clock: FakeClock) -> None:
    key = DeviceKey(curve=ec.SECP384R1())
    proof = key.proof(_challenge(client), ORIGIN + REG, alg="ES384")
    assert _register(client, proof) == 400
    _not_bound(client, clock)


def test_wrong_typ(client: TestClient, clock: FakeClock) -> None:
    proof = DeviceKey().proof(_challenge(client), ORIGIN + REG, typ="JWT")
    assert _register(client, proof) == 400
    _not_bound(client, clock)


def test_registration_for_another_session(store: str, clock: FakeClock) -> None:
    app = build(store, clock)
    with TestClient(app, base_url=ORIGIN) as alice, TestClient(app, base_url=ORIGIN) as bob:
        challenge = _challenge(alice)
        bob.get("/login?user=bob")
        proof = DeviceKey().proof(challenge, ORIGIN + REG)
        assert _register(bob, proof) == 403
        _not_bound(bob, clock, "bob")
        _not_bound(alice, clock)


def test_registration_without_session(client: TestClient) -> None:
    challenge = _challenge(client)
    client.cookies.clear()
    assert _register(client, DeviceKey().proof(challenge, ORIGIN + REG)) == 403


def test_get_refused_and_rate_limited(client: TestClient) -> None:
    assert client.get(REG).status_code == 405
    registered(client)
    statuses = [client.post(REFRESH, headers={}).status_code for _ in range(35)]
    assert 429 in statuses


def test_cross_site_refused(client: TestClient) -> None:
    proof = DeviceKey().proof(_challenge(client), ORIGIN + REG)
    answer = client.post(REG, headers={"Secure-Session-Response": f'"{proof}"',
                                       "Sec-Fetch-Site": "cross-site"})  # fmt: skip
    assert answer.status_code == 403


def test_cookie_store_refused_at_startup(clock: FakeClock) -> None:
    with pytest.raises(ConfigError, match="server-side store"):
        SessionMiddleware(build("memory://", clock), secret_key=KEY, store="cookie://", dbsc=True)
