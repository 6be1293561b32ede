"""Settings for django-allauth's own suite (``test_allauth_suite.py``): allauth's own test
project (``tests.projects.regular``, in the fetched sdist), with sessionkit's engine swapped
in as a user's project does it. With ``SESSIONKIT_UPSTREAM_STORE`` unset, Django's stock db
sessions stay in place: the baseline, to tell allauth's own failures from ours by hand::

    cd .venv/upstream/django-allauth-65.22.1
    PYTHONPATH=$ROOT:$ROOT/adapters:$ROOT/tests/upstream \\
      python -m pytest --ds allauth_project.settings tests/apps/account
"""

from __future__ import annotations

import os

from tests.projects.regular.settings import *  # noqa: F403 - allauth's own test settings

_STORE = os.environ.get("SESSIONKIT_UPSTREAM_STORE")
if _STORE:
    SESSION_ENGINE = "sessionkit_django.engine"
    # allauth's SECRET_KEY is "psst": sessionkit refuses a key that short, so it gets its own
    SESSIONKIT = {
        "STORE": _STORE,
        "SECRET_KEY": "upstream-allauth-suite-7e1d9c3b5a2f4e6d8c0b1a3f5e7d9c2b4a6f8e0d",
    }
    if os.environ.get("SESSIONKIT_UPSTREAM_MIDDLEWARE"):  # as docs/django.md installs it
        MIDDLEWARE = tuple(
            "sessionkit_django.middleware.SessionMiddleware"
            if entry == "django.contrib.sessions.middleware.SessionMiddleware"
            else entry
            for entry in MIDDLEWARE  # noqa: F405
        )
        if "sessionkit_django.middleware.SessionMiddleware" not in MIDDLEWARE:
            raise RuntimeError("allauth's settings no longer name Django's SessionMiddleware")
