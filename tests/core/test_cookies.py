"""Reading our cookie out of a Cookie header; writing Set-Cookie, Vary and Cache-Control."""

from __future__ import annotations

import pytest

from sessionkit.config import SessionConfig
from sessionkit.cookies import CookieWriter, add_cache_private, add_vary_cookie, cookie_values
from sessionkit.errors import ConfigError, SessionTooLarge

KEY = "FaWbAmZ2QofmTa7fW4bpYftfzDZOG8ywyXEDTt4SbFcybr1O"


def writer(**settings: object) -> CookieWriter:
    return CookieWriter(SessionConfig(secret_key=KEY, **settings))  # type: ignore[arg-type]


def attributes(header: str) -> tuple[str, list[str]]:
    """(name=value, [attributes]) of a Set-Cookie value."""
    first, *rest = header.split("; ")
    return first, rest


# -- cookie_values ----------------------------------------------------------------------------
@pytest.mark.parametrize("header", [None, "", "other=1", "session", "sessionless=1"])
def test_no_value_when_cookie_absent(header: str | None) -> None:
    assert cookie_values(header, "session") == []


def test_single_value() -> None:
    assert cookie_values("session=abc", "session") == ["abc"]


def test_value_among_others() -> None:
    assert cookie_values("session=a; other=b", "session") == ["a"]
    assert cookie_values("other=b; session=a", "session") == ["a"]
    assert cookie_values("x=1; session=a; y=2", "session") == ["a"]


def test_whitespace_around_pairs_is_ignored() -> None:
    assert cookie_values("  other=b ;   session=a  ;z=3", "session") == ["a"]
    assert cookie_values("other=b;session=a", "session") == ["a"]


def test_duplicates_are_all_returned_in_header_order() -> None:
    assert cookie_values("session=first; x=1; session=second", "session") == ["first", "second"]
    assert cookie_values("session=same; session=same", "session") == ["same", "same"]


@pytest.mark.parametrize(
    "header",
    [
        "=session=evil",
        " =session=evil",
        "x=1; =session=evil",
        "xsession=1",
        "session2=1",
        "my_session=1; session_id=2",
        "Session=1",
        "SESSION=1",
        "session",  # no '=' at all
        "foo=session=evil",
    ],
    ids=repr,
)
def test_pairs_not_named_exactly_ours_yield_nothing(header: str) -> None:
    """SECURITY item 20: ``=session=evil`` and lookalike names cannot smuggle a session."""
    assert cookie_values(header, "session") == []


def test_nameless_pair_does_not_shadow_the_real_cookie() -> None:
    assert cookie_values("=session=evil; session=good", "session") == ["good"]


def test_value_may_contain_equals_signs() -> None:
    assert cookie_values("session=a=b==", "session") == ["a=b=="]


def test_values_are_not_unquoted_or_decoded() -> None:
    assert cookie_values('session="abc"', "session") == ['"abc"']
    assert cookie_values("session=a%20b", "session") == ["a%20b"]


def test_prefixed_cookie_name() -> None:
    header = "__Host-sid=good; sid=other; =__Host-sid=evil"
    assert cookie_values(header, "__Host-sid") == ["good"]


def test_empty_value_is_returned_as_empty() -> None:
    assert cookie_values("session=", "session") == [""]


# -- CookieWriter -----------------------------------------------------------------------------
def test_default_attributes() -> None:
    first, attrs = attributes(writer().set("VALUE", 3600))
    assert first == "session=VALUE"
    assert "HttpOnly" in attrs
    assert "SameSite=Lax" in attrs
    assert "Path=/" in attrs
    assert "Max-Age=3600" in attrs
    assert "Secure" not in attrs
    assert not any(a.startswith("Domain=") for a in attrs)
    assert "Partitioned" not in attrs


def test_custom_name_path_and_domain() -> None:
    header = writer(cookie_name="sid", cookie_path="/app", cookie_domain="example.com").set("v", 10)
    first, attrs = attributes(header)
    assert first == "sid=v"
    assert "Path=/app" in attrs
    assert "Domain=example.com" in attrs


