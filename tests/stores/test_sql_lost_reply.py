"""Issue 13, "a lost reply turns a login into a logout", on the SQL store: on PostgreSQL the
login's rotation ``UPDATE`` is retried after its reply was lost (``SQLStore`` retries once on
an invalidated connection) and finds the old row gone; it must recognise its own new row
rather than report a conflict that logs the user out.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sessionkit import SessionConfig, SessionEngine
from sessionkit.stores.sql import SQLStore
from sessionkit.testing import Browser, FakeClock
from tests import servers
from tests.stores.test_redis_client import ReplyEater
from tests.stores.test_sql import fresh_table

KEY = "sql-lost-reply-key-0123456789-abcdefghijklmnopqrstuvwxyz"


@pytest.fixture
def eaten(
    postgres_server: servers.Postgres, clock: FakeClock
) -> Iterator[tuple[ReplyEater, Browser]]:
    """A browser on a store behind a proxy that can swallow one reply."""
    proxy = ReplyEater(postgres_server.port)
    store = SQLStore(
        f"postgresql://postgres@127.0.0.1:{proxy.port}/postgres", table=fresh_table(), clock=clock
    )
    try:
        store.create_schema()
        yield proxy, Browser(SessionEngine(SessionConfig(secret_key=KEY), store=store, clock=clock))
    finally:
        store.close()
        proxy.close()


def test_a_lost_reply_never_turns_a_login_into_a_logout(
    eaten: tuple[ReplyEater, Browser],
) -> None:
    proxy, browser = eaten
    browser.visit(lambda s: s.__setitem__("cart", [1, 2]))
    proxy.marker = b"UPDATE"  # the login's rotation: applied, its reply lost
    login = browser.visit(lambda s: s.bind_user("ann"))
    assert proxy.eaten == 1
    assert not login.plan.conflict
    assert browser.visit(lambda s: (s.user_id, s.get("cart"))).result == ("ann", [1, 2])


def test_a_lost_reply_never_loses_a_new_session(eaten: tuple[ReplyEater, Browser]) -> None:
    proxy, browser = eaten
    proxy.marker = b"INSERT"  # the first save: applied, its reply lost
    first = browser.visit(lambda s: s.__setitem__("cart", [1, 2]))
    assert proxy.eaten == 1
    assert not first.plan.conflict
    assert browser.visit(lambda s: s.get("cart")).result == [1, 2]
