"""The sessions API's URLs: ``path("sessions/", include("sessionkit_django.urls"))``.

Staff are Django's ``is_staff`` users; for another rule,
``path("sessions/", include(sessions_urls(staff=my_check)))`` with ``my_check(request)``.
"""

from __future__ import annotations

from typing import Any

from django.urls import path

from sessionkit_django.sessions_api import StaffCheck, is_staff, sessions_view

app_name = "sessionkit"


def sessions_urls(*, staff: StaffCheck = is_staff) -> list[Any]:
    view = sessions_view(staff)
    return [
        path("", view, name="sessions"),
        path("<path:path>", view, name="sessions-path"),
    ]


urlpatterns = sessions_urls()
