"""Re-seal a whole store: ``SessionEngine.rekey()`` and ``sessionkit rekey STORE``.

After a key rotation, a session is re-sealed under the newest key when a request next
changes it; one that is only read, or not used at all, keeps its values under the old key,
which therefore cannot be retired until those sessions have expired. ``rekey`` walks every
record (``Store.scan_digests``) in bounded chunks and re-seals what is stale: values sealed
under an older key and, with ``encrypt_records`` on, plain values; with it off, it writes
sealed values back plain (how encryption is turned off over a store that holds sealed
values, while their keys are still configured).

Each record is read and written back with ``Store.reseal``, compare-and-set per value, so
a session a request changes meanwhile keeps that change: its value no longer matches the
one read, and is left as the request wrote it (counted in ``changed``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice

from sessionkit import sealing
from sessionkit.crypto import Keyring
from sessionkit.errors import StoreError
from sessionkit.stores.base import Store

#: records per chunk: the progress callback runs after each
CHUNK = 500


@dataclass
class RekeyReport:
    """What a ``rekey`` did, as running totals (``progress`` sees them after each chunk)."""

    #: records the scan named (live or not yet swept)
    seen: int = 0
    #: values written again: under the newest key, or plain with ``encrypt_records`` off
    resealed: int = 0
    #: records that had at least one value written again
    records: int = 0
    #: records a request changed between their read and their re-seal: the changed values
    #: were left as the request wrote them (the others were still re-sealed)
    changed: int = 0
    #: records gone (logged out, expired) between the scan and their read
    gone: int = 0
    #: records holding a sealed value that no configured key opens (or that do not
    #: decode): left untouched; the app reads them as no session
    unreadable: int = 0


def rekey_store(
    store: Store,
    keyring: Keyring,
    seal: bool,
    *,
    progress: Callable[[RekeyReport], None] | None = None,
    chunk: int = CHUNK,
) -> RekeyReport:
    """Re-seal every record of ``store`` (see the module's docstring)."""
    if store.client_side:
        raise StoreError("a cookie store keeps nothing to re-seal: its cookies are sealed whole")
    if not (store.supports_scan and store.supports_reseal):
        raise StoreError(
            f"{type(store).__name__} cannot enumerate its records and re-seal them in place "
            "(rekey needs scan_digests and reseal); its sessions are re-sealed as they change"
        )
    if chunk < 1:
        raise ValueError("chunk must be at least 1")
    report = RekeyReport()
    for digests in _chunks(store.scan_digests(), chunk):
        for digest in digests:
            _rekey_record(store, keyring, seal, digest, report)
        if progress is not None:
            progress(report)
    return report


def _rekey_record(
    store: Store, keyring: Keyring, seal: bool, digest: str, report: RekeyReport
) -> None:
    report.seen += 1
    record = store.load_fresh(digest)
    if record is None:
        report.gone += 1
        return
    items = {k: sealing.text_of(v) for k, v in record.items.items()}
    try:
        plain, stale = sealing.open_items(keyring, digest, items, seal)
    except sealing.SealFailed:
        report.unreadable += 1
        return
    if not stale:
        return
    texts = {k: plain[k] for k in stale}
    new = sealing.seal_items(keyring, digest, texts) if seal else texts
    pairs = {k: (items[k], new[k]) for k in stale}
    done = store.reseal(digest, pairs)
    report.resealed += done
    if done:
        report.records += 1
    if done < len(pairs):
        report.changed += 1


def _chunks(digests: Iterable[str], size: int) -> Iterator[list[str]]:
    it = iter(digests)
    while batch := list(islice(it, size)):
        yield batch
