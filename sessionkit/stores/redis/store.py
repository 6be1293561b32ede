"""RedisStore: sessions in Redis, a single server, a Cluster or behind Sentinel.

Each session is one HASH (layout in ``scripts.py``) under ``<prefix>{<digest>}``, with a
native TTL. Per-key fields let a save write only what changed, so two requests that change
different keys both survive; the session's key order is kept in the record (a HASH has
none, a dict does). Every store operation is one round trip: ``load`` is one ``HGETALL``;
``save`` (``CREATE`` or ``UPDATE``), ``touch`` and ``delete`` are one Lua script each
(``EVALSHA``, falling back to ``EVAL`` once after a server restart empties the script
cache). Every command goes through redis-py's public ``execute_command`` (or a pipeline),
so tracing (OpenTelemetry, Sentry, ddtrace), redis-py's metrics, its retry policy,
credential providers and connection-pool limits see and govern all session traffic. An
application can hand over its own clients (``client=``, ``async_client=``).

Retries and idempotence: redis-py retries a command once when its connection breaks, and
the reply of a command that was applied may be what was lost. So every write is safe to
apply twice: a CREATE carries a nonce and accepts the record it finds with its own nonce
(a rotation has deleted the old record by then: "taken" would log the user out); a
Cluster rotation leaves a tombstone with that nonce; UPDATE, TOUCH, DELETE and the index
scripts converge; a lock attempt finds the lock its own. A timeout is never retried.

What is atomic where:

- single server / Sentinel master: a save (its condition, merge, TTL, rotation away from the
  old ID and the user-index update) is one script, so it is all-or-nothing;
- Cluster: a script may touch keys of one hash slot only. A session key is addressed by its
  digest alone (a cookie carries nothing else), so it cannot share a slot with its user's
  index or with the ID it rotates away from. The conditional write and merge of one session
  stay atomic; a rotation is "tombstone the old record, and only if it existed create the
  new one" (never a resurrection; a crash in between loses that one session), and the user
  index is updated by separate commands. Listing a user's sessions checks every member and
  prunes the stale ones, so the index is exact when read.

The user index is a SET of digests under ``<prefix>user:{<sha256(user)>}``: user names never
appear in key names. Its TTL is kept at least as long as its longest-lived member, with a 2x
margin recorded in the session (``x``), so saves and touches extend it only once per TTL;
an abandoned index expires by itself.

Locks are ``<prefix>lock:{<digest>}`` holding the holder's token with a short *lease*
(``lock_lease``, 5 s), which the holder renews while it runs (up to the lock's ``ttl``): a
holder that dies or loses the store meanwhile blocks the session's locked routes for one
lease at most. An attempt carries its caller's deadline and takes nothing if Redis runs
it later (a stalled server working through its backlog); release is checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import secrets
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

from redis import exceptions as _rx

from sessionkit import ids, serialization
from sessionkit.doctor import Finding, skew_finding, version_finding
from sessionkit.errors import (
    ConfigError,
    LockTimeout,
    SessionLimitReached,
    StoreError,
    StoreUnavailable,
)
from sessionkit.ids import handle
from sessionkit.stores.base import (
    PollingLocks,
    Record,
    RecordMeta,
    SessionInfo,
    Store,
    Write,
    reject_record,
    require_digests,
)
from sessionkit.stores.redis import records
from sessionkit.stores.redis.audit import RedisAuditSink
from sessionkit.stores.redis.records import encoded_name, now_ms, order_of, pttl_of
from sessionkit.stores.redis.reseal import RESEAL_SCRIPT, reseal_args
from sessionkit.stores.redis.scripts import (
    ALL_SCRIPTS,
    CREATE_LIMITED_SCRIPT,
    CREATE_SCRIPT,
    DELETE_SCRIPT,
    INDEX_ADD_SCRIPT,
    LOCK_SCRIPT,
    ROTATE_OUT_SCRIPT,
    TOUCH_SCRIPT,
    UNLOCK_SCRIPT,
    UPDATE_LIMITED_SCRIPT,
    UPDATE_SCRIPT,
)
from sessionkit.stores.redis.url import RedisTarget, parse, target_of_client

log = logging.getLogger("sessionkit")

#: Failures that mean "the store cannot be reached right now" (not "the data is bad").
_DOWN: tuple[type[BaseException], ...] = (
    _rx.ConnectionError, _rx.TimeoutError, _rx.ClusterError, _rx.RedisClusterException,
    _rx.ReadOnlyError, _rx.OutOfMemoryError, _rx.TryAgainError, _rx.InvalidResponse, OSError,
)  # fmt: skip
_NO_URL = RedisTarget(url="redis://", kind="single", nodes=(("localhost", 6379),))
_RENEW_FAILS: tuple[type[BaseException], ...] = (StoreError, *_DOWN)
_BATCH = 200
_NOT_REDIS = "the server at this address does not speak the Redis protocol"
#: The advice for it, instead of "check that the server is running" (something is).
_NOT_REDIS_HINT = "Check the URL's host and port: is it another service, such as an HTTP server?"


def _cause(exc: BaseException) -> BaseException | str:
    if isinstance(exc, _rx.InvalidResponse):
        return f"{exc}: {_NOT_REDIS}"
    return exc


def _preload(load: Callable[[str], Any]) -> None:
    """SCRIPT LOAD every script (on a Cluster, redis-py sends it to every primary). Best
    effort: an ACL without SCRIPT LOAD still works, through the EVAL fallback."""
    for script in ALL_SCRIPTS:
        with contextlib.suppress(_rx.ResponseError):
            load(script.source)


class RedisStore(PollingLocks, Store):
    supports_user_index = True
    supports_lock = True
    supports_scan = True
    supports_session_limit = True
    supports_reseal = True
    supports_challenges = True

    #: ``max_sessions_per_user`` on a Cluster: how long a user's login lock survives a
    #: holder that died (seconds), and how long a login waits for it.
    user_lock_lease = 10.0
    user_lock_wait = 10.0

    #: How long a lock survives a holder that stopped renewing it (seconds).
    lock_lease = 5.0
    lock_poll_max = 0.05  # each try is a round trip: back off

    def __init__(
        self,
        target: RedisTarget | None = None,
        *,
        client: Any = None,
        async_client: Any = None,
        prefix: str | None = None,
    ) -> None:
        """A store on ``target`` (a parsed URL: ``RedisStore.from_url``), or on clients the
        application made: ``client`` (a ``redis.Redis``, ``RedisCluster`` or Sentinel
        ``master_for`` client) and/or ``async_client`` (their ``redis.asyncio`` twin), for
        TLS contexts, credential providers, ``unix://`` or RESP3. A store given only a sync
        client runs its async flavour in worker threads; given only an async client, it
        has no sync flavour: given clients, it never makes one of its own (a ``target``
        then adds only its prefix and record format). Clients handed over are the
        application's: ``close()`` leaves them open."""
        given = client if client is not None else async_client
        if given is not None:  # the clients say where; a URL may add the prefix and format
            described = target_of_client(given, prefix or (target or _NO_URL).prefix)
            if target is not None:
                described = dataclasses.replace(described, record_format=target.record_format)
            target = described
        elif target is None:
            raise ConfigError("store", "RedisStore needs a URL or a client=")
        elif prefix is not None:
            target = dataclasses.replace(target, prefix=prefix)
        self._buildable = given is None  # makes its own clients, from the URL
        self.target = target
        self.url = target.url
        self.prefix = target.prefix
        self.cluster = target.kind == "cluster"
        self._single = "0" if self.cluster else "1"
        self._ordered = target.record_format >= 2
        self._sync: Any = client
        self._async: Any = async_client
        self._own_sync, self._own_async = client is None, async_client is None
        self._sync_ready = False
        self._async_ready: Any = None  # the client whose scripts are loaded
        self._threaded = async_client is None and not self._buildable
        self._sync_helpers: list[Any] = []
        self._async_helpers: list[Any] = []
        self._async_loop: asyncio.AbstractEventLoop | None = None
        # loop -> the async generator that closes that loop's client when the loop ends
        self._keepers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )
        self._mutex = threading.Lock()
        self._held: dict[str, tuple[str, float, float]] = {}  # token -> digest, lease, until
        self._renewer: threading.Thread | None = None
        self._renew_wake = threading.Event()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisStore:
        """``options``: ``client=``, ``async_client=`` (clients to use instead of making
        them), ``clock=`` (ignored), ``prefix=`` and any query option (they win over the
        URL)."""
        options.pop("clock", None)  # Redis TTLs run on the server's own clock
        client, async_client = options.pop("client", None), options.pop("async_client", None)
        store = cls(parse(url, **options), client=client, async_client=async_client)
        return store

    # -- keys ------------------------------------------------------------------------------
    def key(self, digest: str) -> str:
        """The session's key; the hash tag ``{digest}`` spreads sessions over the slots."""
        return f"{self.prefix}{{{digest}}}"

    def index_key(self, user: str) -> str:
        return f"{self.prefix}user:{{{hashlib.sha256(user.encode()).hexdigest()}}}"

    def lock_key(self, digest: str) -> str:
        return f"{self.prefix}lock:{{{digest}}}"

    def challenge_key(self, key: str) -> str:
        """Where a one-use DBSC challenge lives (``put_challenge``)."""
        require_digests("RedisStore challenge", key)
        return f"{self.prefix}dbsc:{{{key}}}"

    # -- one-use challenges (DBSC): SET PX, then GETDEL (Redis 6.2+), atomic on the server
    def put_challenge(self, key: str, value: str, ttl: float) -> None:
        name = self.challenge_key(key)
        with self._guard():
            self._client().execute_command("SET", name, value, "PX", pttl_of(ttl))

    def take_challenge(self, key: str) -> str | None:
        name = self.challenge_key(key)
        with self._guard():
            got = self._client().execute_command("GETDEL", name)
        return got.decode() if isinstance(got, bytes) else got

    async def aput_challenge(self, key: str, value: str, ttl: float) -> None:
        if self._threaded:
            await Store.aput_challenge(self, key, value, ttl)
            return
        name = self.challenge_key(key)
        client = await self._aclient()
        with self._guard():
            await client.execute_command("SET", name, value, "PX", pttl_of(ttl))

    async def atake_challenge(self, key: str) -> str | None:
        if self._threaded:
            return await Store.atake_challenge(self, key)
        name = self.challenge_key(key)
        client = await self._aclient()
        with self._guard():
            got = await client.execute_command("GETDEL", name)
        return got.decode() if isinstance(got, bytes) else got

    def audit_sink(self) -> RedisAuditSink:
        """The audit trail in capped streams, one per user (``audit="store"``)."""
        sink = self.__dict__.get("_audit")
        if sink is None:
            sink = self.__dict__.setdefault("_audit", RedisAuditSink(self))
        return sink  # type: ignore[no-any-return]

    # -- clients ---------------------------------------------------------------------------
    def _down(self, exc: BaseException) -> StoreUnavailable:
        hint = _NOT_REDIS_HINT if isinstance(exc, _rx.InvalidResponse) else None
        return StoreUnavailable(self.url, _cause(exc), hint=hint)

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except _DOWN as exc:
            raise self._down(exc) from exc

    def _client(self) -> Any:
        """The sync client, made on first use. Its scripts are loaded on every node then,
        so no request pays a second round trip for a node's first EVALSHA."""
        if self._sync_ready:
            return self._sync
        with self._mutex, self._guard():
            if not self._sync_ready:
                client = self._sync
                if client is None:
                    if not self._buildable:
                        raise StoreError(
                            "this RedisStore was given only an async_client=; pass client= "
                            "too for synchronous use"
                        )
                    client, self._sync_helpers = self.target.sync_client()
                try:
                    _preload(lambda source: client.script_load(source))
                except BaseException:
                    if self._own_sync:  # not reachable yet: the next call starts afresh
                        for each in (client, *self._sync_helpers):
                            each.close()
                    raise
                self._sync, self._sync_ready = client, True
        return self._sync

    async def _aclient(self) -> Any:
        if not self._own_async:  # the application's client: used as it is
            if self._async_ready is not self._async:
                with self._guard():
                    for script in ALL_SCRIPTS:
                        with contextlib.suppress(_rx.ResponseError):
                            await self._async.script_load(script.source)
                self._async_ready = self._async
            return self._async
        loop = asyncio.get_running_loop()
        if self._async is not None and self._async_loop is loop:
            return self._async
        # asyncio connections belong to one event loop: a new loop gets a new client. A
        # Cluster client learns the slot map before its first command, once: concurrent
        # first commands would each rebuild it and drop each other's connections. It is
        # made in a worker thread: redis-py's client reads package metadata (file system
        # calls) and the first use imports redis.asyncio, which would block the event loop.
        client, helpers = await asyncio.to_thread(self.target.async_client)
        try:
            with self._guard():
                if self.cluster:
                    await client.initialize()
                for script in ALL_SCRIPTS:
                    with contextlib.suppress(_rx.ResponseError):
                        await client.script_load(script.source)
        except BaseException:
            await _aclose(client, helpers)
            raise
        if self._async is None or self._async_loop is not loop:
            self._async, self._async_helpers, self._async_loop = client, helpers, loop
            keeper = _close_when_loop_ends(client, helpers)
            await keeper.__anext__()
            self._keepers[loop] = keeper
        else:
            await _aclose(client, helpers)
        return self._async

    def server_version(self) -> str | None:
        client = self._client()
        with self._guard():
            return _redis_version(client.info("server"))

    async def aserver_version(self) -> str | None:
        if self._threaded:
            return await asyncio.to_thread(self.server_version)
        client = await self._aclient()
        with self._guard():
            return _redis_version(await client.info("server"))

    def diagnostics(
        self, *, fix: bool = False, progress: Callable[[int], None] | None = None
    ) -> list[Finding]:
        """Version (6.0+), eviction policy, clock skew and the user indexes."""
        client = self._client()
        with self._guard():
            found = [version_finding(_redis_version(client.info("server")), (6, 0), "Redis")]
            found.append(_eviction(_first(client.info("memory"))))
            before = time.time()
            seconds, micros = _first(client.time())
            found.append(skew_finding(int(seconds) + int(micros) / 1e6, before, time.time()))
            found.append(self._check_indexes(client, fix, progress))
        return found

    def _check_indexes(
        self, client: Any, fix: bool, progress: Callable[[int], None] | None
    ) -> Finding:
        """Every user index's members against the sessions they name (listing a user
        already skips and prunes stale ones; this sweeps the users nobody lists)."""
        pattern = records.glob_escape(self.prefix) + "user:{*}"
        checked = stale_count = 0
        for key in client.scan_iter(match=pattern, count=_BATCH):
            index = key.decode()
            members = [m.decode() for m in client.smembers(key)]
            pipe = client.pipeline(transaction=False)
            for digest in members:
                pipe.hget(self.key(digest), "u")
            owners = pipe.execute(raise_on_error=False)
            stale = [d for d, u in zip(members, owners, strict=True) if not records.owned(u, index)]
            checked += len(members)
            stale_count += len(stale)
            if stale and fix:
                client.srem(key, *stale)
            if progress is not None:
                progress(checked)
        if not stale_count:
            return Finding("ok", "user index", f"{checked} entries, all pointing at live sessions")
        if fix:
            return Finding("ok", "user index", f"removed {stale_count} stale of {checked} entries")
        return Finding(
            "warn", "user index",
            f"{stale_count} of {checked} entries point at sessions that are gone (harmless: "
            "listings skip them); `sessionkit doctor --fix STORE` removes them",
        )  # fmt: skip

    def close(self) -> None:
        with self._mutex:
            client, ready = self._sync, self._sync_ready
            self._sync_ready = False
            if self._own_sync:
                self._sync = None
        self._held.clear()
        self._renew_wake.set()
        if client is not None and ready and self._own_sync:
            for each in (client, *self._sync_helpers):
                each.close()
        self._sync_helpers = []

    async def aclose(self) -> None:
        self.close()
        if not self._own_async:
            return
        client, self._async = self._async, None
        loop = self._async_loop
        if client is not None and loop is asyncio.get_running_loop():
            keeper = self._keepers.pop(loop, None)
            if keeper is not None:  # its finally closes the client and its helpers
                await keeper.aclose()
            else:
                await _aclose(client, self._async_helpers)
        # a client of another loop that still runs is closed when that loop ends
        self._async_helpers = []

    # -- protocol: sync --------------------------------------------------------------------
    def load(self, digest: str) -> Record | None:
        client = self._sync if self._sync_ready else self._client()
        try:  # inline rather than _guard(): this is the hot path of every request
            reply = client.execute_command("HGETALL", f"{self.prefix}{{{digest}}}")
        except _DOWN as exc:
            raise self._down(exc) from exc
        except _rx.ResponseError as exc:  # WRONGTYPE: something foreign under our key
            reject_record(digest, f"not a session hash ({exc})")
            return None
        return records.decode(digest, reply)

    def save(self, write: Write) -> bool:
        client = self._sync if self._sync_ready else self._client()
        call = client.execute_command
        try:  # inline rather than _guard(): a contextmanager costs µs on the hot path
            if not write.create:
                keys, args = self._update_args(write)
                done = UPDATE_SCRIPT.run(call, keys, args)
                if type(done) is list:  # a Cluster: the user index needs our help
                    done, stale, update = done
                    if stale:
                        call("SREM", stale, write.digest)
                    if update:
                        self._index_add(call, args[2], write)
                return bool(done)
            nonce = secrets.token_hex(8) if self._ordered else ""
            if self.cluster and write.rotated_from is not None:
                rotated, old_index = ROTATE_OUT_SCRIPT.run(
                    call, [self.key(write.rotated_from)], [nonce or secrets.token_hex(8)]
                )
                if old_index:
                    call("SREM", old_index, write.rotated_from)
                if not rotated:
                    return False
            keys, args = self._create_args(write, nonce)
            done = CREATE_SCRIPT.run(call, keys, args)
            if done and self.cluster and args[2]:
                self._index_add(call, args[2], write)
            return bool(done)
        except _DOWN as exc:
            raise self._down(exc) from exc

    def _index_add(self, call: Callable[..., Any], index: str, write: Write) -> None:
        INDEX_ADD_SCRIPT.run(call, [index], [write.digest, 2 * pttl_of(write.ttl)])

    def delete(self, digest: str) -> None:
        call = self._client().execute_command
        with self._guard():
            _, index = DELETE_SCRIPT.run(call, [self.key(digest)], [self._single, digest])
            if index and self.cluster:
                call("SREM", index, digest)

    def touch(self, digest: str, last_seen: int, ttl: float) -> bool:
        call = self._client().execute_command
        pttl = pttl_of(ttl)
        try:
            done = TOUCH_SCRIPT.run(
                call, [self.key(digest)], [self._single, last_seen, pttl, now_ms(), digest]
            )
            if isinstance(done, bytes):  # Cluster: the user index needs a longer TTL
                INDEX_ADD_SCRIPT.run(call, [done.decode()], [digest, 2 * pttl])
        except _DOWN as exc:
            raise self._down(exc) from exc
        return bool(done)

    # -- protocol: async -------------------------------------------------------------------
    async def aload(self, digest: str) -> Record | None:
        if self._threaded:
            return await Store.aload(self, digest)
        client = await self._aclient()
        try:
            reply = await client.execute_command("HGETALL", f"{self.prefix}{{{digest}}}")
        except _DOWN as exc:
            raise self._down(exc) from exc
        except _rx.ResponseError as exc:
            reject_record(digest, f"not a session hash ({exc})")
            return None
        return records.decode(digest, reply)

    async def asave(self, write: Write) -> bool:
        if self._threaded:
            return await Store.asave(self, write)
        call = (await self._aclient()).execute_command
        try:
            if not write.create:
                keys, args = self._update_args(write)
                done = await UPDATE_SCRIPT.arun(call, keys, args)
                if type(done) is list:
                    done, stale, update = done
                    if stale:
                        await call("SREM", stale, write.digest)
                    if update:
                        await self._aindex_add(call, args[2], write)
                return bool(done)
            nonce = secrets.token_hex(8) if self._ordered else ""
            if self.cluster and write.rotated_from is not None:
                rotated, old_index = await ROTATE_OUT_SCRIPT.arun(
                    call, [self.key(write.rotated_from)], [nonce or secrets.token_hex(8)]
                )
                if old_index:
                    await call("SREM", old_index, write.rotated_from)
                if not rotated:
                    return False
            keys, args = self._create_args(write, nonce)
            done = await CREATE_SCRIPT.arun(call, keys, args)
            if done and self.cluster and args[2]:
                await self._aindex_add(call, args[2], write)
            return bool(done)
        except _DOWN as exc:
            raise self._down(exc) from exc

    async def _aindex_add(self, call: Callable[..., Any], index: str, write: Write) -> None:
        await INDEX_ADD_SCRIPT.arun(call, [index], [write.digest, 2 * pttl_of(write.ttl)])

    async def adelete(self, digest: str) -> None:
        if self._threaded:
            return await Store.adelete(self, digest)
        call = (await self._aclient()).execute_command
        with self._guard():
            _, index = await DELETE_SCRIPT.arun(call, [self.key(digest)], [self._single, digest])
            if index and self.cluster:
                await call("SREM", index, digest)

    async def atouch(self, digest: str, last_seen: int, ttl: float) -> bool:
        if self._threaded:
            return await Store.atouch(self, digest, last_seen, ttl)
        call = (await self._aclient()).execute_command
        pttl = pttl_of(ttl)
        try:
            done = await TOUCH_SCRIPT.arun(
                call, [self.key(digest)], [self._single, last_seen, pttl, now_ms(), digest]
            )
            if isinstance(done, bytes):
                await INDEX_ADD_SCRIPT.arun(call, [done.decode()], [digest, 2 * pttl])
        except _DOWN as exc:
            raise self._down(exc) from exc
        return bool(done)

    # -- max_sessions_per_user -----------------------------------------------------------
    # One server: the save and the limit are one script (CREATE_LIMITED / UPDATE_LIMITED).
    # A Cluster: the index, the session and its rivals live in different slots, so no
    # script can hold them all; a per-user login lock (in the index's slot) serialises the
    # user's logins instead: count, save, evict, under the lock (docs/session-limit.md).
    def save_limited(self, write: Write) -> list[str] | None:
        client = self._client()
        try:
            if self.cluster:
                return self._cluster_limited(client, write)
            script, keys, args = self._limited_args(write)
            return self._limited_reply(write, script.run(client.execute_command, keys, args))
        except _DOWN as exc:
            raise self._down(exc) from exc

    async def asave_limited(self, write: Write) -> list[str] | None:
        if self._threaded:
            return await asyncio.to_thread(self.save_limited, write)
        client = await self._aclient()
        try:
            if self.cluster:
                return await self._acluster_limited(client, write)
            script, keys, args = self._limited_args(write)
            reply = await script.arun(client.execute_command, keys, args)
            return self._limited_reply(write, reply)
        except _DOWN as exc:
            raise self._down(exc) from exc

    def _limited_args(self, write: Write) -> tuple[Any, list[str], list[Any]]:
        assert write.limit is not None and write.meta.user is not None
        if write.create:
            script = CREATE_LIMITED_SCRIPT
            keys, args = self._create_args(write, secrets.token_hex(8) if self._ordered else "")
        else:
            script = UPDATE_LIMITED_SCRIPT
            keys, args = self._update_args(write)
        args += (
            self.prefix, self.index_key(write.meta.user), write.limit.max_sessions,
            "1" if write.limit.refuse else "0", write.rotated_from or "",
        )  # fmt: skip
        return script, keys, args

    @staticmethod
    def _limited_reply(write: Write, reply: Any) -> list[str] | None:
        assert write.limit is not None
        if reply[0] == -1:
            raise SessionLimitReached(write.limit.max_sessions)
        if reply[0] == 0:
            return None
        return [member.decode() for member in reply[1:]]

    def _user_lock_key(self, user: str) -> str:
        # the index's hash tag: the same slot as the index it guards
        return f"{self.prefix}user-lock:{{{hashlib.sha256(user.encode()).hexdigest()}}}"

    def _others(self, write: Write, members: list[str]) -> list[str]:
        return [m for m in members if m != write.digest and m != write.rotated_from]

    def _cluster_limited(self, client: Any, write: Write) -> list[str] | None:
        user = write.meta.user
        assert write.limit is not None and user is not None
        call, index = client.execute_command, self.index_key(user)
        lock, token = self._user_lock_key(user), secrets.token_hex(16)
        args = [token, pttl_of(self.user_lock_lease), 0]
        deadline, pause = time.monotonic() + self.user_lock_wait, self.lock_poll
        while not LOCK_SCRIPT.run(call, [lock], args):
            if time.monotonic() >= deadline:
                raise LockTimeout(handle(write.digest), self.user_lock_wait)
            time.sleep(pause)
            pause = self._next_pause(pause)
        try:
            members = self._others(write, [m.decode() for m in client.smembers(index)])
            pipe = client.pipeline(transaction=False)
            for digest in members:
                pipe.hmget(self.key(digest), "m", "t", "u")
            rows = pipe.execute(raise_on_error=False) if members else []
            others, stale = records.seen_by(user, index, members, rows)
            evicted = write.limit.evictions(others)
            if not self.save(write):
                return None
            for digest in evicted:
                DELETE_SCRIPT.run(call, [self.key(digest)], ["0", digest])
            if evicted or stale:
                client.srem(index, *evicted, *stale)
            return evicted
        finally:
            UNLOCK_SCRIPT.run(call, [lock], [token])

    async def _acluster_limited(self, client: Any, write: Write) -> list[str] | None:
        user = write.meta.user
        assert write.limit is not None and user is not None
        call, index = client.execute_command, self.index_key(user)
        lock, token = self._user_lock_key(user), secrets.token_hex(16)
        args = [token, pttl_of(self.user_lock_lease), 0]
        deadline, pause = time.monotonic() + self.user_lock_wait, self.lock_poll
        while not await LOCK_SCRIPT.arun(call, [lock], args):
            if time.monotonic() >= deadline:
                raise LockTimeout(handle(write.digest), self.user_lock_wait)
            await asyncio.sleep(pause)
            pause = self._next_pause(pause)
        try:
            members = self._others(write, [m.decode() for m in await client.smembers(index)])
            pipe = client.pipeline(transaction=False)
            for digest in members:
                pipe.hmget(self.key(digest), "m", "t", "u")
            rows = await pipe.execute(raise_on_error=False) if members else []
            others, stale = records.seen_by(user, index, members, rows)
            evicted = write.limit.evictions(others)
            if not await self.asave(write):
                return None
            for digest in evicted:
                await DELETE_SCRIPT.arun(call, [self.key(digest)], ["0", digest])
            if evicted or stale:
                await client.srem(index, *evicted, *stale)
            return evicted
        finally:
            await UNLOCK_SCRIPT.arun(call, [lock], [token])

    # -- script arguments (layouts documented in scripts.py) ----------------------------
    def _update_args(self, write: Write) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of UPDATE: a merge (or ``replace``) into an existing record."""
        user = write.meta.user
        index = "" if user is None else self.index_key(user)
        keys = [f"{self.prefix}{{{write.digest}}}"]
        if not self.cluster:  # one server: declare the other keys the script may touch
            if index:
                keys.append(index)
            if write.previous_user is not None and write.previous_user != user:
                keys.append(self.index_key(write.previous_user))
        removed = () if write.replace else write.removed
        listed = () if write.replace else write.items
        args: list[Any] = [
            self._single, pttl_of(write.ttl), index, write.digest, now_ms(),
            "1" if write.replace else "0", 1 + len(removed), len(listed), len(removed), "t",
        ]  # fmt: skip
        args.extend("d:" + name for name in removed)
        args.extend(encoded_name(name) for name in listed)
        args.extend(encoded_name(name) for name in removed)
        args += ("v", "", "m", serialization.dumps_plain(write.meta.to_list()))
        if write.replace and self._ordered:
            args += ("f", "2", "o", order_of(write.items))
        for name, text in write.items.items():
            args += ("d:" + name, text)
        return keys, args

    def _create_args(self, write: Write, nonce: str) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of CREATE: a new record, maybe replacing the one it rotates from
        (single server; a Cluster tombstones that one first, in its own slot)."""
        user, pttl = write.meta.user, pttl_of(write.ttl)
        index = "" if user is None else self.index_key(user)
        keys = [self.key(write.digest)]
        old_key = ""
        if not self.cluster:
            if write.rotated_from is not None:
                old_key = self.key(write.rotated_from)
                keys.append(old_key)
            if index:
                keys.append(index)
            if write.previous_user is not None and write.previous_user != user:
                keys.append(self.index_key(write.previous_user))
        args: list[Any] = [
            self._single, pttl, index, write.digest, old_key, write.rotated_from or "", nonce,
            "v", 1, "m", serialization.dumps_plain(write.meta.to_list()),
        ]  # fmt: skip
        if self._ordered:
            args += ("n", nonce, "f", "2", "o", order_of(write.items))
        if index:
            args += ("u", index, "x", now_ms() + 2 * pttl)
        for name, text in write.items.items():
            args += ("d:" + name, text)
        return keys, args

    # -- user index ------------------------------------------------------------------------
    def user_sessions(self, user: str) -> list[SessionInfo]:
        client, index = self._client(), self.index_key(user)
        with self._guard():
            members = sorted(m.decode() for m in client.smembers(index))
            pipe = client.pipeline(transaction=False)
            for digest in members:
                pipe.hmget(self.key(digest), "m", "t", "u")
            rows = pipe.execute(raise_on_error=False)
            live, stale = records.sift(user, index, members, rows)
            if stale:
                client.srem(index, *stale)
        return live

    def user_digests(self, user: str) -> list[str]:
        client = self._client()
        with self._guard():
            return sorted(m.decode() for m in client.smembers(self.index_key(user)))

    def revoke_user(self, user: str, *, keep: str | None = None) -> int:
        return self._revoke(user, lambda digest: digest != keep)

    def revoke_handle(self, user: str, handle_: str) -> bool:
        return self._revoke(user, lambda digest: handle(digest) == handle_) > 0

    def _revoke(self, user: str, chosen: Callable[[str], bool]) -> int:
        client, index = self._client(), self.index_key(user)
        with self._guard():
            members = [m.decode() for m in client.smembers(index)]
            pipe = client.pipeline(transaction=False)
            for digest in members:
                pipe.hget(self.key(digest), "u")
            owners = pipe.execute(raise_on_error=False)
            doomed = [d for d, u in zip(members, owners, strict=True) if records.owned(u, index)]
            doomed = [d for d in doomed if chosen(d)]
            pipe = client.pipeline(transaction=False)
            for digest in doomed:
                pipe.delete(self.key(digest))
            deleted = pipe.execute() if doomed else []
            gone = [d for d, u in zip(members, owners, strict=True) if not records.owned(u, index)]
            if doomed or gone:
                client.srem(index, *doomed, *gone)
        return sum(1 for n in deleted if n)

    async def auser_sessions(self, user: str) -> list[SessionInfo]:
        if self._threaded:
            return await Store.auser_sessions(self, user)
        client, index = await self._aclient(), self.index_key(user)
        with self._guard():
            members = sorted(m.decode() for m in await client.smembers(index))
            pipe = client.pipeline(transaction=False)
            for digest in members:
                pipe.hmget(self.key(digest), "m", "t", "u")
            rows = await pipe.execute(raise_on_error=False)
            live, stale = records.sift(user, index, members, rows)
            if stale:
                await client.srem(index, *stale)
        return live

    async def arevoke_user(self, user: str, *, keep: str | None = None) -> int:
        return await self._arevoke(user, lambda digest: digest != keep)

    async def arevoke_handle(self, user: str, handle: str) -> bool:
        return await self._arevoke(user, lambda digest: ids.handle(digest) == handle) > 0

    async def _arevoke(self, user: str, chosen: Callable[[str], bool]) -> int:
        if self._threaded:
            return await asyncio.to_thread(self._revoke, user, chosen)
        client, index = await self._aclient(), self.index_key(user)
        with self._guard():
            members = [m.decode() for m in await client.smembers(index)]
            pipe = client.pipeline(transaction=False)
            for digest in members:
                pipe.hget(self.key(digest), "u")
            owners = await pipe.execute(raise_on_error=False)
            doomed = [d for d, u in zip(members, owners, strict=True) if records.owned(u, index)]
            doomed = [d for d in doomed if chosen(d)]
            pipe = client.pipeline(transaction=False)
            for digest in doomed:
                pipe.delete(self.key(digest))
            deleted = await pipe.execute() if doomed else []
            gone = [d for d, u in zip(members, owners, strict=True) if not records.owned(u, index)]
            if doomed or gone:
                await client.srem(index, *doomed, *gone)
        return sum(1 for n in deleted if n)

    # -- scan ------------------------------------------------------------------------------
    def scan(self) -> Iterator[RecordMeta]:
        """Every decodable session's metadata, via SCAN (every master on a Cluster)."""
        client = self._client()
        pattern = records.glob_escape(self.prefix) + "{*}"
        size = len(self.prefix) + 66
        with self._guard():
            batch: list[bytes] = []
            for key in client.scan_iter(match=pattern, count=500):
                if len(key) == size:
                    batch.append(key)
                if len(batch) >= _BATCH:
                    yield from self._metas(client, batch)
                    batch = []
            yield from self._metas(client, batch)

    def _metas(self, client: Any, keys: list[bytes]) -> Iterator[RecordMeta]:
        if not keys:
            return
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.hmget(key, "m", "t")
        for row in pipe.execute(raise_on_error=False):
            if isinstance(row, list) and row[0] is not None:
                with contextlib.suppress(ValueError, TypeError):
                    yield records.decode_meta(row[0], row[1])

    # -- reseal (sessionkit.stores.redis.reseal) and the digests for ``rekey`` ------------
    def reseal(self, digest: str, pairs: Mapping[str, tuple[str, str]]) -> int:
        call, key = self._client().execute_command, [self.key(digest)]
        with self._guard():
            return sum(int(RESEAL_SCRIPT.run(call, key, args)) for args in reseal_args(pairs))

    async def areseal(self, digest: str, pairs: Mapping[str, tuple[str, str]]) -> int:
        if self._threaded:
            return await Store.areseal(self, digest, pairs)
        call, key = (await self._aclient()).execute_command, [self.key(digest)]
        with self._guard():
            done = 0
            for args in reseal_args(pairs):
                done += int(await RESEAL_SCRIPT.arun(call, key, args))
            return done

    def scan_digests(self) -> Iterator[str]:
        """Every session key's digest, via SCAN (every master on a Cluster)."""
        client = self._client()
        pattern = records.glob_escape(self.prefix) + "{*}"
        start = len(self.prefix) + 1
        size = start + 65
        with self._guard():
            for key in client.scan_iter(match=pattern, count=500):
                if len(key) == size:
                    digest = key[start:-1].decode("ascii", "replace")
                    if ids.is_digest(digest):
                        yield digest

    # -- locks: a leased token, renewed while held --------------------------------------
    def _lease(self, ttl: float) -> float:
        return min(ttl, self.lock_lease)

    def _lock_args(self, token: str, lease: float, deadline: float) -> list[Any]:
        # the deadline in epoch ms: an attempt Redis runs after it (a stalled server working
        # through its backlog) takes nothing, so no lock is held for a caller that left
        return [token, pttl_of(lease), int(deadline * 1000) + 1]

    @contextlib.contextmanager
    def lock(self, digest: str, *, ttl: float = 30.0, wait: float = 10.0) -> Iterator[None]:
        token, lease = self._lock_token(digest), self._lease(ttl)
        started = time.monotonic()
        deadline, wall = started + wait, time.time() + wait
        pause, call = self.lock_poll, self._client().execute_command
        while True:
            with self._guard():
                args = self._lock_args(token, lease, wall)
                if LOCK_SCRIPT.run(call, [self.lock_key(digest)], args):
                    break
            left = deadline - time.monotonic()
            if left <= 0:
                raise LockTimeout(handle(digest), wait)
            time.sleep(min(pause, left))
            pause = self._next_pause(pause)
        self._held[token] = (digest, lease, time.monotonic() + ttl)
        if lease < ttl:
            self._start_renewer()
        try:
            yield
        finally:
            self._held.pop(token, None)
            self._unlock(digest, token)

    def _start_renewer(self) -> None:
        with self._mutex:
            if self._renewer is None:
                self._renewer = threading.Thread(
                    target=self._renew_loop, name="sessionkit-redis-locks", daemon=True
                )
                self._renewer.start()

    def _renew_loop(self) -> None:
        """Renew every held sync lock each third of its lease, until its ``ttl`` runs out
        or it is released; stop when none is held (deciding so under the mutex, so a lock
        taken meanwhile starts a new renewer)."""
        while True:
            with self._mutex:
                if not self._held:
                    self._renewer = None
                    return
            self._renew_wake.wait(self.lock_lease / 3)
            self._renew_wake.clear()
            now = time.monotonic()
            for token, (digest, lease, until) in list(self._held.items()):
                if now >= until:
                    self._held.pop(token, None)  # the hard cap: let the lease lapse
                    continue
                try:
                    kept = LOCK_SCRIPT.run(
                        self._client().execute_command, [self.lock_key(digest)],
                        [token, pttl_of(min(lease, until - now)), 0],
                    )  # fmt: skip
                except _RENEW_FAILS as exc:
                    log.warning("sessionkit: could not renew lock %s: %s", handle(digest), exc)
                    continue
                if not kept:
                    self._held.pop(token, None)
                    log.warning("sessionkit: lock %s lapsed while held", handle(digest))

    def _unlock(self, digest: str, token: str) -> None:
        try:
            with self._guard():
                UNLOCK_SCRIPT.run(self._client().execute_command, [self.lock_key(digest)],
                                  [token])  # fmt: skip
        except StoreUnavailable as exc:  # never mask the request's outcome: the lease ends
            log.warning("sessionkit: could not release lock %s: %s", handle(digest), exc)

    @contextlib.asynccontextmanager
    async def alock(
        self, digest: str, *, ttl: float = 30.0, wait: float = 10.0
    ) -> AsyncIterator[None]:
        if self._threaded:
            async with PollingLocks.alock(self, digest, ttl=ttl, wait=wait):
                yield
            return
        token, lease = self._lock_token(digest), self._lease(ttl)
        deadline, wall = time.monotonic() + wait, time.time() + wait
        pause, call = self.lock_poll, (await self._aclient()).execute_command
        key = self.lock_key(digest)
        while True:
            with self._guard():
                if await LOCK_SCRIPT.arun(call, [key], self._lock_args(token, lease, wall)):
                    break
            left = deadline - time.monotonic()
            if left <= 0:
                raise LockTimeout(handle(digest), wait)
            await asyncio.sleep(min(pause, left))
            pause = self._next_pause(pause)
        renewer = None
        if lease < ttl:
            renewer = asyncio.ensure_future(self._arenew(call, key, token, lease, ttl))
        try:
            yield
        finally:
            if renewer is not None:
                renewer.cancel()
            try:
                with self._guard():
                    await UNLOCK_SCRIPT.arun(call, [key], [token])
            except StoreUnavailable as exc:
                log.warning("sessionkit: could not release lock %s: %s", handle(digest), exc)

    async def _arenew(
        self, call: Callable[..., Any], key: str, token: str, lease: float, ttl: float
    ) -> None:
        until = time.monotonic() + ttl
        while True:
            await asyncio.sleep(lease / 3)
            left = until - time.monotonic()
            if left <= 0:
                return
            try:
                kept = await LOCK_SCRIPT.arun(call, [key], [token, pttl_of(min(lease, left)), 0])
            except _DOWN as exc:
                log.warning("sessionkit: could not renew a session lock: %s", exc)
                continue
            if not kept:
                log.warning("sessionkit: a session lock lapsed while held")
                return

    # PollingLocks' hooks, for a store that runs its async flavour in threads
    def _try_lock(self, digest: str, token: str, ttl: float) -> bool:
        with self._guard():
            args = [token, pttl_of(ttl), 0]
            return bool(LOCK_SCRIPT.run(self._client().execute_command,
                                        [self.lock_key(digest)], args))  # fmt: skip

    async def _atry_lock(self, digest: str, token: str, ttl: float) -> bool:
        return await asyncio.to_thread(self._try_lock, digest, token, ttl)

    async def _aunlock(self, digest: str, token: str) -> None:
        await asyncio.to_thread(self._unlock, digest, token)


