"""flask.session backed by sessionkit behaves as Flask's own, on every store."""

from __future__ import annotations

import importlib.metadata
import logging

import flask
import pytest
from flask.sessions import NullSession, SessionMixin
from flask.testing import FlaskClient
from sessionkit_flask import FlaskSession, SessionKit

from sessionkit import Session
from tests.flask.conftest import AppFactory, new_key
from tests.flask.helpers import cookie_value, replay, set_cookies, the_cookie, vary

FLASK = tuple(int(part) for part in importlib.metadata.version("flask").split(".")[:3])


def test_counter_round_trips(make_app: AppFactory, store: str) -> None:
    client = make_app(store).test_client()
    assert [client.get("/incr").json["n"] for _ in range(3)] == [1, 2, 3]  # type: ignore[index]


def test_flask_session_is_a_sessionkit_session(make_app: AppFactory, store: str) -> None:
    app = make_app(store)
    with app.test_request_context():
        assert isinstance(flask.session._get_current_object(), FlaskSession)  # type: ignore[attr-defined]
        assert isinstance(flask.session, (Session, SessionMixin))


def test_no_session_use_no_vary_no_cookie(make_app: AppFactory, store: str) -> None:
    client = make_app(store, LOGIN=False).test_client()  # Flask-Login reads it every request
    client.get("/set/a/1")
    response = client.get("/none")
    assert "cookie" not in vary(response)
    assert set_cookies(response) == []


PATHS = [
    "/none", "/len", "/set/a/1", "/none", "/get/a", "/contains/a", "/len", "/none",
    "/set/a/2", "/flash/x", "/flashes", "/flashes", "/clear", "/none", "/len", "/get/a",
    "/permanent/1", "/none", "/permanent/0", "/set/b/3", "/clear",
]  # fmt: skip


def test_vary_and_set_cookie_as_flask_does(make_app: AppFactory) -> None:
    """The same visits against Flask's own session and ours: a Set-Cookie and a
    ``Vary: Cookie`` on exactly the same responses (Flask-Login off, it reads every time)."""

    def trace(**config: object) -> list[tuple[str, bool, bool]]:
        client = make_app("memory://", LOGIN=False, **config).test_client()
        out = []
        for path in PATHS:
            response = client.get(path)
            out.append((path, bool(set_cookies(response)), "cookie" in vary(response)))
        return out

    ours = trace(SESSION_REFRESH_EACH_REQUEST=False)  # Flask re-sends permanent cookies
    flasks = trace(FLASK_BUILTIN_SESSION=True, SESSION_REFRESH_EACH_REQUEST=False)
    if FLASK >= (3, 1, 3):
        assert ours == flasks
        return
    # Before 3.1.3 Flask's session missed ``in`` and ``len()`` when deciding on Vary
    # (GHSA-68rp-wp8r-4726). sessionkit varies on them on every Flask, as 3.1.3 does: the
    # same cookies, and a Vary that Flask missed only on those visits.
    assert [(path, sent) for path, sent, _ in ours] == [(path, sent) for path, sent, _ in flasks]
    missed = {
        path for (path, _, mine), (_, _, theirs) in zip(ours, flasks, strict=True) if mine != theirs
    }
    assert missed == {"/len", "/contains/a", "/flashes"}  # no flashes: only ``"_flashes" in``
    assert all(mine for (path, _, mine) in ours if path in missed)


@pytest.mark.parametrize("path", ["/get/a", "/contains/a", "/len"])
def test_any_read_varies_on_cookie_and_sets_nothing(
    make_app: AppFactory, store: str, path: str
) -> None:
    client = make_app(store).test_client()
    assert set_cookies(client.get("/set/a/1"))  # the write sets the cookie
    response = client.get(path)
    assert "cookie" in vary(response)
    assert set_cookies(response) == []  # a read within the touch interval writes nothing


