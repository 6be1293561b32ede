"""Drop-in parity: the same app behind Starlette's SessionMiddleware and behind ours must
behave the same for everything a Starlette user can observe (data across requests, when
Set-Cookie and Vary appear, the cookie's attributes, clearing, max_age, bad cookies)."""

from __future__ import annotations

import importlib.metadata
from typing import Any

import pytest
from sessionkit_asgi import SessionMiddleware as OurMiddleware
from starlette.datastructures import Secret
from starlette.middleware.sessions import SessionMiddleware as StarletteMiddleware

from tests.asgi.apps import KEY, LOCK_FREE, TestClient, client, make_app, set_cookie

pytestmark = pytest.mark.anyio
BOTH = pytest.mark.parametrize(
    "middleware", [StarletteMiddleware, OurMiddleware], ids=["starlette", "sessionkit"]
)
#: Parity is with the Starlette installed (tox runs several). Its release notes date what
#: changed: 1.0 sends Set-Cookie only for a modified session and ``Vary: Cookie`` for a
#: used one (before, every response for a session holding data re-sent the cookie, and no
#: Vary was sent); 1.7 added ``partitioned``.
STARLETTE = tuple(int(part) for part in importlib.metadata.version("starlette").split(".")[:2])
TRACKS_CHANGES = STARLETTE >= (1, 0)
HAS_PARTITIONED = STARLETTE >= (1, 7)


def varies(middleware: type) -> bool:
    """Whether ``middleware`` answers ``Vary: Cookie`` for a request that used the session:
    ours always does (a shared cache must not hand one user's page to another; docs/asgi.md
    lists it among the differences), Starlette's from 1.0 on."""
    return middleware is OurMiddleware or TRACKS_CHANGES


@BOTH
async def test_values_survive_requests(middleware: type) -> None:
    async with client(make_app(middleware)) as http:
        first = await http.get("/set", params={"user": "ada", "lang": "en"})
        assert first.json() == {"user": "ada", "lang": "en"}
        assert set_cookie(first) is not None
        again = await http.get("/get")
        assert again.json() == {"user": "ada", "lang": "en"}
        # read-only: no new cookie, except before Starlette 1.0, which re-sent it every time
        assert (set_cookie(again) is None) is TRACKS_CHANGES
        await http.get("/set", params={"lang": "fr"})
        assert (await http.get("/get")).json() == {"user": "ada", "lang": "fr"}


@BOTH
async def test_vary_only_when_the_session_was_used(middleware: type) -> None:
    async with client(make_app(middleware)) as http:
        await http.get("/set", params={"a": "1"})
        read = await http.get("/get")
        assert read.headers.get("vary") == ("Cookie" if varies(middleware) else None)
        untouched = await http.get("/untouched")
        if TRACKS_CHANGES:
            assert "vary" not in untouched.headers
            assert set_cookie(untouched) is None
        else:  # the cookie went out again; ours varies on what it sends a cookie for
            assert set_cookie(untouched) is not None
            assert untouched.headers.get("vary") == ("Cookie" if varies(middleware) else None)
        merged = await http.get("/vary")
        assert merged.headers["vary"] == ("Accept, Cookie" if varies(middleware) else "Accept")


@BOTH
async def test_no_cookie_for_a_visitor_who_stores_nothing(middleware: type) -> None:
    async with client(make_app(middleware)) as http:
        for path in ("/get", "/untouched", "/clear"):
            response = await http.get(path)
            assert set_cookie(response) is None, path
        assert not http.cookies


@BOTH
async def test_clearing_deletes_the_cookie(middleware: type) -> None:
    async with client(make_app(middleware)) as http:
        await http.get("/set", params={"a": "1"})
        assert http.cookies.get("session")
        cleared = await http.get("/clear")
        cookie = set_cookie(cleared)
        assert cookie is not None
        assert cookie.get("max-age") == "0" or "1970" in cookie.get("expires", "")
        assert "session" not in http.cookies
        assert (await http.get("/get")).json() == {}


PARTITIONED = ({"partitioned": True, "https_only": True}, {"partitioned": True, "secure": True})


