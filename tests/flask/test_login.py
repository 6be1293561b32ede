"""Flask-Login on sessionkit: a new ID at login, a dead ID at logout, remember-me as expiry."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask_login.utils import encode_cookie
from sessionkit_flask import SessionKit

from sessionkit import ConfigError
from sessionkit.testing import FakeClock
from tests.flask.conftest import AppFactory
from tests.flask.helpers import cookie_value, replay, set_cookies, the_cookie

DAY = 24 * 3600


def test_login_rotates_the_id_and_keeps_data(make_app: AppFactory, store: str) -> None:
    app = make_app(store)
    client = app.test_client()
    client.get("/set/cart/3-apples")
    before = cookie_value(client)
    assert client.get("/login/alice").status_code == 200
    after = cookie_value(client)
    assert before and after and before != after
    assert client.get("/whoami").text == "alice"
    assert client.get("/get/cart").text == "3-apples"
    # the pre-login cookie (an attacker's planted one, say) is not logged in
    assert replay(app, before).get("/whoami").status_code == 401


def test_old_id_is_dead_after_login(make_app: AppFactory, server_store: str) -> None:
    app = make_app(server_store)
    client = app.test_client()
    client.get("/set/cart/3-apples")
    before = cookie_value(client)
    client.get("/login/alice")
    assert before is not None
    assert replay(app, before).get("/get/cart").text == "None"


def test_login_binds_the_user(make_app: AppFactory, server_store: str) -> None:
    app = make_app(server_store)
    for _ in range(2):
        app.test_client().get("/login/bob")
    store = SessionKit.engine(app).store
    assert len(store.user_sessions("bob")) == 2


def test_logout_kills_the_session_server_side(make_app: AppFactory, server_store: str) -> None:
    app = make_app(server_store)
    client = app.test_client()
    client.get("/login/alice")
    captured = cookie_value(client)
    assert captured is not None
    response = client.get("/logout")
    assert the_cookie(response)["max-age"] == "0"
    assert client.get("/whoami").status_code == 401
    assert replay(app, captured).get("/whoami").status_code == 401  # the stolen cookie
    assert SessionKit.engine(app).store.user_sessions("alice") == []


def test_logout_clears_the_cookie_store_session(make_app: AppFactory) -> None:
    """The cookie store is stateless: logout empties the browser's session (a captured
    copy of the cookie lives until it expires, as documented)."""
    client = make_app("cookie://").test_client()
    client.get("/login/alice")
    assert the_cookie(client.get("/logout"))["max-age"] == "0"
    assert cookie_value(client) is None
    assert client.get("/whoami").status_code == 401


def test_anonymous_logout_creates_nothing(make_app: AppFactory, server_store: str) -> None:
    app = make_app(server_store)
    response = app.test_client().get("/logout")
    assert set_cookies(response) == []
    assert SessionKit.engine(app).store.user_sessions("alice") == []


def test_without_remember_the_cookie_is_a_browser_session(make_app: AppFactory, store: str) -> None:
    response = make_app(store).test_client().get("/login/alice")
    assert "max-age" not in the_cookie(response)
    assert set_cookies(response, "remember_token") == []


def test_remember_me_is_a_longer_session_within_the_absolute_timeout(
    make_app: AppFactory, store: str
) -> None:
    app = make_app(store, SESSIONKIT_ABSOLUTE_TIMEOUT=30 * DAY, CLOCK=FakeClock())
    response = app.test_client().get("/login/alice?remember=1")
    # Flask-Login's 365-day default is capped by the 30-day absolute timeout
    assert int(the_cookie(response)["max-age"]) == 30 * DAY
    assert set_cookies(response, "remember_token") == []  # the session remembers instead


def test_remember_duration_setting(make_app: AppFactory, store: str) -> None:
    clock = FakeClock()
    app = make_app(
        store, REMEMBER_COOKIE_DURATION=timedelta(days=3), SESSIONKIT_IDLE_TIMEOUT=DAY,
        CLOCK=clock,
    )  # fmt: skip
    client = app.test_client()
    response = client.get("/login/alice?remember=1")
    assert int(the_cookie(response)["max-age"]) == 3 * DAY
    clock.advance(2 * DAY)
    assert client.get("/whoami").text == "alice"
    clock.advance(3 * DAY + 1)
    assert client.get("/whoami").status_code == 401


def test_a_flask_login_remember_cookie_still_logs_in_and_binds(
    make_app: AppFactory, server_store: str
) -> None:
    """Cookies issued by Flask-Login before the move to sessionkit keep working; the
    restored login gets a fresh, bound session."""
    app = make_app(server_store)
    client = app.test_client()
    with app.test_request_context():
        client.set_cookie("remember_token", encode_cookie("carol"))
    assert client.get("/whoami").text == "carol"
    assert cookie_value(client) is not None
    assert len(SessionKit.engine(app).store.user_sessions("carol")) == 1


def test_logout_also_clears_a_flask_login_remember_cookie(make_app: AppFactory) -> None:
    app = make_app("memory://")
    client = app.test_client()
    with app.test_request_context():
        client.set_cookie("remember_token", encode_cookie("carol"))
    assert client.get("/whoami").text == "carol"
    response = client.get("/logout")
    assert set_cookies(response, "remember_token")[0]["value"] == ""
    assert client.get("/whoami").status_code == 401


@pytest.mark.parametrize("kind", ["idle", "absolute"])
def test_timeouts_log_out(make_app: AppFactory, store: str, kind: str) -> None:
    clock = FakeClock()
    app = make_app(
        store, CLOCK=clock, SESSIONKIT_IDLE_TIMEOUT=3600, SESSIONKIT_ABSOLUTE_TIMEOUT=4 * 3600,
        SESSIONKIT_TOUCH_INTERVAL=0,
    )  # fmt: skip
    client = app.test_client()
    client.get("/login/alice")
    if kind == "idle":
        clock.advance(3601)
    else:
        for _ in range(8):  # busy, a request every half hour: still dies at 4 hours
            clock.advance(1800)
            client.get("/whoami")
        clock.advance(1)
    assert client.get("/whoami").status_code == 401


def test_logout_keeps_the_rest_of_the_session_as_stock_flask_login(
    make_app: AppFactory, server_store: str
) -> None:
    """Stock ``logout_user()`` removes only Flask-Login's keys. The rest survives, under a
    new ID; the old ID dies, and the session is no longer the user's."""
    app = make_app(server_store)
    client = app.test_client()
    client.get("/login/alice")
    client.get("/set/cart/apple")
    captured = cookie_value(client)
    response = client.get("/logout")
    assert the_cookie(response)["value"] not in ("", captured)
    assert client.get("/whoami").status_code == 401
    assert client.get("/get/cart").text == "apple"
    thief = replay(app, captured)  # type: ignore[arg-type]
    assert thief.get("/get/cart").text == "None"
    assert thief.get("/whoami").status_code == 401
    assert SessionKit.engine(app).store.user_sessions("alice") == []