def test_read_of_empty_session_varies_without_cookie(make_app: AppFactory, store: str) -> None:
    response = make_app(store).test_client().get("/contains/a")
    assert response.text == "False"
    assert "cookie" in vary(response)
    assert set_cookies(response) == []


def test_setting_cookie_makes_response_private(make_app: AppFactory, store: str) -> None:
    response = make_app(store).test_client().get("/set/a/1")
    assert "private" in response.headers["Cache-Control"]
    assert "cookie" in vary(response)


def test_clear_deletes_cookie(make_app: AppFactory, store: str) -> None:
    client = make_app(store).test_client()
    client.get("/set/a/1")
    cookie = the_cookie(client.get("/clear"))
    assert cookie["max-age"] == "0"
    assert cookie_value(client) is None
    assert client.get("/get/a").text == "None"


def test_round_trip_types(make_app: AppFactory, store: str) -> None:
    client = make_app(store).test_client()
    client.get("/types/put")
    assert set(client.get("/types/check").json.values()) == {"ok"}  # type: ignore[union-attr]


def test_flash_messages_live_one_request(make_app: AppFactory, store: str) -> None:
    client = make_app(store).test_client()
    client.get("/flash/hello")
    client.get("/flash/world")
    assert client.get("/flashes").json == {"messages": ["hello", "world"]}
    assert client.get("/flashes").json == {"messages": []}


def test_session_transaction_works(make_app: AppFactory, store: str) -> None:
    """``session_transaction`` prepares the session the client's own requests see, as with
    Flask's sessions, although sessions are bound to the client's User-Agent."""
    client = make_app(store).test_client()
    with client.session_transaction() as session:
        session["n"] = 41
    assert client.get("/incr").json["n"] == 42  # type: ignore[index]
    with client.session_transaction() as session:
        assert session["n"] == 42
    with client.session_transaction(environ_base=client.environ_base) as session:
        assert session["n"] == 42  # passing it explicitly, as the docs used to say, works


def test_session_transaction_keeps_an_apps_own_client_class() -> None:
    class Client(FlaskClient):
        pass

    app = flask.Flask(__name__)
    app.config["SECRET_KEY"] = new_key()
    app.test_client_class = Client
    SessionKit(app, clock=None)

    @app.get("/n")
    def read() -> str:
        return str(flask.session.get("n"))

    client = app.test_client()
    assert isinstance(client, Client)
    with client.session_transaction() as session:
        session["n"] = 1
    assert client.get("/n").text == "1"


def test_session_transaction_of_a_client_class_set_after_sessionkit(
    make_app: AppFactory, store: str
) -> None:
    """Flask-Login's ``FlaskLoginClient`` pattern: the app's client class is set after
    ``SessionKit(app)`` and prepares the session in its ``__init__``."""

    class LoginClient(FlaskClient):
        def __init__(self, *args: object, **kwargs: object) -> None:
            user = kwargs.pop("user", None)
            super().__init__(*args, **kwargs)
            with self.session_transaction() as session:
                session["_user_id"] = user
                session["_fresh"] = True

    app = make_app(store)
    app.test_client_class = LoginClient
    client = app.test_client(user="alice")
    assert client.get("/whoami").text == "alice"


def test_failing_view_saves_nothing(make_app: AppFactory, store: str) -> None:
    app = make_app(store, TESTING=False)
    client = app.test_client()
    client.get("/set/a/1")
    response = client.get("/modify-then-fail")
    assert response.status_code == 500
    assert set_cookies(response) == []
    assert client.get("/get/half").text == "None"
    assert client.get("/get/a").text == "1"


def test_tampered_cookie_gives_empty_session(make_app: AppFactory, store: str) -> None:
    app = make_app(store)
    client = app.test_client()
    client.get("/set/a/1")
    value = cookie_value(client)
    assert value is not None
    flipped = value[:-3] + ("A" if value[-3] != "A" else "B") + value[-2:]
    thief = replay(app, flipped)
    assert thief.get("/get/a").text == "None"


