"""Django settings → one ``SessionEngine``, built and validated once.

``SESSIONKIT = {...}`` holds sessionkit's own settings (any ``SessionConfig`` field, in
upper case). Django's ``SESSION_COOKIE_*``, ``SESSION_COOKIE_AGE``,
``SESSION_EXPIRE_AT_BROWSER_CLOSE`` and ``SESSION_SAVE_EVERY_REQUEST`` keep their meaning and
fill in whatever ``SESSIONKIT`` leaves out, so switching engines changes no behaviour a
project already relies on. ``SECRET_KEY`` and ``SECRET_KEY_FALLBACKS`` are the default keys:
the keyring derives separate sub-keys from them (HKDF), so reusing Django's key is safe and
rotating it with ``SECRET_KEY_FALLBACKS`` rotates session signatures too.

Two engines share one store and the one event bus (``signals.EVENTS``): the *request*
engine applies the fingerprint policy to the client the middleware describes; the
*standalone* engine serves ``SessionStore(key)`` used outside a request (Django's own
middleware, the test client, scripts), where no client is known, so it must not judge a
fingerprint (doing so would invalidate a user's session from a management command).
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from django.conf import settings
from django.core.checks import register as register_check
from django.core.signals import setting_changed
from django.dispatch import receiver

from sessionkit import SessionConfig, SessionEngine
from sessionkit.config import timeouts_for_age
from sessionkit_django.signals import EVENTS, relay

#: Django settings whose change (``override_settings`` in tests) rebuilds the engine.
WATCHED = frozenset(
    {
        "SESSIONKIT", "SECRET_KEY", "SECRET_KEY_FALLBACKS", "SESSION_COOKIE_NAME",
        "SESSION_COOKIE_PATH", "SESSION_COOKIE_DOMAIN", "SESSION_COOKIE_SECURE",
        "SESSION_COOKIE_HTTPONLY", "SESSION_COOKIE_SAMESITE", "SESSION_COOKIE_AGE",
        "SESSION_EXPIRE_AT_BROWSER_CLOSE", "SESSION_SAVE_EVERY_REQUEST", "SESSION_FILE_PATH",
    }
)  # fmt: skip


class Engines(NamedTuple):
    request: SessionEngine
    standalone: SessionEngine

    @property
    def config(self) -> SessionConfig:
        return self.request.config


_engines: Engines | None = None
_retired: Engines | None = None  # the engines a settings change replaced (their store)
_mutex = threading.Lock()


def default_store() -> str:
    """The store used when ``SESSIONKIT["STORE"]`` is not set: files in a per-project
    directory. ``SESSION_FILE_PATH`` if set; else the user's state directory
    (``$XDG_STATE_HOME/sessionkit/<project>-<hash>``, by default under
    ``~/.local/state``), which survives reboots, unlike the temp directory Django's file
    backend uses (a reboot that clears /tmp logged everyone out); the temp directory only
    when the state directory cannot be written (a service user without a home). No
    server, no extra package; shared by every worker process on the machine; logout,
    per-user lists and revocation work. For several machines, configure Redis or a
    database. Nothing is created here: the file store makes the directory (0700) on
    first write."""
    base = getattr(settings, "SESSION_FILE_PATH", None)
    if base:
        return f"file://{Path(base).resolve()}"
    project = str(getattr(settings, "SETTINGS_MODULE", "") or "django")
    module = sys.modules.get(project)
    where = os.path.dirname(os.path.abspath(module.__file__ or "")) if module else ""
    # the settings file's directory too: two projects both named "mysite" stay apart
    digest = hashlib.sha256(f"{project}\0{where}".encode()).hexdigest()[:12]
    state = _state_home()
    if state is not None:
        name = project.split(".")[0] + "-" + digest
        return f"file://{state / 'sessionkit' / name}"
    return f"file://{Path(tempfile.gettempdir()) / f'sessionkit-{digest}'}"


def _state_home() -> Path | None:
    """``$XDG_STATE_HOME`` (an absolute path) or ``~/.local/state``, when this process
    could create the default store's directory there; ``None`` otherwise."""
    raw = os.environ.get("XDG_STATE_HOME", "")
    try:
        home = Path(raw) if os.path.isabs(raw) else Path.home() / ".local" / "state"
    except RuntimeError:  # no HOME and no passwd entry
        return None
    probe = home
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return home if probe.is_dir() and os.access(probe, os.W_OK | os.X_OK) else None


def django_defaults() -> dict[str, Any]:
    """sessionkit settings implied by Django's own session settings."""
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", ())]
    samesite = settings.SESSION_COOKIE_SAMESITE
    age = float(settings.SESSION_COOKIE_AGE)
    return {
        "secret_key": keys,
        "cookie_name": settings.SESSION_COOKIE_NAME,
        "cookie_path": settings.SESSION_COOKIE_PATH,
        "cookie_domain": settings.SESSION_COOKIE_DOMAIN or None,
        "cookie_secure": bool(settings.SESSION_COOKIE_SECURE),
        "cookie_httponly": bool(settings.SESSION_COOKIE_HTTPONLY),
        "cookie_samesite": samesite.lower() if samesite else None,
        **timeouts_for_age(age),  # Django's age counts from the last save: the idle timeout
        "browser_session": bool(settings.SESSION_EXPIRE_AT_BROWSER_CLOSE),
        "touch_interval": 0.0 if settings.SESSION_SAVE_EVERY_REQUEST else 60.0,
    }


