"""The Django app: validates settings at start-up, wires auth signals and system checks."""

from __future__ import annotations

from django.apps import AppConfig


class SessionKitConfig(AppConfig):
    name = "sessionkit_django"
    label = "sessionkit"
    verbose_name = "sessionkit sessions"

    def ready(self) -> None:
        # Settings are validated by the checks (`manage.py check`, runserver, migrate) and
        # again when a server loads the middleware, which fails start-up on a bad setting.
        from sessionkit_django import auth, checks

        checks.register()
        auth.connect()
