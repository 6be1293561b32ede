from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from tests.django.project import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("count/", views.count),
    path("acount/", views.acount),
    path("read/", views.read),
    path("nothing/", views.nothing),
    path("boom/", views.boom),
    path("put/", views.put),
    path("login/", views.login),
    path("alogin/", views.alogin),
    path("logout/", views.logout),
    path("whoami/", views.whoami),
    path("awhoami/", views.awhoami),
    path("password/", views.change_password),
    path("others/", views.others),
    path("messages/add/", views.add_message),
    path("messages/", views.show_messages),
    path("form/", views.form),
    path("csrf/", views.csrf_target),
    path("slow/", views.slow),
    path("sessions/", include("sessionkit_django.urls")),
]
