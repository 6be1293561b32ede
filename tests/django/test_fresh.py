"""``@fresh_session`` in Django against a real Redis with the local cache: a marked view
reads its session from Redis itself, an unmarked one is served by the cache
(tests/fresh_routes.py says how the two are told apart). Sync views under WSGI mark the
lazily loaded session before it is read; async ones, whose session the middleware has
loaded already, read it again."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import django
import pytest
from django.http import HttpRequest, JsonResponse
from django.test import AsyncClient, Client, override_settings
from django.urls import path
from django.utils.decorators import method_decorator
from django.views import View
from sessionkit_django import conf, use_engine
from sessionkit_django.middleware import fresh_session, session_lock

from sessionkit import FreshOrderError, SessionEngine, Store
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


def login(request: HttpRequest) -> JsonResponse:
    request.session["role"] = request.GET["role"]
    return JsonResponse({})


def read(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"role": request.session.get("role")})


@fresh_session
def fresh_read(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"role": request.session.get("role")})


@fresh_session
def who(request: HttpRequest) -> JsonResponse:
    role = request.session.get("role")
    return JsonResponse({"role": role, "key": request.session.session_key is not None})


@fresh_session
async def awho(request: HttpRequest) -> JsonResponse:
    role = await request.session.aget("role")
    return JsonResponse({"role": role, "key": request.session.session_key is not None})


@fresh_session
async def afresh_read(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"role": await request.session.aget("role")})


@session_lock
@fresh_session
def locked_fresh(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"role": request.session.get("role")})


@method_decorator(fresh_session, name="get")
class Account(View):
    def get(self, request: HttpRequest) -> JsonResponse:
        return JsonResponse({"role": request.session.get("role")})


class AsyncAccount(View):
    @method_decorator(fresh_session)
    async def get(self, request: HttpRequest) -> JsonResponse:
        return JsonResponse({"role": await request.session.aget("role")})


@method_decorator(fresh_session, name="dispatch")  # dispatch is sync: it returns get()'s coroutine
class AsyncPanel(View):
    async def get(self, request: HttpRequest) -> JsonResponse:
        return JsonResponse({"role": await request.session.aget("role")})


def reads_first(change: bool) -> Any:
    """What middleware that reads (or changes) the session before the view does."""

    def decorate(view: Any) -> Any:
        @functools.wraps(view)
        def wrapper(request: HttpRequest) -> Any:
            assert request.session.get("role") is not None
            if change:
                request.session["seen"] = True
            return view(request)

        return wrapper

    return decorate


urlpatterns = [
    path("login", login), path("read", read), path("fresh", fresh_read),
    path("afresh", afresh_read), path("locked-fresh", locked_fresh),
    path("account", Account.as_view()), path("aaccount", AsyncAccount.as_view()),
    path("apanel", AsyncPanel.as_view()),
    path("read-then-fresh", reads_first(False)(fresh_read)), path("who", who),
    path("awho", awho), path("read-then-who", reads_first(False)(who)),
    path("change-then-fresh", reads_first(True)(fresh_read)),
]  # fmt: skip
SYNC = ["/fresh", "/account", "/locked-fresh"]
# method_decorator wraps an async method as one only from Django 5.0 on (before, the view
# returns an unawaited coroutine whatever the decorator): on 4.2, dispatch is the way
ASYNC = ["/afresh", "/aaccount", "/apanel"] if django.VERSION >= (5, 0) else ["/afresh", "/apanel"]


def installed(store: Store) -> Any:
    engine = SessionEngine(conf.build_config({"STORE": store}), store=store)
    stack = [override_settings(ROOT_URLCONF=__name__), use_engine(engine)]
    for context in stack:
        context.__enter__()
    return stack


@pytest.fixture
def on(redis_server: servers.Server) -> Iterator[Any]:
    """``on(store)``: install the test URLs and an engine on ``store``; a logged-in client."""
    stacks: list[Any] = []
    stores: list[Store] = []

    def make(store: Store) -> Client:
        stores.append(store)
        stacks.append(installed(store))
        client = Client()
        client.get("/login", {"role": "admin"})
        client.get("/read")  # the miss after our own write: cached now
        return client

    yield make
    for stack in stacks:
        for context in reversed(stack):
            context.__exit__(None, None, None)
    for store in stores:
        store.close()


def test_a_marked_view_reads_redis_and_an_unmarked_one_the_cache(
    redis_server: servers.Server, on: Any
) -> None:
    store = cached_redis(redis_server.port)
    client = on(store)
    before = counts(store)
    assert client.get("/read").json() == {"role": "admin"}
    assert delta(before, counts(store)) == {"hits": 1, "misses": 0, "fresh": 0}
    for url in SYNC:  # marked before the (lazy) load: the cache is not asked
        before = counts(store)
        assert client.get(url).json() == {"role": "admin"}
        assert delta(before, counts(store)) == {"hits": 0, "misses": 0, "fresh": 1}, url
    before = counts(store)
    assert client.get("/read-then-fresh").json() == {"role": "admin"}  # read, then again
    assert delta(before, counts(store)) == {"hits": 1, "misses": 0, "fresh": 1}


@pytest.mark.anyio
async def test_an_async_marked_view_reads_redis(redis_server: servers.Server, on: Any) -> None:
    store = cached_redis(redis_server.port)
    client = on(store)
    aclient = AsyncClient()
    aclient.cookies = client.cookies
    before = counts(store)
    assert (await aclient.get("/read")).json() == {"role": "admin"}
    assert delta(before, counts(store)) == {"hits": 1, "misses": 0, "fresh": 0}
    for url in ASYNC:  # the async middleware read it before the view: read again
        before = counts(store)
        assert (await aclient.get(url)).json() == {"role": "admin"}
        assert delta(before, counts(store)) == {"hits": 1, "misses": 0, "fresh": 1}, url
    await store.aclose()


@pytest.mark.anyio
async def test_a_marked_view_sees_a_change_the_cache_did_not_hear_of(
    redis_server: servers.Server, on: Any
) -> None:
    store = silent_redis(redis_server.port)
    client = on(store)
    aclient = AsyncClient()
    aclient.cookies = client.cookies
    seen = "admin"
    for n, url in enumerate([*SYNC, "/read-then-fresh", *ASYNC]):
        edit_behind(store, redis_server.port, "role", f'"user{n}"')
        assert client.get("/read").json() == {"role": seen}  # the cached copy
        get = aclient.get(url) if url in ASYNC else None
        response = await get if get is not None else client.get(url)
        assert response.json() == {"role": f"user{n}"}, url
        seen = f"user{n}"  # the fresh read refilled the cache
    await store.aclose()


@pytest.mark.anyio
@pytest.mark.parametrize("url", ["/who", "/read-then-who", "/awho"])
async def test_a_marked_view_sees_a_logout_the_cache_did_not_hear_of(
    redis_server: servers.Server, on: Any, url: str
) -> None:
    store = silent_redis(redis_server.port)
    client = on(store)
    delete_behind(store, redis_server.port)
    assert client.get("/read").json() == {"role": "admin"}  # the cached copy
    aclient = AsyncClient()
    aclient.cookies = client.cookies
    response = await aclient.get(url) if url == "/awho" else client.get(url)
    assert response.json() == {"role": None, "key": False}  # no session, its key forgotten
    await store.aclose()


def test_a_session_changed_on_a_cached_read_before_the_view_is_refused(
    redis_server: servers.Server, on: Any
) -> None:
    client = on(cached_redis(redis_server.port))
    with pytest.raises(FreshOrderError, match="keys 'seen'"):
        client.get("/change-then-fresh")


def test_without_a_cache_a_marked_view_reads_once(on: Any) -> None:
    store = Counting()
    client = on(store)
    for url in [*SYNC, "/read-then-fresh"]:
        loads = store.loads
        assert client.get(url).json() == {"role": "admin"}
        assert store.loads == loads + 1, url


def test_fresh_session_without_the_middleware_says_what_is_missing() -> None:
    request = HttpRequest()
    with pytest.raises(RuntimeError, match="@fresh_session needs sessionkit_django"):
        fresh_read(request)
