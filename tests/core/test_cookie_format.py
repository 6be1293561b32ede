"""The encrypted cookie's format: the encoder mark, the first format still read, each
format under its own associated data, and the types of values a request changes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest

from sessionkit import SessionDataError, serialization
from sessionkit.crypto import b64encode
from sessionkit.stores.cookie import CookieStore
from sessionkit.testing import Browser, FakeClock
from tests.conftest import make_engine

LONG = [2**64, -(2**63) - 1, 10**30, [2**70, {"deep": -(10**25)}]]


@pytest.fixture
def browser(clock: FakeClock) -> Browser:
    return Browser(make_engine(clock, store="cookie://"))


@pytest.fixture
def without_orjson() -> Iterator[None]:
    saved = serialization._orjson
    serialization._orjson = None
    yield
    serialization._orjson = saved


def value_of(browser: Browser) -> Any:
    return browser.visit(lambda s: s.copy()).result


def test_new_cookies_use_format_2(browser: Browser) -> None:
    browser.visit(lambda s: s.__setitem__("a", 1))
    assert browser.cookie is not None and browser.cookie.startswith("2")


def test_format_1_cookies_are_still_read_and_reissued_as_format_2(browser: Browser) -> None:
    """A cookie sealed before the encoder mark existed (its plaintext written by either
    encoder, with no mark) keeps its session, long integers included."""
    browser.visit(lambda s: s.__setitem__("a", 1))
    engine = browser.engine
    session = engine.open(browser.cookie_header, browser.client)
    session.get("a")
    ctx = session._ctx
    data = {"user": "alice", "big": 2**70, "when": datetime(2026, 1, 2, tzinfo=timezone.utc)}
    plaintext = serialization._std_dumps(
        [ctx.session_id, session._meta.to_list(), serialization.tag(data)]
    ).encode("utf-8")
    sealed = engine.keyring.seal(plaintext, CookieStore.associated_data("session")["1"])
    browser.cookie = "1" + b64encode(sealed)
    assert value_of(browser) == data
    browser.visit(lambda s: s.__setitem__("n", 1))
    assert browser.cookie.startswith("2")
    assert value_of(browser) == data | {"n": 1}


def test_a_cookie_relabelled_as_another_format_is_rejected(browser: Browser) -> None:
    """The prefix is outside the ciphertext, but each format seals under its own associated
    data: a format 1 cookie (whose plaintext carries no encoder mark) passed off as format 2
    would have orjson read its long integers as floats, so it must not open at all."""
    engine = browser.engine
    browser.visit(lambda s: s.update(a=1))
    session = engine.open(browser.cookie_header, browser.client)
    session.get("a")
    plaintext = serialization._std_dumps(
        [session._ctx.session_id, session._meta.to_list(), {"big": 2**64 + 1}]
    ).encode("utf-8")
    v1 = "1" + b64encode(
        engine.keyring.seal(plaintext, CookieStore.associated_data("session")["1"])
    )
    browser.cookie = v1
    assert value_of(browser) == {"big": 2**64 + 1}
    browser.cookie = "2" + v1[1:]
    assert value_of(browser) == {}
    browser.visit(lambda s: s.update(a=1))
    assert browser.cookie is not None and browser.cookie.startswith("2")
    browser.cookie = "1" + browser.cookie[1:]
    assert value_of(browser) == {}


@pytest.mark.parametrize("writer", ["orjson", "stdlib"])
@pytest.mark.parametrize("reader", ["orjson", "stdlib"])
def test_integers_beyond_64_bits_survive_the_cookie(
    browser: Browser, writer: str, reader: str
) -> None:
    """orjson refuses to write them and would read them as floats: the encoder mark sends
    such text to the standard library, in a deployment that mixes both too."""
    saved = serialization._orjson
    try:
        serialization._orjson = saved if writer == "orjson" else None
        browser.visit(lambda s: s.update(values=LONG, small=1))
        serialization._orjson = saved if reader == "orjson" else None
        got = value_of(browser)
    finally:
        serialization._orjson = saved
    assert got == {"values": LONG, "small": 1}
    assert type(got["values"][0]) is int and type(got["values"][3][0]) is int


def test_values_changed_after_a_load_keep_their_types(browser: Browser) -> None:
    browser.visit(lambda s: s.update(user="alice", n=1))  # a cookie with no tag in it
    rich = {
        "pair": (1, 2),
        "tags": {"a", "b"},
        "when": datetime(2026, 1, 2, tzinfo=timezone.utc),
        "price": Decimal("9.99"),
        "looks_like_a_tag": {" t": [1, 2]},
        "float": float("inf"),
    }
    browser.visit(lambda s: s.update(rich))
    got = value_of(browser)
    assert got == {"user": "alice", "n": 1, **rich}
    assert type(got["pair"]) is tuple and type(got["looks_like_a_tag"][" t"]) is list
    browser.visit(lambda s: s.__setitem__("n", 2))  # now from a cookie that holds tags
    assert value_of(browser) == {"user": "alice", "n": 2, **rich}


def test_a_lone_key_that_looks_like_a_tag_stays_a_key(browser: Browser) -> None:
    browser.visit(lambda s: s.update({"a": 1, " t": [1, 2]}))
    browser.visit(lambda s: s.pop("a"))
    got = value_of(browser)
    assert got == {" t": [1, 2]} and type(got[" t"]) is list


def test_a_non_string_key_is_a_clear_error(browser: Browser) -> None:
    browser.visit(lambda s: s.__setitem__("a", 1))
    with pytest.raises(SessionDataError, match="keys must be strings"):
        browser.visit(lambda s: s.__setitem__(1, "x"))  # type: ignore[index]
    assert value_of(browser) == {"a": 1}


@pytest.mark.parametrize("store", ["cookie://", "memory://"])
def test_a_value_changed_in_place_through_copy_is_saved(store: str, clock: FakeClock) -> None:
    browser = Browser(make_engine(clock, store=store))
    browser.visit(lambda s: s.__setitem__("cart", [1]))
    browser.visit(lambda s: s.copy()["cart"].append((2, 3)))
    got = value_of(browser)
    assert got == {"cart": [1, (2, 3)]} and type(got["cart"][1]) is tuple


def test_values_changed_behind_the_sessions_back_keep_their_types(browser: Browser) -> None:
    """The cookie is resealed whole, every value re-tagged: a value changed through
    ``dict`` itself still round-trips (with ``modified = True``, as Flask code says "I
    changed something you could not see", and without it when another key changes)."""
    browser.visit(lambda s: s.__setitem__("cart", [1]))

    def sneaky(session: Any) -> None:
        session.get("other")  # loads the session; "cart" itself is never read through it
        dict.__getitem__(session, "cart").append({2, 3})
        session.modified = True

    browser.visit(sneaky)
    assert value_of(browser) == {"cart": [1, {2, 3}]}

    def sneakier(session: Any) -> None:
        dict.__getitem__(session, "cart").append((4, 5))
        session["n"] = 1

    session = browser.engine.open(browser.cookie_header, browser.client)
    session.get("n")  # load first, so that dict.__getitem__ finds the key
    sneakier(session)
    plan = browser.engine.commit(session)
    browser.engine.run(plan)
    assert plan.set_cookie is not None
    browser.cookie = plan.set_cookie.split(";", 1)[0].partition("=")[2]
    got = value_of(browser)
    assert got == {"cart": [1, {2, 3}, (4, 5)], "n": 1} and type(got["cart"][2]) is tuple
