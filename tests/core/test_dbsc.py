"""sessionkit.dbsc without a framework: the setting, the proof checks one by one, and the
engine's side (registration header, enforcement, lifecycle), driven through
``engine.open``/``commit``/``run`` and ``engine.dbsc.handle``."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from sessionkit import (
    ClientInfo,
    ConfigError,
    DbscRequest,
    DeviceBinding,
    Event,
    EventKind,
    Session,
    SessionConfig,
    SessionEngine,
)
from sessionkit.dbsc import ProofError, public_jwk, read_sf_string, registration_key, sf_string
from sessionkit.testing import FakeClock
from tests.conftest import KEY
from tests.dbsc_client import DeviceKey, parse_challenge, parse_registration

ORIGIN = "https://app.example"
REG = "/sessionkit/dbsc/registration"
REFRESH = "/sessionkit/dbsc/refresh"
HTTPS = ClientInfo("203.0.113.9", "Chrome", secure=True)


def make(clock: FakeClock, **settings: Any) -> SessionEngine:
    settings.setdefault("store", "memory://")
    settings.setdefault("dbsc", True)
    return SessionEngine(SessionConfig(secret_key=KEY, **settings), clock=clock)


class Jar:
    """A browser's cookies against the engine alone."""

    def __init__(self, engine: SessionEngine, client: ClientInfo = HTTPS) -> None:
        self.engine = engine
        self.client = client
        self.cookies: dict[str, str] = {}

    def header(self) -> str | None:
        return "; ".join(f"{k}={v}" for k, v in self.cookies.items()) or None

    def take(self, headers: list[tuple[str, str]]) -> None:
        for name, value in headers:
            if name == "Set-Cookie":
                pair = value.split(";", 1)[0]
                key, _, val = pair.partition("=")
                if "Max-Age=0" in value or not val:
                    self.cookies.pop(key, None)
                else:
                    self.cookies[key] = val

    def visit(self, view: Any) -> tuple[Any, list[tuple[str, str]]]:
        session = self.engine.open(self.header(), self.client)
        result = view(session)
        plan = self.engine.commit(session)
        self.engine.run(plan)
        headers = plan.headers() + list(plan.dbsc_headers)
        self.take(headers)
        return result, headers

    def post(self, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        dbsc = self.engine.dbsc
        assert dbsc is not None
        lowered = {k.lower(): v for k, v in headers.items()}
        answer = dbsc.handle(DbscRequest("POST", path, ORIGIN + path, lowered, self.header(),
                                         self.client))  # fmt: skip
        self.take(answer.headers)
        got = {k.lower(): v for k, v in answer.headers if k != "Set-Cookie"}
        return answer.status, got, answer.body


def login(session: Session) -> None:
    session["cart"] = ["apple"]
    session.bind_user("alice")


def whoami(session: Session) -> str | None:
    return session.user_id


def register(jar: Jar, key: DeviceKey | None = None) -> dict[str, Any]:
    _, headers = jar.visit(login)
    params = parse_registration(dict(headers)["Secure-Session-Registration"])
    key = key or DeviceKey()
    status, _, body = jar.post(REG, {"Secure-Session-Response": sf_string(
        key.proof(params["challenge"], ORIGIN + REG))})  # fmt: skip
    assert status == 200, body
    return body  # type: ignore[no-any-return]


# -- the setting -----------------------------------------------------------------------------
def test_cookie_store_is_refused_at_startup(clock: FakeClock) -> None:
    with pytest.raises(ConfigError) as info:
        make(clock, store="cookie://")
    assert info.value.setting == "dbsc"
    assert "server-side store" in str(info.value) and "dbsc=False" in str(info.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [("dbsc_cookie_lifetime", 5), ("dbsc_cookie_lifetime", 10 * 86400), ("dbsc_path", "x"),
     ("dbsc_path", "/a/"), ("dbsc_path", "/"), ("dbsc_path", "/a b"),
     ("dbsc_missing_action", "log"), ("dbsc", "yes")],
)  # fmt: skip
def test_bad_settings(name: str, value: object) -> None:
    with pytest.raises(ConfigError) as info:
        SessionConfig(secret_key=KEY, store="memory://", **{name: value})  # type: ignore[arg-type]
    assert info.value.setting == name


def test_off_by_default(clock: FakeClock) -> None:
    engine = make(clock, dbsc=False)
    assert engine.dbsc is None
    _, headers = Jar(engine).visit(login)
    assert "Secure-Session-Registration" not in dict(headers)


def test_registration_header_only_over_https_or_loopback(clock: FakeClock) -> None:
    engine = make(clock)
    _, plain = Jar(engine, ClientInfo("203.0.113.9", "Chrome")).visit(login)
    assert "Secure-Session-Registration" not in dict(plain)
    _, local = Jar(engine, ClientInfo("127.0.0.1", "Chrome")).visit(login)
    assert "Secure-Session-Registration" in dict(local)
    _, explicit = Jar(engine, ClientInfo("203.0.113.9", "Chrome")).visit(
        lambda s: (login(s), s.start_device_binding())
    )
    assert "Secure-Session-Registration" in dict(explicit)


# -- proofs ------------------------------------------------------------------------------------
def test_sf_strings() -> None:
    assert sf_string('a"b\\c') == '"a\\"b\\\\c"'
    assert read_sf_string(sf_string('a"b\\c')) == 'a"b\\c'
    assert read_sf_string('"abc";id="x"') == "abc"
    assert read_sf_string("eyJ.abc.def") == "eyJ.abc.def"  # a bare token, as early browsers sent
    assert read_sf_string('"abc') is None
    assert read_sf_string('"a\\b"') is None


def test_key_in_header_or_payload() -> None:
    key = DeviceKey()
    for where in ("header", "payload"):
        jwk, alg, claims = registration_key(key.proof("c", ORIGIN + REG, key_in=where))
        assert alg == "ES256" and claims["jti"] == "c" and set(jwk) == {"kty", "crv", "x", "y"}


def test_header_and_payload_naming_different_keys() -> None:
    key, other = DeviceKey(), DeviceKey()
    token = jwt.encode({"jti": "c", "key": other.jwk()}, key.private, algorithm="ES256",
                       headers={"typ": "dbsc+jwt", "jwk": key.jwk()})  # fmt: skip
    with pytest.raises(ProofError) as info:
        registration_key(token)
    assert info.value.code == "bad_key"


def test_rsa_is_pinned_to_rs256_and_ec_to_es256() -> None:
    rsa_key = DeviceKey("rsa")
    assert registration_key(rsa_key.proof("c", "x"))[1] == "RS256"
    with pytest.raises(ProofError) as info:  # an EC key with an RSA alg header
        registration_key(DeviceKey().proof("c", "x", alg="RS256", signer=rsa_key.private))
    assert info.value.code == "bad_alg"


def test_small_rsa_keys_and_private_members_are_refused() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(small.public_key()))
    with pytest.raises(ProofError, match="2048"):
        public_jwk(jwk)
    private = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(DeviceKey().private))
    with pytest.raises(ProofError, match="private"):
        public_jwk(private)


