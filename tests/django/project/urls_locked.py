"""The test project's URLs plus its ``@session_lock`` views. Kept apart: on a store that
cannot lock (the cookie store) sessionkit's middleware refuses to load with them, and
most tests run on every store. Tests of locking set ``ROOT_URLCONF`` to this module."""

from __future__ import annotations

from django.urls import path

from tests.django.project import views
from tests.django.project.urls import urlpatterns as base

urlpatterns = [
    *base,
    path("locked/", views.locked),
    path("alocked/", views.alocked),
]
