"""Flask's settings, read per request: cookie attributes, permanent sessions, key rotation."""

from __future__ import annotations

from datetime import timedelta
from email.utils import parsedate_to_datetime

import flask
import pytest
import sessionkit_flask
from sessionkit_flask import SessionKit

from sessionkit import ConfigError
from sessionkit.testing import FakeClock
from tests.flask.conftest import AppFactory, new_key
from tests.flask.helpers import cookie_value, replay, set_cookies, the_cookie, vary

DAY = 24 * 3600


def attributes(response: object) -> dict[str, str]:
    cookie = the_cookie(response)  # type: ignore[arg-type]
    cookie.pop("value")
    return cookie


def test_cookie_settings_take_effect_per_request(make_app: AppFactory, store: str) -> None:
    app = make_app(store)
    client = app.test_client()
    assert attributes(client.get("/set/a/1")) == {"path": "/", "httponly": ""}  # as Flask
    app.config.update(
        SESSION_COOKIE_DOMAIN="example.test", SESSION_COOKIE_PATH="/shop",
        SESSION_COOKIE_HTTPONLY=False, SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_SAMESITE="Strict", SESSION_COOKIE_PARTITIONED=True,
    )  # fmt: skip
    assert attributes(client.get("/set/a/2")) == {
        "path": "/shop", "domain": "example.test", "samesite": "Strict", "partitioned": "",
        "secure": "",
    }  # fmt: skip


def test_application_root_is_the_default_path(make_app: AppFactory) -> None:
    app = make_app(APPLICATION_ROOT="/app")
    assert attributes(app.test_client().get("/set/a/1"))["path"] == "/app"


def test_samesite_is_read_as_flask_reads_it(make_app: AppFactory) -> None:
    app = make_app(SESSION_COOKIE_SAMESITE=None)  # Flask's default: no attribute at all
    client = app.test_client()
    assert "samesite" not in attributes(client.get("/set/a/1"))
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    assert attributes(client.get("/set/a/2"))["samesite"] == "Lax"
    app.config["SESSIONKIT_COOKIE_SAMESITE"] = "strict"  # sessionkit's own setting wins
    assert attributes(client.get("/set/a/3"))["samesite"] == "Strict"
    del app.config["SESSIONKIT_COOKIE_SAMESITE"]
    app.config["SESSION_COOKIE_SAMESITE"] = "invalid"  # Flask raises ValueError; so do we
    with pytest.raises(ValueError, match="SESSION_COOKIE_SAMESITE"):
        client.get("/set/a/4")


def test_cookie_domain_is_written_as_werkzeug_writes_it(make_app: AppFactory) -> None:
    """A leading dot (which browsers ignore) and a port are dropped, as Werkzeug does, so
    the cookie of ``.example.com`` comes back from ``www.example.com``."""
    app = make_app(
        SERVER_NAME="www.example.com:8080", APPLICATION_ROOT="/test",
        SESSION_COOKIE_DOMAIN=".example.com", SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_PARTITIONED=True, SESSION_COOKIE_PATH="/",
    )  # fmt: skip
    client = app.test_client()
    response = client.get("/set/a/1", "http://www.example.com:8080/test/")
    assert attributes(response)["domain"] == "example.com"
    assert client.get("/get/a", "http://www.example.com:8080/test/").text == "1"


def test_cookie_name_change(make_app: AppFactory, store: str) -> None:
    app = make_app(store)
    client = app.test_client()
    client.get("/set/a/1")
    app.config["SESSION_COOKIE_NAME"] = "__Host-sid"
    app.config["SESSION_COOKIE_SECURE"] = True
    assert client.get("/get/a").text == "None"  # the old name is not ours any more
    response = client.get("/set/a/2")
    assert the_cookie(response, "__Host-sid")["secure"] == ""


def test_engine_is_reused_until_a_setting_changes(make_app: AppFactory) -> None:
    app = make_app("memory://")
    client = app.test_client()
    client.get("/set/a/1")
    engine = SessionKit.engine(app)
    client.get("/get/a")
    assert SessionKit.engine(app) is engine
    app.config["SESSION_COOKIE_HTTPONLY"] = False
    assert SessionKit.engine(app) is not engine
    assert SessionKit.engine(app).store is engine.store  # the memory store survives
    assert client.get("/get/a").text == "1"
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    assert SessionKit.engine(app) is engine


