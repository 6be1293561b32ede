"""Settings for running more of Django's own suites (``auth_tests``, ``messages_tests``,
``sessions_tests``, ``test_client``...) on sessionkit with Django's own runner, by hand:

    cd .venv/upstream/django-5.2.19/tests
    PYTHONPATH=$ROOT:$ROOT/adapters:$ROOT/tests/upstream/django_sessions \\
      SESSIONKIT_SUITE_STORE=redis://127.0.0.1:6379/0 [SESSIONKIT_SUITE_MIDDLEWARE=1] \\
      python runtests.py --settings=runtests_settings --parallel 1 auth_tests messages_tests

``runtests.py`` sets ``INSTALLED_APPS`` and ``MIDDLEWARE`` itself, so this module only adds
``SESSION_ENGINE`` and, with ``SESSIONKIT_SUITE_MIDDLEWARE`` set, puts sessionkit's
middleware wherever Django's is named (the only way to swap it under ``runtests.py``).
Last run (5.2.19, every store, both middlewares): all of auth_tests and messages_tests
pass; sessions_tests fails only ``test_empty_session_saved`` (Django's db model). With
``cookie://`` the tests that edit ``Client.session`` fail as they do on Django's own
``signed_cookies``.
"""

from __future__ import annotations

import os

from test_sqlite import *  # noqa: F403 - Django's own test settings (on runtests.py's path)

SESSION_ENGINE = "sessionkit_django.engine"
SESSIONKIT = {
    "STORE": os.environ.get("SESSIONKIT_SUITE_STORE", "memory://"),
    "SECRET_KEY": "upstream-runtests-4d3c2b1a0f9e8d7c6b5a493827160f5e4d3c2b1a",
}

if os.environ.get("SESSIONKIT_SUITE_MIDDLEWARE"):
    import django.contrib.sessions.middleware as _django_middleware
    from sessionkit_django.middleware import SessionMiddleware as _Ours

    _django_middleware.SessionMiddleware = _Ours  # type: ignore[misc]
