"""DBSC's two endpoints in Django (``sessionkit.dbsc``): sessionkit's ``SessionMiddleware``
answers ``<SESSIONKIT["DBSC_PATH"]>/registration`` and ``/refresh`` itself when
``SESSIONKIT["DBSC"]`` is on, before any view runs, so no URLconf entry is needed and the
endpoints are outside CSRF (a proof of a private key over a one-time challenge is what
authenticates them; a browser's DBSC requests carry no CSRF token)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from sessionkit import DbscRequest, DbscResponse, DeviceBinding, SessionEngine


def dbsc_request(engine: SessionEngine, request: HttpRequest) -> DbscRequest:
    from sessionkit_django.middleware import client_of

    return DbscRequest(
        request.method or "GET", request.path, request.build_absolute_uri(request.path),
        {name.lower(): value for name, value in request.headers.items()},
        request.META.get("HTTP_COOKIE"), client_of(engine, request),
    )  # fmt: skip


def to_response(answer: DbscResponse) -> HttpResponse:
    from sessionkit_django.middleware import _SetCookie

    response = HttpResponse(answer.content(), status=answer.status)
    del response.headers["Content-Type"]
    for name, value in answer.headers:
        if name == "Set-Cookie":
            morsel = _SetCookie(value)
            response.cookies[morsel.key] = morsel
        else:
            response.headers[name] = value
    return response


def answer(dbsc: DeviceBinding, engine: SessionEngine, request: HttpRequest) -> HttpResponse:
    return to_response(dbsc.handle(dbsc_request(engine, request)))


async def aanswer(dbsc: DeviceBinding, engine: SessionEngine, request: HttpRequest) -> HttpResponse:
    return to_response(await dbsc.ahandle(dbsc_request(engine, request)))
