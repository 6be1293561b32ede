"""A protocol-level DBSC client for the tests: what a browser does, with a software key.

It reads ``Secure-Session-Registration`` and ``Secure-Session-Challenge`` headers, signs
proofs with PyJWT under a real key made with ``cryptography`` (EC P-256 by default, RSA on
request), and keeps the DBSC session (identifier, refresh URL, cached challenge) the
registration answer describes. Each adapter's tests drive it through their own test
client: ``post(path, headers) -> (status, headers, json)`` is all it needs.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

Post = Callable[[str, dict[str, str]], tuple[int, Mapping[str, str], Any]]

_PARAM = re.compile(r';\s*([a-z_]+)="((?:[^"\\]|\\.)*)"')


def parse_registration(header: str) -> dict[str, str]:
    """``(ES256 RS256);path="...";challenge="..."`` as ``{"algs": ..., "path": ...}``."""
    match = re.match(r"\(([^)]*)\)", header.strip())
    assert match, header
    out = {"algs": match.group(1)}
    out.update({k: v.replace('\\"', '"') for k, v in _PARAM.findall(header)})
    return out


def parse_challenge(header: str) -> tuple[str, str | None]:
    """``"c";id="s"`` as ``("c", "s")``."""
    match = re.match(r'\s*"((?:[^"\\]|\\.)*)"', header)
    assert match, header
    params = dict(_PARAM.findall(header))
    return match.group(1), params.get("id")


class DeviceKey:
    """A key pair as a browser's TPM would hold it, here in software."""

    def __init__(self, kind: str = "ec", curve: ec.EllipticCurve | None = None) -> None:
        self.kind = kind
        if kind == "ec":
            self.private: Any = ec.generate_private_key(curve or ec.SECP256R1())
            self.alg = "ES256"
        else:
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.alg = "RS256"

    def jwk(self) -> dict[str, Any]:
        algorithm = ECAlgorithm if self.kind == "ec" else RSAAlgorithm
        return json.loads(algorithm.to_jwk(self.private.public_key()))  # type: ignore[arg-type]

    def proof(
        self, challenge: str, aud: str, *, sub: str | None = None, alg: str | None = None,
        typ: str = "dbsc+jwt", key_in: str = "header", jwk: dict[str, Any] | None = None,
        signer: Any = None, padding: int = 0,
    ) -> str:  # fmt: skip
        """A DBSC proof: the JWK in the header (current draft) or the payload (``key``)."""
        payload: dict[str, Any] = {"aud": aud, "jti": challenge, "iat": int(time.time())}
        if sub is not None:
            payload["sub"] = sub
        if padding:
            payload["pad"] = "x" * padding
        headers: dict[str, Any] = {"typ": typ}
        key = self.jwk() if jwk is None else jwk
        if key_in == "header":
            headers["jwk"] = key
        elif key_in == "payload":
            payload["key"] = key
        return jwt.encode(payload, signer or self.private, algorithm=alg or self.alg,
                          headers=headers)  # fmt: skip


class Browser:
    """The DBSC side of one browser: register after a login, refresh when asked."""

    def __init__(self, post: Post, origin: str, key: DeviceKey | None = None) -> None:
        self.post = post
        self.origin = origin
        self.key = key or DeviceKey()
        self.session_id: str | None = None
        self.refresh_url: str | None = None
        self.cached: str | None = None
        self.instructions: dict[str, Any] | None = None

    def register(self, registration_header: str, **proof_options: Any) -> tuple[int, Any]:
        params = parse_registration(registration_header)
        assert self.key.alg in params["algs"].split()
        url = self.origin + params["path"]
        proof = self.key.proof(params["challenge"], url, **proof_options)
        status, headers, body = self.post(params["path"], {"Secure-Session-Response": f'"{proof}"'})
        if status == 200:
            self.instructions = body
            self.session_id = body["session_identifier"]
            self.refresh_url = body["refresh_url"]
            self._cache(headers)
        return status, body

    def _cache(self, headers: Mapping[str, str]) -> None:
        value = headers.get("secure-session-challenge")
        if value is not None:
            self.cached = parse_challenge(value)[0]

    def refresh(self, *, header: str = "Secure-Session-Response", id_header: str =
                "Sec-Secure-Session-Id") -> tuple[int, Any]:  # fmt: skip
        """What the browser does when the bound cookie is missing: sign the cached
        challenge (if any); on a 403 with a new challenge, sign that one and retry once."""
        assert self.refresh_url is not None and self.session_id is not None
        for _ in range(2):
            headers = {id_header: f'"{self.session_id}"'}
            if self.cached is not None:
                proof = self.key.proof(self.cached, self.origin + self.refresh_url,
                                       sub=self.session_id)  # fmt: skip
                headers[header] = f'"{proof}"'
            status, got, body = self.post(self.refresh_url, headers)
            self._cache(got)
            if status != 403:
                return status, body
        return status, body