@pytest.mark.parametrize(("samesite", "shown"), [("lax", "Lax"), ("strict", "Strict"),
                                                 ("Strict", "Strict")])  # fmt: skip
def test_samesite_values(samesite: str, shown: str) -> None:
    _, attrs = attributes(writer(cookie_samesite=samesite).set("v", 10))
    assert f"SameSite={shown}" in attrs


def test_samesite_none_is_written_with_secure() -> None:
    _, attrs = attributes(writer(cookie_samesite="none", cookie_secure=True).set("v", 10))
    assert "SameSite=None" in attrs
    assert "Secure" in attrs


def test_samesite_can_be_omitted() -> None:
    _, attrs = attributes(writer(cookie_samesite=None).set("v", 10))
    assert not any(a.startswith("SameSite") for a in attrs)


def test_httponly_can_be_turned_off() -> None:
    _, attrs = attributes(writer(cookie_httponly=False).set("v", 10))
    assert "HttpOnly" not in attrs


def test_secure_when_configured() -> None:
    w = writer(cookie_secure=True)
    assert "Secure" in attributes(w.set("v", 10))[1]
    assert "Secure" in attributes(w.set("v", 10, secure=False))[1]
    assert "Secure" in attributes(w.clear())[1]


def test_secure_per_request_when_request_is_https() -> None:
    w = writer()
    assert "Secure" in attributes(w.set("v", 10, secure=True))[1]
    assert "Secure" not in attributes(w.set("v", 10, secure=False))[1]
    assert "Secure" in attributes(w.clear(secure=True))[1]
    assert "Secure" not in attributes(w.clear())[1]


def test_prefixed_names_are_secure() -> None:
    host = writer(cookie_name="__Host-sid", cookie_secure=True).set("v", 10)
    first, attrs = attributes(host)
    assert first == "__Host-sid=v"
    assert "Secure" in attrs
    assert "Path=/" in attrs
    assert not any(a.startswith("Domain=") for a in attrs)
    sec = writer(cookie_name="__Secure-sid", cookie_secure=True, cookie_domain="example.com")
    assert "Secure" in attributes(sec.set("v", 10))[1]


def test_partitioned() -> None:
    _, attrs = attributes(writer(cookie_partitioned=True, cookie_secure=True).set("v", 10))
    assert "Partitioned" in attrs
    assert "Secure" in attrs


def test_browser_session_cookie_has_no_max_age_or_expires() -> None:
    header = writer().set("v", None)
    assert "Max-Age" not in header
    assert "Expires" not in header
    assert "HttpOnly" in attributes(header)[1]


def test_negative_max_age_is_clamped_to_zero() -> None:
    _, attrs = attributes(writer().set("v", -5))
    assert "Max-Age=0" in attrs


def test_clear_expires_the_cookie() -> None:
    header = writer(cookie_domain="example.com", cookie_path="/app").clear()
    first, attrs = attributes(header)
    assert first == "session="
    assert "Max-Age=0" in attrs
    assert "Expires=Thu, 01 Jan 1970 00:00:00 GMT" in attrs
    # It must match the cookie it deletes, or the browser keeps the original.
    assert "Path=/app" in attrs
    assert "Domain=example.com" in attrs
    assert "HttpOnly" in attrs
    assert "SameSite=Lax" in attrs


def test_oversized_cookie_raises_and_message_is_helpful() -> None:
    w = writer()
    with pytest.raises(SessionTooLarge) as info:
        w.set("x" * 5000, 60)
    error = info.value
    assert error.limit == 4096
    assert error.size > 4096
    message = str(error)
    assert str(error.size) in message
    assert "4096" in message
    assert "server-side store" in message


def test_size_limit_is_exact_and_configurable() -> None:
    w = writer(max_cookie_size=512)
    fits = w.set("", 60)
    room = 512 - len(fits)
    assert len(w.set("x" * room, 60)) == 512
    with pytest.raises(SessionTooLarge) as info:
        w.set("x" * (room + 1), 60)
    assert info.value.size == 513
    assert info.value.limit == 512


