"""Flask's session settings and ``SESSIONKIT_*`` keys, turned into one ``SessionConfig``.

Flask reads its session settings on every request, so tests may change ``app.config``
between requests. The interface therefore asks ``fingerprint()`` per request (a cheap tuple
of the settings that matter) and builds a new engine only when that tuple changes.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sessionkit import ConfigError, SessionConfig
from sessionkit.config import timeouts_for_age

if TYPE_CHECKING:
    from flask import Flask

PREFIX = "SESSIONKIT_"

#: The adapter's own settings, which are not ``SessionConfig`` fields.
LOGOUT = PREFIX + "LOGOUT"
ADAPTER_KEYS = frozenset({LOGOUT})
LOGOUT_MODES = ("rotate", "invalidate")

#: Flask's own settings that shape the engine. ``PERMANENT_SESSION_LIFETIME`` is the idle
#: timeout of each permanent session (``session.permanent``), and the engine's absolute
#: timeout is never shorter than it.
FLASK_KEYS = (
    "PERMANENT_SESSION_LIFETIME",
    "SESSION_COOKIE_NAME",
    "SESSION_COOKIE_DOMAIN",
    "SESSION_COOKIE_PATH",
    "APPLICATION_ROOT",
    "SESSION_COOKIE_HTTPONLY",
    "SESSION_COOKIE_SECURE",
    "SESSION_COOKIE_SAMESITE",
    "SESSION_COOKIE_PARTITIONED",
    "SESSION_REFRESH_EACH_REQUEST",
)


def relevant_keys(config: Mapping[str, Any]) -> tuple[str, ...]:
    """The names whose values the engine depends on: Flask's and every ``SESSIONKIT_*``."""
    return FLASK_KEYS + tuple(sorted(key for key in config if key.startswith(PREFIX)))


def fingerprint(config: Mapping[str, Any], keys: tuple[str, ...]) -> tuple[Any, ...]:
    """The values of ``keys`` (from ``relevant_keys``), compared by value between requests;
    the names tuple itself leads, so a key added or removed changes the fingerprint."""
    return (keys, *map(config.get, keys))


def freeze(value: Any) -> Hashable:
    """A hashable stand-in for a fingerprint (lists of keys become tuples)."""
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, freeze(v)) for k, v in value.items()))
    if isinstance(value, (set, frozenset)):
        return frozenset(freeze(v) for v in value)
    try:
        hash(value)
    except TypeError:
        return ("id", id(value))
    return value  # type: ignore[no-any-return]


def secret_keys(app: Flask) -> list[str | bytes]:
    """The app's keys, newest first, read where Flask reads them: ``app.secret_key`` (so an
    app class with a ``secret_key`` attribute works), then ``SECRET_KEY_FALLBACKS``."""
    key = app.secret_key
    if not key:
        return []
    return [key, *(app.config.get("SECRET_KEY_FALLBACKS") or ())]


def has_secret(config: Mapping[str, Any], keys: list[str | bytes]) -> bool:
    """Whether sessions can work at all; without a key Flask serves its null session."""
    return bool(keys or config.get(PREFIX + "SECRET_KEY"))


def session_config(config: Mapping[str, Any], keys: list[str | bytes]) -> SessionConfig:
    """The ``SessionConfig`` for an app's current config.

    ``SESSIONKIT_*`` keys win; everything else follows Flask's meaning:
    ``SECRET_KEY`` signs (newest) and ``SECRET_KEY_FALLBACKS`` still verify; the cookie
    attributes come from ``SESSION_COOKIE_*`` (path falling back to ``APPLICATION_ROOT``);
    cookies are browser-session cookies unless the session is permanent, as in Flask.
    ``SESSION_REFRESH_EACH_REQUEST`` re-sends a permanent session's cookie on every request
    and slides the stored expiry at most once per ``touch_interval`` (default 60 s; set
    ``SESSIONKIT_TOUCH_INTERVAL = 0`` for every request). A cookie that fails verification
    is left alone, as Flask does, so a key rotation rolled out worker by worker logs nobody
    out.
    """
    logout_mode(config)
    own = {
        key[len(PREFIX) :]: value
        for key, value in config.items()
        if key.startswith(PREFIX) and key not in ADAPTER_KEYS
    }
    present = {key.lower() for key in own}
    refresh = bool(config.get("SESSION_REFRESH_EACH_REQUEST", True))
    derived: dict[str, Any] = {
        "cookie_name": config.get("SESSION_COOKIE_NAME") or "session",
        "cookie_domain": cookie_domain(config.get("SESSION_COOKIE_DOMAIN")),
        "cookie_path": config.get("SESSION_COOKIE_PATH") or config.get("APPLICATION_ROOT") or "/",
        "cookie_httponly": bool(config.get("SESSION_COOKIE_HTTPONLY", True)),
        "cookie_secure": bool(config.get("SESSION_COOKIE_SECURE", False)),
        "cookie_samesite": config.get("SESSION_COOKIE_SAMESITE"),
        "cookie_partitioned": bool(config.get("SESSION_COOKIE_PARTITIONED", False)),
        "cookie_expires": True,
        "browser_session": True,
        "refresh_each_request": refresh,
        "clear_unverified_cookie": False,
    }
    lifetime = config.get("PERMANENT_SESSION_LIFETIME")
    if lifetime is not None:
        seconds = lifetime.total_seconds() if isinstance(lifetime, timedelta) else lifetime
        derived["absolute_timeout"] = timeouts_for_age(seconds)["absolute_timeout"]
    if keys:
        derived["secret_key"] = keys
    if not refresh:
        derived["touch_interval"] = math.inf  # Flask: expiry counts from the last change
    overrides = {key: value for key, value in derived.items() if key not in present}
    try:
        return SessionConfig.from_mapping(own, **overrides)
    except ConfigError as exc:
        if exc.setting.lower() in present or exc.setting in overrides:
            name = exc.setting.upper()
            source = PREFIX + name if exc.setting.lower() in present else _flask_name(name)
            problem = exc.problem.replace("did you mean '", "did you mean '" + PREFIX)
            raise ConfigError(source, problem) from None
        raise


def cookie_domain(value: str | None) -> str | None:
    """``SESSION_COOKIE_DOMAIN`` as Werkzeug writes it: no port, no leading dot (browsers
    ignore it, RFC 6265; Werkzeug's test client then matches subdomains as browsers do)."""
    if not value:
        return None
    return value.partition(":")[0].lstrip(".").encode("idna").decode("ascii") or None


def logout_mode(config: Mapping[str, Any]) -> str:
    """``SESSIONKIT_LOGOUT``: what ``logout_user()`` does to the rest of the session.
    ``"rotate"`` (default, stock Flask-Login): other keys stay, under a new ID; the old ID
    dies. ``"invalidate"``: the whole session is discarded."""
    mode = config.get(LOGOUT, "rotate")
    if mode not in LOGOUT_MODES:
        raise ConfigError(LOGOUT, f"{mode!r}: use 'rotate' or 'invalidate'")
    return str(mode)


def _flask_name(setting: str) -> str:
    if setting == "SECRET_KEY":
        return "SECRET_KEY / SECRET_KEY_FALLBACKS"
    return f"SESSION_{setting}" if setting.startswith("COOKIE_") else setting
