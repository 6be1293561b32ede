"""An admin page per user: their live sessions by opaque handle (never an ID), with a revoke
button for one or all. Reached at ``admin/<app>/<user model>/<id>/sessions/``.

If the user model is registered with Django's stock ``UserAdmin``, the page is added to it
automatically; a project with its own user admin adds ``UserSessionsAdminMixin`` to it.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path

from sessionkit_django.auth import revoke_all, revoke_session, user_sessions
from sessionkit_django.conf import engines


class UserSessionsAdminMixin:
    """Adds the per-user sessions page to a ``ModelAdmin`` of the user model."""

    admin_site: Any
    model: Any

    def get_urls(self) -> list[Any]:
        urls: list[Any] = super().get_urls()  # type: ignore[misc]
        opts = self.model._meta
        view = self.admin_site.admin_view(self.sessions_view)
        name = f"{opts.app_label}_{opts.model_name}_sessions"
        return [path("<path:object_id>/sessions/", view, name=name), *urls]

    def sessions_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        user = self.get_object(request, object_id)  # type: ignore[attr-defined]
        if user is None or not self.has_change_permission(request, user):  # type: ignore[attr-defined]
            raise PermissionDenied
        store = engines().request.store
        if request.method == "POST":
            if request.POST.get("handle"):
                done = revoke_session(user, request.POST["handle"])
                messages.info(request, "Session revoked." if done else "No such session.")
            else:
                count = revoke_all(user)  # by the configured USER_KEY, as listed
                messages.info(request, f"{count} session(s) revoked.")
            return HttpResponseRedirect(request.path)
        rows = [
            {"handle": info.handle, "device": info.device or "unknown device",
             "created": _when(info.created), "last_seen": _when(info.last_seen)}
            for info in (user_sessions(user) if store.supports_user_index else [])
        ]  # fmt: skip
        context = {
            **self.admin_site.each_context(request),
            "title": f"Sessions of {user}",
            "opts": self.model._meta,
            "original": user,
            "sessions": rows,
            "indexed": store.supports_user_index,
        }
        return TemplateResponse(request, "sessionkit_django/user_sessions.html", context)


def _when(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, timezone.utc)


def _extend_stock_user_admin() -> None:
    try:
        from django.contrib.auth.admin import UserAdmin
    except ImportError:  # pragma: no cover - auth not installed
        return
    model = get_user_model()
    current = admin.site._registry.get(model)
    if type(current) is UserAdmin:
        admin.site.unregister(model)
        admin.site.register(model, type("UserAdmin", (UserSessionsAdminMixin, UserAdmin), {}))


_extend_stock_user_admin()
