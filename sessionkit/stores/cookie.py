"""CookieStore: the whole session in an AES-256-GCM encrypted cookie.

Format of the cookie value: ``"2" + base64url(nonce ‖ ciphertext ‖ tag)``. The plaintext
is tagged JSON ``[id, metadata, data]`` (metadata laid out as ``RecordMeta.to_list``),
written by ``serialization.dumps_marked`` (its first byte says which JSON encoder wrote it);
format ``"1"`` cookies, from before that mark, are still read. The associated data binds
the format and the cookie name, so a token cannot be replayed under another cookie name
nor relabelled as another format (the prefix itself is outside the ciphertext).
Expiry lives inside the ciphertext. Needs no server, so it works across any number of
workers; the price is that a copied cookie stays valid until it expires (a stateless token
cannot be revoked), and the session must fit in 4096 bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sessionkit import serialization
from sessionkit.crypto import Keyring, b64decode, b64encode
from sessionkit.stores.base import RecordMeta, Store, Write

PREFIX = "2"
_FORMAT = serialization.FORMAT_VERSION
#: The first format: the same, but the plaintext carries no mark of its encoder.
PREFIX_V1 = "1"


class CookieStore(Store):
    client_side = True
    url = "cookie://"

    @classmethod
    def from_url(cls, url: str, **options: Any) -> CookieStore:
        options.pop("clock", None)  # the engine's clock governs expiry inside the cookie
        return cls(**options)

    @staticmethod
    def associated_data(cookie_name: str) -> dict[str, bytes]:
        """The AEAD associated data of each format, by prefix."""
        name = cookie_name.encode("ascii")
        return {prefix: b"sessionkit/cookie/%s/%s" % (prefix.encode(), name)
                for prefix in (PREFIX, PREFIX_V1)}  # fmt: skip

    def seal(
        self, keyring: Keyring, associated: Mapping[str, bytes], session_id: str,
        meta: RecordMeta, tagged: dict[str, Any],
    ) -> str:  # fmt: skip
        """The cookie value for ``tagged`` (the session data, already through
        ``serialization.tag``); ``associated`` as ``associated_data`` gives it."""
        payload = serialization.dumps_marked(  # [version, *meta]: RecordMeta.to_list, inline
            [session_id, [_FORMAT, *meta[:10]], tagged]  # never ``dbsc``: server-side only
        )
        return PREFIX + b64encode(keyring.seal(payload, associated[PREFIX]))

    def unseal(
        self, keyring: Keyring, associated: Mapping[str, bytes], value: str
    ) -> tuple[bytes, int] | None:
        """Authenticate and decrypt; ``None`` for anything forged, truncated or foreign."""
        if len(value) < 40:
            return None
        prefix = value[0]
        data = associated.get(prefix)
        if data is None:
            return None
        raw = b64decode(value[1:])
        if raw is None:
            return None
        opened = keyring.unseal(raw, data)
        if opened is not None and prefix == PREFIX_V1:  # no mark: the fully checked parse
            return b" " + opened[0], opened[1]
        return opened

    @staticmethod
    def parse(plaintext: bytes) -> tuple[str, RecordMeta, dict[str, Any]]:
        """``(id, metadata, data)``. Raises ``ValueError`` if the authenticated payload is
        not a sessionkit session."""
        payload = serialization.loads_marked(plaintext)
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
