"""DBSC in a real browser: Debian's headless Chromium, with the software key provider that
Chromium's own web-platform tests use (it has no TPM here), against a Starlette app over
HTTPS on loopback. The browser registers a key after the login, renews the bound cookie by
itself when it expires, and a copy of the session cookie alone gets no session.

Chromium turns DBSC off for a page whose certificate error was bypassed
(``--ignore-certificate-errors``, Playwright's ``ignore_https_errors``): the test's
self-signed certificate is made trusted instead, by its key's hash
(``--ignore-certificate-errors-spki-list``), so the connection counts as valid."""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from playwright.sync_api import Playwright
from sessionkit_asgi import SessionMiddleware
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from sessionkit import Event, EventBus, EventKind
from tests.browser.conftest import ARGS, CHROMIUM
from tests.servers import free_port

KEY = "browser-dbsc-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
LIFETIME = 10  # seconds: the shortest bound cookie the setting allows
FEATURES = [
    "--enable-features=DeviceBoundSessions,EnableBoundSessionCredentialsSoftwareKeysForManualTesting",
    "--disable-features=DeviceBoundSessionsRefreshQuota",
]


def certificate(directory: Path) -> tuple[Path, Path, str]:
    """A self-signed certificate for localhost, and its key's SPKI hash (base64 SHA-256)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ]), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))  # fmt: skip
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return cert_path, key_path, base64.b64encode(hashlib.sha256(spki).digest()).decode()


async def login(request: Request) -> HTMLResponse:
    request.session["cart"] = ["apple"]
    request.session.bind_user("alice")
    return HTMLResponse("<!doctype html><title>in</title><p>signed in</p>")


async def me(request: Request) -> JSONResponse:
    return JSONResponse({"user": request.session.user_id})


class Server:
    """The app under uvicorn in a thread, over TLS on a free loopback port."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.events: list[Event] = []
        self.requests: list[tuple[str, str]] = []
        bus = EventBus()
        bus.subscribe(self.events.append)
        app = Starlette(
            routes=[Route("/login", login), Route("/me", me)],
            middleware=[
                Middleware(
                    SessionMiddleware,
                    secret_key=KEY,
                    store="memory://",
                    https_only=True,
                    dbsc=True,
                    dbsc_cookie_lifetime=LIFETIME,
                    events=bus,
                )
            ],
        )

        async def logged(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                self.requests.append((scope["method"], scope["path"]))
            await app(scope, receive, send)

        self.port = free_port()
        self.origin = f"https://localhost:{self.port}"
        config = uvicorn.Config(
            logged, host="127.0.0.1", port=self.port, log_level="warning",
            ssl_certfile=str(cert), ssl_keyfile=str(key), lifespan="off",
        )  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def kinds(self) -> list[EventKind]:
        return [e.kind for e in self.events]


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Server, str]]:
    cert, key, spki = certificate(tmp_path)
    with Server(cert, key) as running:
        yield running, spki


def test_chromium_registers_refreshes_and_a_copy_fails(
    playwright: Playwright, server: tuple[Server, str], tmp_path: Path
) -> None:
    app, spki = server
    context = playwright.chromium.launch_persistent_context(
        str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True,
        args=[*ARGS, *FEATURES, f"--ignore-certificate-errors-spki-list={spki}"],
    )  # fmt: skip
    try:
        page = context.new_page()
        page.goto(app.origin + "/login")
        wait_for(lambda: EventKind.DBSC_REGISTERED in app.kinds(), 30,
                 f"Chromium did not register: {app.requests}")  # fmt: skip
        assert ("POST", "/sessionkit/dbsc/registration") in app.requests
        names = {c["name"] for c in context.cookies()}
        assert {"session", "session_bound"} <= names
        assert page.goto(app.origin + "/me").json() == {"user": "alice"}  # type: ignore[union-attr]

        # a copy of the long-lived cookie alone, sent from elsewhere: no session
        session = next(c["value"] for c in context.cookies() if c["name"] == "session")
        tls = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
        answer = httpx.get(app.origin + "/me", cookies={"session": session}, verify=tls)
        assert answer.json() == {"user": None}
        assert EventKind.DBSC_MISSING in app.kinds()

        # the bound cookie expires; the browser renews it with its key before the request
        refreshes = app.requests.count(("POST", "/sessionkit/dbsc/refresh"))
        time.sleep(LIFETIME + 1)
        assert page.goto(app.origin + "/me").json() == {"user": "alice"}  # type: ignore[union-attr]
        assert app.requests.count(("POST", "/sessionkit/dbsc/refresh")) > refreshes
        assert EventKind.DBSC_REFUSED not in app.kinds()
    finally:
        context.close()
