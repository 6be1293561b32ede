"""max_sessions_per_user through each adapter's own settings (Django's ``SESSIONKIT``
dict, Flask's ``SESSIONKIT_*`` config keys, the ASGI middleware's keywords).

With a limit of 2, a third login evicts one session: its cookie is anonymous on its next
request (the adapter clears it) and its record is gone, while the other two stay logged
in. With ``"refuse"``, the third login is answered 409 with the policy's body and the
first two stay. It lives under tests/django because Django's
settings are configured there, and reuses the failure table's three harnesses.
"""

from __future__ import annotations

import pytest

from sessionkit import open_store
from sessionkit.ids import digest
from tests.django.test_failure_table import FRAMEWORKS, HARNESSES, _cookie_of, _sid


def _cleared(answer: tuple[int, dict[str, str]], name: str) -> bool:
    header = {k.lower(): v for k, v in answer[1].items()}.get("set-cookie", "")
    return f"{name}=" in header and "Max-Age=0" in header


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_the_least_recently_used_login_is_evicted(framework: str) -> None:
    store = open_store("memory://")
    harness = HARNESSES[framework](store, max_sessions_per_user=2)
    try:
        cookies = [_cookie_of(harness.get("/login"), harness.cookie_name) for _ in range(3)]
        assert len(store.user_sessions("alice")) == 2
        # the three logins may share a second (last_seen ties): which one went is the
        # store's pick, exactly one did (tests/stores/test_session_limit.py checks the LRU)
        gone = [c for c in cookies if store.load(digest(_sid(c))) is None]  # dead server-side
        assert len(gone) == 1
        evicted = harness.get("/read", gone[0])
        assert evicted[0] == 200 and _cleared(evicted, harness.cookie_name)
        for cookie in (c for c in cookies if c not in gone):
            kept = harness.get("/read", cookie)
            assert kept[0] == 200 and not _cleared(kept, harness.cookie_name)
            assert store.load(digest(_sid(cookie))) is not None
    finally:
        harness.close()


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_refuse_answers_409_and_keeps_the_first_sessions(framework: str) -> None:
    store = open_store("memory://")
    harness = HARNESSES[framework](store, max_sessions_per_user=2, session_limit_policy="refuse")
    try:
        cookies = [_cookie_of(harness.get("/login"), harness.cookie_name) for _ in range(2)]
        status, headers = harness.get("/login")
        assert status == 409
        assert {k.lower(): v for k, v in headers.items()}["cache-control"] == "no-store"
        assert len(store.user_sessions("alice")) == 2
        for cookie in cookies:
            assert store.load(digest(_sid(cookie))) is not None
    finally:
        harness.close()


def test_starlette_a_view_that_saves_at_once_gets_the_409_too() -> None:
    """``await engine.asave(session)`` in a view raises ``SessionLimitReached`` there; the
    middleware answers the policy and commits nothing more. (Django's and Flask's twins
    are in tests/django/test_auth.py and tests/flask/test_login.py.)"""
    from sessionkit_asgi import SessionMiddleware, get_engine, get_session
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from tests.asgi.apps import TestClient
    from tests.django.test_failure_table import KEY

    async def login(request: Request) -> PlainTextResponse:
        get_session(request).bind_user("alice")
        return PlainTextResponse("ok")

    async def bind_now(request: Request) -> PlainTextResponse:
        session = get_session(request)
        session.bind_user("alice")
        await get_engine(request).asave(session)
        raise AssertionError("the save above is refused")

    store = open_store("memory://")
    app = Starlette(routes=[Route("/login", login), Route("/bind-now", bind_now)])
    app.add_middleware(
        SessionMiddleware, secret_key=KEY, store=store, max_sessions_per_user=1,
        session_limit_policy="refuse",
    )  # fmt: skip
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/login").status_code == 200
        client.cookies.clear()
        refused = client.get("/bind-now")
    assert refused.status_code == 409
    assert "set-cookie" not in refused.headers
    assert len(store.user_sessions("alice")) == 1
