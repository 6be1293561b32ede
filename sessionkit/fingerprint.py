"""A fingerprint of the client, to bind a session to it.

The fingerprint is deliberately coarse. The user agent is reduced to its words (browser and
platform family) with every version number removed, so a browser update does not log anyone
out; the address, when enabled, is cut to its /24 (IPv4) or /64 (IPv6) network so a phone
moving between towers of one carrier keeps its session.
"""

from __future__ import annotations

import re

from sessionkit.client import ClientInfo, network_of
from sessionkit.config import SessionConfig

_VERSION = re.compile(r"\d+(?:[._]\d+)*")
_BUILD = re.compile(r"\bBuild/\S+", re.IGNORECASE)
_SPACE = re.compile(r"\s+")


def normalise_user_agent(user_agent: str) -> str:
    """``Mozilla/5.0 (X11; Linux x86_64) ... Chrome/120.0.1`` → its words without versions."""
    text = _BUILD.sub("", user_agent[:512])
    text = _VERSION.sub("", text)
    return _SPACE.sub(" ", text).strip().lower()


def fingerprint_material(client: ClientInfo, config: SessionConfig) -> bytes | None:
    """The bytes a fingerprint is computed from, or ``None`` when binding is off."""
    if not (config.fingerprint_user_agent or config.fingerprint_ip):
        return None
    parts = []
    if config.fingerprint_user_agent:
        parts.append("ua:" + normalise_user_agent(client.user_agent))
    if config.fingerprint_ip:
        parts.append("ip:" + network_of(client.remote_addr, config))
    return "\n".join(parts).encode("utf-8", "replace")
