"""Signals, a store that goes down, per-session locks and the ``flask sessionkit`` CLI."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import flask
import httpx
import pytest
import sessionkit_flask
from sessionkit_flask import SessionKit
from werkzeug.serving import make_server

from sessionkit import (
    ConfigError,
    EventKind,
    LockOrderError,
    LocksUnsupported,
    StoreUnavailable,
)
from sessionkit.testing import FakeClock
from tests import servers
from tests.conftest import store_url
from tests.flask.conftest import AppFactory, new_key
from tests.flask.helpers import cookie_value, replay, set_cookies


# -- signals ---------------------------------------------------------------------------------
def test_events_arrive_as_blinker_signals(make_app: AppFactory) -> None:
    clock = FakeClock()
    app = make_app("cookie://", CLOCK=clock, SESSIONKIT_IDLE_TIMEOUT=60)
    kit = app.extensions["sessionkit"]
    assert not kit.events.active  # nobody listens yet: the engine builds no events
    seen: list[tuple[Any, EventKind]] = []

    def record(sender: Any, event: Any) -> None:
        seen.append((sender, event.kind))

    wanted = ("session_created", "session_expired", "cookie_rejected", "session_regenerated")
    for name in wanted:
        getattr(sessionkit_flask, name).connect(record, sender=app)
    client = app.test_client()
    client.get("/set/a/1")
    client.get("/login/alice")
    replay(app, "forged.cookie").get("/get/a")
    clock.advance(61)
    client.get("/get/a")
    kinds = [kind for sender, kind in seen]
    assert all(sender is app for sender, _ in seen)
    assert kinds == [
        EventKind.CREATED, EventKind.REGENERATED, EventKind.CREATED,
        EventKind.COOKIE_REJECTED, EventKind.EXPIRED,
    ]  # fmt: skip
    for signal in sessionkit_flask.SIGNALS.values():
        signal.disconnect(record)


# -- a store that goes down ------------------------------------------------------------------
@pytest.fixture
def own_redis() -> Iterator[servers.Server]:
    server = servers.redis_server()  # our own: this test stops it
    yield server
    server.close()


def test_store_down_answers_503_and_logs(
    make_app: AppFactory, own_redis: servers.Server, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(f"redis://127.0.0.1:{own_redis.port}/0", LOGIN=False, TESTING=False)
    client = app.test_client()
    client.get("/set/a/1")
    own_redis.stop()
    with caplog.at_level(logging.ERROR, logger="sessionkit.flask"):
        loading = client.get("/get/a")  # the lazy load fails in the view
        saving = app.test_client().get("/set/a/2")  # no cookie: the save fails
        untouched = client.get("/none")  # no session use, no I/O
    for response in (loading, saving):
        assert response.status_code == 503
        assert "session store cannot be reached" in response.text
        assert response.headers["Retry-After"]
    assert untouched.status_code == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "sessionkit.flask"]
    assert len(lines) == 2
    assert all("is unavailable" in line and "503" in line for line in lines)
    own_redis.start()  # empty (no persistence): it works again, from a fresh session
    assert client.get("/set/a/3").status_code == 200
    assert client.get("/get/a").text == "3"


def test_a_store_that_is_down_is_tried_once_per_request(
    make_app: AppFactory, own_redis: servers.Server
) -> None:
    """open_session reads the session; when that fails, the view's use answers 503 with the
    same error, without a second attempt (a hung server would cost its timeout twice)."""
    app = make_app(f"redis://127.0.0.1:{own_redis.port}/0", LOGIN=False, TESTING=False)
    errors: list[EventKind] = []
    app.extensions["sessionkit"].events.subscribe(lambda e: errors.append(e.kind))
    client = app.test_client()
    client.get("/set/a/1")
    own_redis.stop()
    errors.clear()
    assert client.get("/get/a").status_code == 503
    assert errors.count(EventKind.STORE_ERROR) == 1


def test_store_errors_can_propagate(own_redis: servers.Server) -> None:
    app = flask.Flask(__name__)
    app.config.update(SECRET_KEY=new_key(), TESTING=True)
    app.config["SESSIONKIT_STORE"] = f"redis://127.0.0.1:{own_redis.port}/0"
    SessionKit(app, handle_store_errors=False)

    @app.get("/w")
    def write() -> str:
        flask.session["a"] = 1
        return "ok"

    own_redis.stop()
    with pytest.raises(StoreUnavailable, match=r"127\.0\.0\.1"):
        app.test_client().get("/w")


# -- locks -----------------------------------------------------------------------------------
@pytest.fixture
def serve() -> Iterator[Any]:
    """Serve an app on a free loopback port with werkzeug's threaded server."""
    running: list[Any] = []

    def start(app: flask.Flask) -> str:
        server = make_server("127.0.0.1", servers.free_port(), app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        running.append((server, thread))
        return f"http://127.0.0.1:{server.port}"

    yield start
    for server, thread in running:
        server.shutdown()
        thread.join(5)


def test_locked_view_serialises_one_sessions_requests(
    make_app: AppFactory, server_store: str, serve: Any
) -> None:
    base = serve(make_app(server_store, TESTING=False))
    with httpx.Client(base_url=base, timeout=30) as first:
        first.get("/locked-incr")
        cookies = dict(first.cookies)
    requests = 24

    def hit(_: int) -> int:
        with httpx.Client(base_url=base, cookies=cookies, timeout=30) as client:
            response = client.get("/locked-incr")
            assert response.status_code == 200, response.text
            return int(response.json()["n"])

    with ThreadPoolExecutor(8) as pool:
        counts = sorted(pool.map(hit, range(requests)))
    assert counts == list(range(2, requests + 2))  # every increment counted, none twice
    with httpx.Client(base_url=base, cookies=cookies, timeout=30) as client:
        assert client.get("/get/n").text == str(requests + 1)


def test_lock_is_released_when_the_save_never_runs(make_app: AppFactory) -> None:
    """An after_request hook that fails skips save_session; teardown still unlocks."""
    app = make_app("memory://", TESTING=False)

    @app.after_request
    def fail_sometimes(response: flask.Response) -> flask.Response:
        if flask.request.args.get("boom"):
            raise RuntimeError("after_request failed")
        return response

    client = app.test_client()
    client.get("/locked-incr")
    assert client.get("/locked-incr?boom=1").status_code == 500
    started = time.monotonic()
    assert client.get("/locked-incr").status_code == 200  # not stuck behind the old lock
    assert time.monotonic() - started < 5


def test_lock_after_changing_is_refused(make_app: AppFactory) -> None:
    """(Reading first is fine, in every framework: tests/django/test_lock_order.py.)"""
    client = make_app("memory://").test_client()
    client.get("/set/n/1")
    with pytest.raises(LockOrderError, match="before its lock was taken"):
        client.get("/change-then-locked")


FLASK_LOCKS_SAID = (
    "sessionkit setting 'SESSIONKIT_STORE': the store cookie:// cannot lock sessions, but "
    "these routes take the session lock: {views}. Locks need a server-side store (memory://, "
    "redis://, sqlite:///, postgresql://, file:/// or memcached://): set one, or remove the "
    "lock from these routes."
)


def test_an_async_locked_view_runs_under_the_lock() -> None:
    """``@locked`` on an ``async def`` view: Flask awaits it (it stays a coroutine
    function), under the session's lock."""
    app = flask.Flask(__name__)
    app.config.update(SECRET_KEY=new_key(), SESSIONKIT_STORE="memory://")

    @app.get("/count")
    @sessionkit_flask.locked
    async def count() -> dict[str, Any]:
        session = flask.session
        session["n"] = session.get("n", 0) + 1
        return {"n": session["n"], "locked": session.holds_lock}  # type: ignore[attr-defined]

    SessionKit(app)
    client = app.test_client()
    assert [client.get("/count").json for _ in range(2)] == [
        {"n": 1, "locked": True}, {"n": 2, "locked": True},
    ]  # fmt: skip
    assert sessionkit_flask.locking.locked_views(app) == ["GET /count (count)"]


def test_locked_views_on_the_cookie_store_stop_sessionkit_app() -> None:
    """Views registered before ``SessionKit(app)``: refused right there (issue 14)."""
    app = flask.Flask(__name__)
    app.config.update(SECRET_KEY=new_key(), SESSIONKIT_STORE="cookie://")

    @app.post("/cart/checkout")
    @sessionkit_flask.locked
    def checkout() -> str:
        return "paid"

    with pytest.raises(LocksUnsupported) as raised:
        SessionKit(app)
    assert str(raised.value) == FLASK_LOCKS_SAID.format(views="POST /cart/checkout (checkout)")
    assert isinstance(raised.value, ConfigError)


def test_locked_views_registered_later_fail_the_first_request_whatever_the_route(
    make_app: AppFactory,
) -> None:
    """Views registered after ``SessionKit(app)``: the app's first request is refused
    before any view runs, on any route and without a cookie, and so is every later one;
    not only the locked route once a browser has a session."""
    client = make_app("cookie://", LOCKED_VIEWS=True).test_client()
    for path in ("/none", "/set/n/1", "/locked-incr"):
        with pytest.raises(LocksUnsupported) as raised:
            client.get(path)
        assert str(raised.value) == FLASK_LOCKS_SAID.format(views="GET /locked-incr (locked_incr)")


def test_locked_views_on_a_store_that_locks_start(make_app: AppFactory) -> None:
    client = make_app("memory://", LOCKED_VIEWS=True).test_client()
    assert client.get("/locked-incr").json == {"n": 1, "pid": os.getpid()}


# -- CLI -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["file", "sqlite", "redis"])
def test_flask_sessionkit_cli(
    make_app: AppFactory, kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    app = make_app(store_url(kind, tmp_path, request))
    clients = [app.test_client() for _ in range(3)]
    for client in clients:
        client.get("/login/dave")
    app.test_client().get("/set/a/1")  # an anonymous session
    runner = app.test_cli_runner()

    stats = runner.invoke(args=["sessionkit", "stats", "--json"])
    assert stats.exit_code == 0, stats.output
    assert '"sessions": 4' in stats.output and '"users": 1' in stats.output
    listed = runner.invoke(args=["sessionkit", "list", "--user", "dave"])
    assert listed.exit_code == 0 and len(listed.output.strip().splitlines()) == 3
    captured = cookie_value(clients[0])
    assert captured is not None and captured not in listed.output  # handles, never IDs
    revoked = runner.invoke(args=["sessionkit", "revoke", "--user", "dave"])
    assert revoked.exit_code == 0 and "revoked 3" in revoked.output
    assert clients[0].get("/whoami").status_code == 401
    gc = runner.invoke(args=["sessionkit", "gc", "--quiet"])
    assert gc.exit_code == 0, gc.output


@pytest.mark.parametrize("testing", [True, False])
def test_store_down_with_flask_login_is_a_503_not_a_500(
    make_app: AppFactory, own_redis: servers.Server, testing: bool
) -> None:
    """Flask-Login's after-request hook reads the session again after the view's
    ``StoreUnavailable`` became a 503. That read must not raise a second time (a 500, or
    under TESTING an exception out of the test client): once the request has met the
    outage, the session answers empty and the response is the store-down 503."""
    app = make_app(f"redis://127.0.0.1:{own_redis.port}/0", TESTING=testing)
    client = app.test_client()
    client.get("/login/alice")
    own_redis.stop()
    in_view = client.get("/whoami")  # login_required loads the session in the view
    after_view = client.get("/none")  # only Flask-Login's after-request hook reads it
    for response in (in_view, after_view):
        assert response.status_code == 503
        assert "session store cannot be reached" in response.text
        assert response.headers["Retry-After"] and response.headers["Cache-Control"] == "no-store"
        assert set_cookies(response) == []
    own_redis.start()


def test_store_down_in_a_locked_view_is_a_503(
    make_app: AppFactory, own_redis: servers.Server
) -> None:
    app = make_app(f"redis://127.0.0.1:{own_redis.port}/0")
    client = app.test_client()
    client.get("/locked-incr")
    own_redis.stop()
    assert client.get("/locked-incr").status_code == 503  # the lock fails, then the hook reads
    own_redis.start()


def test_flask_sessionkit_health_probes_the_apps_fallback(
    make_app: AppFactory, tmp_path: Path, redis_server: servers.Server
) -> None:
    """``flask sessionkit health`` takes the fallback from ``SESSIONKIT_FALLBACK``."""
    replica = f"sqlite:///{tmp_path / 'replica.db'}"
    app = make_app(f"redis://127.0.0.1:{redis_server.port}/0", SESSIONKIT_FALLBACK=replica)
    shown = app.test_cli_runner().invoke(args=["sessionkit", "health"])
    assert shown.exit_code == 0, shown.output
    assert "fallback ok: sqlite:///" in shown.output
    assert "mode: primary (the fallback stands by)" in shown.output
