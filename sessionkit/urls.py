"""Store URLs as text: masking their secrets for messages, reading their ``?name=value``
options. A leaf module: it imports nothing from sessionkit at import time, so the errors,
the configuration and every store can use it without an import circle (``query_options``
reaches for ``ConfigError`` only when it has an error to raise)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

#: Query options whose value is a secret, whatever the store: a name that contains one of
#: these (``password``, ``sentinel_password``, ``ssl_password``, ``auth_token``, ...; also
#: ``access_key_id`` of ``dynamodb://``, half of an AWS credential).
SECRET_OPTION_WORDS = ("password", "passwd", "pwd", "secret", "token", "credential", "auth",
                       "access_key")  # fmt: skip
MASK = "***"


def is_secret_option(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in SECRET_OPTION_WORDS)


def mask_url(url: str) -> str:
    """The URL with every secret replaced by ``***``: the password of the userinfo
    (``redis://user:secret@host`` → ``redis://user:***@host``) and the value of any secret
    query option (``?sentinel_password=x`` → ``?sentinel_password=***``).

    The userinfo ends at the *last* ``@`` before the host, as ``urllib`` and the drivers
    parse it, so ``postgresql://app:p@ss@db`` is ``postgresql://app:***@db``. Anything that
    is not ``scheme://...`` is returned as it is (``SessionConfig``'s repr passes every
    string setting through here)."""
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme or not all(c.isalnum() or c in "+-." for c in scheme):
        return url
    end = len(rest)
    for stop in "/?#":
        found = rest.find(stop)
        if found != -1:
            end = min(end, found)
    netloc, tail = rest[:end], rest[end:]
    userinfo, at, hosts = netloc.rpartition("@")
    if at:
        user, colon, _password = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{hosts}" if colon else f"{user}@{hosts}"
    return f"{scheme}://{netloc}{_mask_query(tail)}"


def _mask_query(tail: str) -> str:
    path, question, query = tail.partition("?")
    if not question:
        return tail
    query, hash_, fragment = query.partition("#")
    parts = []
    for pair in query.split("&"):
        name, equals, _value = pair.partition("=")
        parts.append(f"{name}={MASK}" if equals and is_secret_option(name) else pair)
    return f"{path}?{'&'.join(parts)}{hash_}{fragment}"


_TRUE, _FALSE = frozenset({"1", "true", "yes", "on"}), frozenset({"0", "false", "no", "off"})


def parse_flag(text: str) -> bool:
    """``true``/``false`` (also 1/0, yes/no, on/off) from a URL; ``ValueError`` otherwise."""
    lowered = text.lower()
    if lowered not in _TRUE | _FALSE:
        raise ValueError(f"{text!r} is not true or false")
    return lowered in _TRUE


def query_options(url: str, kinds: Mapping[str, type]) -> dict[str, Any]:
    """The ``?name=value`` options of a store URL, each converted by its kind in ``kinds``
    (``int``, ``float``, ``bool`` or ``str``). A repeated name keeps its last value; a name
    not in ``kinds`` or a value of the wrong kind is a ``ConfigError`` that names it, so a
    typo never leaves a store silently unconfigured."""
    options: dict[str, Any] = {}
    for name, value in parse_qsl(urlsplit(url).query, keep_blank_values=True):
        kind = kinds.get(name)
        if kind is None:
            known = ", ".join(sorted(kinds)) or "none"
            raise _config_error(url, f"unknown option {name!r} (known: {known})")
        try:
            options[name] = parse_flag(value) if kind is bool else kind(value)
        except ValueError:
            what = {bool: "true or false", int: "a number", float: "a number"}.get(
                kind, kind.__name__
            )
            shown = MASK if is_secret_option(name) else repr(value)
            raise _config_error(url, f"{name} must be {what}, not {shown}") from None
    return options


def _config_error(url: str, problem: str) -> Exception:
    from sessionkit.errors import ConfigError  # errors imports this module's mask_url

    return ConfigError("store", f"{mask_url(url)!r}: {problem}")
