"""SessionConfig refuses insecure or mistyped settings at start-up, with useful messages."""

from __future__ import annotations

import ipaddress
import secrets
from datetime import timedelta
from typing import Any

import pytest

from sessionkit.config import SessionConfig
from sessionkit.errors import ConfigError

KEY = "FaWbAmZ2QofmTa7fW4bpYftfzDZOG8ywyXEDTt4SbFcybr1O"
OLD_KEY = "h3Kq9ZtRw2pLx7VbN4mC8sYdJ6fGu1TeAo5WiXzQrMnE0jHk"


def config(**settings: Any) -> SessionConfig:
    settings.setdefault("secret_key", KEY)
    return SessionConfig(**settings)


def config_error(**settings: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        config(**settings)
    return info.value


# -- keys -------------------------------------------------------------------------------------
def test_valid_key_is_accepted() -> None:
    cfg = config()
    assert cfg.secret_keys == (KEY.encode(),)


def test_bytes_key_is_accepted() -> None:
    assert config(secret_key=KEY.encode()).secret_keys == (KEY.encode(),)


@pytest.mark.parametrize("key", ["", "short", "x1y2z3w4" * 3, "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p"])
def test_short_key_is_refused_naming_secret_key(key: str) -> None:
    assert len(key.encode()) < 32
    error = config_error(secret_key=key)
    assert error.setting == "secret_key"
    assert "secret_key" in str(error)
    assert "32" in str(error)
    if key:
        assert key not in str(error)  # never echo the key


def test_key_of_exactly_32_bytes_is_accepted() -> None:
    key = KEY[:32]
    assert config(secret_key=key).secret_keys == (key.encode(),)


@pytest.mark.parametrize(
    "key", ["ab" * 32, "x" * 40, "changeme-changeme-changeme-changeme", "0123456789" * 4]
)
def test_typed_key_is_refused_with_the_keygen_hint(key: str) -> None:
    """Keys people type: a few characters, or one short pattern repeated. One key is "the
    secret key" (no "#0"), and the message says how to make a good one."""
    error = config_error(secret_key=key)
    assert error.setting == "secret_key"
    assert "the secret key is not random" in str(error)
    assert "sessionkit keygen" in str(error) and "#0" not in str(error)
    assert key not in str(error)


def test_a_weak_fallback_is_named_by_its_position() -> None:
    assert "fallback key #1 is not random" in str(config_error(secret_key=[KEY, "x" * 40]))


@pytest.mark.parametrize("make", [lambda: secrets.token_urlsafe(32), lambda: secrets.token_hex(32)])
def test_generated_keys_are_accepted(make: Any) -> None:
    for _ in range(200):
        key = make()
        assert config(secret_key=key).secret_keys == (key.encode(),)


@pytest.mark.parametrize("keys", [[], (), None])
def test_empty_key_list_is_refused(keys: Any) -> None:
    error = config_error(secret_key=keys)
    assert error.setting == "secret_key"
    assert "sessionkit keygen" in str(error)


def test_short_fallback_key_is_refused_and_named_as_fallback() -> None:
    error = config_error(secret_key=[KEY, "too-short-old-key"])
    assert error.setting == "secret_key"
    assert "fallback" in str(error)
    assert "too-short-old-key" not in str(error)


def test_non_string_key_is_refused() -> None:
    error = config_error(secret_key=[KEY, 12345])
    assert error.setting == "secret_key"


def test_key_list_is_newest_first() -> None:
    cfg = config(secret_key=[KEY, OLD_KEY])
    assert cfg.secret_keys == (KEY.encode(), OLD_KEY.encode())
    assert isinstance(cfg.secret_keys, tuple)
    assert config(secret_key=(OLD_KEY.encode(), KEY)).secret_keys == (
        OLD_KEY.encode(),
        KEY.encode(),
    )


# -- cookie attributes ------------------------------------------------------------------------
def test_defaults_are_secure() -> None:
    cfg = config()
    assert cfg.cookie_httponly is True
    assert cfg.cookie_samesite == "lax"
    assert cfg.cookie_path == "/"
    assert cfg.cookie_domain is None


def test_host_prefix_valid() -> None:
    cfg = config(cookie_name="__Host-sid", cookie_secure=True)
    assert cfg.cookie_name == "__Host-sid"


def test_host_prefix_with_domain_is_refused() -> None:
    error = config_error(cookie_name="__Host-sid", cookie_secure=True, cookie_domain="example.com")
    assert error.setting == "cookie_domain"


def test_host_prefix_without_secure_is_refused() -> None:
    error = config_error(cookie_name="__Host-sid")
    assert error.setting == "cookie_secure"


def test_host_prefix_with_path_is_refused() -> None:
    error = config_error(cookie_name="__Host-sid", cookie_secure=True, cookie_path="/app")
    assert error.setting == "cookie_path"


@pytest.mark.parametrize("name", ["__host-sid", "__HOST-sid", "__secure-sid"])
def test_prefix_must_be_spelled_exactly(name: str) -> None:
    error = config_error(cookie_name=name, cookie_secure=True)
    assert error.setting == "cookie_name"


def test_secure_prefix_without_secure_is_refused() -> None:
    error = config_error(cookie_name="__Secure-sid")
    assert error.setting == "cookie_secure"


def test_secure_prefix_with_secure_allows_domain_and_path() -> None:
    cfg = config(
        cookie_name="__Secure-sid", cookie_secure=True, cookie_domain="example.com",
        cookie_path="/app",
    )  # fmt: skip
    assert cfg.cookie_domain == "example.com"


def test_samesite_none_without_secure_is_refused() -> None:
    error = config_error(cookie_samesite="none")
    assert error.setting == "cookie_samesite"
    assert "cookie_secure" in str(error)
    assert config(cookie_samesite="none", cookie_secure=True).cookie_samesite == "none"


def test_samesite_is_normalised_and_checked() -> None:
    assert config(cookie_samesite="Strict").cookie_samesite == "strict"
    assert config(cookie_samesite=None).cookie_samesite is None
    assert config_error(cookie_samesite="sometimes").setting == "cookie_samesite"
    assert config_error(cookie_samesite="None").setting == "cookie_samesite"  # needs Secure


def test_partitioned_without_secure_is_refused() -> None:
    error = config_error(cookie_partitioned=True)
    assert error.setting == "cookie_partitioned"
    assert config(cookie_partitioned=True, cookie_secure=True).cookie_partitioned


@pytest.mark.parametrize(
    "name", ["", "a b", "a;b", "a=b", "a,b", "s\u00e9ssion", "a\r\nSet-Cookie: x", "a\tb", 'a"b']
)
def test_bad_cookie_name_is_refused(name: str) -> None:
    error = config_error(cookie_name=name)
    assert error.setting == "cookie_name"


@pytest.mark.parametrize("name", ["session", "sid", "my_session-1.v2", "SESSION"])
def test_good_cookie_name_is_accepted(name: str) -> None:
    assert config(cookie_name=name).cookie_name == name


@pytest.mark.parametrize("path", ["app", "", "/a;b", "/a\r\nX: y"])
def test_bad_cookie_path_is_refused(path: str) -> None:
    assert config_error(cookie_path=path).setting == "cookie_path"


@pytest.mark.parametrize("domain", ["", "a;b", "example.com; Secure", "exa mple.com"])
def test_bad_cookie_domain_is_refused(domain: str) -> None:
    assert config_error(cookie_domain=domain).setting == "cookie_domain"


@pytest.mark.parametrize("size", [0, 255, 4097, 10_000])
def test_max_cookie_size_out_of_range_is_refused(size: int) -> None:
    assert config_error(max_cookie_size=size).setting == "max_cookie_size"


# -- timeouts ---------------------------------------------------------------------------------
def test_both_timeouts_none_is_refused() -> None:
    error = config_error(idle_timeout=None, absolute_timeout=None)
    assert "absolute_timeout" in str(error)
    assert "idle_timeout" in str(error)


def test_one_timeout_may_be_none() -> None:
    assert config(idle_timeout=None).absolute_timeout is not None
    assert config(absolute_timeout=None).idle_timeout is not None


def test_timedelta_is_accepted_as_seconds() -> None:
    cfg = config(
        idle_timeout=timedelta(hours=1),
        absolute_timeout=timedelta(days=2),
        touch_interval=timedelta(seconds=30),
    )
    assert cfg.idle_timeout == 3600.0
    assert cfg.absolute_timeout == 2 * 86400.0
    assert cfg.touch_interval == 30.0


@pytest.mark.parametrize("setting", ["idle_timeout", "absolute_timeout", "touch_interval"])
@pytest.mark.parametrize("value", [-1, -0.5, timedelta(seconds=-10)])
def test_negative_timeouts_are_refused(setting: str, value: Any) -> None:
    error = config_error(**{setting: value})
    assert error.setting == setting


@pytest.mark.parametrize("setting", ["idle_timeout", "absolute_timeout"])
@pytest.mark.parametrize("value", [0, "3600", True])
def test_zero_or_non_numeric_timeouts_are_refused(setting: str, value: Any) -> None:
    assert config_error(**{setting: value}).setting == setting


def test_touch_interval_may_be_zero() -> None:
    assert config(touch_interval=0).touch_interval == 0.0


# -- from_mapping -----------------------------------------------------------------------------
def test_from_mapping_with_upper_case_keys() -> None:
    cfg = SessionConfig.from_mapping(
        {"SECRET_KEY": KEY, "IDLE_TIMEOUT": 600, "COOKIE_NAME": "sid", "Store": "memory://"}
    )
    assert cfg.secret_keys == (KEY.encode(),)
    assert cfg.idle_timeout == 600.0
    assert cfg.cookie_name == "sid"
    assert cfg.store == "memory://"


def test_from_mapping_overrides_win() -> None:
    cfg = SessionConfig.from_mapping({"COOKIE_NAME": "sid"}, secret_key=KEY, cookie_name="other")
    assert cfg.cookie_name == "other"
    assert cfg.secret_keys == (KEY.encode(),)


def test_from_mapping_unknown_key_suggests_closest_setting() -> None:
    with pytest.raises(ConfigError) as info:
        SessionConfig.from_mapping({"SECRET_KEY": KEY, "IDLE_TIMOUT": 600})
    assert info.value.setting == "IDLE_TIMOUT"
    assert "unknown" in str(info.value)
    assert "'IDLE_TIMEOUT'" in str(info.value)


def test_the_suggestion_is_spelt_as_the_user_spelt_the_setting() -> None:
    """Keyword arguments (the ASGI middleware's ``idle_timout=``) get a lower-case answer."""
    with pytest.raises(ConfigError) as info:
        SessionConfig.from_mapping({"secret_key": KEY, "idle_timout": 600})
    assert str(info.value) == (
        "sessionkit setting 'idle_timout': unknown setting; did you mean 'idle_timeout'?"
    )


def test_from_mapping_unknown_key_without_close_match() -> None:
    with pytest.raises(ConfigError) as info:
        SessionConfig.from_mapping({"SECRET_KEY": KEY, "ZZZZZZZZ": 1})
    assert "unknown" in str(info.value)
    assert "did you mean" not in str(info.value)


def test_from_mapping_refuses_derived_fields() -> None:
    with pytest.raises(ConfigError) as info:
        SessionConfig.from_mapping({"SECRET_KEY": KEY, "SECRET_KEYS": [KEY]})
    assert info.value.setting == "SECRET_KEYS"


def test_from_mapping_missing_secret_key_mentions_keygen() -> None:
    with pytest.raises(ConfigError) as info:
        SessionConfig.from_mapping({"STORE": "memory://"})
    assert info.value.setting == "secret_key"
    assert "sessionkit keygen" in str(info.value)


# -- repr -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "secret", [KEY, KEY.encode(), [KEY, OLD_KEY], (KEY.encode(), OLD_KEY.encode())], ids=repr
)
def test_repr_never_contains_a_key(secret: Any) -> None:
    cfg = config(secret_key=secret)
    for text in (repr(cfg), str(cfg), f"{cfg}", repr(cfg.replace(cookie_name="other"))):
        assert KEY not in text
        assert OLD_KEY not in text
        assert KEY[:16] not in text
        assert "SessionConfig(" in text
        assert "key(s)" in text
    assert "cookie_name='session'" in repr(cfg)


