"""Reading Set-Cookie headers and replaying cookies, as a browser (or a thief) would."""

from __future__ import annotations

import flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse


def set_cookies(response: TestResponse, name: str = "session") -> list[dict[str, str]]:
    """The Set-Cookie headers for ``name``, each as ``{"value": ..., "max-age": ...}``
    (attribute names lowercased; flags map to "")."""
    found = []
    for header in response.headers.getlist("Set-Cookie"):
        first, *attributes = header.split("; ")
        key, _, value = first.partition("=")
        if key != name:
            continue
        parsed = {"value": value}
        for attribute in attributes:
            attr, _, attr_value = attribute.partition("=")
            parsed[attr.lower()] = attr_value
        found.append(parsed)
    return found


def the_cookie(response: TestResponse, name: str = "session") -> dict[str, str]:
    (cookie,) = set_cookies(response, name)
    return cookie


def cookie_value(client: FlaskClient, name: str = "session") -> str | None:
    cookie = client.get_cookie(name)
    return cookie.value if cookie is not None else None


def replay(app: flask.Flask, value: str, name: str = "session") -> FlaskClient:
    """A new client that presents a captured cookie value."""
    client = app.test_client()
    client.set_cookie(name, value)
    return client


def vary(response: TestResponse) -> set[str]:
    return {v.strip().lower() for v in response.headers.get("Vary", "").split(",") if v.strip()}