@pytest.mark.parametrize(
    ("middleware", "options", "expected"),
    [
        pytest.param(middleware, options, expected, id=f"{name}-{options!r}")
        for middleware, name in ((StarletteMiddleware, "starlette"), (OurMiddleware, "sessionkit"))
        for options, expected in [
            ({}, {"path": "/", "httponly": True, "samesite": "lax", "max-age": "1209600"}),
            ({"max_age": 3600}, {"max-age": "3600"}),
            ({"path": "/shop"}, {"path": "/shop"}),
            ({"domain": "example.com"}, {"domain": "example.com"}),
            ({"same_site": "strict"}, {"samesite": "strict"}),
            ({"https_only": True}, {"secure": True}),
            ({"same_site": "none", "https_only": True}, {"samesite": "none", "secure": True}),
            # Starlette before 1.7 has no such argument; ours takes it on every version
            *([PARTITIONED] if middleware is OurMiddleware or HAS_PARTITIONED else []),
            ({"session_cookie": "sid"}, {"name": "sid"}),
        ]
    ],
)
async def test_cookie_attributes(
    middleware: type, options: dict[str, Any], expected: dict[str, Any]
) -> None:
    async with client(make_app(middleware, **options), base_url="http://example.com") as http:
        cookie = set_cookie(await http.get("/set", params={"a": "1"}))
    assert cookie is not None
    for key, value in expected.items():
        if key == "max-age":  # sessionkit's expiry counts from whole seconds: may be 1 less
            assert 0 <= int(value) - int(cookie[key]) <= 1, cookie
        else:
            assert cookie.get(key) == value, (key, cookie)
    if not options.get("https_only"):
        assert "secure" not in cookie  # Starlette: Secure only with https_only
    if "domain" not in options:
        assert "domain" not in cookie


@BOTH
async def test_max_age_none_is_a_browser_session_cookie(middleware: type) -> None:
    async with client(make_app(middleware, max_age=None)) as http:
        cookie = set_cookie(await http.get("/set", params={"a": "1"}))
        assert cookie is not None
        assert "max-age" not in cookie
        assert "expires" not in cookie
        assert (await http.get("/get")).json() == {"a": "1"}


@pytest.mark.parametrize("max_age", [0, -60])
async def test_max_age_zero_or_negative_keeps_nothing(max_age: int) -> None:
    # Ours only: Starlette itself changed here (up to 1.7 a max_age of 0 gave a
    # browser-session cookie; later versions keep nothing). We follow the later behaviour.
    async with client(make_app(OurMiddleware, max_age=max_age)) as http:
        first = await http.get("/set", params={"a": "1"})
        assert first.json() == {"a": "1"}  # usable within the request
        assert "session" not in http.cookies  # but the browser keeps no cookie
        assert (await http.get("/get")).json() == {}


@BOTH
async def test_root_path_does_not_change_the_cookie_path(middleware: type) -> None:
    app = make_app(middleware)
    async with client(app, root_path="/app") as http:
        response = await http.get("/app/set", params={"a": "1"})
        cookie = set_cookie(response)
    assert response.json() == {"a": "1"}
    assert cookie is not None
    assert cookie["path"] == "/"  # Starlette uses the configured path, not root_path


@BOTH
@pytest.mark.parametrize(
    "value",
    ["garbage", "", "x" * 5000, "a.b.c", "=session=evil", "\u00e9t\u00e9"],
    ids=["garbage", "empty", "huge", "dots", "smuggle", "latin1"],
)
async def test_bad_cookies_give_an_empty_session(middleware: type, value: str) -> None:
    async with client(make_app(middleware)) as http:
        response = await http.get("/get", headers=[(b"Cookie", f"session={value}".encode())])
        assert response.status_code == 200
        assert response.json() == {}


@BOTH
async def test_tampered_cookie_reads_as_empty(middleware: type) -> None:
    async with client(make_app(middleware)) as http:
        await http.get("/set", params={"a": "1"})
        value = http.cookies["session"]
        flipped = value[:-3] + ("A" if value[-3] != "A" else "B") + value[-2:]
        http.cookies.clear()
        response = await http.get("/get", headers={"Cookie": f"session={flipped}"})
        assert response.status_code == 200
        assert response.json() == {}


@BOTH
async def test_secret_object_and_websocket_handshake(middleware: type) -> None:
    app = make_app(middleware, LOCK_FREE, secret_key=Secret(KEY))
    with TestClient(app) as http:
        http.get("/set", params={"a": "1"})
        with http.websocket_connect("/ws") as socket:
            assert socket.receive_json() == {"a": "1"}
        assert http.get("/get").json() == {"a": "1"}  # the socket's write was not saved
