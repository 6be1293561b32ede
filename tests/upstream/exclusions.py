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
    framework: str  # "starlette", "flask" or "django"
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

EXCLUSIONS: list[Exclusion] = [
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
