from __future__ import annotations

from django.urls import path, re_path
from django.views.static import serve

from example_projects.django_shop import views
from example_projects.shared.config import STATIC

urlpatterns = [
    path("", views.home, name="home"),
    path("cart/add/<slug:sku>/", views.add_to_cart, name="add"),
    path("cart/clear/", views.clear_cart, name="clear"),
    path("login/", views.login_view, name="login"),
    path("logout/", views.logout_view, name="logout"),
    re_path(r"^static/(?P<path>.+)$", serve, {"document_root": STATIC}),
]
