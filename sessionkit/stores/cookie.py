"""CookieStore: the whole session in an AES-256-GCM encrypted cookie.

Format of the cookie value: ``"1" + base64url(nonce ‖ ciphertext ‖ tag)``. The plaintext
is tagged JSON ``[id, metadata, data]`` (metadata laid out as ``RecordMeta.to_list``);
the associated data binds the format version and the cookie name, so a token cannot be
replayed under another cookie.
Expiry lives inside the ciphertext. Needs no server, so it works across any number of
workers; the price is that a copied cookie stays valid until it expires (a stateless token
cannot be revoked), and the session must fit in 4096 bytes.
"""

from __future__ import annotations

from typing import Any

from sessionkit import serialization
from sessionkit.crypto import Keyring, b64decode, b64encode
from sessionkit.stores.base import RecordMeta, Store, Write

PREFIX = "1"


class CookieStore(Store):
    client_side = True
    url = "cookie://"

    @classmethod
    def from_url(cls, url: str, **options: Any) -> CookieStore:
        options.pop("clock", None)  # the engine's clock governs expiry inside the cookie
        return cls(**options)

    @staticmethod
    def associated_data(cookie_name: str) -> bytes:
        return b"sessionkit/cookie/1/" + cookie_name.encode("ascii")

    def seal(
        self, keyring: Keyring, associated: bytes, session_id: str, meta: RecordMeta,
        data: dict[str, Any],
    ) -> str:  # fmt: skip
        tagged = serialization.tag(data)
        payload = serialization.dumps_plain_bytes([session_id, meta.to_list(), tagged])
        return PREFIX + b64encode(keyring.seal(payload, associated))

    def unseal(self, keyring: Keyring, associated: bytes, value: str) -> tuple[bytes, int] | None:
        """Authenticate and decrypt; ``None`` for anything forged, truncated or foreign."""
        if len(value) < 40 or value[0] != PREFIX:
            return None
        raw = b64decode(value[1:])
        if raw is None:
            return None
        return keyring.unseal(raw, associated)

    @staticmethod
    def parse(plaintext: bytes) -> tuple[str, RecordMeta, dict[str, Any]]:
        """Raises ``ValueError`` if the authenticated payload is not a v1 session."""
        payload = serialization.loads(plaintext)
        if type(payload) is not list or len(payload) != 3:
            raise ValueError("not a sessionkit cookie payload")
        session_id, meta, data = payload
        if type(session_id) is not str or type(data) is not dict:
            raise ValueError("not a sessionkit cookie payload")
        return session_id, RecordMeta.from_sealed_list(meta), data

    # A cookie store keeps nothing server-side: the engine never calls these.
    def load(self, digest: str) -> None:
        return None

    def save(self, write: Write) -> bool:
        return True

    def delete(self, digest: str) -> None:
        return None

    def touch(self, digest: str, last_seen: int, ttl: float) -> bool:
        return True

    async def aload(self, digest: str) -> None:
        return None

    async def asave(self, write: Write) -> bool:
        return True

    async def adelete(self, digest: str) -> None:
        return None

    async def atouch(self, digest: str, last_seen: int, ttl: float) -> bool:
        return True
