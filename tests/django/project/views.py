"""Views of the test project: each exercises one thing a real app does with sessions."""

from __future__ import annotations

import threading
import time

from django.contrib import auth, messages
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from sessionkit_django.auth import logout_other_sessions, update_session_auth_hash
from sessionkit_django.middleware import session_lock

#: Tests set this to hold /slow/ between reading and writing the session.
slow_gate = threading.Event()
slow_entered = threading.Event()


def count(request: HttpRequest) -> JsonResponse:
    request.session["count"] = request.session.get("count", 0) + 1
    return JsonResponse({"count": request.session["count"]})


async def acount(request: HttpRequest) -> JsonResponse:
    value = await request.session.aget("count", 0) + 1
    await request.session.aset("count", value)
    return JsonResponse({"count": value})


def read(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"count": request.session.get("count"), "key": request.session.session_key})


def nothing(request: HttpRequest) -> HttpResponse:
    return HttpResponse("no session here")


def boom(request: HttpRequest) -> HttpResponse:
    request.session["count"] = 999
    raise RuntimeError("the view failed after changing the session")


def put(request: HttpRequest) -> JsonResponse:
    request.session.update(dict(request.GET.items()))
    return JsonResponse(dict(request.session.items()))


@csrf_exempt
def login(request: HttpRequest) -> JsonResponse:
    user = auth.authenticate(
        request, username=request.POST["username"], password=request.POST["password"]
    )
    if user is None:
        return JsonResponse({"ok": False}, status=403)
    auth.login(request, user)
    return JsonResponse({"ok": True})


@csrf_exempt
async def alogin(request: HttpRequest) -> JsonResponse:
    user = await auth.aauthenticate(request, username="alice", password="pw-alice-1")
    assert user is not None
    await auth.alogin(request, user)
    return JsonResponse({"ok": True})


@csrf_exempt
def logout(request: HttpRequest) -> JsonResponse:
    auth.logout(request)
    return JsonResponse({"ok": True})


def whoami(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"user": request.user.get_username() or None})


async def awhoami(request: HttpRequest) -> JsonResponse:
    if not hasattr(request, "auser"):  # Django 4.2
        from asgiref.sync import sync_to_async

        name = await sync_to_async(lambda: request.user.get_username())()
        return JsonResponse({"user": name or None})
    user = await request.auser()
    return JsonResponse({"user": user.get_username() or None})


@csrf_exempt
def change_password(request: HttpRequest) -> JsonResponse:
    user = User.objects.get(pk=request.user.pk)
    user.set_password(request.POST["password"])
    user.save()
    revoked = update_session_auth_hash(request, user)
    return JsonResponse({"revoked": revoked})


@csrf_exempt
def others(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"revoked": logout_other_sessions(request)})


def add_message(request: HttpRequest) -> HttpResponse:
    messages.success(request, "Saved!")
    request.session.flash("notice", "flashed once")
    return HttpResponse("ok")


def show_messages(request: HttpRequest) -> HttpResponse:
    return render(request, "messages.html")


def form(request: HttpRequest) -> HttpResponse:
    return render(request, "form.html")


def csrf_target(request: HttpRequest) -> HttpResponse:
    return HttpResponse("accepted")


@csrf_exempt
def slow(request: HttpRequest) -> JsonResponse:
    """Reads the session, waits for the test to log out elsewhere, then writes."""
    value = request.session.get("count", 0)
    slow_entered.set()
    slow_gate.wait(10)
    request.session["count"] = value + 1
    return JsonResponse({"count": value + 1})


@session_lock(wait=5)
def locked(request: HttpRequest) -> JsonResponse:
    value = request.session.get("count", 0)
    time.sleep(0.005)  # widen the read-modify-write window
    request.session["count"] = value + 1
    return JsonResponse({"count": value + 1})


@session_lock(wait=5)
async def alocked(request: HttpRequest) -> JsonResponse:
    import asyncio

    value = await request.session.aget("count", 0)
    await asyncio.sleep(0.005)
    await request.session.aset("count", value + 1)
    return JsonResponse({"count": value + 1})