def test_null_session_without_secret_key(make_app: AppFactory) -> None:
    app = make_app(SECRET_KEY=None)
    client = app.test_client()
    assert client.get("/get/a").text == "None"  # reading works
    with app.test_request_context():
        assert app.session_interface.open_session(app, flask.request) is None
    with pytest.raises(RuntimeError, match="no secret key"):
        client.get("/set/a/1")


def test_null_session_is_flasks(make_app: AppFactory) -> None:
    app = make_app(SECRET_KEY=None)
    with app.test_request_context():
        app.preprocess_request()
        assert isinstance(flask.session._get_current_object(), NullSession)  # type: ignore[attr-defined]


def test_cookie_store_too_large_answers_500_with_advice(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_app("cookie://").test_client()
    with caplog.at_level(logging.ERROR, logger="sessionkit.flask"):
        response = client.get("/big")
    assert response.status_code == 500  # sessionkit.failures: TOO_LARGE
    assert "Set-Cookie" not in response.headers
    assert any("server-side store" in r.getMessage() for r in caplog.records)


def test_server_store_takes_large_sessions(make_app: AppFactory, server_store: str) -> None:
    client = make_app(server_store).test_client()
    assert client.get("/big").status_code == 200
    assert len(client.get("/get/blob").text) == 5000


def test_nested_mutation_is_saved(make_app: AppFactory, store: str) -> None:
    app = make_app(store)

    @app.get("/append")
    def append() -> str:
        flask.session.setdefault("cart", []).append(len(flask.session["cart"]))
        return str(flask.session["cart"])

    client = app.test_client()
    client.get("/append")
    client.get("/append")
    assert client.get("/append").text == "[0, 1, 2]"


@pytest.mark.parametrize("store", ["cookie://", "memory://"])
def test_an_unserializable_value_is_refused_in_the_view_naming_the_key(store: str) -> None:
    """Issue 14: the traceback of ``SessionDataError`` shows the view's line."""
    import traceback

    from sessionkit import SessionDataError

    app = flask.Flask(__name__)
    app.config.update(SECRET_KEY=new_key(), SESSIONKIT_STORE=store, TESTING=True)
    SessionKit(app)

    @app.get("/store-user")
    def store_user() -> str:
        flask.session["user"] = object()
        return "stored"

    with pytest.raises(SessionDataError) as caught:
        app.test_client().get("/store-user")
    assert str(caught.value).startswith("session['user']: cannot store a builtins.object")
    frames = traceback.extract_tb(caught.value.__traceback__)
    assert [(f.name, f.line) for f in frames if f.name == "store_user"] == [
        ("store_user", 'flask.session["user"] = object()')
    ]
    assert all(frame.name != "save_session" for frame in frames)


@pytest.mark.parametrize("refresh", [True, False])
def test_code_reading_the_dict_directly_sees_the_data(
    make_app: AppFactory, server_store: str, refresh: bool
) -> None:
    """orjson and the C json encoder read the dict's storage, not its methods: the view gets
    a loaded session, holding the user's keys and nothing else (no marker of ours)."""
    import json

    import orjson  # the speed extra: in every test venv

    app = make_app(server_store, LOGIN=False, SESSION_REFRESH_EACH_REQUEST=refresh)

    def raw_session() -> dict[str, object]:
        return flask.session._get_current_object()  # type: ignore[attr-defined, no-any-return]

    @app.get("/raw")
    def raw() -> flask.Response:
        return flask.Response(orjson.dumps(raw_session()), mimetype="application/json")

    @app.get("/dumped")
    def dumped() -> str:
        return json.dumps(raw_session()) + "|" + ",".join(dict.keys(raw_session()))

    client = app.test_client()
    client.get("/set/a/1")
    assert client.get("/raw").json == {"a": "1"}
    assert client.get("/dumped").text == '{"a": "1"}|a'
