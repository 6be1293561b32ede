"""System checks: ``manage.py check`` (errors) and ``check --deploy`` (insecure settings).

- ``sessionkit.E001`` a setting is invalid (the ``ConfigError`` message says which and why)
- ``sessionkit.E002`` a ``__Host-`` cookie name with Secure off, a Domain, or a Path other
  than ``/`` (browsers reject such cookies)
- ``sessionkit.E003`` both Django's and sessionkit's session middleware are installed
- ``sessionkit.E004`` sessionkit's middleware without ``SESSION_ENGINE =
  "sessionkit_django.engine"``: ``Client.login()``, ``Client.session`` and scripts would
  write sessions of another engine, which the middleware then rejects
- ``sessionkit.E005`` views under ``@session_lock`` while the store cannot lock (the cookie
  store); the error names the URL patterns (found by walking ``ROOT_URLCONF``, only then)
- ``sessionkit.E006`` ``SESSIONKIT["DBSC"]`` on without sessionkit's middleware, which is
  what answers the DBSC endpoints and sends the registration header
- ``sessionkit.W005`` the app is not in ``INSTALLED_APPS`` (registered by ``conf``, since
  without the app nothing else registers checks)
- ``sessionkit.W001`` (deploy) the session cookie is not ``Secure``, when Django's own
  ``security.W010``/``W011`` do not already say so (``SESSIONKIT["COOKIE_SECURE"]`` decides,
  or ``django.contrib.sessions`` is not installed)
- ``sessionkit.W002`` (deploy) a key of its own in ``SESSIONKIT["SECRET_KEY"]`` is short or not
  random-looking (``SECRET_KEY`` itself is Django's ``security.W009``)
- ``sessionkit.W003`` (deploy) ``memory://``: sessions die with the process and are not
  shared between workers
- ``sessionkit.W004`` (deploy) no ``SESSIONKIT["STORE"]``: the default file store serves
  one machine only
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning
from django.core.checks import register as register_check

from sessionkit import ConfigError, SessionConfig
from sessionkit_django.conf import build_config

_OURS = "sessionkit_django.middleware.SessionMiddleware"
_ENGINE = "sessionkit_django.engine"
_DJANGOS = "django.contrib.sessions.middleware.SessionMiddleware"
_HOST_SETTINGS = {"cookie_secure", "cookie_domain", "cookie_path", "cookie_name"}


def _config() -> tuple[SessionConfig | None, list[Error]]:
    try:
        return build_config(), []
    except ConfigError as exc:
        name = str(settings.SESSION_COOKIE_NAME)
        user = getattr(settings, "SESSIONKIT", None) or {}
        name = str({k.upper(): v for k, v in user.items()}.get("COOKIE_NAME", name))
        if name.lower().startswith("__host-") and exc.setting in _HOST_SETTINGS:
            return None, [
                Error(
                    str(exc),
                    hint="A __Host- cookie needs SESSION_COOKIE_SECURE = True, "
                    "SESSION_COOKIE_PATH = '/' and no SESSION_COOKIE_DOMAIN.",
                    id="sessionkit.E002",
                )
            ]
        return None, [Error(str(exc), id="sessionkit.E001")]


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    config, errors = _config()
    if config is not None:
        # What only opening the store finds (a scheme typo such as rdis://, a missing
        # client library, an SQLite directory that does not exist): the engine requests
        # will use, built now, so `check` says so instead of only the server's start-up.
        from sessionkit_django.conf import get_engine

        try:
            get_engine()
        except ConfigError as exc:
            errors.append(Error(str(exc), id="sessionkit.E001"))
    middleware = list(getattr(settings, "MIDDLEWARE", None) or ())
    if _OURS in middleware and _DJANGOS in middleware:
        errors.append(
            Error(
                "Both Django's and sessionkit's SessionMiddleware are installed.",
                hint=f"Replace {_DJANGOS!r} with {_OURS!r}.",
                id="sessionkit.E003",
            )
        )
    if _OURS in middleware and not _engine_is_ours():
        errors.append(
            Error(
                f"sessionkit's SessionMiddleware is installed but SESSION_ENGINE is "
                f"{settings.SESSION_ENGINE!r}: Client.login(), Client.session and code that "
                "builds a SessionStore would write sessions the middleware cannot read (it "
                "rejects their cookie as an invalid signature).",
                hint=f"Set SESSION_ENGINE = {_ENGINE!r}.",
                id="sessionkit.E004",
            )
        )
    if config is not None and config.dbsc and _OURS not in middleware:
        errors.append(
            Error(
                "SESSIONKIT['DBSC'] is on, but sessionkit's SessionMiddleware is not installed: "
                "it is what answers the DBSC endpoints and sends the registration header.",
                hint=f"Put {_OURS!r} in MIDDLEWARE (in place of Django's).",
                id="sessionkit.E006",
            )
        )
    return errors


def check_locked_views(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """``sessionkit.E005``: ``@session_lock`` views on a store that cannot lock. Run with
    the other checks (``runserver``, ``migrate``, the test runner, ``check``), so such a
    setting stops the project there and not on the views' requests."""
    if _config()[1]:
        return []  # the settings are invalid: reported by check_settings
    from sessionkit import LocksUnsupported
    from sessionkit_django.conf import get_engine

    try:
        engine = get_engine()
    except ConfigError:
        return []  # the store setting is invalid: reported by check_settings
    if engine.store.supports_lock:
        return []  # the URLconf is not even imported
    from django.urls import get_resolver

    views = locked_views(get_resolver().url_patterns)
    try:
        engine.require_locks(views, setting="SESSIONKIT['STORE']")
    except LocksUnsupported as exc:
        return [
            Error(
                str(exc),
                hint="Set SESSIONKIT = {'STORE': 'redis://...'} (or a database or file:/// "
                "URL), or remove @session_lock from these views.",
                id="sessionkit.E005",
            )
        ]
    return []


