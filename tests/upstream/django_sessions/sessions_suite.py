"""Django's own session tests, run against sessionkit (collected by the subprocess only).

The patch, in one comment: nothing of Django's is copied; we import its ``SessionTestsMixin``
and ``SessionMiddlewareTests`` from the fetched sdist and subclass them with
``backend = sessionkit_django.engine.SessionStore`` (``SESSION_ENGINE`` points at it in
``settings``; once with ``USE_TZ`` off, once on, as Django does for its db backend), and run
the middleware tests twice: once as written (Django's own
``SessionMiddleware`` over our engine) and once with the module's ``SessionMiddleware`` name
pointing at ``sessionkit_django.middleware.SessionMiddleware``.
"""

from __future__ import annotations

from unittest import mock

from django.test import SimpleTestCase, override_settings
from sessionkit_django.engine import SessionStore
from sessionkit_django.middleware import SessionMiddleware
from sessions_tests import tests as upstream


class SessionkitSessionTests(upstream.SessionTestsMixin, SimpleTestCase):  # type: ignore[misc]
    backend = SessionStore


@override_settings(USE_TZ=True)
class SessionkitSessionWithTimeZoneTests(SessionkitSessionTests):
    """As Django runs its db backend's tests: once with naive, once with aware datetimes."""


class DjangoMiddlewareOnSessionkitTests(upstream.SessionMiddlewareTests):  # type: ignore[misc]
    """Django's ``SessionMiddleware`` with ``SESSION_ENGINE = "sessionkit_django.engine"``."""


class SessionkitMiddlewareTests(upstream.SessionMiddlewareTests):  # type: ignore[misc]
    """sessionkit's ``SessionMiddleware``."""

    def setUp(self) -> None:
        patch = mock.patch.object(upstream, "SessionMiddleware", SessionMiddleware)
        patch.start()
        self.addCleanup(patch.stop)
        super().setUp()