def test_config_is_frozen() -> None:
    cfg = config()
    with pytest.raises(AttributeError):
        cfg.cookie_secure = True  # type: ignore[misc]


def test_replace_revalidates() -> None:
    cfg = config()
    with pytest.raises(ConfigError):
        cfg.replace(cookie_name="__Host-sid")


# -- trusted proxies --------------------------------------------------------------------------
def test_trusted_proxies_from_comma_string() -> None:
    cfg = config(trusted_proxies="10.0.0.0/8, 192.168.1.1 ,2001:db8::/32")
    assert cfg.trusted_networks == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.168.1.1/32"),
        ipaddress.ip_network("2001:db8::/32"),
    )


def test_trusted_proxies_from_list() -> None:
    cfg = config(trusted_proxies=["10.0.0.0/8", ipaddress.ip_network("172.16.0.0/12"), "::1"])
    assert cfg.trusted_networks == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("172.16.0.0/12"),
        ipaddress.ip_network("::1/128"),
    )


def test_trusted_proxies_host_bits_are_tolerated() -> None:
    cfg = config(trusted_proxies=["10.1.2.3/8"])
    assert cfg.trusted_networks == (ipaddress.ip_network("10.0.0.0/8"),)


def test_no_trusted_proxies_by_default() -> None:
    assert config().trusted_networks == ()
    assert config(trusted_proxies="").trusted_networks == ()


