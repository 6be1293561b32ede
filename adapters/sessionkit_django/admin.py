"""An admin page per user: their live sessions by opaque handle (never an ID), with a revoke
button for one or all. Reached at ``admin/<app>/<user model>/<id>/sessions/``, linked as
"Sessions" from the user's change page.

If the user model is registered with Django's stock ``UserAdmin``, the page is added to it
automatically; a project with its own user admin adds ``UserSessionsAdminMixin`` to it.

On your own account the page marks the session you are using ("this session"), and
"Revoke all" first asks for confirmation on a page of its own (it logs you out as well),
offering to revoke only the other sessions instead.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import quote
from django.contrib.auth import get_user_model, logout
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.loader import select_template
from django.template.response import TemplateResponse
from django.urls import path, reverse

from sessionkit import ClientInfo
from sessionkit_django.auth import revoke_all, revoke_session, user_sessions
from sessionkit_django.conf import engines, user_key_getter
from sessionkit_django.engine import SessionStoreBase

#: The newest audit entries the sessions page shows.
AUDIT_ROWS = 100


class UserSessionsAdminMixin:
    """Adds the per-user sessions page to a ``ModelAdmin`` of the user model, and a
    "Sessions" link to the user's change page (``sessionkit_sessions_url`` in its context;
    an admin with a ``change_form_template`` of its own shows that link itself)."""

    admin_site: Any
    model: Any
    opts: Any  # ModelAdmin's: the model's options (app label, model name)
    change_form_template: Any

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        """The user list's actions, with "Export sessions" (the export JSON of each
        selected user: sessions, data and audit entries) for those who may change users."""
        actions: dict[str, Any] = super().get_actions(request)  # type: ignore[misc]
        if self.has_change_permission(request):  # type: ignore[attr-defined]
            actions["export_sessions"] = (
                UserSessionsAdminMixin.export_sessions, "export_sessions",
                "Export sessions and audit trail (JSON)",
            )  # fmt: skip
        return actions

    def export_sessions(self, request: HttpRequest, queryset: Any) -> HttpResponse:
        """Download one JSON array: ``engine.export_user`` of each selected user."""
        key = user_key_getter()
        engine = engines().request
        documents = [engine.export_user(key(user)) for user in queryset]
        response = HttpResponse(
            json.dumps(documents, ensure_ascii=False, indent=2),
            content_type="application/json",
        )
        response["Content-Disposition"] = 'attachment; filename="sessionkit-export.json"'
        response["Cache-Control"] = "no-store"
        return response

    def get_urls(self) -> list[Any]:
        urls: list[Any] = super().get_urls()  # type: ignore[misc]
        view = self.admin_site.admin_view(self.sessions_view)
        return [path("<path:object_id>/sessions/", view, name=self._sessions_name()), *urls]

    def _sessions_name(self) -> str:
        opts = self.opts
        return f"{opts.app_label}_{opts.model_name}_sessions"

    def render_change_form(
        self, request: HttpRequest, context: dict[str, Any], add: bool = False,
        change: bool = False, form_url: str = "", obj: Any = None,
    ) -> HttpResponse:  # fmt: skip
        response: HttpResponse = super().render_change_form(  # type: ignore[misc]
            request, context, add=add, change=change, form_url=form_url, obj=obj
        )
        if obj is None or not isinstance(response, TemplateResponse):
            return response
        url = reverse(f"{self.admin_site.name}:{self._sessions_name()}", args=[quote(obj.pk)])
        assert response.context_data is not None
        response.context_data["sessionkit_sessions_url"] = url
        if self.change_form_template is None:
            # the template Django would have used, with the link added to its object tools
            response.context_data["sessionkit_parent"] = select_template(
                response.template_name
            ).template
            response.template_name = "sessionkit_django/user_change_form.html"
        return response

    def sessions_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        user = self.get_object(request, object_id)  # type: ignore[attr-defined]
        if user is None or not self.has_change_permission(request, user):  # type: ignore[attr-defined]
            raise PermissionDenied
        store = engines().request.store
        own = _own_account(request, user)
        current = _current_handle(request) if own else None
        if request.method == "POST":
            action = request.POST.get("action", "revoke-all")
            if request.POST.get("handle"):
                if own and request.POST["handle"] == current:
                    logout(request)  # this very session: a plain logout, as it says
                    return HttpResponseRedirect(request.path)
                done = revoke_session(
                    user, request.POST["handle"], actor=_staff(request), request=request
                )
                messages.info(request, "Session revoked." if done else "No such session.")
            elif action == "revoke-others" and own:
                keep = _current_digest(request)
                count = engines().request.revoke_user(
                    user_key_getter()(user), keep=keep, actor="user", client=_client(request)
                )
                messages.info(request, f"{count} other session(s) revoked.")
            elif own and request.POST.get("confirm") != "yes":
                # it logs you out too: say so and ask, on a page of its own (no script)
                context = {
                    **self.admin_site.each_context(request),
                    "title": "Revoke all your sessions?",
                    "opts": self.opts,
                    "original": user,
                    "count": len(user_sessions(user)) if store.supports_user_index else 0,
                }
                return TemplateResponse(
                    request, "sessionkit_django/user_sessions_confirm.html", context
                )
            else:
                # by the configured USER_KEY, as listed
                count = revoke_all(user, actor=_staff(request), request=request)
                if own:  # this session went too: end it as a logout, not a conflict
                    logout(request)
                    return HttpResponseRedirect(request.path)
                messages.info(request, f"{count} session(s) revoked.")
            return HttpResponseRedirect(request.path)
        rows = [
            {"handle": info.handle, "device": info.device or "unknown device",
             "created": _when(info.created), "last_seen": _when(info.last_seen),
             "current": info.handle == current}
            for info in (user_sessions(user) if store.supports_user_index else [])
        ]  # fmt: skip
        entries = engines().request.audit_entries(user_key_getter()(user), limit=AUDIT_ROWS)
        trail = [{**entry.as_dict(), "time": _when(entry.at)} for entry in reversed(entries)]
        context = {
            **self.admin_site.each_context(request),
            "title": f"Sessions of {user}",
            "opts": self.opts,
            "original": user,
            "sessions": rows,
            "indexed": store.supports_user_index,
            "own": own,
            "audit": trail,
            "audit_rows": AUDIT_ROWS,
        }
        return TemplateResponse(request, "sessionkit_django/user_sessions.html", context)


def _staff(request: HttpRequest) -> str:
    """The actor the audit trail names for a revoke from this page."""
    me = getattr(request, "user", None)
    if me is None or not me.is_authenticated:
        return "staff"
    return f"staff:{user_key_getter()(me)}"


def _client(request: HttpRequest) -> ClientInfo | None:
    session = getattr(request, "session", None)
    return session.client if isinstance(session, SessionStoreBase) else None


def _own_account(request: HttpRequest, user: Any) -> bool:
    me = getattr(request, "user", None)
    return bool(me is not None and me.is_authenticated and me.pk == user.pk)


def _current_handle(request: HttpRequest) -> str | None:
    session = getattr(request, "session", None)
    return session.handle if isinstance(session, SessionStoreBase) else None


def _current_digest(request: HttpRequest) -> str | None:
    session = getattr(request, "session", None)
    return session.digest if isinstance(session, SessionStoreBase) else None


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