def _first(reply: Any) -> Any:
    """A Cluster client answers some commands per node, as a dict of node -> reply (each a
    dict for INFO, a list for TIME): the first node's. A one-node reply has scalar values."""
    values = reply.values() if isinstance(reply, dict) else ()
    if values and all(isinstance(v, (dict, list, tuple)) for v in values):
        return next(iter(reply.values()))
    return reply


def _eviction(memory: Any) -> Finding:
    limit, policy = memory.get("maxmemory", 0), memory.get("maxmemory_policy", "noeviction")
    if not limit or policy == "noeviction":
        return Finding("ok", "eviction", f"maxmemory-policy {policy}: sessions are never evicted")
    return Finding(
        "warn", "eviction",
        f"maxmemory-policy {policy} with maxmemory {limit}: a full Redis evicts keys, live "
        "sessions among them (users logged out at random); set noeviction (a full Redis then "
        "refuses writes, reported as a store error) or give sessions a Redis of their own",
    )  # fmt: skip


def _redis_version(info: Any) -> str | None:
    """``redis_version`` from ``INFO server`` (on a Cluster: the first node's)."""
    info = _first(info)
    version = info.get("redis_version") if isinstance(info, dict) else None
    return str(version) if version is not None else None


async def _close_when_loop_ends(client: Any, helpers: list[Any]) -> AsyncIterator[None]:
    """Closes a loop's client when that loop ends. asyncio connections belong to one event
    loop, and a closed loop can no longer close them: each leaks its socket ("unclosed
    Connection"). An app under Starlette's TestClient, or anything else that runs
    ``asyncio.run`` more than once, gets a new loop per portal or per request. An async
    generator first iterated in a loop is closed by that loop's ``shutdown_asyncgens()``,
    which ``asyncio.run``, ``asyncio.Runner`` (anyio, uvicorn) call before closing it: the
    client is closed then, on its own loop."""
    try:
        yield
    finally:
        await _aclose(client, helpers)


async def _aclose(client: Any, helpers: list[Any]) -> None:
    for each in (client, *helpers):
        with contextlib.suppress(*_DOWN):
            await each.aclose()