def test_size_limit_counts_the_secure_attribute() -> None:
    w = writer(max_cookie_size=512)
    room = 512 - len(w.set("", 60))
    assert len(w.set("x" * room, 60)) == 512
    with pytest.raises(SessionTooLarge):
        w.set("x" * room, 60, secure=True)


# -- Vary / Cache-Control ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("existing", "expected"),
    [
        (None, "Cookie"),
        ("", "Cookie"),
        ("Accept-Encoding", "Accept-Encoding, Cookie"),
        ("Accept-Encoding, Accept-Language", "Accept-Encoding, Accept-Language, Cookie"),
        ("Cookie", "Cookie"),
        ("cookie", "cookie"),
        ("Accept-Encoding, Cookie", "Accept-Encoding, Cookie"),
        ("Accept-Encoding,cookie", "Accept-Encoding,cookie"),
        ("*", "*"),
        ("Accept, *", "Accept, *"),
    ],
    ids=repr,
)
def test_add_vary_cookie(existing: str | None, expected: str) -> None:
    assert add_vary_cookie(existing) == expected


def test_add_vary_cookie_does_not_match_lookalike_fields() -> None:
    assert add_vary_cookie("Cookie2") == "Cookie2, Cookie"
    assert add_vary_cookie("X-Cookie") == "X-Cookie, Cookie"


@pytest.mark.parametrize(
    ("existing", "expected"),
    [
        (None, "private"),
        ("", "private"),
        ("max-age=60", "private, max-age=60"),
        ("public", "private"),
        ("public, max-age=600", "private, max-age=600"),
        ("Public, max-age=600", "private, max-age=600"),
        ("max-age=600, public, must-revalidate", "private, max-age=600, must-revalidate"),
        ("private", "private"),
        ("private, max-age=60", "private, max-age=60"),
        ("no-store", "no-store"),
        ("no-cache, no-store", "no-cache, no-store"),
        ("no-cache", "private, no-cache"),
    ],
    ids=repr,
)
def test_add_cache_private(existing: str | None, expected: str) -> None:
    assert add_cache_private(existing) == expected


def test_add_cache_private_never_leaves_public() -> None:
    for existing in ("public", "public, s-maxage=3600", "s-maxage=3600,public"):
        merged = add_cache_private(existing)
        directives = [d.strip().lower() for d in merged.split(",")]
        assert "public" not in directives
        assert "private" in directives


def test_starlette_spelling_matches_starlettes_own_header() -> None:
    """cookie_spelling="starlette": the drop-in's Set-Cookie reads as Starlette 1.10 writes
    it (lower case, its order), for users' tests that grep the header (issue 12)."""
    config = SessionConfig(
        secret_key=KEY, cookie_spelling="starlette", cookie_path="/app", cookie_secure=True,
        cookie_domain=".example.com", cookie_samesite="none", cookie_partitioned=True,
    )  # fmt: skip
    writer = CookieWriter(config)
    assert writer.set("v", 1209600) == (
        "session=v; path=/app; Max-Age=1209600; httponly; samesite=none; secure; "
        "domain=.example.com; partitioned"
    )
    assert writer.set("v", None) == (
        "session=v; path=/app; httponly; samesite=none; secure; domain=.example.com; partitioned"
    )
    assert writer.clear() == (
        "session=null; path=/app; Max-Age=0; expires=Thu, 01 Jan 1970 00:00:00 GMT; httponly; "
        "samesite=none; secure; domain=.example.com; partitioned"
    )
    plain = CookieWriter(SessionConfig(secret_key=KEY, cookie_spelling="starlette"))
    assert (
        plain.set("v", 5, secure=True)
        == "session=v; path=/; Max-Age=5; httponly; samesite=lax; secure"
    )


def test_cookie_spelling_is_checked() -> None:
    with pytest.raises(ConfigError, match="cookie_spelling"):
        SessionConfig(secret_key=KEY, cookie_spelling="django")  # type: ignore[arg-type]