def test_malformed_proofs() -> None:
    for token in ("", "a.b", "a.b.c", "x" * 9000):
        with pytest.raises(ProofError) as info:
            registration_key(token)
        assert 400 <= info.value.status < 500
    header = base64.urlsafe_b64encode(b'{"alg":"ES256","typ":"dbsc+jwt"}').rstrip(b"=")
    with pytest.raises(ProofError, match="JWK"):  # no key anywhere
        registration_key(header.decode() + ".e30.c2ln")


# -- the engine's side ---------------------------------------------------------------------------
def test_register_refresh_and_expiry(clock: FakeClock) -> None:
    engine = make(clock)
    events: list[Event] = []
    engine.events.subscribe(events.append)
    jar = Jar(engine)
    body = register(jar)
    assert body["session_identifier"] and body["refresh_url"] == REFRESH
    assert "session_bound" in jar.cookies
    assert jar.visit(whoami)[0] == "alice"
    clock.advance(601)
    assert jar.visit(whoami)[0] is None
    assert [e.kind for e in events].count(EventKind.DBSC_MISSING) == 1
    assert "session" in jar.cookies  # kept: the device can still refresh
    status, headers, _ = jar.post(REFRESH, {"Sec-Secure-Session-Id": sf_string(
        body["session_identifier"])})  # fmt: skip
    assert status == 403
    _, sid = parse_challenge(headers["secure-session-challenge"])
    assert sid == body["session_identifier"]


