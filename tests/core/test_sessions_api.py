"""The framework-free sessions API on real stores with a user index (memory, file, SQLite,
Redis, PostgreSQL), sync and async, and its refusals: unknown or foreign handles, forged
staff calls, cross-site calls, a store without a user index."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from sessionkit import (
    ApiResponse,
    Caller,
    Effect,
    Session,
    SessionConfig,
    SessionEngine,
    SessionsAPI,
    Store,
    same_origin,
)
from sessionkit.stores.sql import SQLStore
from sessionkit.testing import Browser
from tests.conftest import KEY, store_url

INDEXED = ["memory", "file", "sqlite", "redis", "postgresql"]
FLAVOURS = ["sync", "async"]


@pytest.fixture(params=INDEXED)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SessionEngine]:
    if request.param == "postgresql":  # a table of its own on the shared server
        url = request.getfixturevalue("postgres_server").url
        store: Store | str = SQLStore(url, table=f"s_{uuid4().hex[:12]}")
    else:
        store = store_url(request.param, tmp_path, request)
    engine = SessionEngine(SessionConfig(secret_key=KEY, store=store, absolute_timeout=3600))
    engine.store.create_schema()
    yield engine
    engine.store.close()


@pytest.fixture(params=FLAVOURS)
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def sign_in(engine: SessionEngine, user: str) -> Browser:
    browser = Browser(engine)
    browser.visit(lambda s: s.bind_user(user))
    return browser


def caller(browser: Browser) -> Caller:
    session = browser.begin()
    return Caller.of(session, browser.engine)


def call(
    engine: SessionEngine, flavour: str, method: str, path: str, who: Caller,
    body: bytes | None = None, **options: Any,
) -> ApiResponse:  # fmt: skip
    options.setdefault("trusted_origin", True)
    api = SessionsAPI(engine)
    if flavour == "sync":
        return api.dispatch(method, path, body, who, **options)

    async def run() -> ApiResponse:
        try:
            return await api.adispatch(method, path, body, who, **options)
        finally:
            await engine.store.aclose()  # its async client belongs to this loop

    return asyncio.run(run())


def user_of(browser: Browser) -> str | None:
    seen: list[Session] = []
    browser.visit(seen.append)
    return seen[0].user_id


def test_lists_my_sessions_by_handle_never_the_id(engine: SessionEngine, flavour: str) -> None:
    phone, laptop = sign_in(engine, "alice"), sign_in(engine, "alice")
    sign_in(engine, "bob")
    response = call(engine, flavour, "GET", "/", caller(laptop))
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    rows = response.body["sessions"]
    assert response.body["user"] == "alice"
    assert len(rows) == 2
    assert [r["current"] for r in rows].count(True) == 1
    current = next(r for r in rows if r["current"])
    assert current["handle"] == caller(laptop).handle
    assert set(current) == {"handle", "device", "created", "last_seen", "current"}
    assert current["device"] == "Chrome on Linux"
    assert current["created"].endswith("Z")
    text = response.json().decode()
    for browser in (phone, laptop):
        assert browser.cookie is not None
        session_id = browser.cookie.split(".")[0]
        assert session_id not in text
        digest = caller(browser).digest
        assert digest is not None and digest not in text


def test_revoking_my_other_session_logs_that_client_out(
    engine: SessionEngine, flavour: str
) -> None:
    phone, laptop = sign_in(engine, "alice"), sign_in(engine, "alice")
    other = caller(phone).handle
    response = call(engine, flavour, "DELETE", f"/{other}", caller(laptop))
    assert (response.status, response.body, response.effect) == (
        200, {"revoked": 1, "current": False}, None
    )  # fmt: skip
    assert user_of(phone) is None
    assert user_of(laptop) == "alice"


def test_revoking_my_current_session_asks_the_adapter_to_log_out(
    engine: SessionEngine, flavour: str
) -> None:
    laptop = sign_in(engine, "alice")
    me = caller(laptop)
    response = call(engine, flavour, "DELETE", f"/{me.handle}/", me)
    assert response.status == 200
    assert response.effect == Effect("logout")
    assert user_of(laptop) is None


@pytest.mark.parametrize("handle", ["0123456789abcdef", "0123456789ABCDEF", "..", "x" * 500])
def test_an_unknown_handle_is_404(engine: SessionEngine, flavour: str, handle: str) -> None:
    laptop = sign_in(engine, "alice")
    response = call(engine, flavour, "DELETE", f"/{handle}", caller(laptop))
    assert response.status == 404
    assert response.body["error"] == "not_found"
    assert user_of(laptop) == "alice"


def test_another_users_handle_is_404_and_revokes_nothing(
    engine: SessionEngine, flavour: str
) -> None:
    alice, bob = sign_in(engine, "alice"), sign_in(engine, "bob")
    bobs = caller(bob).handle
    response = call(engine, flavour, "DELETE", f"/{bobs}", caller(alice))
    assert response.status == 404
    assert user_of(bob) == "bob"
    assert len(engine.store.user_sessions("bob")) == 1


def test_revoke_others_keeps_this_one(engine: SessionEngine, flavour: str) -> None:
    phone, tablet, laptop = (sign_in(engine, "alice") for _ in range(3))
    bob = sign_in(engine, "bob")
    response = call(engine, flavour, "POST", "/revoke-others", caller(laptop))
    assert (response.status, response.body) == (200, {"revoked": 2})
    assert (user_of(phone), user_of(tablet), user_of(laptop)) == (None, None, "alice")
    assert user_of(bob) == "bob"


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/users/bob"), ("DELETE", "/users/bob/{bob}"), ("POST", "/users/bob/revoke-all")],
)
def test_a_forged_staff_call_is_403_and_changes_nothing(
    engine: SessionEngine, flavour: str, method: str, path: str
) -> None:
    alice, bob = sign_in(engine, "alice"), sign_in(engine, "bob")
    path = path.format(bob=caller(bob).handle)
    response = call(engine, flavour, method, path, caller(alice), staff=False)
    assert (response.status, response.body["error"]) == (403, "forbidden")
    assert user_of(bob) == "bob"


@pytest.mark.parametrize("path", ["/users/bob/not-a-handle", "/users/bob/x/y", "/users/"])
def test_the_staff_area_asks_who_before_what(engine: SessionEngine, path: str) -> None:
    """A path of the staff area that names nothing is a 401 to the anonymous and a 403 to
    non-staff, as a well-formed one is: the answer tells them nothing about what exists."""
    alice = caller(sign_in(engine, "alice"))
    anonymous = Caller(None)
    assert call(engine, "sync", "DELETE", path, anonymous).status == 401
    assert call(engine, "sync", "DELETE", path, alice, staff=False).status == 403
    assert call(engine, "sync", "DELETE", path, alice, staff=True).status == 404


@pytest.mark.parametrize("verdict", [1, "yes", object()])
def test_only_a_staff_check_that_says_true_counts(engine: SessionEngine, verdict: Any) -> None:
    who = caller(sign_in(engine, "alice"))
    assert call(engine, "sync", "GET", "/users/bob", who, staff=verdict).status == 403


def test_staff_list_and_revoke_any_user(engine: SessionEngine, flavour: str) -> None:
    admin = sign_in(engine, "admin")
    bob1, bob2 = sign_in(engine, "bob"), sign_in(engine, "bob")
    who = caller(admin)
    listed = call(engine, flavour, "GET", "/users/bob", who, staff=True)
    assert listed.status == 200 and listed.body["user"] == "bob"
    assert {r["handle"] for r in listed.body["sessions"]} == {
        caller(bob1).handle, caller(bob2).handle
    }  # fmt: skip
    assert not any(r["current"] for r in listed.body["sessions"])
    one = call(engine, flavour, "DELETE", f"/users/bob/{caller(bob1).handle}", who, staff=True)
    assert (one.status, one.effect) == (200, None)
    assert (user_of(bob1), user_of(bob2)) == (None, "bob")
    every = call(engine, flavour, "POST", "/users/bob/revoke-all", who, staff=True)
    assert (every.status, every.body) == (200, {"revoked": 1, "current": False})
    assert user_of(bob2) is None
    assert user_of(admin) == "admin"


def test_a_staff_handle_of_another_user_is_404(engine: SessionEngine, flavour: str) -> None:
    admin, bob = sign_in(engine, "admin"), sign_in(engine, "bob")
    path = f"/users/carol/{caller(bob).handle}"
    response = call(engine, flavour, "DELETE", path, caller(admin), staff=True)
    assert response.status == 404
    assert user_of(bob) == "bob"


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/revoke-others"), ("DELETE", "/{bob}"), ("POST", "/extend"),
     ("POST", "/users/bob/revoke-all")],
)  # fmt: skip
def test_a_cross_site_call_is_403_and_changes_nothing(
    engine: SessionEngine, flavour: str, method: str, path: str
) -> None:
    alice, bob = sign_in(engine, "bob"), sign_in(engine, "bob")
    path = path.format(bob=caller(bob).handle)
    response = call(engine, flavour, method, path, caller(alice), b'{"seconds": 60}',
                    staff=True, trusted_origin=False)  # fmt: skip
    assert (response.status, response.body["error"], response.effect) == (403, "cross_site", None)
    assert (user_of(alice), user_of(bob)) == ("bob", "bob")


def test_not_signed_in_is_401(engine: SessionEngine, flavour: str) -> None:
    anonymous = Browser(engine)
    anonymous.visit(lambda s: s.update(cart=[1]))
    for method, path in [("GET", "/"), ("POST", "/revoke-others"), ("POST", "/extend")]:
        response = call(engine, flavour, method, path, caller(anonymous), b'{"seconds": 5}')
        assert response.status == 401


def test_wrong_method_is_405_with_allow(engine: SessionEngine, flavour: str) -> None:
    who = caller(sign_in(engine, "alice"))
    response = call(engine, flavour, "POST", "/", who)
    assert (response.status, response.headers["Allow"]) == (405, "GET, HEAD")
    assert call(engine, flavour, "GET", "/revoke-others", who).status == 405
    assert call(engine, flavour, "GET", "/nowhere/at/all", who).status == 404


def test_extend_is_bounded_by_the_absolute_timeout(engine: SessionEngine, flavour: str) -> None:
    who = caller(sign_in(engine, "alice"))
    short = call(engine, flavour, "POST", "/extend", who, b'{"seconds": 600}')
    assert (short.status, short.effect) == (200, Effect("extend", 600.0))
    long = call(engine, flavour, "POST", "/extend", who, b'{"seconds": 10000000}')
    assert long.effect == Effect("extend", 3600.0)
    assert who.created is not None
    assert long.body["expires"] <= SessionsAPI(engine).dispatch(
        "POST", "/extend", b'{"seconds": 3600}', who, trusted_origin=True
    ).body["expires"]  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[]", b'{"seconds": "60"}', b'{"seconds": 0}', b'{"seconds": -5}',
     b'{"seconds": true}', b'{"seconds": NaN}', b'{"seconds": 1e999}', b"\xff\xfe"],
)  # fmt: skip
def test_extend_refuses_bad_input_with_400(engine: SessionEngine, body: bytes) -> None:
    who = caller(sign_in(engine, "alice"))
    response = call(engine, "sync", "POST", "/extend", who, body)
    assert response.status == 400 and response.effect is None
    json.loads(response.json())


def test_extend_applied_by_the_caller_moves_the_expiry(engine: SessionEngine) -> None:
    laptop = sign_in(engine, "alice")
    response = call(engine, "sync", "POST", "/extend", caller(laptop), b'{"seconds": 120}')
    assert response.effect is not None and response.effect.seconds is not None
    seconds = response.effect.seconds
    visit = laptop.visit(lambda s: s.set_expiry(seconds))
    assert visit.session.expires is not None
    assert response.body["expires"][:16] == visit.session.expires.isoformat()[:16]


@pytest.mark.parametrize(("kind", "name"), [("cookie", "CookieStore"),
                                           ("memcached", "MemcachedStore")])  # fmt: skip
def test_a_store_without_a_user_index_answers_501(
    flavour: str, kind: str, name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = store_url(kind, tmp_path, request)
    engine = SessionEngine(SessionConfig(secret_key=KEY, store=url))
    try:
        who = caller(sign_in(engine, "alice"))
        response = call(engine, flavour, "GET", "/", who)
        assert (response.status, response.body["error"]) == (501, "no_user_index")
        assert name in response.body["detail"]
        assert "keeps no per-user index" in response.body["detail"]
        assert call(engine, flavour, "POST", "/revoke-others", who).status == 501
        assert call(engine, flavour, "POST", "/extend", who, b'{"seconds": 60}').status == 200
    finally:
        engine.store.close()


@pytest.mark.parametrize(
    ("method", "headers", "ok"),
    [
        ("GET", {}, True),
        ("HEAD", {"Sec-Fetch-Site": "cross-site"}, True),
        ("POST", {}, False),
        ("POST", {"Sec-Fetch-Site": "same-origin"}, True),
        ("POST", {"sec-fetch-site": "none"}, True),
        ("POST", {"Sec-Fetch-Site": "same-site"}, False),
        ("POST", {"Sec-Fetch-Site": "cross-site", "Origin": "https://app.example"}, False),
        ("DELETE", {"Origin": "https://app.example"}, True),
        ("DELETE", {"Origin": "https://app.example:443"}, True),
        ("DELETE", {"Origin": "https://APP.example"}, True),
        ("DELETE", {"Origin": "http://app.example"}, False),
        ("DELETE", {"Origin": "https://app.example:8443"}, False),
        ("DELETE", {"Origin": "https://evil.example"}, False),
        ("DELETE", {"Origin": "https://app.example.evil.example"}, False),
        ("DELETE", {"Origin": "null"}, False),
        ("DELETE", {"Origin": "https://app.example:bad"}, False),
    ],
)
def test_same_origin(method: str, headers: dict[str, str], ok: bool) -> None:
    assert same_origin(method, headers, "app.example", "https") is ok


def test_a_malformed_origin_never_matches_a_malformed_host() -> None:
    assert not same_origin("POST", {"Origin": "https://x:bad"}, "", "https")
    assert not same_origin("POST", {"Origin": "ftp://x"}, "x", "ftp")


def test_same_origin_with_a_port() -> None:
    assert same_origin("POST", {"Origin": "http://127.0.0.1:8000"}, "127.0.0.1:8000", "http")
    assert not same_origin("POST", {"Origin": "http://127.0.0.1:8001"}, "127.0.0.1:8000", "http")
