"""DBSC scenarios every adapter runs (Flask and Django here; the ASGI tests have their own,
longer list): registration, refresh, expiry, rotation, logout, a stolen cookie and the
bad-input cases, through a framework's own test client wrapped as a ``Client``.

The test app serves ``/login`` (binds user ``alice``, or ``?user=``), ``/me`` (``{"user":
..., "data": ...}``), ``/logout`` (invalidate) and ``/rotate`` (regenerate), with
``dbsc=True`` on a server-side store and a ``FakeClock``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from sessionkit.testing import FakeClock
from tests.dbsc_client import Browser, DeviceKey, parse_registration

REG = "/sessionkit/dbsc/registration"
REFRESH = "/sessionkit/dbsc/refresh"


class Client(Protocol):
    """One browser's cookie jar, over the framework's test client."""

    origin: str

    def get(self, path: str) -> tuple[int, Mapping[str, str], Any]: ...
    def post(self, path: str, headers: dict[str, str]) -> tuple[int, Mapping[str, str], Any]: ...
    def cookie(self, name: str) -> str | None: ...
    def set_cookie(self, name: str, value: str) -> None: ...
    def set_cookies(self) -> list[str]: ...  # the last response's Set-Cookie headers


NewClient = Callable[[], Client]


def _registration(client: Client, path: str = "/login") -> str:
    status, headers, _ = client.get(path)
    assert status == 200
    return headers["secure-session-registration"]


def registered(client: Client, key: DeviceKey | None = None) -> Browser:
    browser = Browser(client.post, client.origin, key)
    status, body = browser.register(_registration(client))
    assert status == 200, body
    return browser


def user(client: Client) -> Any:
    return client.get("/me")[2]["user"]


def full_flow(new_client: NewClient, clock: FakeClock) -> None:
    """Register, use, expire, refresh, rotate, log out."""
    client = new_client()
    header = _registration(client)
    params = parse_registration(header)
    assert params["algs"] == "ES256 RS256" and params["path"] == REG
    browser = Browser(client.post, client.origin)
    status, body = browser.register(header)
    assert status == 200, body
    assert body["refresh_url"] == REFRESH
    assert body["credentials"][0]["name"] == "session_bound"
    assert client.cookie("session_bound")
    assert client.get("/me")[2] == {"user": "alice", "data": {"cart": ["apple"]}}
    clock.advance(601)  # the bound cookie expired: the session is absent...
    assert user(client) is None
    status, body = browser.refresh()  # ...until the browser proves its key
    assert status == 200, body
    assert user(client) == "alice"
    clock.advance(601)
    browser.cached = None  # no challenge kept: the server asks for one (403), then 200
    assert browser.refresh()[0] == 200
    assert user(client) == "alice"
    status, headers, _ = client.get("/rotate")  # a new ID: registration starts again
    assert "secure-session-registration" in headers
    assert browser.refresh()[1] == {"continue": False}
    again = Browser(client.post, client.origin)
    assert again.register(headers["secure-session-registration"])[0] == 200
    assert user(client) == "alice"
    client.get("/logout")
    assert any(c.startswith("session_bound=") and "Max-Age=0" in c for c in client.set_cookies())
    assert again.refresh()[1] == {"continue": False}


def stolen_cookie(new_client: NewClient, clock: FakeClock) -> None:
    """A copy of the long-lived cookie dies with the bound cookie; the browser goes on."""
    victim, thief = new_client(), new_client()
    browser = registered(victim)
    session = victim.cookie("session")
    assert session is not None
    thief.set_cookie("session", session)
    assert user(thief) is None
    bound = victim.cookie("session_bound")
    assert bound is not None
    thief.set_cookie("session_bound", bound)
    assert user(thief) == "alice"  # within the bound cookie's minutes
    clock.advance(601)
    assert user(thief) is None
    status, _, _ = thief.post(REFRESH, {"Sec-Secure-Session-Id": f'"{browser.session_id}"'})
    assert status == 403  # a challenge the thief cannot sign
    assert browser.refresh()[0] == 200
    assert user(victim) == "alice"
    assert user(thief) is None


def _post_proof(client: Client, proof: str) -> int:
    return client.post(REG, {"Secure-Session-Response": f'"{proof}"'})[0]


def _nothing_stored(client: Client, clock: FakeClock, name: str = "alice") -> None:
    assert client.cookie("session_bound") is None
    clock.advance(3600)  # no key on the record: no bound cookie needed
    assert user(client) == name


BAD_PROOFS = [
    "replayed", "other_key", "alg_none", "hs256", "oversized", "wrong_curve", "wrong_typ",
]  # fmt: skip


def bad_proof(new_client: NewClient, clock: FakeClock, case: str) -> None:
    """Each answered with a 4xx, and nothing stored."""
    client = new_client()
    challenge = parse_registration(_registration(client))["challenge"]
    aud = client.origin + REG
    key = DeviceKey()
    if case == "replayed":
        assert _post_proof(client, key.proof(challenge, aud)) == 200
        assert _post_proof(client, DeviceKey().proof(challenge, aud)) == 400
        return
    if case == "other_key":
        proof = key.proof(challenge, aud, signer=DeviceKey().private)
    elif case in ("alg_none", "hs256"):
        alg, secret = ("none", None) if case == "alg_none" else ("HS256", "k" * 32)
        proof = jwt.encode({"jti": challenge, "aud": aud}, secret, algorithm=alg,  # type: ignore[arg-type]
                           headers={"typ": "dbsc+jwt", "jwk": key.jwk()})  # fmt: skip
    elif case == "oversized":
        proof = key.proof(challenge, aud, padding=9000)
    elif case == "wrong_curve":
        proof = DeviceKey(curve=ec.SECP384R1()).proof(challenge, aud, alg="ES384")
    else:
        proof = key.proof(challenge, aud, typ="JWT")
    status = _post_proof(client, proof)
    assert 400 <= status < 500 and status != 403, status
    _nothing_stored(client, clock)


def another_session(new_client: NewClient, clock: FakeClock) -> None:
    alice, bob = new_client(), new_client()
    challenge = parse_registration(_registration(alice))["challenge"]
    bob.get("/login?user=bob")
    assert _post_proof(bob, DeviceKey().proof(challenge, bob.origin + REG)) == 403
    _nothing_stored(bob, clock, "bob")
    _nothing_stored(alice, clock)


def endpoint_headers(new_client: NewClient) -> None:
    client = new_client()
    challenge = parse_registration(_registration(client))["challenge"]
    status, headers, _ = client.post(
        REG, {"Secure-Session-Response": f'"{DeviceKey().proof(challenge, client.origin + REG)}"'}
    )
    assert status == 200
    assert headers["cache-control"] == "no-store"
    assert headers["x-frame-options"] == "DENY"
    assert "access-control-allow-origin" not in headers
