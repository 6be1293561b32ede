"""The one list of upstream tests that are not run against sessionkit, each with its reason.

An exclusion is allowed only for a test about the framework's own internals (its db model,
its serializer class) or where exact parity would weaken a security default; the latter are
also listed under "Differences from ..." in that framework's docs page. ``stores`` limits an
exclusion to some stores ("*" means all).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Exclusion:
    framework: str  # "starlette", "flask", "flask-login", "flask-wtf", "django" or "allauth"
    test: str  # the test's id as the runner names it (pytest node id, or Django's dotted id)
    reason: str
    stores: tuple[str, ...] = ("*",)

    def applies(self, framework: str, store: str) -> bool:
        return self.framework == framework and ("*" in self.stores or store in self.stores)


_DJ = "sessions_suite.py::"  # Django: tests/upstream/django_sessions/sessions_suite.py
_DJ_EMPTIED = (
    "asserts on Django's db model (Session.objects.get), which sessionkit does not use; "
    "under sessionkit's middleware an emptied session is also deleted and its cookie cleared, "
    "by design: nothing is stored for a session that holds no data (docs/django.md, "
    "Differences from Django's sessions)"
)
_DJ_COOKIE_SAVE = (
    "checks exists() after save(): a cookie:// key has no record to look up, so exists() is "
    "False as with Django's signed_cookies backend, whose own tests replace this one with pass"
)
_DJ_COOKIE_LOGOUT = (
    "a logout in another context cannot reach a cookie:// session, which lives only in the "
    "client (Django skips it for signed_cookies too; docs/django.md says what cookie:// can "
    "revoke)"
)

_CUSTOM_INTERFACE = (
    "the app class brings its own SessionInterface (a subclass of Flask's cookie interface, or "
    "one that fails on purpose): it tests Flask's interface hooks, and an app with its own "
    "interface does not install sessionkit"
)

_WEAK_KEY = (
    "sets SECRET_KEY='secret' (6 bytes) with override_settings: sessionkit refuses a key "
    "shorter than 32 random bytes, on purpose (security wins over parity; docs/django.md, "
    "Differences from Django's sessions)"
)

_LOGIN = "tests/test_login.py::"  # Flask-Login's suite: tests/upstream/test_flask_login_suite.py
_REMEMBER = (
    "asserts Flask-Login's separate remember-me cookie (set, then used to log the user back in "
    "once the session is deleted): with sessionkit, login_user(remember=True) makes the session "
    "itself persistent instead, so a revoke or 'log out everywhere' cannot be undone by a "
    "remember cookie left on a stolen device (docs/flask.md, Differences)"
)
_BOUND = (
    "changes the User-Agent mid-session and expects Flask-Login's SESSION_PROTECTION to keep "
    "(basic) or trim (strong) the session: sessionkit binds the session to the browser by "
    "default and a mismatch ends it (FINGERPRINT_ACTION='invalidate'; docs/flask.md, "
    "Differences; docs/security.md, Binding)"
)

_AA_TOKENS = "tests/apps/headless/tokens/test_jwttokenstrategy.py::"  # allauth's suite
_AA_ACTIVITY = "tests/apps/headless/usersessions/test_activity.py::"
_AA_QUERIES = (
    "counts the SQL queries of a request, one of them the db backend's SELECT of the "
    "django_session row (JWT stateful validation reads the session): sessionkit keeps "
    "sessions in its own store, never in Django's database connection, so one query fewer "
    "runs and the exact count differs; the request itself succeeds"
)

EXCLUSIONS: list[Exclusion] = [
    *(
        Exclusion("allauth", test, _AA_QUERIES)
        for test in (
            f"{_AA_TOKENS}test_access_token_query_counts[app-url1-True-2]",
            f"{_AA_TOKENS}test_access_token_query_counts[app-url3-True-2]",
            f"{_AA_ACTIVITY}test_authentication_query_counts"
            "[False-True-2-headless_rest_framework_jwt_resource]",
            f"{_AA_ACTIVITY}test_authentication_query_counts[False-True-2-headless_ninja:jwt_resource]",
            f"{_AA_ACTIVITY}test_authentication_query_counts"
            "[True-True-7-headless_rest_framework_jwt_resource]",
            f"{_AA_ACTIVITY}test_authentication_query_counts[True-True-7-headless_ninja:jwt_resource]",
        )
    ),
    *(
        Exclusion("flask-login", f"{_LOGIN}{test}", _REMEMBER)
        for test in (
            "LoginTestCase::test_confirm_login",
            "LoginTestCase::test_fresh_login_required_decorator",
            "LoginTestCase::test_remember_me",
            "LoginTestCase::test_remember_me_accepts_duration_as_int",
            "LoginTestCase::test_remember_me_custom_duration",
            "LoginTestCase::test_remember_me_custom_duration_uses_custom_cookie",
            "LoginTestCase::test_remember_me_is_unfresh",
            "LoginTestCase::test_remember_me_no_refresh_every_request",
            "LoginTestCase::test_remember_me_uses_custom_cookie_parameters",
            "LoginTestCase::test_user_loaded_from_cookie_fired",
            "UnicodeCookieUserIDTestCase::test_remember_me_user_id",
            "UnicodeCookieUserIDTestCase::test_remember_me_username",
        )
    ),
    *(
        Exclusion("flask-login", f"{_LOGIN}LoginTestCase::{test}", _BOUND)
        for test in (
            "test_permanent_strong_session_protection_fires_signal",
            "test_permanent_strong_session_protection_marks_session_unfresh",
            "test_session_protection_basic_fires_signal",
            "test_session_protection_basic_marks_session_unfresh",
            "test_session_protection_strong_deletes_session",
            "test_session_protection_strong_fires_signal_user_agent",
        )
    ),
    *(
        Exclusion("django", f"auth_tests.test_basic.TestGetUser.{test}", _WEAK_KEY, ("ecosystem",))
        for test in ("test_get_user_fallback_secret", "test_aget_user_fallback_secret")
    ),
    Exclusion("flask", "tests/test_reqctx.py::test_session_dynamic_cookie_name", _CUSTOM_INTERFACE),
    Exclusion("flask", "tests/test_reqctx.py::test_session_error_pops_context", _CUSTOM_INTERFACE),
    *(
        Exclusion("django", f"{_DJ}{cls}::test_empty_session_saved", _DJ_EMPTIED)
        for cls in ("DjangoMiddlewareOnSessionkitTests", "SessionkitMiddlewareTests")
    ),
    *(
        Exclusion("django", f"{_DJ}{cls}::{test}", why, stores=("cookie",))
        for cls in ("SessionkitSessionTests", "SessionkitSessionWithTimeZoneTests")
        for test, why in (
            ("test_save", _DJ_COOKIE_SAVE),
            ("test_save_async", _DJ_COOKIE_SAVE),
            (
                "test_session_save_does_not_resurrect_session_logged_out_in_other_context",
                _DJ_COOKIE_LOGOUT,
            ),
            (
                "test_session_asave_does_not_resurrect_session_logged_out_in_other_context",
                _DJ_COOKIE_LOGOUT,
            ),
        )
    ),
]


def excluded(framework: str, store: str) -> list[Exclusion]:
    return [e for e in EXCLUSIONS if e.applies(framework, store)]
