"""sessionkit for Django: ``SESSION_ENGINE = "sessionkit_django.engine"``, the
``sessionkit_django.middleware.SessionMiddleware``, auth integration, checks and the
``manage.py sessionkit`` command. Add ``"sessionkit_django"`` to ``INSTALLED_APPS``."""

from __future__ import annotations

from sessionkit_django.conf import get_engine, use_engine

__all__ = ["get_engine", "use_engine"]
