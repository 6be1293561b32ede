"""sessionkit.urls: every secret of a store URL is masked wherever a URL is printed, and
the module is a leaf (errors, config and stores import it; it imports none of them)."""

from __future__ import annotations

import ast
import inspect

import pytest

from sessionkit import SessionConfig, config, errors, urls
from sessionkit.errors import ConfigError, StoreUnavailable
from sessionkit.stores import base, open_store
from sessionkit.urls import mask_url, parse_flag, query_options

KEY = "urls-tests-key-0123456789-abcdefghijklmnopqrstuvwxyz"


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://ann:s3cret@h:6379/0", "redis://ann:***@h:6379/0"),
        ("redis://:s3cret@h", "redis://:***@h"),
        # the userinfo ends at the LAST @, as urllib and the drivers parse it
        ("postgresql://app:p@ss@db/x", "postgresql://app:***@db/x"),
        ("postgresql://app:p@s@s@db:5432", "postgresql://app:***@db:5432"),
        ("redis://user@h", "redis://user@h"),  # no password: nothing to hide
        (
            "redis+sentinel://:pw@s1:26379,s2/mymaster?sentinel_password=zz&prefix=a:",
            "redis+sentinel://:***@s1:26379,s2/mymaster?sentinel_password=***&prefix=a:",
        ),
        (
            "rediss://h?ssl_password=k&ssl_keyfile=/k.pem",
            "rediss://h?ssl_password=***&ssl_keyfile=/k.pem",
        ),
        ("memcached://h?password=x#frag", "memcached://h?password=***#frag"),
        (
            "redis://h?Sentinel_Password=x&auth_token=y",
            "redis://h?Sentinel_Password=***&auth_token=***",
        ),
        ("sqlite:///var/db/p@ss.db", "sqlite:///var/db/p@ss.db"),  # a path, not a userinfo
        ("file:///tmp/sessions", "file:///tmp/sessions"),
        ("Lax", "Lax"),
        ("not a url @ all", "not a url @ all"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


SECRET_URLS = [
    "redis+sentinel://:pw1@127.0.0.1:1/mymaster?sentinel_password=pw2",
    "redis://ann:pw1@127.0.0.1:1/0?sentinel_password=pw2",
    "postgresql://app:pw1@pw2@127.0.0.1:1/db",
]


@pytest.mark.parametrize("url", SECRET_URLS)
def test_no_secret_in_config_repr_store_repr_or_errors(url: str) -> None:
    config = SessionConfig(secret_key=KEY, store=url)
    store = open_store(url)
    shown = [repr(config), repr(store), str(StoreUnavailable(url, "refused"))]
    if url.startswith("redis"):
        shown.append(repr(store.target))  # type: ignore[attr-defined]
    for text in shown:
        assert "pw1" not in text and "pw2" not in text and "***" in text, text
    store.close()
    if url.startswith("redis"):
        with pytest.raises(ConfigError) as caught:
            open_store(url + "&bogus_option=1")
        assert "pw1" not in str(caught.value) and "pw2" not in str(caught.value)


def test_query_options_never_echo_a_secret_value() -> None:
    with pytest.raises(ConfigError) as caught:
        query_options("memcached://h?password=hunter2", {"password": int})
    assert "hunter2" not in str(caught.value)
    assert query_options("x://h?a=1&b=on", {"a": int, "b": bool}) == {"a": 1, "b": True}
    assert parse_flag("Off") is False


def test_the_helpers_are_still_importable_from_stores_base() -> None:
    assert (base.mask_url, base.parse_flag, base.query_options) == (
        mask_url, parse_flag, query_options,
    )  # fmt: skip


def _module_imports(module: object) -> set[str]:
    """The modules a module imports when it is imported (not inside functions, not under
    ``TYPE_CHECKING``)."""
    tree = ast.parse(inspect.getsource(module))  # type: ignore[arg-type]
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_urls_is_a_leaf_and_errors_and_config_do_not_import_the_stores() -> None:
    assert not any(m.startswith("sessionkit") for m in _module_imports(urls))
    for module in (errors, config):
        imported = _module_imports(module)
        assert "sessionkit.urls" in imported
        assert not any(m.startswith("sessionkit.stores") for m in imported)
    for module in (errors, config):  # nor lazily, inside a function
        assert "sessionkit.stores.base import mask_url" not in inspect.getsource(module)
