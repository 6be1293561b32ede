"""System checks and ``manage.py sessionkit`` (the shared CLI on the project's store)."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core import checks
from django.core.management import CommandError, call_command
from django.test import Client, override_settings

from sessionkit import RecordMeta, Write
from sessionkit.stores.file import FileStore
from tests.django.test_middleware import DJANGO_MIDDLEWARE


def ids(deploy: bool = True) -> set[str]:
    return {message.id for message in checks.run_checks(include_deployment_checks=deploy)}


def test_deploy_warnings_for_the_test_settings() -> None:
    found = ids()
    assert {"security.W010", "sessionkit.W003"} <= found
    assert "sessionkit.W001" not in found  # Django's security.W010 says it already
    assert "sessionkit.W004" not in found  # STORE is set
    assert "admin.E410" not in found  # our middleware counts as a session middleware
    assert not {"sessionkit.W001", "sessionkit.W003"} & ids(deploy=False)


def test_an_insecure_cookie_is_reported_once() -> None:
    apps = [a for a in settings.INSTALLED_APPS if a != "django.contrib.sessions"]
    with override_settings(INSTALLED_APPS=apps):  # Django's own check is silent then
        assert "sessionkit.W001" in ids()
    with override_settings(  # sessionkit's setting wins over Django's: ours says it
        SESSION_COOKIE_SECURE=True, SESSIONKIT={"STORE": "memory://", "COOKIE_SECURE": False}
    ):
        found = ids()
        assert "sessionkit.W001" in found and "security.W010" not in found


@override_settings(SESSION_COOKIE_SECURE=True, SESSIONKIT={"STORE": "redis://localhost/0"})
def test_a_safe_production_config_is_quiet() -> None:
    assert not {i for i in ids() if i.startswith("sessionkit.")}


@override_settings(SESSIONKIT={})
def test_no_store_warns_and_names_the_default() -> None:
    messages = [m for m in checks.run_checks(include_deployment_checks=True)
                if m.id == "sessionkit.W004"]  # fmt: skip
    assert messages and "file://" in messages[0].msg


@override_settings(SECRET_KEY="short")
def test_short_key_is_an_error() -> None:
    errors = [m for m in checks.run_checks() if m.id == "sessionkit.E001"]
    assert errors and "secret_key" in errors[0].msg


@pytest.mark.parametrize(
    ("store", "said"),
    [
        (
            "rdis://localhost:6379/0",
            "sessionkit setting 'store': no store for 'rdis://localhost:6379/0'; available: ",
        ),
        ("sqlite:////nonexistent-dir/s.db", "the directory '/nonexistent-dir' does not exist"),
    ],
)
def test_a_store_that_cannot_be_opened_is_an_error(store: str, said: str) -> None:
    """Issue 14: only opening the store finds these; ``check`` did not, only the server's
    start-up did."""
    with override_settings(SESSIONKIT={"STORE": store}):
        errors = [m for m in checks.run_checks() if m.id.startswith("sessionkit.")]
    assert [m.id for m in errors] == ["sessionkit.E001"]
    assert said in errors[0].msg


@override_settings(SECRET_KEY="abababababababababababababababababababababababababab")
def test_non_random_key_is_an_error() -> None:
    assert "sessionkit.E001" in ids(deploy=False)


@override_settings(SECRET_KEY="Zq8vN3kLp0xR7tY2wB5mC9dF1gH4jK6s")  # 32 bytes: allowed, short
def test_a_short_django_key_is_djangos_warning() -> None:
    found = ids()
    assert "security.W009" in found and "sessionkit.W002" not in found


def test_a_short_key_of_our_own_warns_on_deploy() -> None:
    own = {"STORE": "memory://", "SECRET_KEY": "Zq8vN3kLp0xR7tY2wB5mC9dF1gH4jK6s"}
    with override_settings(SESSIONKIT=own):
        assert "sessionkit.W002" in ids()
        assert "sessionkit.W002" not in ids(deploy=False)


@pytest.mark.parametrize(
    "settings",
    [
        {"SESSION_COOKIE_NAME": "__Host-sid"},
        {"SESSION_COOKIE_NAME": "__Host-sid", "SESSION_COOKIE_SECURE": True,
         "SESSION_COOKIE_DOMAIN": "example.com"},
        {"SESSION_COOKIE_NAME": "__Host-sid", "SESSION_COOKIE_SECURE": True,
         "SESSION_COOKIE_PATH": "/app"},
    ],
)  # fmt: skip
def test_host_prefix_misuse(settings: dict[str, object]) -> None:
    with override_settings(**settings):
        assert "sessionkit.E002" in ids(deploy=False)


def test_host_prefix_done_right() -> None:
    with override_settings(SESSION_COOKIE_NAME="__Host-sid", SESSION_COOKIE_SECURE=True):
        assert not {i for i in ids(deploy=False) if i.startswith("sessionkit.E")}


def test_both_middlewares_is_an_error() -> None:
    with override_settings(MIDDLEWARE=["sessionkit_django.middleware.SessionMiddleware",
                                       *DJANGO_MIDDLEWARE]):  # fmt: skip
        assert "sessionkit.E003" in ids(deploy=False)


# -- manage.py sessionkit ----------------------------------------------------------------
@pytest.fixture
def file_store(tmp_path: Path) -> str:
    url = f"file://{tmp_path / 'sessions'}?fsync=false"
    with override_settings(SESSIONKIT={"STORE": url}):
        yield url


@pytest.mark.django_db(transaction=True)
def test_command(file_store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from django.contrib.auth.models import User

    user = User.objects.create_user("bob", password="pw-bob-1")
    for _ in range(2):
        assert Client().login(username="bob", password="pw-bob-1")
    Client().get("/count/")
    past = FileStore(tmp_path / "sessions", clock=lambda: time.time() - 10_000, fsync=False)
    meta = RecordMeta(int(time.time()) - 10_000, int(time.time()) - 10_000)
    assert past.save(Write("ab" * 32, {}, frozenset(), meta, 60.0, create=True))

    call_command("sessionkit", "stats")
    assert "4 sessions, 1 signed-in user" in capsys.readouterr().out
    call_command("sessionkit", "list", "--user", str(user.pk))
    listed = capsys.readouterr().out.strip().splitlines()
    assert len(listed) == 2
    handle = listed[0].split()[0]
    call_command("sessionkit", "revoke", "--user", str(user.pk), "--handle", handle)
    assert "revoked session" in capsys.readouterr().out
    call_command("sessionkit", "gc", "--quiet")
    assert "removed 1 expired session" in capsys.readouterr().out
    call_command("sessionkit", "revoke", "--user", str(user.pk))
    assert "revoked 1 session of" in capsys.readouterr().out
    with pytest.raises(CommandError):
        call_command("sessionkit", "revoke", "--user", str(user.pk), "--handle", "0" * 16)
    with pytest.raises(CommandError):
        call_command("sessionkit", "list")  # --user is required


# -- settings ----------------------------------------------------------------------------
def test_bad_settings_stop_the_server_at_start() -> None:
    from sessionkit_django.middleware import SessionMiddleware

    from sessionkit import ConfigError

    with override_settings(SESSIONKIT={"STORE": "memory://", "IDLE_TIMOUT": 5}):
        with pytest.raises(ConfigError, match="IDLE_TIMEOUT"):
            SessionMiddleware(lambda request: None)
    with override_settings(SESSIONKIT={"STORE": "nope"}):
        with pytest.raises(ConfigError, match="store"):
            SessionMiddleware(lambda request: None)


def test_django_settings_fill_in_and_sessionkit_wins() -> None:
    from sessionkit_django.conf import build_config

    with override_settings(
        SESSION_COOKIE_NAME="sid", SESSION_COOKIE_AGE=600, SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_DOMAIN="example.com",
        SESSIONKIT={"STORE": "memory://", "COOKIE_NAME": "__Secure-sid", "COOKIE_SECURE": True},
    ):  # fmt: skip
        config = build_config()
    assert config.cookie_name == "__Secure-sid" and config.cookie_secure
    assert config.idle_timeout == 600 and config.cookie_samesite == "strict"
    assert config.cookie_domain == "example.com"
    assert config.absolute_timeout == 30 * 24 * 3600


def test_default_store_is_files_that_survive_a_reboot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 14: the default lives in the user's state directory, not under /tmp (which a
    reboot may clear): a session written, the engines rebuilt (a restart), still there."""
    import tempfile

    from sessionkit_django import conf
    from sessionkit_django.conf import default_store

    state = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    with override_settings(SESSIONKIT={}):
        url = default_store()
        assert url.startswith(f"file://{state}/sessionkit/django-")
        assert not url.startswith(f"file://{tempfile.gettempdir()}/sessionkit-")
        assert not state.exists()  # nothing made until the first write
        client = Client()
        assert client.get("/count/").json() == {"count": 1}
        assert stat.S_IMODE(Path(url[len("file://") :]).stat().st_mode) == 0o700
        conf.reset()  # a restart: new engines, new store objects
        assert client.get("/count/").json() == {"count": 2}
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with override_settings(SESSIONKIT={}):
        assert default_store().startswith(f"file://{tmp_path}/home/.local/state/sessionkit/")