@pytest.mark.parametrize(
    "value", ["not-an-ip", "10.0.0.0/8, bogus", ["10.0.0.300"], ["10.0.0.0/33"], ["*"]], ids=repr
)
def test_bad_trusted_proxy_is_refused(value: Any) -> None:
    error = config_error(trusted_proxies=value)
    assert error.setting == "trusted_proxies"


# -- other settings ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("settings", "setting"),
    [
        ({"fingerprint_action": "explode"}, "fingerprint_action"),
        ({"fingerprint_ipv4_prefix": 33}, "fingerprint_ipv4_prefix"),
        ({"fingerprint_ipv4_prefix": 4}, "fingerprint_ipv4_prefix"),
        ({"fingerprint_ipv6_prefix": 8}, "fingerprint_ipv6_prefix"),
        ({"fingerprint_ipv6_prefix": 129}, "fingerprint_ipv6_prefix"),
        ({"store": "redis"}, "store"),
        ({"store": 42}, "store"),
    ],
    ids=repr,
)
def test_other_bad_settings_are_refused(settings: dict[str, Any], setting: str) -> None:
    assert config_error(**settings).setting == setting


def test_config_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        config(secret_key="short")


def test_repr_masks_the_store_password() -> None:
    config = SessionConfig(secret_key=KEY, store="redis://:hunter2@cache:6379/0")
    assert "hunter2" not in repr(config) and "redis://:***@cache:6379/0" in repr(config)
