"""``@fresh`` in Flask against a real Redis with the local cache: ``open_session`` reads a
marked view's session from Redis itself, an unmarked one is served by the cache
(tests/fresh_routes.py says how the two are told apart)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any, ClassVar

import flask
import pytest
from flask.views import MethodView
from sessionkit_flask import SessionKit, fresh, locked

from sessionkit import FreshOrderError, Store
from sessionkit.stores.cache import CachingStore
from tests import servers
from tests.fresh_routes import (
    Counting,
    cached_redis,
    counts,
    delete_behind,
    delta,
    edit_behind,
    silent_redis,
)


class Account(MethodView):
    @fresh  # on a method: open_session cannot see it, the view reads the session again
    def get(self) -> Any:
        return {"role": flask.session.get("role")}


class Settings(MethodView):
    decorators: ClassVar[list[Any]] = [fresh]  # on the view function: open_session sees it

    def get(self) -> Any:
        return {"role": flask.session.get("role")}


def make_app(store: Store) -> flask.Flask:
    app = flask.Flask(__name__)
    app.config.update(SECRET_KEY=secrets.token_urlsafe(48), TESTING=True, SESSIONKIT_STORE=store)
    SessionKit(app)

    @app.before_request
    def hook() -> None:
        if flask.request.args.get("touch"):
            flask.session["touched"] = True  # a hook that changes the session first

    @app.get("/login")
    def login() -> Any:
        flask.session["role"] = flask.request.args["role"]
        return {}

    @app.get("/read")
    def read() -> Any:
        return {"role": flask.session.get("role")}

    @app.get("/fresh")
    @fresh
    def fresh_read() -> Any:
        return {"role": flask.session.get("role")}

    @app.get("/fresh-async")
    @fresh
    async def fresh_async() -> Any:
        return {"role": flask.session.get("role")}

    @app.get("/locked")
    @locked
    def locked_read() -> Any:
        return {"role": flask.session.get("role")}

    @app.get("/locked-fresh")
    @locked
    @fresh
    def locked_fresh() -> Any:
        return {"role": flask.session.get("role")}

    app.add_url_rule("/account", view_func=Account.as_view("account"))
    app.add_url_rule("/settings", view_func=Settings.as_view("settings"))
    return app


@pytest.fixture
def cached(redis_server: servers.Server) -> Iterator[CachingStore]:
    store = cached_redis(redis_server.port)
    yield store
    store.close()


def logged_in(store: Store) -> Any:
    http = make_app(store).test_client()
    http.get("/login?role=admin")
    http.get("/read")  # the miss after our own write: cached now
    return http


def test_a_marked_view_reads_redis_and_an_unmarked_one_the_cache(cached: CachingStore) -> None:
    http = logged_in(cached)
    before = counts(cached)
    assert http.get("/read").json == {"role": "admin"}
    assert delta(before, counts(cached)) == {"hits": 1, "misses": 0, "fresh": 0}
    for path in ("/fresh", "/fresh-async", "/settings", "/locked-fresh"):
        before = counts(cached)
        assert http.get(path).json == {"role": "admin"}
        assert delta(before, counts(cached)) == {"hits": 0, "misses": 0, "fresh": 1}, path


def test_a_mark_open_session_cannot_see_reads_again(cached: CachingStore) -> None:
    http = logged_in(cached)
    before = counts(cached)
    assert http.get("/account").json == {"role": "admin"}
    assert delta(before, counts(cached)) == {"hits": 1, "misses": 0, "fresh": 1}


def test_a_locked_view_reads_its_session_once_under_the_lock(cached: CachingStore) -> None:
    http = logged_in(cached)
    before = counts(cached)
    assert http.get("/locked").json == {"role": "admin"}
    assert delta(before, counts(cached)) == {"hits": 1, "misses": 0, "fresh": 0}


def test_a_marked_view_sees_a_change_the_cache_did_not_hear_of(
    redis_server: servers.Server,
) -> None:
    store = silent_redis(redis_server.port)
    try:
        http = logged_in(store)
        seen = "admin"
        for n, path in enumerate(["/fresh", "/fresh-async", "/account", "/settings",
                                  "/locked-fresh"]):  # fmt: skip
            edit_behind(store, redis_server.port, "role", f'"user{n}"')
            assert http.get("/read").json == {"role": seen}  # the cached copy
            assert http.get(path).json == {"role": f"user{n}"}, path
            seen = f"user{n}"  # the fresh read refilled the cache
    finally:
        store.close()


@pytest.mark.parametrize("path", ["/fresh", "/account"])
def test_a_marked_view_sees_a_logout_the_cache_did_not_hear_of(
    redis_server: servers.Server, path: str
) -> None:
    store = silent_redis(redis_server.port)
    try:
        http = logged_in(store)
        delete_behind(store, redis_server.port)
        assert http.get("/read").json == {"role": "admin"}  # the cached copy
        assert http.get(path).json == {"role": None}
    finally:
        store.close()


def test_a_session_changed_on_a_cached_read_before_the_view_is_refused(
    cached: CachingStore,
) -> None:
    http = logged_in(cached)
    with pytest.raises(FreshOrderError, match="keys 'touched'"):
        http.get("/account?touch=1")
    assert http.get("/fresh?touch=1").json == {"role": "admin"}  # read fresh: nothing stale


def test_without_a_cache_a_marked_view_reads_once() -> None:
    store = Counting()
    http = make_app(store).test_client()
    http.get("/login?role=admin")
    for path in ("/fresh", "/account"):
        loads = store.loads
        assert http.get(path).json == {"role": "admin"}
        assert store.loads == loads + 1, path


def test_fresh_outside_sessionkit_says_what_is_missing() -> None:
    app = flask.Flask(__name__)
    app.add_url_rule("/", view_func=fresh(lambda: "x"))
    app.config["TESTING"] = True
    with pytest.raises(RuntimeError, match=r"@fresh needs sessionkit_flask\.SessionKit"):
        app.test_client().get("/")
