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

Opening is remembered: the keyring keeps, for each (digest, key name) it sealed or opened
lately, the sealed text and its plain text, so a value no request changed since is not
decrypted again on every read (most of a session is read far more often than written). A
hit is exact: the same sealed text, for the same record and key, under the same keyring (so
under the same keys; a retired key means a new keyring), is the same plain text; a changed
value is another sealed text, and a value copied elsewhere sits under another digest or key
name, so either is opened (and refused) as before. The memo is bounded in records, in
values per record, and leaves big values out (``MEMO_RECORDS``, ``MEMO_VALUES``,
``MEMO_VALUE_CHARS``, counting the key name): at most about 6 MB per engine, of plain text
the process held anyway; a record the engine deletes or rotates away leaves it at once.

What stays readable, and why: the key *names* (a store merges by them), and the record's
metadata (created, last seen, timeouts, user, device label: the user index, the sweep and
the session lists need them; the fingerprint is already a keyed digest).
"""

from __future__ import annotations

import binascii
import contextlib
import threading
from collections.abc import Iterable, Mapping

from sessionkit.crypto import Keyring

MARK = "~1"
_LABEL = b"sessionkit/record/1\x00"
#: The opened-values memo's bounds: records, values per record, the longest sealed text.
MEMO_RECORDS = 1024
MEMO_VALUES = 8
MEMO_VALUE_CHARS = 256


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
    """Every value of ``items`` sealed for the record ``digest`` (and remembered as opened:
    the next read of them decrypts nothing)."""
    prefix, seal_record, encode = _prefix(digest), keyring.seal_record, binascii.b2a_base64
    known = _known(keyring, digest)
    sealed: dict[str, str] = {}
    for key, text in items.items():
        raw = seal_record(text.encode("utf-8"), prefix + key.encode("utf-8", "surrogatepass"))
        value = sealed[key] = MARK + encode(raw, newline=False).decode("ascii")
        _remember(known, key, (value, text, 0))
    return sealed


_NEW_RECORD = threading.Lock()  # the record bound holds under threads (misses only)


def _known(keyring: Keyring, digest: str) -> dict[str, tuple[str, str, int]]:
    """The memo's values of record ``digest`` (a new, empty one when it has none)."""
    memo = keyring.opened_records
    known = memo.get(digest)
    if known is None:
        with _NEW_RECORD:
            while len(memo) >= MEMO_RECORDS:  # the oldest records go
                # forget() takes records out without the lock: a change meanwhile is no
                # error, the loop looks again
                with contextlib.suppress(RuntimeError, StopIteration):
                    memo.pop(next(iter(memo)), None)
            known = memo.setdefault(digest, {})
    return known


def _remember(
    known: dict[str, tuple[str, str, int]], key: str, opened: tuple[str, str, int]
) -> None:
    if len(opened[0]) + len(key) > MEMO_VALUE_CHARS:  # the key name is kept too
        known.pop(key, None)
    elif len(known) < MEMO_VALUES or key in known:
        known[key] = opened


def forget(keyring: Keyring, digests: Iterable[str | None]) -> None:
    """Records that are gone (deleted, rotated away): their plain text leaves the memo."""
    memo = keyring.opened_records
    for digest in digests:
        if digest is not None:
            memo.pop(digest, None)


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
    prefix: bytes | None = None
    known = keyring.opened_records.get(digest)
    for key, raw_value in items.items():
        value = raw_value if type(raw_value) is str else text_of(raw_value)
        seen = known.get(key) if known is not None else None
        if seen is not None and seen[0] == value:  # opened (or sealed) here before
            _, plain[key], index = seen
        elif not value.startswith(MARK):
            plain[key] = value
            if sealing:
                stale.append(key)
            continue
        else:
            if prefix is None:
                prefix = _prefix(digest)
            plain[key], index = opened = _open(keyring, prefix, key, value)
            if known is None:
                known = _known(keyring, digest)
            _remember(known, key, (value, *opened))
        if index or not sealing:  # an older key; or sealing is off: written plain next time
            stale.append(key)
    return plain, frozenset(stale)


def _open(keyring: Keyring, prefix: bytes, key: str, value: str) -> tuple[str, int]:
    try:
        raw = binascii.a2b_base64(value[2:])
    except binascii.Error:
        raw = b""
    opened = keyring.unseal_record(raw, _associated(prefix, key)) if raw else None
    if opened is None:
        raise SealFailed(f"a sealed value (key {key!r}) did not open with any configured key")
    text, index = opened
    return text.decode("utf-8"), index
