"""RedisStore: sessions in Redis, a single server, a Cluster or behind Sentinel.

Each session is one HASH (layout in ``redis_scripts``) under ``<prefix>{<digest>}``, with a
native TTL. Per-key fields let a save write only what changed, so two requests that change
different keys both survive. Every store operation is one round trip: ``load`` is one
``HGETALL``; ``save`` (``CREATE`` or ``UPDATE``), ``touch`` and ``delete`` are one Lua script
each (``EVALSHA``, falling back to ``EVAL`` once after a server restart empties the script
cache). On a single server and behind Sentinel the commands go through a ``Lane``
(``redis_wire``): redis-py's own connections, without its per-command machinery, which
costs more client CPU than the session work itself. A Cluster uses redis-py's full client,
which routes by slot and follows redirections.

What is atomic where:

- single server / Sentinel master: a save (its condition, merge, TTL, rotation away from the
  old ID and the user-index update) is one script, so it is all-or-nothing;
- Cluster: a script may touch keys of one hash slot only. A session key is addressed by its
  digest alone (a cookie carries nothing else), so it cannot share a slot with its user's
  index or with the ID it rotates away from. The conditional write and merge of one session
  stay atomic; a rotation is "delete the old record, and only if it existed create the new
  one" (never a resurrection; a crash in between loses that one session), and the user
  index is updated by separate commands. Listing a user's sessions checks every member and
  prunes the stale ones, so the index is exact when read.

The user index is a SET of digests under ``<prefix>user:{<sha256(user)>}``: user names never
appear in key names. Its TTL is kept at least as long as its longest-lived member, with a 2x
margin recorded in the session (``x``), so saves and touches extend it only once per TTL;
an abandoned index expires by itself. Locks are ``SET <prefix>lock:{<digest>} <token> NX
PX`` with a checked release.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

from redis import exceptions as _rx

from sessionkit import ids, serialization
from sessionkit.errors import StoreUnavailable
from sessionkit.ids import handle
from sessionkit.stores import redis_records as records
from sessionkit.stores.base import (
    PollingLocks,
    Record,
    RecordMeta,
    SessionInfo,
    Store,
    Write,
    reject_record,
)
from sessionkit.stores.redis_records import now_ms, pttl_of
from sessionkit.stores.redis_scripts import (
    ALL_SCRIPTS,
    CREATE_SCRIPT,
    DELETE_SCRIPT,
    INDEX_ADD_SCRIPT,
    TOUCH_SCRIPT,
    UNLOCK_SCRIPT,
    UPDATE_SCRIPT,
)
from sessionkit.stores.redis_url import RedisTarget, parse
from sessionkit.stores.redis_wire import AsyncLane, Lane

#: Failures that mean "the store cannot be reached right now" (not "the data is bad").
_DOWN: tuple[type[BaseException], ...] = (
    _rx.ConnectionError, _rx.TimeoutError, _rx.ClusterError, _rx.RedisClusterException,
    _rx.ReadOnlyError, _rx.OutOfMemoryError, _rx.TryAgainError, OSError,
)  # fmt: skip
_BATCH = 200


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

    def __init__(self, target: RedisTarget) -> None:
        self.target = target
        self.url = target.url
        self.prefix = target.prefix
        self.cluster = target.kind == "cluster"
        self._single = "0" if self.cluster else "1"
        self._sync: Any = None
        self._async: Any = None
        # ``_call``/``_acall`` send one command: a Lane's (single server, Sentinel), or the
        # client's own ``execute_command`` (Cluster: routing and redirections).
        self._call: Callable[..., Any] | None = None
        self._acall: Callable[..., Any] | None = None
        self._lane: Lane | None = None
        self._alane: AsyncLane | None = None
        self._sync_helpers: list[Any] = []
        self._async_helpers: list[Any] = []
        self._async_loop: asyncio.AbstractEventLoop | None = None
        self._mutex = threading.Lock()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisStore:
        """``options``: ``clock=``, ``prefix=`` and any query option (they win over the URL)."""
        options.pop("clock", None)  # Redis TTLs run on the server's own clock
        return cls(parse(url, **options))

    # -- keys ------------------------------------------------------------------------------
    def key(self, digest: str) -> str:
        """The session's key; the hash tag ``{digest}`` spreads sessions over the slots."""
        return f"{self.prefix}{{{digest}}}"

    def index_key(self, user: str) -> str:
        return f"{self.prefix}user:{{{hashlib.sha256(user.encode()).hexdigest()}}}"

    def lock_key(self, digest: str) -> str:
        return f"{self.prefix}lock:{{{digest}}}"

    # -- clients ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except _DOWN as exc:
            raise StoreUnavailable(self.url, exc) from exc

    def _client(self) -> Any:
        """The sync client, made on first use. Its scripts are loaded on every node then,
        so no request pays a second round trip for a node's first EVALSHA."""
        client = self._sync
        if client is None:
            with self._mutex, self._guard():
                if self._sync is None:
                    client, self._sync_helpers = self.target.sync_client()
                    _preload(lambda source: client.script_load(source))
                    if self.cluster:
                        self._call = client.execute_command
                    else:
                        self._lane = Lane(client)
                        self._call = self._lane.call
                    self._sync = client
                client = self._sync
        return client

    def _connect(self) -> Callable[..., Any]:
        self._client()
        assert self._call is not None
        return self._call

    async def _aclient(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._async is not None and self._async_loop is loop:
            return self._async
        # asyncio connections belong to one event loop: a new loop gets a new client. A
        # Cluster client learns the slot map before its first command, once: concurrent
        # first commands would each rebuild it and drop each other's connections.
        with self._guard():
            client, helpers = self.target.async_client()
            if self.cluster:
                await client.initialize()
            for script in ALL_SCRIPTS:
                with contextlib.suppress(_rx.ResponseError):
                    await client.script_load(script.source)
        if self._async is None or self._async_loop is not loop:
            lane = None if self.cluster else AsyncLane(client)
            self._async, self._async_helpers, self._async_loop = client, helpers, loop
            self._alane = lane
            self._acall = client.execute_command if lane is None else lane.call
        else:
            await _aclose(client, helpers)
        return self._async

    async def _aconnect(self) -> Callable[..., Any]:
        if self._async is None or self._async_loop is not asyncio.get_running_loop():
            await self._aclient()
        assert self._acall is not None
        return self._acall

    def close(self) -> None:
        client, self._sync, self._call = self._sync, None, None
        lane, self._lane = self._lane, None
        if lane is not None:
            lane.close()
        for each in (client, *self._sync_helpers) if client is not None else ():
            each.close()
        self._sync_helpers = []

    async def aclose(self) -> None:
        self.close()
        client, self._async, self._acall = self._async, None, None
        lane, self._alane = self._alane, None
        if client is not None and self._async_loop is asyncio.get_running_loop():
            if lane is not None:
                with contextlib.suppress(*_DOWN):
                    await lane.aclose()
            await _aclose(client, self._async_helpers)
        self._async_helpers = []

    # -- protocol: sync --------------------------------------------------------------------
    def load(self, digest: str) -> Record | None:
        call = self._call or self._connect()
        try:  # inline rather than _guard(): this is the hot path of every request
            reply = call("HGETALL", f"{self.prefix}{{{digest}}}")
        except _DOWN as exc:
            raise StoreUnavailable(self.url, exc) from exc
        except _rx.ResponseError as exc:  # WRONGTYPE: something foreign under our key
            reject_record(digest, f"not a session hash ({exc})")
            return None
        return records.decode(digest, reply)

    def save(self, write: Write) -> bool:
        call = self._call or self._connect()
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
            if self.cluster and write.rotated_from is not None:
                deleted, old_index = DELETE_SCRIPT.run(
                    call, [self.key(write.rotated_from)], ["0", write.rotated_from]
                )
                if old_index:
                    call("SREM", old_index, write.rotated_from)
                if not deleted:
                    return False
            keys, args = self._create_args(write)
            done = CREATE_SCRIPT.run(call, keys, args)
            if done and self.cluster and args[2]:
                self._index_add(call, args[2], write)
            return bool(done)
        except _DOWN as exc:
            raise StoreUnavailable(self.url, exc) from exc

    def _index_add(self, call: Callable[..., Any], index: str, write: Write) -> None:
        INDEX_ADD_SCRIPT.run(call, [index], [write.digest, 2 * pttl_of(write.ttl)])

    def delete(self, digest: str) -> None:
        call = self._call or self._connect()
        with self._guard():
            _, index = DELETE_SCRIPT.run(call, [self.key(digest)], [self._single, digest])
            if index and self.cluster:
                call("SREM", index, digest)

    def touch(self, digest: str, last_seen: int, ttl: float) -> bool:
        call = self._call or self._connect()
        pttl = pttl_of(ttl)
        try:
            done = TOUCH_SCRIPT.run(
                call, [self.key(digest)], [self._single, last_seen, pttl, now_ms(), digest]
            )
            if isinstance(done, bytes):  # Cluster: the user index needs a longer TTL
                INDEX_ADD_SCRIPT.run(call, [done.decode()], [digest, 2 * pttl])
        except _DOWN as exc:
            raise StoreUnavailable(self.url, exc) from exc
        return bool(done)

    # -- protocol: async -------------------------------------------------------------------
    async def aload(self, digest: str) -> Record | None:
        call = await self._aconnect()
        try:
            reply = await call("HGETALL", f"{self.prefix}{{{digest}}}")
        except _DOWN as exc:
            raise StoreUnavailable(self.url, exc) from exc
        except _rx.ResponseError as exc:
            reject_record(digest, f"not a session hash ({exc})")
            return None
        return records.decode(digest, reply)

    async def asave(self, write: Write) -> bool:
        call = await self._aconnect()
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
            if self.cluster and write.rotated_from is not None:
                deleted, old_index = await DELETE_SCRIPT.arun(
                    call, [self.key(write.rotated_from)], ["0", write.rotated_from]
                )
                if old_index:
                    await call("SREM", old_index, write.rotated_from)
                if not deleted:
                    return False
            keys, args = self._create_args(write)
            done = await CREATE_SCRIPT.arun(call, keys, args)
            if done and self.cluster and args[2]:
                await self._aindex_add(call, args[2], write)
            return bool(done)
        except _DOWN as exc:
            raise StoreUnavailable(self.url, exc) from exc

    async def _aindex_add(self, call: Callable[..., Any], index: str, write: Write) -> None:
        await INDEX_ADD_SCRIPT.arun(call, [index], [write.digest, 2 * pttl_of(write.ttl)])

    async def adelete(self, digest: str) -> None:
        call = await self._aconnect()
        with self._guard():
            _, index = await DELETE_SCRIPT.arun(call, [self.key(digest)], [self._single, digest])
            if index and self.cluster:
                await call("SREM", index, digest)

    async def atouch(self, digest: str, last_seen: int, ttl: float) -> bool:
        call = await self._aconnect()
        pttl = pttl_of(ttl)
        try:
            done = await TOUCH_SCRIPT.arun(
                call, [self.key(digest)], [self._single, last_seen, pttl, now_ms(), digest]
            )
            if isinstance(done, bytes):
                await INDEX_ADD_SCRIPT.arun(call, [done.decode()], [digest, 2 * pttl])
        except _DOWN as exc:
            raise StoreUnavailable(self.url, exc) from exc
        return bool(done)

    # -- script arguments (layouts documented in redis_scripts) ----------------------------
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
        args: list[Any] = [
            self._single, pttl_of(write.ttl), index, write.digest, now_ms(),
            "1" if write.replace else "0", 1 + len(removed), "t",
        ]  # fmt: skip
        args.extend("d:" + name for name in removed)
        args += ("v", "", "m", serialization.dumps_plain(write.meta.to_list()))
        for name, text in write.items.items():
            args += ("d:" + name, text)
        return keys, args

    def _create_args(self, write: Write) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of CREATE: a new record, maybe replacing the one it rotates from
        (single server; a Cluster deletes that one first, in its own slot)."""
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
            self._single, pttl, index, write.digest, old_key, write.rotated_from or "",
            "v", 1, "m", serialization.dumps_plain(write.meta.to_list()),
        ]  # fmt: skip
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

    # -- locks -----------------------------------------------------------------------------
    # -- locks: SET NX PX with a token, released by a script that checks it ---------------
    lock_poll_max = 0.05  # each try is a round trip: back off

    def _try_lock(self, digest: str, token: str, ttl: float) -> bool:
        with self._guard():
            return bool(self._client().set(self.lock_key(digest), token, nx=True,
                                           px=pttl_of(ttl)))  # fmt: skip

    async def _atry_lock(self, digest: str, token: str, ttl: float) -> bool:
        client = await self._aclient()
        with self._guard():
            return bool(await client.set(self.lock_key(digest), token, nx=True, px=pttl_of(ttl)))

    def _unlock(self, digest: str, token: str) -> None:
        with self._guard():
            UNLOCK_SCRIPT.run(self._connect(), [self.lock_key(digest)], [token])

    async def _aunlock(self, digest: str, token: str) -> None:
        call = await self._aconnect()
        with self._guard():
            await UNLOCK_SCRIPT.arun(call, [self.lock_key(digest)], [token])


async def _aclose(client: Any, helpers: list[Any]) -> None:
    for each in (client, *helpers):
        with contextlib.suppress(*_DOWN):
            await each.aclose()
