"""The keyring: HKDF sub-keys per secret, HMAC tags and AES-GCM sealing, with rotation.

Keys are given newest first. The newest signs and seals; every key verifies and opens, and
callers learn which key matched so that a cookie made with an old key can be re-issued.
Each secret is stretched by HKDF-SHA256 into independent sub-keys (signing, encryption,
fingerprinting), so no two purposes ever share key material.
"""

from __future__ import annotations

import binascii
import hmac
import os
import re
import sys
from collections.abc import Sequence
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sessionkit.cache import BoundedCache

TAG_BYTES = 16
NONCE_BYTES = 12

# pybase64 (``sessionkit[speed]``) decodes with SIMD, about three times faster than binascii;
# the output is identical, and the strictness rules below are ours either way.
_pybase64: Any
try:
    import pybase64 as _pybase64
except ImportError:  # pragma: no cover - exercised by forcing the fallback in the tests
    _pybase64 = None


_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = bytes.maketrans(b"-_+/=", b"+/***")
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
# The last character of an unpadded encoding may only use the bits that carry data: with
# 2 characters in the last group it encodes 4 bits, with 3 characters 2 bits.
_CANONICAL_LAST = {2: frozenset("AQgw"), 3: frozenset("AEIMQUYcgkosw048")}
_PADDING = {0: b"", 2: b"==", 3: b"="}
_PADDING_TEXT = {0: "", 2: "==", 3: "="}
_STRICT: dict[str, bool] = {"strict_mode": True} if sys.version_info >= (3, 11) else {}


def b64encode(raw: bytes) -> str:
    """Unpadded base64url."""
    if _pybase64 is not None:
        text: str = _pybase64.b64encode_as_string(raw, altchars=b"-_")
        return text.rstrip("=")
    return binascii.b2a_base64(raw, newline=False).translate(_TO_URLSAFE).rstrip(b"=").decode()


def b64decode(text: str) -> bytes | None:
    """Strict, canonical unpadded base64url: anything else (stray characters, non-zero
    padding bits, padding) gives ``None``, so one token never has two spellings."""
    rest = len(text) % 4
    if rest == 1 or (rest and text[-1] not in _CANONICAL_LAST[rest]):
        return None
    if _pybase64 is not None:
        # pybase64 also takes the standard alphabet's "+" and "/", and padding: not ours
        if "+" in text or "/" in text or "=" in text:
            return None
        try:
            raw: bytes = _pybase64.b64decode(
                text + _PADDING_TEXT[rest], altchars=b"-_", validate=True
            )
            return raw
        except ValueError:  # binascii.Error, or a str that is not ASCII
            return None
    try:
        # "+", "/" and "=" are not in our alphabet: they become "*", which the decoder refuses
        data = text.encode("ascii").translate(_FROM_URLSAFE) + _PADDING[rest]
        if not _STRICT and _B64URL.fullmatch(text) is None:
            return None
        return binascii.a2b_base64(data, **_STRICT)
    except (binascii.Error, UnicodeEncodeError):
        return None


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"sessionkit/v1/" + purpose
    ).derive(secret)


class Keyring:
    """Sub-keys for each configured secret, newest first."""

    __slots__ = (
        "_aeads", "_fingerprint_keys", "_fingerprints", "_record_aeads", "_sign_keys", "_signers",
        "opened_records",
    )  # fmt: skip

    def __init__(self, secrets: Sequence[bytes]) -> None:
        if not secrets:
            raise ValueError("a keyring needs at least one secret")
        self._sign_keys = tuple(_derive(s, b"sign") for s in secrets)
        # keyed once: a copy of a keyed HMAC skips the key schedule on every tag
        self._signers = tuple(hmac.new(key, digestmod="sha256") for key in self._sign_keys)
        self._aeads = tuple(AESGCM(_derive(s, b"encrypt")) for s in secrets)
        # records at rest (encrypt_records) under a sub-key of their own: a sealed record
        # value can never be passed off as a cookie, nor the reverse
        self._record_aeads = tuple(AESGCM(_derive(s, b"encrypt-records")) for s in secrets)
        self._fingerprint_keys = tuple(_derive(s, b"fingerprint") for s in secrets)
        # newest-key digests of recent clients
        self._fingerprints: BoundedCache[bytes, str] = BoundedCache()
        # the record values this keyring opened or sealed lately (sessionkit.sealing)
        self.opened_records: dict[str, dict[str, tuple[str, str, int]]] = {}

    def __len__(self) -> int:
        return len(self._sign_keys)

    # -- HMAC tags -------------------------------------------------------------------------
    def tag(self, message: bytes, index: int = 0) -> str:
        """A 128-bit HMAC-SHA256 tag of ``message`` under key ``index`` (base64url)."""
        mac = self._signers[index].copy()
        mac.update(message)
        return b64encode(mac.digest()[:TAG_BYTES])

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
        return _seal(self._aeads, plaintext, associated)

    def unseal(self, sealed: bytes, associated: bytes) -> tuple[bytes, int] | None:
        """``(plaintext, key index)`` when any key authenticates ``sealed``, else ``None``."""
        return _unseal(self._aeads, sealed, associated)

    def seal_record(self, plaintext: bytes, associated: bytes) -> bytes:
        """``seal`` under the newest record sub-key (``encrypt_records``)."""
        nonce = os.urandom(NONCE_BYTES)  # as _seal: inline, a call less per value written
        return nonce + self._record_aeads[0].encrypt(nonce, plaintext, associated)

    def unseal_record(self, sealed: bytes, associated: bytes) -> tuple[bytes, int] | None:
        """``unseal`` for a record value: ``(plaintext, key index)`` or ``None``."""
        return _unseal(self._record_aeads, sealed, associated)

    # -- fingerprints ----------------------------------------------------------------------
    def fingerprint(self, material: bytes, index: int = 0) -> str:
        """A keyed digest of client traits, so a leaked store does not reveal them."""
        if index == 0:
            return self._fingerprints.get(material, self._fingerprint_of)
        return self._fingerprint_of(material, index)

    def _fingerprint_of(self, material: bytes, index: int = 0) -> str:
        mac = hmac.digest(self._fingerprint_keys[index], material, "sha256")
        return b64encode(mac[:TAG_BYTES])

    def fingerprint_matches(self, material: bytes, expected: str) -> int | None:
        """The index of the key under which ``material`` gives ``expected``, or ``None``."""
        if not expected.isascii():
            return None
        for index in range(len(self._fingerprint_keys)):
            if hmac.compare_digest(self.fingerprint(material, index), expected):
                return index
        return None


def _seal(aeads: tuple[AESGCM, ...], plaintext: bytes, associated: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)  # per seal: no pool a fork or a VM snapshot could copy
    return nonce + aeads[0].encrypt(nonce, plaintext, associated)


def _unseal(
    aeads: tuple[AESGCM, ...], sealed: bytes, associated: bytes
) -> tuple[bytes, int] | None:
    if len(sealed) < NONCE_BYTES + TAG_BYTES:
        return None
    nonce, body = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
    for index, aead in enumerate(aeads):
        try:
            return aead.decrypt(nonce, body, associated), index
        except InvalidTag:
            continue
    return None
