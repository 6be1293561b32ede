"""MemcachedStore: sessions in memcached, with ``cas`` for conditional writes and merges.

Memcached is a cache: it evicts items when it runs out of memory and forgets everything on
restart, so sessions kept there can vanish (the user is logged out). It cannot enumerate
its keys, so there is no per-user index, no scan and no sweep (its own expiry and eviction
do the sweeping). What it does give: one round trip for a read, ``add`` for a create that
never overwrites, and ``gets``/``cas`` for writes that apply only to the record they read,
so a save never resurrects a session deleted meanwhile and concurrent changes to
different keys merge (a ``cas`` conflict re-reads and retries, a bounded number of times).

A load reads with ``gets`` (as cheap as ``get``) and remembers the record with its ``cas``
token, in a small bounded table per store; the save that follows, for the same digest,
merges into that record and writes with one ``cas``: a change costs two round trips, not
three. ``cas`` succeeds only if the stored value is still exactly the one loaded, so the
merge is as exact as a fresh ``gets`` would make it; when the token is missing (evicted,
used, another process loaded) or stale (``cas`` reports a conflict) the save re-reads with
``gets`` as before, and a record deleted meanwhile still makes ``cas`` fail.

Each record is one value: a versioned JSON document with the metadata list, the per-key
tagged-JSON texts, a version and its expiry by the store's clock (checked on every load,
whatever memcached's own TTL says). With several servers a key's server is chosen by
rendezvous hashing, and a server that is down raises ``StoreUnavailable`` for its keys
instead of quietly sending them elsewhere (which would log users out and back in at random).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

# pymemcache ships no type information (and typeshed has no stubs for it)
from pymemcache.client.base import PooledClient  # type: ignore[import-untyped]
from pymemcache.client.rendezvous import RendezvousHash  # type: ignore[import-untyped]
from pymemcache.exceptions import (  # type: ignore[import-untyped]
    MemcacheServerError,
    MemcacheUnknownError,
)

from sessionkit.errors import ConfigError, SessionTooLarge, StoreUnavailable
from sessionkit.ids import handle, is_digest
from sessionkit.records import Record, Write
from sessionkit.stores.base import (
    PollingLocks,
    Store,
    decode_document,
    encode_document,
    query_options,
    reject_record,
    require_digests,
)

FORMAT = "sessionkit.memcached"
DEFAULT_PORT = 11211
THIRTY_DAYS = 30 * 24 * 3600  # memcached reads a larger expiry as a Unix timestamp
TOMBSTONE = b"-"  # a record rotated away: reads as absent, blocks concurrent merges
_FREE_LOCK = b"- 0"
_PREFIX = re.compile(r"[\x21-\x7e]{0,100}")  # printable ASCII, no spaces: memcached keys
TOKENS = 1024  # loaded records kept for the save that follows (per store, oldest dropped)
log = logging.getLogger("sessionkit")
Server = tuple[str, int] | str  # (host, port) or a Unix socket path


def expire_for(ttl: float, now: float | None = None) -> int:
    """Memcached's ``exptime`` for a TTL in seconds: whole seconds, at least one (zero
    would mean "never"), and over 30 days an absolute Unix time, as memcached demands."""
    if not math.isfinite(ttl):
        return 0
    seconds = max(1, math.ceil(ttl))
    if seconds > THIRTY_DAYS:
        return int(time.time() if now is None else now) + seconds
    return seconds


def encode(record: Record, expires_at: float) -> bytes:
    """The stored memcached value: one JSON document (see ``encode_document``)."""
    return encode_document(record, expires_at, FORMAT)


def decode(raw: bytes) -> tuple[Record, float]:
    """Parse a stored memcached value, all or nothing; ``ValueError`` for anything not ours."""
    return decode_document(raw, FORMAT)


#: The commands that change the server's state (a lost reply leaves their outcome unknown).
_WRITES = frozenset({"add", "set", "cas", "delete", "touch"})
#: memcached's default largest item (``-I 1m``).
ITEM_LIMIT = 1024 * 1024


class MemcachedStore(PollingLocks, Store):
    supports_lock = True
    #: ``gets``/``cas`` make a compare-and-set per record, so values re-seal in place (on
    #: requests after a key rotation); with no way to enumerate keys, ``rekey`` cannot run
    supports_reseal = True
    supports_challenges = True

    def __init__(
        self,
        servers: Sequence[Server] = (("127.0.0.1", DEFAULT_PORT),),
        *,
        prefix: str = "sessionkit:",
        clock: Callable[[], float] = time.time,
        connect_timeout: float = 1.0,
        timeout: float = 1.0,
        max_pool_size: int | None = None,
        max_retries: int = 16,
        url: str | None = None,
    ) -> None:
        if not servers:
            raise ConfigError("store", "memcached needs at least one server")
        if _PREFIX.fullmatch(prefix) is None:
            raise ConfigError(
                "store", f"memcached prefix {prefix!r} must be at most 100 printable ASCII "
                "characters without spaces (memcached keys allow nothing else)"
            )  # fmt: skip
        if max_retries < 1:
            raise ConfigError("store", "max_retries must be at least 1")
        self.prefix = prefix
        self.max_retries = max_retries
        self._clock = clock
        names = [s if isinstance(s, str) else f"{s[0]}:{s[1]}" for s in servers]
        self.url = url or "memcached://" + ",".join(names)
        self._clients = {
            name: PooledClient(
                server, connect_timeout=connect_timeout, timeout=timeout, no_delay=True,
                max_pool_size=max_pool_size, default_noreply=False,
            )
            for name, server in zip(names, servers, strict=True)
        }  # fmt: skip
        self._only = self._clients[names[0]] if len(names) == 1 else None
        self._ring = RendezvousHash(nodes=names)
        # digest -> (record, expires_at, cas) from the latest load: see the module docstring
        self._tokens: dict[str, tuple[Record, float, bytes]] = {}
        self._tokens_lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> MemcachedStore:
        """``memcached://host[:port][,host2[:port2]...]`` or ``memcached:///path/to.sock``,
        with ``?prefix=...&timeout=...&connect_timeout=...&max_pool_size=...``."""
        parts = urlsplit(url)
        if "@" in parts.netloc:
            raise ConfigError(
                "store", "memcached URLs take no user or password (memcached's text protocol "
                "has no authentication); keep memcached on a private network instead"
            )  # fmt: skip
        servers: list[Server]
        if parts.netloc:
            servers = [_host_port(item, url) for item in parts.netloc.split(",")]
        elif parts.path:
            servers = [unquote(parts.path)]
        else:
            raise ConfigError("store", f"{url!r} names no server; e.g. memcached://127.0.0.1:11211")
        kinds = {
            "prefix": str, "timeout": float, "connect_timeout": float, "max_pool_size": int,
            "max_retries": int,
        }  # fmt: skip
        for name, value in query_options(url, kinds).items():
            options.setdefault(name, value)
        return cls(servers, url=url, **options)

    # -- the protocol --------------------------------------------------------------------
    def load(self, digest: str) -> Record | None:
        if not is_digest(digest):
            return None
        key = self.prefix + digest
        raw, cas = self._run("gets", key)
        entry = self._decode(digest, raw)
        if entry is None or entry[1] <= self._clock():
            return None
        record = entry[0]
        # the copy keeps what memcached holds, whatever the caller does with its record
        self._remember(digest, (record._replace(items=dict(record.items)), entry[1], cas))
        return record

    def save(self, write: Write) -> bool:
        digest, old = write.digest, write.rotated_from
        require_digests("MemcachedStore.save", digest, old)
        key = self.prefix + digest
        now = self._clock()
        expires_at, expire = now + write.ttl, expire_for(write.ttl)
        if write.create:
            value = encode(Record(dict(write.items), write.meta, 1), expires_at)
            if old is None:
                return bool(self._run("add", key, value, expire, noreply=False))
            return self._rotate(old, key, value, expire)

        def merged(current: Record) -> Record:
            return Record(write.items_over(current.items), write.meta, current.version + 1)

        return self._update(digest, merged, expires_at, expire)

    def delete(self, digest: str) -> None:
        if is_digest(digest):
            self._recall(digest)
            key = self.prefix + digest
            self._run("delete", key, noreply=False)

    def touch(self, digest: str, last_seen: int, ttl: float) -> bool:
        if not is_digest(digest):
            return False
        now = self._clock()
        return self._update(
            digest,
            lambda current: current._replace(meta=current.meta._replace(last_seen=last_seen)),
            now + ttl,
            expire_for(ttl),
        )

    def reseal(self, digest: str, pairs: Mapping[str, tuple[str, str]]) -> int:
        """``gets``, compare here, ``cas`` the values that still match (the record keeps its
        version and its expiry); a ``cas`` conflict reads again, as a save does."""
        if not is_digest(digest):
            return 0
        key = self.prefix + digest
        self._recall(digest)  # the record changes: a remembered token would only conflict
        for attempt in range(self.max_retries):
            if attempt:
                time.sleep(random.uniform(0, 0.0005 * attempt))
            raw, cas = self._run("gets", key)
            entry = self._decode(digest, raw)
            now = self._clock()
            if entry is None or entry[1] <= now:
                return 0
            record, expires_at = entry
            items = record.items
            same = {k: new for k, (old, new) in pairs.items() if items.get(k) == old}
            if not same:
                return 0
            value = encode(record._replace(items={**items, **same}), expires_at)
            expire = expire_for(expires_at - now, now)
            stored = self._run("cas", key, value, cas, expire, noreply=False)
            if stored is None:  # deleted between gets and cas
                return 0
            if stored:
                return len(same)
        raise StoreUnavailable(
            self.url, f"{self.max_retries} concurrent writes to one session kept conflicting"
        )

    def close(self) -> None:
        for client in self._clients.values():
            client.close()

    # -- route locks ---------------------------------------------------------------------
    lock_poll = 0.005

    async def _atry_lock(self, digest: str, token: str, ttl: float) -> bool:
        return await asyncio.to_thread(self._try_lock, digest, token, ttl)

    async def _aunlock(self, digest: str, token: str) -> None:
        await asyncio.to_thread(self._unlock, digest, token)

    def _try_lock(self, digest: str, token: str, ttl: float) -> bool:
        """``add`` takes a free lock. A held one names its expiry by the store's clock, so
        it lapses after ``ttl`` exactly (memcached's own TTL, in whole seconds, is only a
        backstop that cleans up); a lapsed or released one is taken over with ``cas``."""
        key = f"{self.prefix}lock:{digest}"
        now = self._clock()
        value = f"{token} {now + ttl!r}".encode("ascii")
        expire = expire_for(ttl) + 1
        if self._run("add", key, value, expire, noreply=False):
            return True
        raw, cas = self._run("gets", key)
        if raw is None or _lock_expiry(raw) > now:
            return False
        return bool(self._run("cas", key, value, cas, expire, noreply=False))

    def _unlock(self, digest: str, token: str) -> None:
        key = f"{self.prefix}lock:{digest}"
        mine = token.encode("ascii") + b" "
        try:
            for _ in range(self.max_retries):
                raw, cas = self._run("gets", key)
                if raw is None or not raw.startswith(mine):
                    return  # lapsed and taken over: not ours to release
                if self._run("cas", key, _FREE_LOCK, cas, 1, noreply=False):
                    return
        except StoreUnavailable as exc:  # never mask the request's outcome; the ttl frees it
            log.warning("sessionkit: could not release lock %s: %s", handle(digest), exc)

    # -- one-use challenges (DBSC): memcached has no GETDEL, so a take is ``gets`` then a
    # ``cas`` to a tombstone: the cas succeeds for exactly one of any concurrent takers ----
    def put_challenge(self, key: str, value: str, ttl: float) -> None:
        require_digests("MemcachedStore.put_challenge", key)
        data = f"{self._clock() + ttl!r} {value}".encode()
        self._run("set", f"{self.prefix}dbsc:{key}", data, expire_for(ttl), noreply=False)

    def take_challenge(self, key: str) -> str | None:
        require_digests("MemcachedStore.take_challenge", key)
        name = f"{self.prefix}dbsc:{key}"
        raw, cas = self._run("gets", name)
        if raw is None or raw == TOMBSTONE:
            return None
        if not self._run("cas", name, TOMBSTONE, cas, 60, noreply=False):
            return None  # another taker won
        expires, _, value = raw.decode("utf-8", "replace").partition(" ")
        try:
            return value if float(expires) > self._clock() else None
        except ValueError:
            return None

    # -- internals -----------------------------------------------------------------------
    def _run(self, command: str, key: str, *args: Any, **kwargs: Any) -> Any:
        """One memcached command on the server that owns ``key``; I/O failures become
        ``StoreUnavailable`` (the pool drops the broken connection, so the next call
        reconnects: the store works again as soon as the server is back)."""
        client = self._only or self._clients[self._ring.get_node(key)]
        try:
            return getattr(client, command)(key, *args, **kwargs)
        except MemcacheServerError as exc:
            if "too large" in str(exc) and args and isinstance(args[0], bytes):
                # the server is up and said so: a session problem, not an outage (a 503
                # with Retry-After would have clients retry a request that cannot succeed)
                raise SessionTooLarge(
                    len(args[0]),
                    ITEM_LIMIT,
                    f"the session record is {len(args[0])} bytes, over memcached's item "
                    f"size limit ({ITEM_LIMIT} bytes by default; memcached -I raises it), "
                    "so it was not saved. Store less in the session, or use a store without "
                    "that limit (redis://, sqlite:///, file:///).",
                ) from exc
            cause = exc if str(exc) else f"{type(exc).__name__} (connection closed)"
            raise StoreUnavailable(self.url, cause) from exc
        except (OSError, MemcacheUnknownError) as exc:
            cause = exc if str(exc) else f"{type(exc).__name__} (connection closed)"
            # a refused connection sent nothing; any other failure of a write may have
            # come after the server applied it
            sent = command in _WRITES and not isinstance(exc, ConnectionRefusedError)
            raise StoreUnavailable(self.url, cause, ambiguous=sent) from exc

    def _decode(self, digest: str, raw: bytes | None) -> tuple[Record, float] | None:
        if raw is None or raw == TOMBSTONE:
            return None
        try:
            return decode(raw)
        except ValueError as exc:
            reject_record(digest, f"unreadable memcached record ({exc})")
            return None

    def _remember(self, digest: str, token: tuple[Record, float, bytes]) -> None:
        with self._tokens_lock:
            tokens = self._tokens
            tokens.pop(digest, None)  # re-inserted last: the oldest are dropped first
            tokens[digest] = token
            if len(tokens) > TOKENS:
                del tokens[next(iter(tokens))]

    def _recall(self, digest: str) -> tuple[Record, float, bytes] | None:
        """The token of the latest load of ``digest``, used at most once."""
        with self._tokens_lock:
            return self._tokens.pop(digest, None)

    def _update(
        self, digest: str, change: Callable[[Record], Record], expires_at: float, expire: int
    ) -> bool:
        """Write with ``cas``: first on the record and token of the latest load, if there
        is one; then read with ``gets`` and retry on a conflict. ``False`` when the record
        is gone (deleted, rotated, expired): nothing is ever written back then."""
        key = self.prefix + digest
        token = self._recall(digest)
        if token is not None and token[1] > self._clock():
            value = encode(change(token[0]), expires_at)
            stored = self._run("cas", key, value, token[2], expire, noreply=False)
            if stored is not False:
                return bool(stored)  # True: written; None: deleted since the load
        for attempt in range(self.max_retries):
            if attempt:  # lost a race: step aside for a random moment so writers interleave
                time.sleep(random.uniform(0, 0.0005 * attempt))
            raw, cas = self._run("gets", key)
            entry = self._decode(digest, raw)
            if entry is None or entry[1] <= self._clock():
                return False
            value = encode(change(entry[0]), expires_at)
            stored = self._run("cas", key, value, cas, expire, noreply=False)
            if stored is not False:
                return bool(stored)  # True: written; None: deleted between gets and cas
        raise StoreUnavailable(
            self.url, f"{self.max_retries} concurrent writes to one session kept conflicting"
        )

    def _rotate(self, old: str, key: str, value: bytes, expire: int) -> bool:
        """Tombstone the old record with ``cas`` (so it must still exist, unchanged, and a
        concurrent save to it now fails), then ``add`` the new one and drop the old."""
        old_key = self.prefix + old
        self._recall(old)  # its token can never serve again: drop the copy of its data now
        for _ in range(self.max_retries):
            raw, cas = self._run("gets", old_key)
            entry = self._decode(old, raw)
            if entry is None or entry[1] <= self._clock():
                return False
            stored = self._run("cas", old_key, TOMBSTONE, cas, 60, noreply=False)
            if stored is None:
                return False
            if stored:
                break
        else:
            raise StoreUnavailable(self.url, "the rotated session kept changing meanwhile")
        if not self._run("add", key, value, expire, noreply=False):
            remaining = entry[1] - self._clock()
            self._run("set", old_key, raw, expire_for(remaining))
            return False
        self._run("delete", old_key, noreply=False)
        return True


def _lock_expiry(raw: bytes) -> float:
    """The moment a held lock lapses; a released or damaged one is already free."""
    try:
        return float(raw.partition(b" ")[2])
    except ValueError:
        return 0.0


def _host_port(item: str, url: str) -> tuple[str, int]:
    if item.startswith("["):
        host, _, rest = item[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else rest
    elif item.count(":") > 1:
        raise ConfigError("store", f"{url!r}: write IPv6 addresses in brackets, [::1]:11211")
    else:
        host, _, port_text = item.partition(":")
    if not host:
        raise ConfigError("store", f"{url!r}: a server has no host name")
    try:
        port = int(port_text) if port_text else DEFAULT_PORT
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise ConfigError("store", f"{url!r}: bad port {port_text!r}")
    return host, port
