"""Device Bound Session Credentials (W3C WebAppSec DBSC draft), framework-free.

A browser that can keep a private key where malware cannot copy it (a TPM) answers the
``Secure-Session-Registration`` header of a login response by creating a key pair and
posting a signed proof (a JWS of ``typ`` ``dbsc+jwt``, its ``jti`` the one-time challenge,
its public key in the JWS header's ``jwk``, or the payload's ``key`` in earlier drafts) to
the registration endpoint. The public key is stored on the session record
(``RecordMeta.dbsc``); from then on the session also needs a *bound cookie* that lives a
few minutes, and only a proof signed by that key, over a fresh challenge, at the refresh
endpoint renews it. A session cookie copied off the device dies with the bound cookie.

The engine calls in here at three points: ``open`` (read the bound cookie), loading (a
bound session without a valid bound cookie is treated as absent, ``dbsc_missing``) and
``commit`` (the registration header after ``bind_user``/``regenerate``/an explicit
``Session.start_device_binding()``; the bound cookie cleared on logout). The endpoints are
``DeviceBinding.handle``: the adapters mount ``<dbsc_path>/registration`` and
``<dbsc_path>/refresh`` and translate requests and responses, nothing more.

Proofs are checked with PyJWT on ``cryptography`` (the ``dbsc`` extra), the algorithm
pinned by the key: ES256 for an EC P-256 key, RS256 for an RSA key of 2048 bits or more.
Challenges are one-use: kept in the session store with a short TTL and taken with an atomic
read-and-delete (``Store.take_challenge``).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sessionkit import serialization
from sessionkit.cookies import CookieWriter, cookie_values
from sessionkit.errors import ConfigError
from sessionkit.events import Event, EventKind

if TYPE_CHECKING:
    from sessionkit.client import ClientInfo
    from sessionkit.engine import CommitPlan, SessionEngine
    from sessionkit.records import RecordMeta
    from sessionkit.session import Session

#: Response headers, as the current draft names them.
REGISTRATION_HEADER = "Secure-Session-Registration"
CHALLENGE_HEADER = "Secure-Session-Challenge"
#: Request headers, current name first; the ``Sec-Session-*`` names of the 2024-2025
#: drafts and origin trials are read too.
RESPONSE_HEADERS = ("secure-session-response", "sec-session-response")
SESSION_ID_HEADERS = ("sec-secure-session-id", "sec-session-id")
#: The proof's JWS ``typ``.
PROOF_TYPE = "dbsc+jwt"
ALGORITHMS = ("ES256", "RS256")
#: A proof longer than this is refused unread (an ES256 proof is ~600 bytes, an RS256 one
#: with a 4096-bit key in its header ~2 KB).
MAX_PROOF = 8192
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 8192
#: How long a registration challenge is accepted.
REGISTRATION_TTL = 300.0
#: How long past the bound cookie's lifetime a refresh challenge is accepted: the browser
#: keeps the one a refresh answer carries for the next refresh, a lifetime later; and the
#: one before a newer challenge stays valid this long (requests in flight while it rotates).
CHALLENGE_OVERLAP = 300.0
#: Per session: at most this many endpoint calls in ``RATE_WINDOW`` seconds (per process).
RATE_LIMIT = 30
RATE_WINDOW = 60.0

#: Every endpoint answer carries these: never cached, never framed, never read cross-site.
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy", "frame-ancestors 'none'"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
)

_REGISTER = "r"
_REFRESH = "f"


class ProofError(Exception):
    """A proof refused: the status to answer and a short code for the body and the event."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class BoundKey:
    """A session's device-bound key as ``RecordMeta.dbsc`` keeps it: the DBSC session
    identifier the browser knows it by, the pinned algorithm and the public JWK."""

    id: str
    alg: str
    jwk: Mapping[str, str]

    def to_text(self) -> str:
        return json.dumps(
            {"id": self.id, "alg": self.alg, "jwk": dict(self.jwk)}, separators=(",", ":"),
            sort_keys=True,
        )  # fmt: skip

    @classmethod
    def from_text(cls, text: str) -> BoundKey | None:
        try:
            raw = json.loads(text)
            return cls(str(raw["id"]), str(raw["alg"]), dict(raw["jwk"]))
        except (ValueError, KeyError, TypeError):
            return None