def locked_views(patterns: Any) -> list[str]:
    """``"/cart/checkout/ (shop.views.checkout)"`` for each ``@session_lock`` view under
    ``patterns`` (a URLconf's ``urlpatterns``), includes and class-based views too."""
    return list(_locked_views(patterns, ""))


def _locked_views(patterns: Any, prefix: str) -> Any:
    from sessionkit_django.middleware import LOCK_MARK

    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        inner = getattr(pattern, "url_patterns", None)
        if inner is not None:  # include()
            yield from _locked_views(inner, route)
            continue
        view = pattern.callback
        view_class = getattr(view, "view_class", None)  # a class-based view's methods
        candidates = [view] + [
            getattr(view_class, name, None)
            for name in ("dispatch", *getattr(view_class, "http_method_names", ()))
        ]
        if any(getattr(c, LOCK_MARK, False) for c in candidates if c is not None):
            name = getattr(view, "__qualname__", repr(view))
            yield f"/{route} ({getattr(view, '__module__', '?')}.{name})"


def _engine_is_ours() -> bool:
    """``SESSION_ENGINE`` names ours, or a module whose ``SessionStore`` extends ours."""
    if settings.SESSION_ENGINE == _ENGINE:
        return True
    from importlib import import_module

    from sessionkit_django.engine import SessionStore

    try:
        store = import_module(settings.SESSION_ENGINE).SessionStore
    except (ImportError, AttributeError):
        return False
    return isinstance(store, type) and issubclass(store, SessionStore)


def check_deploy(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    config, _errors = _config()
    if config is None:
        return []  # reported by check_settings
    found = []
    if not config.cookie_secure and not _django_warns_insecure_cookie():
        found.append(
            Warning(
                "The session cookie is not Secure, so it is sent over plain HTTP too.",
                hint="Set SESSION_COOKIE_SECURE = True (or SESSIONKIT['COOKIE_SECURE']).",
                id="sessionkit.W001",
            )
        )
    key = config.secret_keys[0]
    djangos = str(settings.SECRET_KEY).encode()
    if key != djangos and (len(key) < 50 or len(set(key)) < 5):  # Django's key: security.W009
        found.append(
            Warning(
                f"The secret key signing sessions is {len(key)} bytes; use at least 50 "
                "random characters.",
                hint="Generate one with `sessionkit keygen` and set SECRET_KEY or "
                "SESSIONKIT['SECRET_KEY'].",
                id="sessionkit.W002",
            )
        )
    store = config.store if isinstance(config.store, str) else getattr(config.store, "url", "")
    if store.startswith("memory:"):
        found.append(
            Warning(
                "The memory:// session store loses every session on restart and is not "
                "shared between worker processes.",
                hint="Use redis://, postgresql://, sqlite:/// or file:/// in production.",
                id="sessionkit.W003",
            )
        )
    user = getattr(settings, "SESSIONKIT", None) or {}
    if "STORE" not in {key.upper() for key in user}:
        found.append(
            Warning(
                f"No SESSIONKIT['STORE'] is set; sessions are kept in files at {store}, "
                "which only serves a single machine.",
                hint="Set SESSIONKIT = {'STORE': 'redis://...'} (or a database URL).",
                id="sessionkit.W004",
            )
        )
    return found


def _django_warns_insecure_cookie() -> bool:
    """Whether Django's own ``security.W010``/``W011`` already says the session cookie is not
    Secure (they look at ``SESSION_COOKIE_SECURE`` with ``django.contrib.sessions`` installed
    or Django's middleware in ``MIDDLEWARE``): one warning, not two."""
    django_apps_or_mw = "django.contrib.sessions" in settings.INSTALLED_APPS or _DJANGOS in (
        getattr(settings, "MIDDLEWARE", None) or ()
    )
    return django_apps_or_mw and settings.SESSION_COOKIE_SECURE is not True


def register() -> None:
    register_check(check_settings, "sessionkit")
    register_check(check_locked_views, "sessionkit", Tags.urls)
    register_check(check_deploy, Tags.security, deploy=True)