def test_the_audit_trail_records_a_bound_session_seen_without_its_bound_cookie(
    clock: FakeClock,
) -> None:
    engine = make(clock, audit="store")
    engine.store._clock = clock  # type: ignore[attr-defined]
    jar = Jar(engine)
    register(jar)
    clock.advance(601)
    assert jar.visit(whoami)[0] is None
    assert engine.audit is not None
    engine.audit.flush()
    entries = [e for e in engine.audit_entries("alice") if e.kind == "dbsc_missing"]
    assert len(entries) == 1 and entries[0].handle and "absent" in entries[0].reason


def test_async_endpoints(clock: FakeClock) -> None:
    engine = make(clock)
    jar = Jar(engine)
    _, headers = jar.visit(login)
    params = parse_registration(dict(headers)["Secure-Session-Registration"])
    proof = DeviceKey().proof(params["challenge"], ORIGIN + REG)
    dbsc = engine.dbsc
    assert isinstance(dbsc, DeviceBinding)
    request = DbscRequest("POST", REG, ORIGIN + REG, {"secure-session-response": sf_string(proof)},
                          jar.header(), HTTPS)  # fmt: skip
    answer = asyncio.run(dbsc.ahandle(request))
    assert answer.status == 200 and answer.body is not None
    assert any(v.startswith("session_bound=") for k, v in answer.headers if k == "Set-Cookie")


def test_bound_cookie_of_another_session_does_not_count(clock: FakeClock) -> None:
    engine = make(clock)
    alice, bob = Jar(engine), Jar(engine)
    register(alice)
    register(bob)
    bob.cookies["session_bound"] = alice.cookies["session_bound"]
    assert bob.visit(whoami)[0] is None


def test_invalidate_action_deletes_the_record(clock: FakeClock) -> None:
    engine = make(clock, dbsc_missing_action="invalidate")
    jar = Jar(engine)
    register(jar)
    bound = jar.cookies.pop("session_bound")
    assert jar.visit(whoami)[0] is None
    jar.cookies["session_bound"] = bound
    assert jar.visit(whoami)[0] is None  # gone for good


def test_revoke_ends_the_dbsc_session(clock: FakeClock) -> None:
    engine = make(clock)
    jar = Jar(engine)
    body = register(jar)
    assert engine.store.revoke_user("alice") == 1
    status, _, answer = jar.post(REFRESH, {"Sec-Secure-Session-Id": sf_string(
        body["session_identifier"])})  # fmt: skip
    assert (status, answer) == (200, {"continue": False})


def test_sessions_without_a_key_are_untouched(clock: FakeClock) -> None:
    engine = make(clock)
    jar = Jar(engine, ClientInfo("203.0.113.9", "Firefox"))  # no DBSC: never registers
    jar.visit(login)
    clock.advance(86400)
    assert jar.visit(whoami)[0] == "alice"


def test_a_proof_for_another_endpoint_is_refused(clock: FakeClock) -> None:
    engine = make(clock)
    jar = Jar(engine)
    _, headers = jar.visit(login)
    params = parse_registration(dict(headers)["Secure-Session-Registration"])
    proof = DeviceKey().proof(params["challenge"], ORIGIN + "/elsewhere")
    status, _, body = jar.post(REG, {"Secure-Session-Response": sf_string(proof)})
    assert (status, body["error"]) == (400, "wrong_audience")
    assert "session_bound" not in jar.cookies
    behind_a_proxy = DeviceKey().proof(params["challenge"], "https://internal:8000" + REG)
    status, _, _ = jar.post(REG, {"Secure-Session-Response": sf_string(behind_a_proxy)})
    assert status == 200  # the path is what counts; the challenge binds the session