def test_key_rotation_with_fallbacks(make_app: AppFactory, store: str) -> None:
    old, new = new_key(), new_key()
    app = make_app(store, SECRET_KEY=old)
    client = app.test_client()
    client.get("/set/a/kept")
    old_cookie = cookie_value(client)
    assert old_cookie is not None
    app.config.update(SECRET_KEY=new, SECRET_KEY_FALLBACKS=[old])
    response = client.get("/get/a")
    assert response.text == "kept"  # still valid ...
    assert the_cookie(response)["value"] != old_cookie  # ... and re-issued under the new key
    app.config["SECRET_KEY_FALLBACKS"] = []
    assert client.get("/get/a").text == "kept"  # the re-issued cookie
    assert replay(app, old_cookie).get("/get/a").text == "None"  # the old key is gone


def test_sessionkit_secret_key_alone_is_enough(make_app: AppFactory) -> None:
    client = make_app(SECRET_KEY=None, SESSIONKIT_SECRET_KEY=new_key()).test_client()
    assert client.get("/incr").json["n"] == 1  # type: ignore[index]
    assert client.get("/incr").json["n"] == 2  # type: ignore[index]


def test_short_secret_key_fails_at_start_up(make_app: AppFactory) -> None:
    with pytest.raises(ConfigError, match=r"SECRET_KEY.*at least 32"):
        make_app(SECRET_KEY="dev")


def test_misspelt_setting_names_the_right_one(make_app: AppFactory) -> None:
    with pytest.raises(ConfigError, match=r"SESSIONKIT_IDLE_TIMOUT.*'SESSIONKIT_IDLE_TIMEOUT'"):
        make_app(SESSIONKIT_IDLE_TIMOUT=60)


def test_insecure_flask_setting_is_named(make_app: AppFactory) -> None:
    with pytest.raises(ConfigError, match=r"SESSION_COOKIE_SAMESITE.*cookie_secure"):
        make_app(SESSION_COOKIE_SAMESITE="None")


# -- permanent sessions ----------------------------------------------------------------------
def test_permanent_session_gets_the_lifetime(make_app: AppFactory, store: str) -> None:
    app = make_app(store, PERMANENT_SESSION_LIFETIME=timedelta(days=5), CLOCK=FakeClock())
    client = app.test_client()
    assert "max-age" not in the_cookie(client.get("/set/a/1"))  # a browser-session cookie
    assert int(the_cookie(client.get("/permanent/1"))["max-age"]) == 5 * DAY
    assert "max-age" not in the_cookie(client.get("/permanent/0"))
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=2)
    assert int(the_cookie(client.get("/permanent/1"))["max-age"]) == 2 * 3600


def test_permanent_is_capped_by_the_absolute_timeout(make_app: AppFactory) -> None:
    app = make_app(SESSIONKIT_ABSOLUTE_TIMEOUT=3 * DAY, CLOCK=FakeClock())
    response = app.test_client().get("/permanent/1")  # Flask's default lifetime: 31 days
    assert int(the_cookie(response)["max-age"]) == 3 * DAY


def test_setting_permanent_again_writes_nothing(make_app: AppFactory, store: str) -> None:
    app = make_app(store, LOGIN=False, SESSION_REFRESH_EACH_REQUEST=False)
    saved: list[object] = []
    sessionkit_flask.session_saved.connect(lambda sender, event: saved.append(event), app)

    @app.get("/keep-permanent")
    def keep_permanent() -> str:
        from flask import session

        session.permanent = True
        return "ok"

    client = app.test_client()
    assert set_cookies(client.get("/keep-permanent"))
    saved.clear()
    assert set_cookies(client.get("/keep-permanent")) == []
    assert saved == []


