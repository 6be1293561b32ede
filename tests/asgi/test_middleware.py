"""sessionkit's own behaviour through the ASGI middleware: regeneration, invalidation, flash,
expiry, fingerprints, bad input, 5xx, streaming, WebSockets, excluded paths, store failures."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import httpx
import pytest
from sessionkit_asgi import (
    CountEvents,
    LogEvents,
    SessionMiddleware,
    get_session,
    lock_session,
    locked,
)
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from sessionkit import (
    ConfigError,
    EventBus,
    EventKind,
    MemoryStore,
    SessionNotLoaded,
    StoreUnavailable,
)
from sessionkit.testing import FakeClock
from tests.asgi import apps
from tests.asgi.apps import KEY, TestClient, client, set_cookie
from tests.asgi.concurrently import Background, gather

pytestmark = pytest.mark.anyio


async def login(request: Request) -> Response:
    session = get_session(request)  # typed: sessionkit's Session
    session["user"] = request.query_params["user"]
    session.regenerate()
    return PlainTextResponse("in")


async def logout(request: Request) -> Response:
    get_session(request).invalidate()
    return PlainTextResponse("out")


async def flash(request: Request) -> Response:
    get_session(request).flash("message", "saved!")
    return PlainTextResponse("flashed")


async def remember(request: Request) -> Response:
    request.session["cart"] = request.session.get("cart", [])
    request.session["cart"].append(request.query_params["item"])
    return PlainTextResponse("ok", headers={"Cache-Control": "public, max-age=60"})


async def slow_locked(request: Request) -> Response:
    await lock_session(request)
    request.session["slow"] = "done"
    await anyio.sleep(0.5)
    return PlainTextResponse("slow")


@locked(wait=0.05)
async def impatient(request: Request) -> Response:
    request.session["impatient"] = "done"
    return PlainTextResponse("fast")


EXTRA = [
    Route("/login", login),
    Route("/logout", logout),
    Route("/flash", flash),
    Route("/remember", remember),
    Route("/slow", slow_locked),
    Route("/impatient", impatient),
]


def make_app(*, locks: object = True, **options: Any) -> Starlette:
    """``locks=False``: without the locked routes, for an app whose lifespan runs on the
    cookie store (which refuses to start with them)."""
    options.setdefault("secret_key", KEY)
    routes = [*apps.ROUTES, *EXTRA] if locks else [*apps.LOCK_FREE, *EXTRA[:4]]
    return Starlette(routes=routes, middleware=[Middleware(SessionMiddleware, **options)])


class FlakyStore(MemoryStore):
    """A memory store that can be switched off, to see how a request meets a dead store
    (the Redis tests take a real server down)."""

    down = False

    async def aload(self, digest: str) -> Any:
        self._fail()
        return await super().aload(digest)

    async def asave(self, write: Any) -> bool:
        self._fail()
        return await super().asave(write)

    def load(self, digest: str) -> Any:  # under trio, the engine's sync executor runs
        self._fail()
        return super().load(digest)

    def save(self, write: Any) -> bool:
        self._fail()
        return super().save(write)

    def _fail(self) -> None:
        if self.down:
            raise StoreUnavailable("flaky://", ConnectionRefusedError("connection refused"))


@pytest.fixture(params=["cookie", "memory"])
def store(request: pytest.FixtureRequest, clock: FakeClock) -> Any:
    return None if request.param == "cookie" else MemoryStore(clock=clock)


# -- lifecycle ----------------------------------------------------------------------------
async def test_clearing_a_bad_cookie_varies_on_cookie_like_django_and_flask(
    store: Any, clock: FakeClock
) -> None:
    """A forged cookie is cleared even on a route that never touches the session; that
    response depends on the Cookie header, so it says ``Vary: Cookie`` (as the Django and
    Flask adapters do, from the same ``CommitPlan``)."""
    async with client(make_app(store=store, clock=clock)) as http:
        response = await http.get("/untouched", headers={"Cookie": "session=" + "A" * 60})
        cleared = set_cookie(response)
        assert cleared is not None and cleared["max-age"] == "0"
        assert response.headers["vary"] == "Cookie"
        assert response.headers["cache-control"] == "private"


async def test_regenerate_keeps_data_and_kills_the_old_cookie(clock: FakeClock) -> None:
    app = make_app(store=MemoryStore(clock=clock), clock=clock)
    async with client(app) as http:
        await http.get("/set", params={"cart": "3 items"})
        before = http.cookies["session"]
        await http.get("/login", params={"user": "ada"})
        after = http.cookies["session"]
        assert after != before
        assert (await http.get("/get")).json() == {"cart": "3 items", "user": "ada"}
        http.cookies.clear()
        replay = await http.get("/get", headers={"Cookie": f"session={before}"})
        assert replay.json() == {}  # the pre-login ID is dead


async def test_invalidate_and_replay(clock: FakeClock) -> None:
    app = make_app(store=MemoryStore(clock=clock), clock=clock)
    async with client(app) as http:
        await http.get("/login", params={"user": "ada"})
        captured = http.cookies["session"]
        out = await http.get("/logout")
        assert "1970" in out.headers["set-cookie"]
        assert "session" not in http.cookies
        replay = await http.get("/get", headers={"Cookie": f"session={captured}"})
        assert replay.status_code == 200
        assert replay.json() == {}


async def test_flash_lasts_exactly_one_more_request(store: Any, clock: FakeClock) -> None:
    async with client(make_app(store=store, clock=clock)) as http:
        await http.get("/set", params={"keep": "me"})
        await http.get("/flash")
        assert (await http.get("/get")).json() == {"keep": "me", "message": "saved!"}
        assert (await http.get("/get")).json() == {"keep": "me"}
        assert (await http.get("/get")).json() == {"keep": "me"}


async def test_idle_expiry_on_a_fake_clock(store: Any, clock: FakeClock) -> None:
    async with client(make_app(store=store, clock=clock, max_age=3600)) as http:
        await http.get("/set", params={"a": "1"})
        clock.advance(3000)
        assert (await http.get("/get")).json() == {"a": "1"}
        clock.advance(3601)
        assert (await http.get("/get")).json() == {}


async def test_absolute_timeout_beats_a_busy_client(store: Any, clock: FakeClock) -> None:
    app = make_app(store=store, clock=clock, max_age=3600, absolute_timeout=7200)
    async with client(app) as http:
        await http.get("/set", params={"a": "1"})
        for _ in range(4):
            clock.advance(1700)
            await http.get("/set", params={"b": "2"})  # keeps the idle timer fresh
        assert (await http.get("/get")).json() == {"a": "1", "b": "2"}  # at 6800 s
        clock.advance(500)
        assert (await http.get("/get")).json() == {}  # at 7300 s, past the absolute limit


async def test_nested_mutation_is_saved_and_cache_control_made_private(store: Any) -> None:
    async with client(make_app(store=store)) as http:
        await http.get("/remember", params={"item": "tea"})
        response = await http.get("/remember", params={"item": "jam"})
        assert response.headers["cache-control"] == "private, max-age=60"
        assert (await http.get("/get")).json() == {"cart": ["tea", "jam"]}


async def test_secure_over_https_and_from_config(store: Any) -> None:
    async with client(make_app(store=store), base_url="https://example.com") as http:
        cookie = set_cookie(await http.get("/set", params={"a": "1"}))
        assert cookie is not None and cookie["secure"] is True
    async with client(make_app(store=store)) as http:
        cookie = set_cookie(await http.get("/set", params={"a": "1"}))
        assert cookie is not None and "secure" not in cookie


async def test_key_rotation_reissues_old_cookies(store: Any, clock: FakeClock) -> None:
    old_key, new_key = KEY, "a-brand-new-secret-key-9876543210-zyxwvutsrqponmlkj"
    shared = store if store is not None else None
    async with client(make_app(store=shared, clock=clock, secret_key=old_key)) as http:
        await http.get("/set", params={"a": "1"})
        cookie = http.cookies["session"]
    rotated = make_app(store=shared, clock=clock, secret_key=[new_key, old_key])
    async with client(rotated) as http:
        response = await http.get("/get", headers={"Cookie": f"session={cookie}"})
        assert response.json() == {"a": "1"}
        reissued = set_cookie(response)
        assert reissued is not None and reissued["value"] != cookie
    async with client(make_app(store=shared, clock=clock, secret_key=new_key)) as http:
        assert (await http.get("/get", headers={"Cookie": f"session={cookie}"})).json() == {}


# -- fingerprints and client address ---------------------------------------------------------
@pytest.mark.parametrize(
    ("action", "kept"), [("invalidate", False), ("regenerate", True), ("log", True)]
)
async def test_fingerprint_policies(store: Any, action: str, kept: bool) -> None:
    counter = CountEvents()
    app = make_app(store=store, fingerprint_action=action, on_event=counter)
    async with client(app) as http:
        await http.get("/set", params={"a": "1"})
        before = http.cookies["session"]
        other = {"User-Agent": "curl/8.5.0"}
        response = await http.get("/set", params={"b": "2"}, headers=other)
        assert response.status_code == 200
        assert ("a" in response.json()) is kept
        assert counter.counts[EventKind.FINGERPRINT_MISMATCH.value] == 1
        if action == "regenerate":
            assert http.cookies["session"] != before


async def test_forwarded_for_counts_only_behind_trusted_proxies() -> None:
    options = {"fingerprint_ip": True, "fingerprint_user_agent": False, "store": "memory://"}
    trusting = make_app(trusted_proxies=["10.0.0.0/8"], **options)
    async with client(trusting, peer="10.1.2.3") as http:
        await http.get("/set", params={"a": "1"}, headers={"X-Forwarded-For": "198.51.100.4"})
        moved = await http.get("/get", headers={"X-Forwarded-For": "192.0.2.99"})
        assert moved.json() == {}  # the real client changed network: bound session refused
    untrusting = make_app(**options)
    async with client(untrusting, peer="203.0.113.7") as http:
        await http.get("/set", params={"a": "1"}, headers={"X-Forwarded-For": "198.51.100.4"})
        forged = await http.get("/get", headers={"X-Forwarded-For": "192.0.2.99"})
        assert forged.json() == {"a": "1"}  # a forged header from the client changes nothing


# -- bad input -----------------------------------------------------------------------------
async def test_tampered_cookie_is_an_event_not_a_500(store: Any) -> None:
    counter = CountEvents()
    async with client(make_app(store=store, on_event=counter)) as http:
        await http.get("/set", params={"a": "1"})
        value = http.cookies["session"]
        http.cookies.clear()
        for position in (0, len(value) // 2, len(value) - 1):
            flipped = value[:position] + ("B" if value[position] == "A" else "A")
            flipped += value[position + 1 :]
            response = await http.get("/get", headers={"Cookie": f"session={flipped}"})
            assert response.status_code == 200
            assert response.json() == {}
            assert "1970" in response.headers["set-cookie"]  # the bad cookie is cleared
    assert counter.counts[EventKind.COOKIE_REJECTED.value] == 3


def test_oversized_session_answers_500_with_advice_and_sends_no_cookie(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with TestClient(make_app(locks=False), raise_server_exceptions=True) as http:
        with caplog.at_level(logging.ERROR, logger="sessionkit.asgi"):
            response = http.get("/big")
        assert response.status_code == 500  # sessionkit.failures: TOO_LARGE
        assert "too large" in response.text
        assert "set-cookie" not in response.headers
    assert any("4096-byte limit" in r.getMessage() for r in caplog.records)
    with TestClient(make_app(store="memory://")) as http:
        assert http.get("/big").status_code == 200  # a server-side store takes it


@pytest.mark.parametrize(
    ("options", "setting"),
    [
        ({"secret_key": "short"}, "secret_key"),
        ({"same_site": "none"}, "cookie_samesite"),
        ({"partitioned": True}, "cookie_partitioned"),
        ({"session_cookie": "__Host-sid"}, "cookie_secure"),
        ({"idle_timout": 5}, "idle_timout"),
        ({"store": "nosuch://"}, "store"),
        ({"exclude_paths": ["static"]}, "exclude_paths"),
        ({"store_error_status": 200}, "store_error_status"),
    ],
)
def test_insecure_or_wrong_configuration_fails_at_build(
    options: dict[str, Any], setting: str
) -> None:
    options.setdefault("secret_key", KEY)
    with pytest.raises(ConfigError) as caught:
        SessionMiddleware(make_app(), **options)
    assert caught.value.setting == setting


# -- responses -----------------------------------------------------------------------------
async def test_no_save_on_5xx(store: Any) -> None:
    app = make_app(store=store)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        await http.get("/set", params={"a": "1"})
        for path in ("/fail", "/crash"):
            response = await http.get(path)
            assert response.status_code == 500
            assert "set-cookie" not in response.headers
        assert (await http.get("/get")).json() == {"a": "1"}


async def test_streaming_and_background_tasks_pass_through(store: Any) -> None:
    apps.background_log.clear()
    async with client(make_app(store=store)) as http:
        response = await http.get("/stream")
        assert response.text == "chunk0;chunk1;chunk2;"
        assert set_cookie(response) is not None
        assert apps.background_log == [{"streamed": "yes"}]  # ran, after the response
        assert (await http.get("/get")).json() == {"streamed": "yes"}


def test_websocket_sees_the_handshake_session_and_writes_are_not_saved(
    store: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with TestClient(make_app(store=store, locks=False)) as http:
        http.get("/set", params={"a": "1"})
        with caplog.at_level(logging.WARNING, "sessionkit.asgi"):
            with http.websocket_connect("/ws") as socket:
                assert socket.receive_json() == {"a": "1"}
        assert http.get("/get").json() == {"a": "1"}
    assert "not saved" in caplog.text


async def test_excluded_paths_load_nothing(clock: FakeClock) -> None:
    counter = CountEvents()
    app = make_app(store=MemoryStore(clock=clock), exclude_paths=["/static"], on_event=counter)
    async with client(app) as http:
        await http.get("/set", params={"a": "1"})
        await http.get("/get")
        loads = counter.counts[EventKind.LOADED.value]
        assert loads == 1
        asset = await http.get("/static/app.css")
        assert asset.status_code == 200
        assert "vary" not in asset.headers and "set-cookie" not in asset.headers
        assert counter.counts[EventKind.LOADED.value] == loads  # no store call
        with pytest.raises(SessionNotLoaded, match="exclude_paths"):
            await http.get("/static/session.css")


# -- locks ---------------------------------------------------------------------------------
async def test_fifty_parallel_locked_increments_end_at_fifty() -> None:
    async with client(make_app(store="memory://")) as http:
        await http.get("/set", params={"start": "yes"})
        results = await gather(*(http.get("/locked-inc") for _ in range(50)))
        assert sorted(r.json()["n"] for r in results) == list(range(1, 51))
        assert (await http.get("/get")).json()["n"] == 50


async def test_without_the_lock_updates_are_lost() -> None:
    async with client(make_app(store="memory://")) as http:
        await http.get("/set", params={"start": "yes"})
        await gather(*(http.get("/inc") for _ in range(20)))
        assert (await http.get("/get")).json()["n"] < 20  # why the route lock exists


async def test_lock_wait_timeout_answers_the_core_policy() -> None:
    async with client(make_app(store="memory://")) as http, anyio.create_task_group() as tg:
        await http.get("/set", params={"a": "1"})
        slow = Background(tg, http.get("/slow"))
        await anyio.sleep(0.1)
        blocked = await http.get("/impatient")
        assert blocked.status_code == 503  # sessionkit.failures: LOCK_TIMEOUT
        assert blocked.headers["retry-after"] == "1"
        assert (await slow.result()).status_code == 200
        assert (await http.get("/impatient")).status_code == 200
        assert (await http.get("/get")).json() == {"a": "1", "slow": "done", "impatient": "done"}


async def test_the_cookie_store_cannot_lock() -> None:
    async with client(make_app()) as http:
        await http.get("/set", params={"a": "1"})
        with pytest.raises(Exception, match="cannot lock sessions"):
            await http.get("/locked-inc")


# -- a store that is down ------------------------------------------------------------------
async def test_store_down_answers_503_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    store = FlakyStore()
    async with client(make_app(store=store)) as http:
        await http.get("/set", params={"a": "1"})
        store.down = True
        with caplog.at_level(logging.ERROR, "sessionkit.asgi"):
            loading = await http.get("/get")
        assert loading.status_code == 503
        assert "session store" in loading.text
        assert "answered 503 because the session store is unavailable" in caplog.text
        assert "flaky://" in caplog.text
        store.down = False
        await http.get("/get")  # loaded while up ...
        store.down = True  # ... but the save fails: the app's response is replaced
        http.cookies.clear()
        saving = await http.get("/set", params={"b": "2"})
        assert saving.status_code == 503
        assert "set-cookie" not in saving.headers
        store.down = False
        assert "session" not in http.cookies


async def test_store_down_can_propagate_instead() -> None:
    store = FlakyStore()
    async with client(make_app(store=store, store_error_status=None)) as http:
        await http.get("/set", params={"a": "1"})
        store.down = True
        with pytest.raises(StoreUnavailable):
            await http.get("/get")


# -- events --------------------------------------------------------------------------------
async def test_events_reach_logging_and_counters(caplog: pytest.LogCaptureFixture) -> None:
    counter = CountEvents()
    events = EventBus()
    events.subscribe(LogEvents(logging.getLogger("tests.asgi.events")))
    app = make_app(store="memory://", events=events, on_event=counter)
    async with client(app) as http:
        with caplog.at_level(logging.INFO, "tests.asgi.events"):
            await http.get("/set", params={"a": "1"})
            await http.get("/set", params={"a": "2"})
            await http.get("/login", params={"user": "ada"})
    assert counter.counts["created"] == 2  # the first visit and the regeneration
    assert counter.counts["saved"] == 1
    assert counter.counts["regenerated"] == 1
    assert "created" in caplog.text and "regenerated" in caplog.text
