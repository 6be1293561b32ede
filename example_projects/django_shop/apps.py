"""The shop app: files sessionkit's events for the "your session" panel."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig


class ShopConfig(AppConfig):  # type: ignore[misc]  # Django is untyped
    name = "example_projects.django_shop"
    label = "shop"

    def ready(self) -> None:
        from sessionkit_django.signals import session_event

        from example_projects.shared import activity

        def on_event(sender: Any, event: Any, **_: Any) -> None:
            activity.record(event)

        session_event.connect(on_event, weak=False, dispatch_uid="shop.activity")