def test_refresh_resends_a_permanent_cookie_on_every_request(
    make_app: AppFactory, store: str
) -> None:
    """Flask's ``SESSION_REFRESH_EACH_REQUEST`` (on by default): a permanent session's cookie
    goes out on every request, one that reads the session and one that never touches it,
    with ``Expires=`` and ``Vary: Cookie``; ``touch_interval`` throttles only the store."""
    app = make_app(store, LOGIN=False)
    client = app.test_client()
    client.get("/permanent/1")
    for path in ("/get/p", "/none"):
        response = client.get(path)
        cookie = the_cookie(response)
        assert "expires" in cookie and "max-age" in cookie
        assert "cookie" in vary(response)
    app.config["SESSION_REFRESH_EACH_REQUEST"] = False
    assert set_cookies(client.get("/get/p")) == set_cookies(client.get("/none")) == []
    app.config["SESSION_REFRESH_EACH_REQUEST"] = True
    client.get("/permanent/0")  # not permanent any more: a browser-session cookie
    assert set_cookies(client.get("/get/p")) == set_cookies(client.get("/none")) == []


def test_a_cookie_from_an_unknown_key_is_left_alone(make_app: AppFactory, store: str) -> None:
    """As Flask: a request under a key the cookie was not made with sees an empty session
    but does not clear the cookie, so once the key is back (a rotation rolled out worker
    by worker, a rollback) the session is too."""
    first, second = new_key(), new_key()
    app = make_app(store, SECRET_KEY=first)
    client = app.test_client()
    client.get("/set/a/1")
    app.secret_key = second
    response = client.get("/get/a")
    assert response.text == "None" and set_cookies(response) == []
    app.config["SECRET_KEY_FALLBACKS"] = [first]
    assert client.get("/get/a").text == "1"


def test_secret_key_is_read_from_app_secret_key() -> None:
    class App(flask.Flask):
        secret_key = new_key()  # a class attribute, as Flask allows

    app = App(__name__)
    SessionKit(app)

    @app.get("/n")
    def count() -> str:
        flask.session["n"] = flask.session.get("n", 0) + 1
        return str(flask.session["n"])

    client = app.test_client()
    assert [client.get("/n").text for _ in range(2)] == ["1", "2"]


@pytest.mark.parametrize("refresh", [True, False])
def test_refresh_each_request(make_app: AppFactory, store: str, refresh: bool) -> None:
    clock = FakeClock()
    app = make_app(
        store, CLOCK=clock, PERMANENT_SESSION_LIFETIME=timedelta(days=1),
        SESSION_REFRESH_EACH_REQUEST=refresh,
    )  # fmt: skip
    client = app.test_client()
    client.get("/permanent/1")
    clock.advance(0.6 * DAY)
    response = client.get("/get/p")
    assert response.text == "True"
    # refreshing slides the expiry (and re-sends the cookie); otherwise it counts from the
    # last change, as Flask's signed cookie does
    assert bool(set_cookies(response)) is refresh
    clock.advance(0.6 * DAY)
    assert client.get("/get/p").text == ("True" if refresh else "None")


def test_a_permanent_cookie_carries_expires_as_flasks_does(make_app: AppFactory) -> None:
    clock = FakeClock()
    app = make_app(CLOCK=clock, PERMANENT_SESSION_LIFETIME=timedelta(days=3))
    client = app.test_client()
    cookie = the_cookie(client.get("/permanent/1"))
    expires = parsedate_to_datetime(cookie["expires"]).timestamp()
    assert expires == int(clock() + 3 * DAY) and int(cookie["max-age"]) in (3 * DAY - 1, 3 * DAY)
    cookie = the_cookie(client.get("/permanent/0"))
    assert "expires" not in cookie and "max-age" not in cookie  # a browser-session cookie


def test_the_absolute_timeout_is_never_shorter_than_the_permanent_lifetime(
    make_app: AppFactory,
) -> None:
    """Flask's default PERMANENT_SESSION_LIFETIME is 31 days: a permanent session lives that
    long, as in Flask (the 30-day absolute default does not cut it a day short), and
    SESSIONKIT_ABSOLUTE_TIMEOUT still caps it when set."""
    clock = FakeClock()
    app = make_app(CLOCK=clock)  # Flask's default lifetime
    client = app.test_client()
    expires = parsedate_to_datetime(the_cookie(client.get("/permanent/1"))["expires"])
    assert expires.timestamp() == int(clock() + 31 * DAY)
    app.config["SESSIONKIT_ABSOLUTE_TIMEOUT"] = 7 * DAY
    response = app.test_client().get("/permanent/1")  # a new session under the new cap
    expires = parsedate_to_datetime(the_cookie(response)["expires"])
    assert expires.timestamp() == int(clock() + 7 * DAY)