def build_config(overrides: Mapping[str, Any] | None = None) -> SessionConfig:
    """Merge Django's settings with ``SESSIONKIT`` (which wins) and validate the result.
    Raises ``ConfigError`` naming the setting at fault."""
    user: Mapping[str, Any] = getattr(settings, "SESSIONKIT", None) or {}
    if not isinstance(user, Mapping):
        from sessionkit import ConfigError

        raise ConfigError("SESSIONKIT", "must be a dict, e.g. {'STORE': 'redis://...'}")
    merged = {key.upper(): value for key, value in django_defaults().items()}
    merged["STORE"] = default_store()
    merged.update({key.upper(): value for key, value in user.items()})
    merged.update({key.upper(): value for key, value in (overrides or {}).items()})
    user_key_getter(merged.pop("USER_KEY", "pk"))  # validated here, used by auth
    return SessionConfig.from_mapping(merged)


def user_key_getter(how: Any = None) -> Callable[[Any], str]:
    """How a Django user becomes the session's framework-neutral user key
    (``session.user_id``, the per-user index). ``SESSIONKIT["USER_KEY"]``: ``"pk"`` (the
    default), ``"username"`` (``get_username()``: what a Flask or FastAPI app sharing the
    session is most likely to know), or a callable / dotted path taking the user."""
    if how is None:
        configured: Mapping[str, Any] = getattr(settings, "SESSIONKIT", None) or {}
        how = next((v for k, v in configured.items() if k.upper() == "USER_KEY"), "pk")
    if how == "pk":
        return lambda user: str(user.pk)
    if how == "username":
        return lambda user: str(user.get_username())
    if isinstance(how, str):
        from django.utils.module_loading import import_string

        try:
            how = import_string(how)
        except ImportError as exc:
            from sessionkit import ConfigError

            raise ConfigError(
                "SESSIONKIT['USER_KEY']", f"{how!r} is not 'pk', 'username' or an importable "
                f"callable ({exc})"
            ) from exc  # fmt: skip
    if not callable(how):
        from sessionkit import ConfigError

        raise ConfigError("SESSIONKIT['USER_KEY']", "use 'pk', 'username' or a callable")
    getter = how
    return lambda user: str(getter(user))


def engines() -> Engines:
    """The process's engines, built on first use (and by the app's ``ready()``)."""
    current = _engines
    if current is not None:
        return current
    with _mutex:
        if _engines is None:
            _require_app()
            _install(_build(build_config(), store=_kept_store()))
        assert _engines is not None
        return _engines


_NO_APP = (
    "sessionkit_django is not in INSTALLED_APPS, so sessionkit's system checks (which catch a "
    "missing SESSION_ENGINE, weak keys and bad settings), its admin page and `manage.py "
    "sessionkit` are missing. Add 'sessionkit_django' to INSTALLED_APPS."
)


def _require_app() -> None:
    """Without ``sessionkit_django`` in ``INSTALLED_APPS`` the system checks, the admin page
    and ``manage.py sessionkit`` silently go missing: log it when sessions start. Not an
    error, nor a Python warning (test runners turn those into errors): a runner that sets
    its own ``INSTALLED_APPS``, as Django's ``runtests.py`` does, must still run."""
    from django.apps import apps

    if apps.ready and not apps.is_installed("sessionkit_django"):
        import logging

        logging.getLogger("sessionkit_django").warning(_NO_APP)


def _check_app(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """``sessionkit.W005``, registered when this module is imported, so that it runs even
    though the app (which registers the other checks) is missing."""
    from django.apps import apps
    from django.core.checks import Warning

    if apps.is_installed("sessionkit_django"):
        return []
    return [Warning(_NO_APP, id="sessionkit.W005")]


def _kept_store() -> Any:
    """The store of the engines a settings change retired, when ``STORE`` names the same
    one: changing a cookie setting (``override_settings`` in a test, say) must not drop a
    ``memory://`` store's sessions nor open new connections."""
    if _retired is None:
        return None
    previous = _retired.request.config.store
    configured = build_config().store
    return _retired.request.store if previous == configured else None


def get_engine() -> SessionEngine:
    """The engine requests use: its ``store`` and ``events`` are the ones to reach for."""
    return engines().request


def _build(
    config: SessionConfig, engine: SessionEngine | None = None, store: Any = None
) -> Engines:
    request = engine if engine is not None else SessionEngine(config, store=store, events=EVENTS)
    standalone_config = request.config.replace(
        fingerprint_user_agent=False, fingerprint_ip=False, store=request.store
    )
    standalone = SessionEngine(
        standalone_config, store=request.store, clock=request.clock, events=request.events
    )
    return Engines(request, standalone)


def _install(new: Engines | None) -> None:
    global _engines
    _engines = new


@contextmanager
def use_engine(engine: SessionEngine) -> Iterator[SessionEngine]:
    """Serve sessions from ``engine`` inside the block (tests: a fake clock, a given
    store object). The previous engines come back afterwards."""
    with _mutex:
        previous = _engines
        _install(_build(engine.config, engine))
    # an engine's own bus: its events still reach the signal (once anyone listens)
    stop = relay(engine.events) if engine.events is not EVENTS else None
    try:
        yield engine
    finally:
        if stop is not None:
            stop()
        with _mutex:
            _install(previous)


def reset() -> None:
    """Forget the engines; the next use rebuilds them from the current settings."""
    global _retired
    with _mutex:
        if _engines is not None:
            _retired = _engines
        _install(None)


register_check(_check_app)


@receiver(setting_changed)
def _settings_changed(setting: str, **_: Any) -> None:
    if setting in WATCHED:
        reset()
