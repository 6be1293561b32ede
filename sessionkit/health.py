"""Is the session store there, and how fast: ``engine.health()`` / ``await engine.ahealth()``.

One probe is one read of a session that cannot exist (a well-formed digest no ID hashes to
in practice): every store answers it the way it answers a request with an unknown cookie,
so it creates nothing, takes no lock and needs no permission a request does not need. Its
round-trip time is the store's, measured around that read; a local cache in front of the
store is passed (``load_fresh``). The server's version comes from the store, where it has
one. The result is data, never an exception: cheap enough for a load balancer's health
route, which answers 503 when ``ok`` is false.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from sessionkit.errors import SessionKitError, StoreUnavailable
from sessionkit.urls import mask_url

if TYPE_CHECKING:
    from sessionkit.stores.base import Store

#: The probe's digest: 64 hex digits, the shape of every digest, and the SHA-256 of no ID.
PROBE_DIGEST = "0" * 64


@dataclass(frozen=True)
class Health:
    """What one probe found. ``store``: the store's URL, password masked. ``latency_ms``:
    the probe's round trip (``None`` for the cookie store, which has no server). ``error``:
    why the store is not ``ok``, as the store said it (masked like every store message)."""

    ok: bool
    store: str
    latency_ms: float | None = None
    server_version: str | None = None
    error: str | None = None
    #: With a ``fallback`` store (docs/fallback.md): ``"primary"``, or ``"read_only"``
    #: while the fallback serves reads and changes are refused; ``None`` without one.
    #: ``ok`` is then true while either store answers (sessions can be read).
    mode: str | None = None
    #: The fallback store's own probe, with a ``fallback`` store.
    fallback: Health | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, for a health route."""
        return asdict(self)


def _said(exc: SessionKitError) -> str:
    """The store's message, without the part about a session (a probe touches none)."""
    if isinstance(exc, StoreUnavailable):
        advice = exc.hint or "Check that the server is running and reachable"
        return f"session store {exc.url} is unavailable: {str(exc.cause).rstrip('.')}. {advice}."
    return str(exc)


def _where(store: Store) -> str:
    return mask_url(store.url) if store.url else type(store).__name__


def _cookie(store: Store) -> Health | None:
    return Health(True, store.url or "cookie://") if store.client_side else None


def probe(store: Store) -> Health:
    """Probe ``store`` once (sync)."""
    from sessionkit.stores.fallback import FallbackStore

    if isinstance(store, FallbackStore):
        return store.health()
    quick = _cookie(store)
    if quick is not None:
        return quick
    started = time.perf_counter()
    try:
        store.load_fresh(PROBE_DIGEST)
        latency = (time.perf_counter() - started) * 1000
        version = store.server_version()
    except SessionKitError as exc:
        return Health(False, _where(store), error=_said(exc))
    return Health(True, _where(store), round(latency, 3), version)


async def aprobe(store: Store) -> Health:
    """Probe ``store`` once on the event loop (its async flavour)."""
    from sessionkit.stores.fallback import FallbackStore

    if isinstance(store, FallbackStore):
        return await store.ahealth()
    quick = _cookie(store)
    if quick is not None:
        return quick
    started = time.perf_counter()
    try:
        await store.aload_fresh(PROBE_DIGEST)
        latency = (time.perf_counter() - started) * 1000
        version = await store.aserver_version()
    except SessionKitError as exc:
        return Health(False, _where(store), error=_said(exc))
    return Health(True, _where(store), round(latency, 3), version)