@dataclass(frozen=True)
class DbscRequest:
    """What an adapter tells the endpoints about a request. ``url``: the full URL the
    browser posted to (a proof's ``aud``); ``headers``: lower-case names."""

    method: str
    path: str
    url: str
    headers: Mapping[str, str]
    cookie: str | None
    client: ClientInfo


@dataclass
class DbscResponse:
    """An endpoint's answer: status, JSON body (``None``: empty) and headers, Set-Cookie
    ones included. The adapter sends them as they are."""

    status: int
    body: dict[str, Any] | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)

    def content(self) -> bytes:
        return b"" if self.body is None else serialization.dumps_plain_bytes(self.body)


def sf_string(value: str) -> str:
    """An RFC 9651 string item, quoted and escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def read_sf_string(value: str) -> str | None:
    """The string of an RFC 9651 string item (parameters ignored); a bare token (as some
    early browsers sent the proof) is taken as it is. ``None`` when it is neither."""
    value = value.strip()
    if not value.startswith('"'):
        token = value.split(";", 1)[0].strip()
        return token or None
    out: list[str] = []
    index = 1
    while index < len(value):
        char = value[index]
        if char == "\\":
            if index + 1 >= len(value) or value[index + 1] not in '"\\':
                return None
            out.append(value[index + 1])
            index += 2
            continue
        if char == '"':
            return "".join(out)
        if not " " <= char <= "~":
            return None
        out.append(char)
        index += 1
    return None  # no closing quote


def challenge_key(challenge: str) -> str:
    """The store key of a challenge: a digest, apart from every session digest."""
    return hashlib.sha256(b"sessionkit/dbsc/challenge\x00" + challenge.encode("utf-8")).hexdigest()


def public_jwk(jwk: Any) -> tuple[dict[str, str], str]:
    """The public members of a proof's JWK and the one algorithm it may sign with, or
    ``ProofError``: an EC key on P-256 (ES256) or an RSA key of 2048-8192 bits (RS256);
    no private members, nothing else."""
    import jwt  # the dbsc extra; checked at start-up

    members = ("kty", "crv", "x", "y", "n", "e")
    if not isinstance(jwk, dict) or not all(isinstance(jwk.get(k, ""), str) for k in members):
        raise ProofError(400, "bad_key", "the proof carries no JWK")
    if "d" in jwk or "p" in jwk:
        raise ProofError(400, "bad_key", "the JWK holds private key material")
    kty = jwk.get("kty")
    if kty == "EC":
        if jwk.get("crv") != "P-256":
            raise ProofError(
                400, "wrong_curve", f"EC keys must be on P-256, not {jwk.get('crv')!r}"
            )
        public = {"kty": "EC", "crv": "P-256", "x": jwk.get("x", ""), "y": jwk.get("y", "")}
        alg = "ES256"
    elif kty == "RSA":
        public = {"kty": "RSA", "n": jwk.get("n", ""), "e": jwk.get("e", "")}
        alg = "RS256"
    else:
        raise ProofError(400, "bad_key", f"key type {kty!r} is not EC or RSA")
    try:
        key = jwt.PyJWK(public, algorithm=alg).key
    except Exception as exc:  # PyJWKError, ValueError from cryptography: not a valid key
        raise ProofError(400, "bad_key", f"the JWK is not a valid {kty} public key") from exc
    if alg == "RS256" and not MIN_RSA_BITS <= key.key_size <= MAX_RSA_BITS:
        raise ProofError(400, "bad_key", f"RSA keys must have {MIN_RSA_BITS}-{MAX_RSA_BITS} bits")
    return public, alg


def _unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    import jwt

    if len(token) > MAX_PROOF:
        raise ProofError(413, "proof_too_large", f"proofs are at most {MAX_PROOF} bytes")
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise ProofError(400, "malformed_proof", "the proof is not a compact JWS") from exc
    if header.get("typ") != PROOF_TYPE:
        raise ProofError(400, "wrong_typ", f"the proof's typ must be {PROOF_TYPE!r}")
    if header.get("alg") not in ALGORITHMS:
        raise ProofError(400, "bad_alg", f"alg {header.get('alg')!r}: use ES256 or RS256")
    return header, claims


def verify_proof(token: str, jwk: Mapping[str, str], alg: str) -> dict[str, Any]:
    """The claims of ``token`` once its signature verified under ``jwk`` with ``alg``
    (and no other algorithm); ``ProofError`` otherwise."""
    import jwt

    header, _ = _unverified(token)
    if header["alg"] != alg:
        raise ProofError(400, "bad_alg", f"this key signs with {alg}, not {header['alg']}")
    try:
        key = jwt.PyJWK(dict(jwk), algorithm=alg).key
        claims: dict[str, Any] = jwt.decode(
            token, key, algorithms=[alg],
            options={"verify_aud": False, "verify_iat": False, "require": ["jti"]},
        )  # fmt: skip
    except jwt.InvalidSignatureError as exc:
        raise ProofError(400, "bad_signature", "the proof's signature does not verify") from exc
    except jwt.PyJWTError as exc:
        raise ProofError(400, "malformed_proof", f"the proof was refused: {exc}") from exc
    if not isinstance(claims.get("jti"), str) or not claims["jti"]:
        raise ProofError(400, "malformed_proof", "the proof names no challenge (jti)")
    return claims


def registration_key(token: str) -> tuple[dict[str, str], str, dict[str, Any]]:
    """A registration proof's public key, its algorithm and the verified claims. The key
    travels in the JWS header (``jwk``) or, in earlier drafts, the payload (``key``)."""
    header, claims = _unverified(token)
    in_header, in_payload = header.get("jwk"), claims.get("key")
    if in_header is not None and in_payload is not None and in_header != in_payload:
        raise ProofError(400, "bad_key", "the proof's header and payload name different keys")
    jwk, alg = public_jwk(in_header if in_header is not None else in_payload)
    return jwk, alg, verify_proof(token, jwk, alg)


class _RateLimit:
    """At most ``RATE_LIMIT`` calls per session in a ``RATE_WINDOW`` (fixed windows, in
    this process, bounded)."""

    def __init__(self) -> None:
        self._windows: OrderedDict[str, tuple[float, int]] = OrderedDict()
        self._lock = threading.Lock()

    def allow(self, key: str, now: float) -> bool:
        with self._lock:
            start, count = self._windows.get(key, (now, 0))
            if now - start >= RATE_WINDOW:
                start, count = now, 0
            if count >= RATE_LIMIT:
                return False
            self._windows[key] = (start, count + 1)
            self._windows.move_to_end(key)
            if len(self._windows) > 10_000:
                self._windows.popitem(last=False)
            return True


def _loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


class DeviceBinding:
    """The DBSC side of one engine (``engine.dbsc``, built when ``config.dbsc`` is on)."""

    def __init__(self, engine: SessionEngine) -> None:
        config = engine.config
        store = engine.store
        if store.client_side:
            raise ConfigError(
                "dbsc",
                "DBSC needs a server-side store: the device-bound key lives on the session "
                "record and challenges are one-use, which a cookie:// session cannot keep "
                "(a copied cookie would carry its own key). Use memory://, redis://, "
                "sqlite:///, postgresql://, file:/// or memcached://, or set dbsc=False",
            )
        if not store.supports_challenges:
            raise ConfigError(
                "dbsc", f"{type(store).__name__} keeps no one-use challenges, which DBSC needs"
            )
        try:
            import jwt  # noqa: F401
        except ImportError as exc:
            raise ConfigError("dbsc", "DBSC needs PyJWT: pip install 'sessionkit[dbsc]'") from exc
        self.engine = engine
        self.lifetime = config.dbsc_cookie_lifetime
        self.prefix = config.dbsc_path
        self.registration_path = config.dbsc_path + "/registration"
        self.refresh_path = config.dbsc_path + "/refresh"
        self.cookie_name = config.cookie_name + "_bound"
        self._cookies = CookieWriter(config.replace(cookie_name=self.cookie_name))
        self._secure = config.cookie_secure
        self._attributes = self._cookie_attributes()
        self._rate = _RateLimit()

    # -- the engine's hooks ------------------------------------------------------------------
    def bound_values(self, cookie_header: str | None) -> list[str]:
        return cookie_values(cookie_header, self.cookie_name)

    def _tag(self, digest: str, key_id: str, expires: int) -> bytes:
        return b"sessionkit/dbsc/bound\x00%s\x00%s\x00%d" % (
            digest.encode("ascii"), key_id.encode("utf-8"), expires,
        )  # fmt: skip

    def bound_cookie_ok(self, digest: str, meta: RecordMeta, values: list[str], now: float) -> bool:
        """Whether the request carries a live bound cookie made for this session's key."""
        key = BoundKey.from_text(meta.dbsc) if meta.dbsc is not None else None
        if key is None:
            return False
        for value in values:
            expires_text, _, tag = value.partition(".")
            if not expires_text.isdigit() or len(expires_text) > 12:
                continue
            expires = int(expires_text)
            if not now < expires <= now + self.lifetime + 60:
                continue
            if self.engine.keyring.verify(self._tag(digest, key.id, expires), tag) is not None:
                return True
        return False

    def bound_cookie(self, digest: str, key: BoundKey, secure: bool) -> str:
        """A fresh bound cookie's Set-Cookie header."""
        now = self.engine.clock()
        expires = int(now + self.lifetime)
        value = f"{expires}.{self.engine.keyring.tag(self._tag(digest, key.id, expires))}"
        return self._cookies.set(value, int(self.lifetime), secure=secure)

    def clear_cookie(self, secure: bool) -> str:
        return self._cookies.clear(secure=secure)

    @staticmethod
    def may_support(client: ClientInfo) -> bool:
        """Whether the browser could run DBSC here: only over HTTPS, or on loopback."""
        return client.secure or _loopback(client.remote_addr)

    def registration(self, digest: str) -> tuple[str, tuple[str, str, float]]:
        """The registration header for a session and the challenge to store for it."""
        challenge = secrets.token_urlsafe(32)
        header = (
            f"({' '.join(ALGORITHMS)});path={sf_string(self.registration_path)};"
            f"challenge={sf_string(challenge)}"
        )
        return header, (challenge_key(challenge), f"{_REGISTER}:{digest}", REGISTRATION_TTL)

    def after_commit(
        self, session: Session, plan: CommitPlan, old: RecordMeta | None, *, rotated: bool,
        user_changed: bool, invalidated: bool,
    ) -> None:  # fmt: skip
        """Add to ``plan`` what DBSC asks of this response (called by ``commit``)."""
        ctx = session._ctx
        had_key = old is not None and old.dbsc is not None
        register: BoundKey | None = ctx.dbsc_register
        digest = ctx.digest
        headers: list[tuple[str, str]] = []
        if register is not None:  # the registration endpoint's own commit
            if plan.write is not None and digest is not None:
                headers.append(("Set-Cookie", self.bound_cookie(digest, register, plan.secure)))
        elif invalidated:
            if had_key:  # logout: drop the bound cookie; the next refresh ends the DBSC session
                headers.append(("Set-Cookie", self.clear_cookie(plan.secure)))
        elif digest is not None and session._meta is not None and not ctx.rejected:
            restart = (user_changed and session.user_id is not None) or (rotated and had_key)
            if ctx.dbsc_start or (restart and self.may_support(ctx.client)):
                header, challenge = self.registration(digest)
                headers.append((REGISTRATION_HEADER, header))
                plan.dbsc_challenges = [challenge]
                if had_key and rotated:
                    headers.append(("Set-Cookie", self.clear_cookie(plan.secure)))
        if ctx.dbsc_unsent:  # decided by an earlier commit of this request (a save() in
            headers = [*ctx.dbsc_unsent, *headers]  # the view) whose headers were not sent
        if headers:
            plan.dbsc_headers = ctx.dbsc_unsent = headers

    # -- the endpoints -----------------------------------------------------------------------
    def handles(self, path: str) -> bool:
        return path in (self.registration_path, self.refresh_path)

    def handle(self, request: DbscRequest) -> DbscResponse:
        """Answer a request to one of the endpoints (sync: the store's sync flavour)."""
        try:
            if request.path == self.registration_path:
                response = self._register(request)
            elif request.path == self.refresh_path:
                response = self._refresh(request)
            else:
                response = self._error(404, "not_found", "no such DBSC endpoint")
        except ProofError as exc:
            self._refused(exc)
            response = self._error(exc.status, exc.code, exc.detail)
        response.headers.extend(SECURITY_HEADERS)
        return response

    async def ahandle(self, request: DbscRequest) -> DbscResponse:
        """``handle`` for the event loop: the store's async flavour."""
        try:
            if request.path == self.registration_path:
                response = await self._aregister(request)
            elif request.path == self.refresh_path:
                response = await self._arefresh(request)
            else:
                response = self._error(404, "not_found", "no such DBSC endpoint")
        except ProofError as exc:
            self._refused(exc)
            response = self._error(exc.status, exc.code, exc.detail)
        response.headers.extend(SECURITY_HEADERS)
        return response

    # Each endpoint is split into pure steps around its I/O, so the sync and async flavours
    # differ only in how they call the store.
    def _precheck(self, request: DbscRequest) -> Session:
        if request.method != "POST":
            raise ProofError(405, "method_not_allowed", "DBSC endpoints take POST")
        if request.headers.get("sec-fetch-site", "same-origin") == "cross-site":
            raise ProofError(403, "cross_site", "DBSC endpoints refuse cross-site requests")
        session = self.engine.open(request.cookie, request.client, core=True)
        session._ctx.dbsc_exempt = True  # load it even without its bound cookie
        digest = self.engine.digest_of(session)
        if digest is not None and not self._rate.allow(digest, time.monotonic()):
            raise ProofError(429, "rate_limited", "too many DBSC requests for this session")
        return session

    @staticmethod
    def _header(request: DbscRequest, names: tuple[str, ...]) -> str | None:
        for name in names:
            value = request.headers.get(name)
            if value is not None:
                return value
        return None

    def _proof(self, request: DbscRequest) -> str | None:
        raw = self._header(request, RESPONSE_HEADERS)
        if raw is None:
            return None
        if len(raw) > MAX_PROOF + 2:
            raise ProofError(413, "proof_too_large", f"proofs are at most {MAX_PROOF} bytes")
        proof = read_sf_string(raw)
        if proof is None:
            raise ProofError(400, "malformed_proof", "the proof header is not a string")
        return proof

    def _check_audience(self, claims: Mapping[str, Any], request: DbscRequest) -> None:
        aud = claims.get("aud")
        if aud is None:
            return  # the claim is the browser's; the challenge already binds the proof
        # the path only: behind a proxy the host the app sees may not be the browser's, and
        # the one-time challenge of this very session already binds the proof
        if urlsplit(str(aud)).path != urlsplit(request.url).path:
            raise ProofError(400, "wrong_audience", "the proof was made for another endpoint")

    def _registration_step(self, request: DbscRequest) -> tuple[Session, str, BoundKey, str]:
        session = self._precheck(request)
        digest = self.engine.digest_of(session)
        if digest is None:
            raise ProofError(403, "no_session", "registration needs the session's cookie")
        proof = self._proof(request)
        if proof is None:
            raise ProofError(400, "no_proof", "the request carries no Secure-Session-Response")
        jwk, alg, claims = registration_key(proof)
        self._check_audience(claims, request)
        key = BoundKey(secrets.token_urlsafe(16), alg, jwk)
        return session, digest, key, challenge_key(claims["jti"])

    def _check_challenge(self, value: str | None, purpose: str, digest: str) -> None:
        if value is None:
            raise ProofError(400, "bad_challenge", "the challenge is unknown, used or expired")
        if value != f"{purpose}:{digest}":
            raise ProofError(
                403, "foreign_challenge", "the challenge was issued to another session"
            )

    def _registered(self, session: Session, key: BoundKey) -> CommitPlan:
        if session.new or session._meta is None:
            raise ProofError(403, "no_session", "the session is gone (logged out or expired)")
        session._ctx.dbsc_register = key
        session._meta_changed = True
        return self.engine.commit(session)

    def _instructions(self, request: DbscRequest, key: BoundKey) -> dict[str, Any]:
        parts = urlsplit(request.url)
        return {
            "session_identifier": key.id,
            "refresh_url": self.refresh_path,
            "scope": {"origin": f"{parts.scheme}://{parts.netloc}", "include_site": False,
                      "scope_specification": []},
            "credentials": [{"type": "cookie", "name": self.cookie_name,
                             "attributes": self._attributes}],
        }  # fmt: skip

    def _cookie_attributes(self) -> str:
        config = self.engine.config
        parts = [f"Path={config.cookie_path}"]
        if config.cookie_domain:
            parts.append(f"Domain={config.cookie_domain}")
        if config.cookie_secure:
            parts.append("Secure")
        if config.cookie_httponly:
            parts.append("HttpOnly")
        if config.cookie_samesite:
            parts.append(f"SameSite={config.cookie_samesite.capitalize()}")
        return "; ".join(parts)

    def _next_challenge(self, digest: str, key: BoundKey) -> tuple[str, tuple[str, str, float]]:
        challenge = secrets.token_urlsafe(32)
        header = f"{sf_string(challenge)};id={sf_string(key.id)}"
        return header, (
            challenge_key(challenge),
            f"{_REFRESH}:{digest}",
            self.lifetime + CHALLENGE_OVERLAP,
        )

    def _register_answer(
        self, request: DbscRequest, session: Session, key: BoundKey, plan: CommitPlan,
        next_header: str,
    ) -> DbscResponse:  # fmt: skip
        if plan.conflict:
            raise ProofError(403, "no_session", "the session was logged out meanwhile")
        self._event(EventKind.DBSC_REGISTERED, session, "device-bound key registered", alg=key.alg)
        # the session cookie (re-sent: its record changed) and the bound one; no-store
        # (SECURITY_HEADERS) stands for the plan's Cache-Control: private
        headers = [h for h in plan.headers() if h[0] != "Cache-Control"]
        headers.extend(plan.dbsc_headers)
        headers.append(("Content-Type", "application/json"))
        headers.append((CHALLENGE_HEADER, next_header))
        return DbscResponse(200, self._instructions(request, key), headers)

    def _register(self, request: DbscRequest) -> DbscResponse:
        session, digest, key, ckey = self._registration_step(request)
        self._check_challenge(self.engine.store.take_challenge(ckey), _REGISTER, digest)
        self.engine.load(session)
        plan = self._registered(session, key)
        self.engine.run(plan)
        next_header, challenge = self._next_challenge(digest, key)
        if not plan.conflict:
            self.engine.store.put_challenge(*challenge)
        return self._register_answer(request, session, key, plan, next_header)

    async def _aregister(self, request: DbscRequest) -> DbscResponse:
        session, digest, key, ckey = self._registration_step(request)
        self._check_challenge(await self.engine.store.atake_challenge(ckey), _REGISTER, digest)
        await self.engine.aload(session)
        plan = self._registered(session, key)
        await self.engine.arun(plan)
        next_header, challenge = self._next_challenge(digest, key)
        if not plan.conflict:
            await self.engine.store.aput_challenge(*challenge)
        return self._register_answer(request, session, key, plan, next_header)

    def _refresh_step(self, request: DbscRequest) -> tuple[Session, str | None, str | None]:
        session = self._precheck(request)
        raw_id = self._header(request, SESSION_ID_HEADERS)
        session_id = read_sf_string(raw_id) if raw_id is not None else None
        return session, self.engine.digest_of(session), session_id

    def _bound_key(self, session: Session, session_id: str | None) -> BoundKey | None:
        """The key of the loaded session, when it is the DBSC session the browser names;
        ``None`` tells the browser to end its DBSC session."""
        meta = session._meta
        if session.new or meta is None or meta.dbsc is None:
            return None
        key = BoundKey.from_text(meta.dbsc)
        if key is None or (session_id is not None and session_id != key.id):
            return None
        return key

    def _ended(self) -> DbscResponse:
        return DbscResponse(200, {"continue": False}, [("Content-Type", "application/json")])

    def _challenge_answer(self, header: str) -> DbscResponse:
        return DbscResponse(
            403, {"error": "challenge", "detail": "sign this challenge"},
            [("Content-Type", "application/json"), (CHALLENGE_HEADER, header)],
        )  # fmt: skip

    def _refresh_proof(self, request: DbscRequest, key: BoundKey) -> str | None:
        proof = self._proof(request)
        if proof is None:
            return None
        claims = verify_proof(proof, key.jwk, key.alg)
        if claims.get("sub") not in (None, key.id):
            raise ProofError(400, "wrong_session", "the proof names another DBSC session")
        self._check_audience(claims, request)
        return challenge_key(claims["jti"])

    def _refreshed(
        self, request: DbscRequest, session: Session, digest: str, key: BoundKey,
        next_header: str,
    ) -> DbscResponse:  # fmt: skip
        secure = self._secure or request.client.secure
        headers = [
            ("Content-Type", "application/json"),
            ("Set-Cookie", self.bound_cookie(digest, key, secure)),
            (CHALLENGE_HEADER, next_header),
        ]
        return DbscResponse(200, self._instructions(request, key), headers)

    def _refresh(self, request: DbscRequest) -> DbscResponse:
        session, digest, session_id = self._refresh_step(request)
        if digest is None:
            return self._ended()
        self.engine.load(session)
        key = self._bound_key(session, session_id)
        if key is None:
            return self._ended()
        next_header, challenge = self._next_challenge(digest, key)
        ckey = self._refresh_proof(request, key)
        if ckey is not None:
            taken = self.engine.store.take_challenge(ckey)
            if taken == f"{_REFRESH}:{digest}":
                self.engine.store.put_challenge(*challenge)
                return self._refreshed(request, session, digest, key, next_header)
        self.engine.store.put_challenge(*challenge)  # none, stale or used: sign a new one
        return self._challenge_answer(next_header)

    async def _arefresh(self, request: DbscRequest) -> DbscResponse:
        session, digest, session_id = self._refresh_step(request)
        if digest is None:
            return self._ended()
        await self.engine.aload(session)
        key = self._bound_key(session, session_id)
        if key is None:
            return self._ended()
        next_header, challenge = self._next_challenge(digest, key)
        ckey = self._refresh_proof(request, key)
        store = self.engine.store
        if ckey is not None:
            taken = await store.atake_challenge(ckey)
            if taken == f"{_REFRESH}:{digest}":
                await store.aput_challenge(*challenge)
                return self._refreshed(request, session, digest, key, next_header)
        await store.aput_challenge(*challenge)
        return self._challenge_answer(next_header)

    # -- answers and events ------------------------------------------------------------------
    @staticmethod
    def _error(status: int, code: str, detail: str) -> DbscResponse:
        headers = [("Content-Type", "application/json")]
        if status == 405:
            headers.append(("Allow", "POST"))
        return DbscResponse(status, {"error": code, "detail": detail}, headers)

    def _refused(self, exc: ProofError) -> None:
        if exc.status not in (405, 429):
            self.engine.events.emit(
                Event(EventKind.DBSC_REFUSED, None, f"{exc.code}: {exc.detail}", {"code": exc.code})
            )

    def _event(self, kind: EventKind, session: Session, reason: str, **detail: Any) -> None:
        if self.engine.events.wants(kind):
            self.engine.events.emit(Event(kind, session.handle, reason, detail))
