"""Session IDs: 256 bits from the OS CSPRNG, and the digests and handles that stand for them.

The raw ID only ever travels in the cookie. Stores key records by ``digest(id)`` (SHA-256),
so a leaked store or log yields nothing that works as a cookie; people and logs see
``handle(digest)``, a short prefix of the digest.
"""

from __future__ import annotations

import hashlib
import re
import secrets

ID_BYTES = 32
ID_LENGTH = 43  # base64url of 32 bytes, no padding
_ID_RE = re.compile(r"[A-Za-z0-9_-]{43}")
HANDLE_LENGTH = 16
_DIGEST_RE = re.compile(r"[0-9a-f]{64}")
_HANDLE_RE = re.compile(r"[0-9a-f]{16}")


def new_id() -> str:
    """A fresh session ID: 32 random bytes as 43 base64url characters."""
    return secrets.token_urlsafe(ID_BYTES)


def is_well_formed(session_id: str) -> bool:
    """True when ``session_id`` has the exact shape ``new_id`` produces."""
    return len(session_id) == ID_LENGTH and _ID_RE.fullmatch(session_id) is not None


def digest(session_id: str) -> str:
    """The store key of a session: hex SHA-256 of its ID (64 characters)."""
    return hashlib.sha256(session_id.encode("ascii")).hexdigest()


def handle(session_digest: str) -> str:
    """An opaque, short name for a session that is safe to show and log."""
    return session_digest[:HANDLE_LENGTH]


def is_digest(value: object) -> bool:
    """True only for the exact shape ``digest`` produces (64 lowercase hex characters):
    the one shape a store may turn into a file name or a key."""
    return type(value) is str and len(value) == 64 and _DIGEST_RE.fullmatch(value) is not None


def is_handle(value: object) -> bool:
    """True only for the exact shape ``handle`` produces (no ``%``, no empty prefix)."""
    return (
        type(value) is str
        and len(value) == HANDLE_LENGTH
        and _HANDLE_RE.fullmatch(value) is not None
    )
