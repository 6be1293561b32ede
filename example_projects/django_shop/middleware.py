"""Outermost middleware: collect sessionkit's events of each request (see ``activity``)."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase

from example_projects.shared import activity


def activity_scope(
    get_response: Callable[[HttpRequest], HttpResponseBase],
) -> Callable[[HttpRequest], HttpResponseBase]:
    def middleware(request: HttpRequest) -> HttpResponseBase:
        with activity.request_scope():
            return get_response(request)

    return middleware
