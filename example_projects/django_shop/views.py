"""The shop's views: plain Django, nothing sessionkit-specific. ``login()`` binds the session
to the user under the framework-neutral user key (``SESSIONKIT["USER_KEY"] = "username"`` in
settings), which the Flask and FastAPI apps read as ``session.user_id``."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme

from example_projects.shared import devices, panel
from example_projects.shared.config import links

PRODUCTS = {
    "mug": ("Enamel mug", 1200),
    "tee": ("Organic tee", 2400),
    "cap": ("Canvas cap", 1800),
    "tote": ("Tote bag", 900),
}


def page(request: HttpRequest, template: str, title: str, **context: Any) -> HttpResponse:
    """Render ``template`` in the shared layout, with the messages and the session panel."""
    shown = [(m.level_tag or "info", str(m)) for m in messages.get_messages(request)]
    session = request.session
    handle = session.handle
    stored = session.session_key is not None
    user = request.user.get_username() if request.user.is_authenticated else None
    if user and stored:
        devices.remember(handle, request.META.get("REMOTE_ADDR"))
    info = panel.build(
        "shop",
        user=user,
        handle=handle,
        stored=stored,
        expires=session.get_expiry_date() if stored else None,
        flashed=[f"{len(shown)} message(s)"] if shown else [],
    )
    return render(request, template, {"title": title, "panel": info, "messages": shown, **context})


def home(request: HttpRequest) -> HttpResponse:
    cart: dict[str, int] = request.session.get("cart", {})
    lines = [(sku, PRODUCTS[sku][0], n, n * PRODUCTS[sku][1]) for sku, n in cart.items()]
    return page(
        request, "shop/home.html", "Shop",
        products=PRODUCTS, lines=lines, total=sum(line[3] for line in lines),
    )  # fmt: skip


def add_to_cart(request: HttpRequest, sku: str) -> HttpResponse:
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if sku not in PRODUCTS:
        messages.warning(request, "That product is sold out.")
        return redirect("home")
    cart = request.session.setdefault("cart", {})
    cart[sku] = cart.get(sku, 0) + 1  # a nested change: sessionkit saves it without help
    messages.success(request, f"Added {PRODUCTS[sku][0]} to your cart.")
    return redirect("home")


def clear_cart(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    request.session.pop("cart", None)
    messages.info(request, "Your cart is empty.")
    return redirect("home")


def login_view(request: HttpRequest) -> HttpResponse:
    form = AuthenticationForm(request, data=request.POST or None)
    target = request.POST.get("next") or request.GET.get("next") or ""
    if request.method == "POST" and form.is_valid():
        user = form.get_user()
        login(request, user)  # rotates the ID, kills the old one, binds the user (by name)
        messages.success(request, f"Welcome, {user.get_username()}. Your session ID was renewed.")
        return HttpResponseRedirect(safe_next(request, target))
    return page(request, "shop/login.html", "Sign in", form=form, next=target)


def logout_view(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":  # a GET (a prefetch, an <img>) must not sign anyone out
        return HttpResponseNotAllowed(["POST"])
    logout(request)  # sessionkit deletes the session in the store: the cookie is dead
    messages.info(request, "Signed out of all three apps in this browser.")
    return redirect("home")


def safe_next(request: HttpRequest, target: str) -> str:
    """Where to go after login: a path here, or one of the sibling apps; never elsewhere."""
    hosts = {request.get_host(), *(urlsplit(link.url).netloc for link in links())}
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts=hosts):
        return target
    return "/"