def test_logout_can_discard_the_whole_session(make_app: AppFactory, store: str) -> None:
    app = make_app(store, SESSIONKIT_LOGOUT="invalidate")
    client = app.test_client()
    client.get("/login/alice")
    client.get("/set/cart/apple")
    assert the_cookie(client.get("/logout"))["max-age"] == "0"
    assert client.get("/get/cart").text == "None"


def test_logout_mode_is_checked_at_start_up(make_app: AppFactory) -> None:
    with pytest.raises(ConfigError, match="SESSIONKIT_LOGOUT"):
        make_app(SESSIONKIT_LOGOUT="wipe")


def test_login_keeps_max_sessions_per_user(make_app: AppFactory, server_store: str) -> None:
    app = make_app(server_store, SESSIONKIT_MAX_SESSIONS_PER_USER=2)
    clients = [app.test_client() for _ in range(3)]
    for client in clients:
        assert client.get("/login/alice").status_code == 200
    store = SessionKit.engine(app).store
    assert len(store.user_sessions("alice")) == 2
    # one was evicted (the logins may share a second; the store picks the LRU): logged out
    answers = sorted(client.get("/whoami").status_code for client in clients)
    assert answers == [200, 200, 401]


def test_login_over_the_limit_is_refused(make_app: AppFactory, server_store: str) -> None:
    app = make_app(
        server_store, SESSIONKIT_MAX_SESSIONS_PER_USER=1, SESSIONKIT_SESSION_LIMIT_POLICY="refuse"
    )
    first, second = app.test_client(), app.test_client()
    first.get("/login/alice")
    refused = second.get("/login/alice")
    assert refused.status_code == 409
    assert refused.headers["Cache-Control"] == "no-store"
    assert second.get("/whoami").status_code == 401
    assert first.get("/whoami").text == "alice"


def test_a_view_that_saves_at_once_gets_the_409_too(make_app: AppFactory) -> None:
    """``engine.save(session)`` in a view raises ``SessionLimitReached`` there; the
    extension answers it with the policy and saves nothing more."""
    from sessionkit_flask.interface import current

    app = make_app(
        "memory://", SESSIONKIT_MAX_SESSIONS_PER_USER=1, SESSIONKIT_SESSION_LIMIT_POLICY="refuse"
    )

    @app.get("/bind-now")
    def bind_now() -> str:
        session = current()
        assert session is not None
        session.bind_user("alice")
        SessionKit.engine(app).save(session)
        raise AssertionError("the save above is refused")

    app.test_client().get("/login/alice")
    refused = app.test_client().get("/bind-now")
    assert refused.status_code == 409
    assert len(SessionKit.engine(app).store.user_sessions("alice")) == 1
