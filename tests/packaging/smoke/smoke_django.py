"""``sessionkit[django]``: a Django project configured in this file, with sessionkit's
engine and middleware: the session written and read back through Django's real WSGI and
ASGI handlers (a sync and an async view), the system checks, and ``manage.py sessionkit``."""

from __future__ import annotations

import asyncio
from typing import Any

import django
from django.conf import settings
from smokelib import KEY, TMP, Jar, asgi_request, main, read_back, wsgi_request

settings.configure(
    DEBUG=False,
    SECRET_KEY=KEY,
    ALLOWED_HOSTS=["testserver"],
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "sessionkit_django"],
    MIDDLEWARE=[
        "sessionkit_django.middleware.SessionMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
    ],
    SESSION_ENGINE="sessionkit_django.engine",
    SESSIONKIT={"STORE": f"file://{TMP / 'sessions'}"},
    ROOT_URLCONF=__name__,
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    USE_TZ=True,
    DEFAULT_AUTO_FIELD="django.db.models.AutoField",
)
django.setup()

from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402


def count(request: HttpRequest) -> HttpResponse:
    request.session["n"] = request.session.get("n", 0) + 1
    return HttpResponse(str(request.session["n"]))


async def acount(request: HttpRequest) -> HttpResponse:
    value = await request.session.aget("n", 0) + 1
    await request.session.aset("n", value)
    return HttpResponse(str(value))


urlpatterns = [path("", count), path("async", acount)]


def check() -> None:
    from django.core.asgi import get_asgi_application
    from django.core.management import call_command
    from django.core.wsgi import get_wsgi_application

    call_command("check", fail_level="WARNING")
    wsgi: Any = get_wsgi_application()
    jar = Jar("sessionid")
    read_back([jar.keep(wsgi_request(wsgi, "/", jar.cookie)) for _ in range(2)], [b"1", b"2"])

    asgi: Any = get_asgi_application()

    async def visits() -> list[Any]:  # the same session, now under ASGI: sync and async views
        paths = ("/async", "/", "/async")
        return [jar.keep(await asgi_request(asgi, where, jar.cookie)) for where in paths]

    read_back(asyncio.run(visits()), [b"3", b"4", b"5"])
    call_command("sessionkit", "stats")
    call_command("sessionkit", "gc")


if __name__ == "__main__":
    main(check)
