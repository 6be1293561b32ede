"""The keyring: HKDF sub-keys per secret, HMAC tags and AES-GCM sealing, with rotation.

Keys are given newest first. The newest signs and seals; every key verifies and opens, and
callers learn which key matched so that a cookie made with an old key can be re-issued.
Each secret is stretched by HKDF-SHA256 into independent sub-keys (signing, encryption,
fingerprinting), so no two purposes ever share key material.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

TAG_BYTES = 16
NONCE_BYTES = 12
_sha256 = hashlib.sha256


def b64encode(raw: bytes) -> str:
    """Unpadded base64url."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64decode(text: str) -> bytes | None:
    """Strict, canonical unpadded base64url: anything else (stray characters, non-zero
    padding bits, padding) gives ``None``, so one token never has two spellings."""
    if not text.isascii() or "=" in text:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    if b64encode(raw) != text:
        return None
    return raw


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"sessionkit/v1/" + purpose
    ).derive(secret)


class Keyring:
    """Sub-keys for each configured secret, newest first."""

    __slots__ = ("_aeads", "_fingerprint_keys", "_sign_keys")

    def __init__(self, secrets: Sequence[bytes]) -> None:
        if not secrets:
            raise ValueError("a keyring needs at least one secret")
        self._sign_keys = tuple(_derive(s, b"sign") for s in secrets)
        self._aeads = tuple(AESGCM(_derive(s, b"encrypt")) for s in secrets)
        self._fingerprint_keys = tuple(_derive(s, b"fingerprint") for s in secrets)

    def __len__(self) -> int:
        return len(self._sign_keys)

    # -- HMAC tags -------------------------------------------------------------------------
    def tag(self, message: bytes, index: int = 0) -> str:
        """A 128-bit HMAC-SHA256 tag of ``message`` under key ``index`` (base64url)."""
        mac = hmac.new(self._sign_keys[index], message, _sha256).digest()
        return b64encode(mac[:TAG_BYTES])

    def verify(self, message: bytes, tag: str) -> int | None:
        """The index of the key whose tag matches, compared in constant time, or ``None``."""
        if not tag.isascii():  # compare_digest refuses non-ASCII str; it is no tag of ours
            return None
        for index in range(len(self._sign_keys)):
            if hmac.compare_digest(self.tag(message, index), tag):
                return index
        return None

    # -- AEAD ------------------------------------------------------------------------------
    def seal(self, plaintext: bytes, associated: bytes) -> bytes:
        """AES-256-GCM under the newest key with a fresh random 96-bit nonce."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aeads[0].encrypt(nonce, plaintext, associated)

    def unseal(self, sealed: bytes, associated: bytes) -> tuple[bytes, int] | None:
        """``(plaintext, key index)`` when any key authenticates ``sealed``, else ``None``."""
        if len(sealed) < NONCE_BYTES + TAG_BYTES:
            return None
        nonce, body = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
        for index, aead in enumerate(self._aeads):
            try:
                return aead.decrypt(nonce, body, associated), index
            except InvalidTag:
                continue
        return None

    # -- fingerprints ----------------------------------------------------------------------
    def fingerprint(self, material: bytes, index: int = 0) -> str:
        """A keyed digest of client traits, so a leaked store does not reveal them."""
        mac = hmac.new(self._fingerprint_keys[index], material, _sha256).digest()
        return b64encode(mac[:TAG_BYTES])

    def fingerprint_matches(self, material: bytes, expected: str) -> int | None:
        """The index of the key under which ``material`` gives ``expected``, or ``None``."""
        if not expected.isascii():
            return None
        for index in range(len(self._fingerprint_keys)):
            if hmac.compare_digest(self.fingerprint(material, index), expected):
                return index
        return None
