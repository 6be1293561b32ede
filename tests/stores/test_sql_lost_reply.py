"""A known bug, recorded by the Redis work on issue 13 ("a lost reply turns a login into a
logout"), for whoever takes the SQL store: on PostgreSQL the login's rotation ``UPDATE`` is
retried after its reply was lost (``SQLStore`` retries once on an invalidated connection),
finds the old row gone, and the user is logged out. strict: this fails the day it is fixed.
"""

from __future__ import annotations

import pytest

from sessionkit import SessionConfig, SessionEngine
from sessionkit.stores.sql import SQLStore
from sessionkit.testing import Browser, FakeClock
from tests import servers
from tests.stores.test_redis_client import ReplyEater
from tests.stores.test_sql import fresh_table

KEY = "sql-lost-reply-key-0123456789-abcdefghijklmnopqrstuvwxyz"


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="SQLStore retries a non-idempotent rotation (issue 13)",
)
def test_a_lost_reply_never_turns_a_login_into_a_logout(
    postgres_server: servers.Postgres, clock: FakeClock
) -> None:
    proxy = ReplyEater(postgres_server.port)
    store = SQLStore(
        f"postgresql://postgres@127.0.0.1:{proxy.port}/postgres", table=fresh_table(), clock=clock
    )
    try:
        store.create_schema()
        browser = Browser(SessionEngine(SessionConfig(secret_key=KEY), store=store, clock=clock))
        browser.visit(lambda s: s.__setitem__("cart", [1, 2]))
        proxy.marker = b"UPDATE"  # the login's rotation: applied, its reply lost
        login = browser.visit(lambda s: s.bind_user("ann"))
        assert proxy.eaten == 1
        assert not login.plan.conflict
        assert browser.visit(lambda s: (s.user_id, s.get("cart"))).result == ("ann", [1, 2])
    finally:
        store.close()
        proxy.close()
