"""max_sessions_per_user through each adapter's own settings (Django's ``SESSIONKIT``
dict, Flask's ``SESSIONKIT_*`` config keys, the ASGI middleware's keywords).

With a limit of 2, a third login evicts one session: its cookie is anonymous on its next
request (the adapter clears it) and its record is gone, while the other two stay logged in. With ``"refuse"``, the third login is answered 409 with the
policy's body and the first two stay. It lives under tests/django because Django's
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
