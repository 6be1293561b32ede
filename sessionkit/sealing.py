"""Encryption at rest for server-side records (``encrypt_records=True``).

Each stored value (the tagged-JSON text of one session key) is sealed on its own with
AES-256-GCM under the keyring's record sub-key (HKDF label ``sessionkit/v1/encrypt-records``,
distinct from the cookie store's), with a fresh 96-bit nonce. Sealing per value keeps what
the stores do: a changing request writes only the keys it changed, and two requests that
change different keys both survive (the key-level merge), on every store.

The associated data binds a value to its place: the record format, the session's digest
and the key's name. A value copied under another session, or under another key of the same
session, does not open. A sealed value is ``~1`` + base64(nonce + ciphertext + tag), in
the standard alphabet by ``binascii`` (the GCM tag authenticates the bytes: no spelling check
is needed): no JSON text starts with ``~``, so plain records written before encryption was turned on
are told apart and still read; the engine re-seals them (and values sealed with an older
key) when the session is next written.

What stays readable, and why: the key *names* (a store merges by them), and the record's
metadata (created, last seen, timeouts, user, device label: the user index, the sweep and
the session lists need them; the fingerprint is already a keyed digest).
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping

from sessionkit.crypto import Keyring

MARK = "~1"
_LABEL = b"sessionkit/record/1\x00"


class SealFailed(ValueError):
    """A sealed value that no configured key opens (tampered, moved, or its key is gone)."""


def _prefix(digest: str) -> bytes:
    return _LABEL + digest.encode("ascii") + b"\x00"


def _associated(prefix: bytes, key: str) -> bytes:
    return prefix + key.encode("utf-8", "surrogatepass")


def seal(keyring: Keyring, digest: str, key: str, text: str) -> str:
    """``text`` (one value's tagged JSON) sealed for ``key`` of the record ``digest``."""
    sealed = keyring.seal_record(text.encode("utf-8"), _associated(_prefix(digest), key))
    return MARK + binascii.b2a_base64(sealed, newline=False).decode("ascii")


def seal_items(keyring: Keyring, digest: str, items: Mapping[str, str]) -> dict[str, str]:
    """Every value of ``items`` sealed for the record ``digest``."""
    prefix, seal_record, encode = _prefix(digest), keyring.seal_record, binascii.b2a_base64
    return {
        key: MARK
        + encode(seal_record(text.encode("utf-8"), _associated(prefix, key)), newline=False).decode(
            "ascii"
        )
        for key, text in items.items()
    }


def is_sealed(value: str) -> bool:
    return value.startswith(MARK)


def text_of(value: str | bytes) -> str:
    """A stored value as text (a store may hand bytes over)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def open_items(
    keyring: Keyring, digest: str, items: Mapping[str, str], sealing: bool
) -> tuple[dict[str, str], frozenset[str]]:
    """The record's values as plain tagged-JSON texts, and the keys to write again when the
    session is next saved: values sealed under an older key, and (with ``sealing`` on) plain
    ones. Raises ``SealFailed`` when a sealed value does not open."""
    plain: dict[str, str] = {}
    stale: list[str] = []
    prefix, unseal = _prefix(digest), keyring.unseal_record
    for key, raw_value in items.items():
        value = text_of(raw_value)
        if not value.startswith(MARK):
            plain[key] = value
            if sealing:
                stale.append(key)
            continue
        try:
            raw = binascii.a2b_base64(value[2:])
        except binascii.Error:
            raw = b""
        opened = unseal(raw, _associated(prefix, key)) if raw else None
        if opened is None:
            raise SealFailed(f"a sealed value (key {key!r}) did not open with any configured key")
        text, index = opened
        plain[key] = text.decode("utf-8")
        if index or not sealing:  # an older key; or sealing is off: written plain next time
            stale.append(key)
    return plain, frozenset(stale)