def test_default_store_falls_back_to_the_temp_directory_without_a_writable_state_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    from sessionkit_django.conf import default_store

    blocker = tmp_path / "a-file"
    blocker.touch()
    monkeypatch.setenv("XDG_STATE_HOME", str(blocker / "state"))  # cannot be created
    with override_settings(SESSIONKIT={}):
        assert default_store().startswith(f"file://{tempfile.gettempdir()}/sessionkit-")


def test_default_store_uses_session_file_path(tmp_path: Path) -> None:
    from sessionkit_django.conf import get_engine

    with override_settings(SESSIONKIT={}, SESSION_FILE_PATH=str(tmp_path)):
        assert type(get_engine().store).__name__ == "FileStore"
        client = Client()
        assert client.get("/count/").json() == {"count": 1}
        assert client.get("/count/").json() == {"count": 2}
        assert any(tmp_path.rglob("*"))


def test_our_middleware_without_our_engine_is_an_error() -> None:
    """With only the middleware swapped, Client.login() wrote a db session the middleware
    then rejected with a log line about keys; the check says what is missing."""
    ours = ["sessionkit_django.middleware.SessionMiddleware"]
    with override_settings(MIDDLEWARE=ours, SESSION_ENGINE="django.contrib.sessions.backends.db"):
        errors = [m for m in checks.run_checks() if m.id == "sessionkit.E004"]
    assert errors and "sessionkit_django.engine" in errors[0].hint
    with override_settings(MIDDLEWARE=ours):  # the test settings name our engine
        assert "sessionkit.E004" not in ids(deploy=False)


def test_without_the_app_a_check_and_a_warning_say_so(caplog: pytest.LogCaptureFixture) -> None:
    from sessionkit_django import conf
    from sessionkit_django.middleware import SessionMiddleware

    apps = ["django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions"]
    assert "sessionkit.W005" not in ids(deploy=False)
    with override_settings(INSTALLED_APPS=apps):
        assert "sessionkit.W005" in ids(deploy=False)
        conf.reset()
        SessionMiddleware(lambda request: None)
    assert any("INSTALLED_APPS" in r.getMessage() for r in caplog.records)
    conf.reset()
