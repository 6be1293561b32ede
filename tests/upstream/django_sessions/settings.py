"""Django settings for running Django's own ``sessions_tests`` on sessionkit.

The store comes from ``SESSIONKIT_SUITE_STORE`` (one subprocess per store). Django's
``sessions_tests`` app and ``django.contrib.sessions`` are installed because the upstream
module defines a model and one middleware test builds a ``db`` session on purpose.
"""

from __future__ import annotations

import os

SECRET_KEY = "upstream-django-suite-5b0c8e2f7a9d4c1e3f6a8b0d2c4e6f8a1b3d5f7"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "sessionkit_django",
    "sessions_tests",
]
SESSION_ENGINE = "sessionkit_django.engine"
SESSIONKIT = {"STORE": os.environ.get("SESSIONKIT_SUITE_STORE", "memory://")}
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
USE_TZ = False
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
