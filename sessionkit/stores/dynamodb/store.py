"""DynamoDBStore: sessions in a DynamoDB table, through boto3's low-level client.

Every write is one conditional request (see ``items`` for the layout): a create puts the
item only where no live one is (``attribute_not_exists``), a save updates it only while it
exists and is live, so a logout or a rotation is never undone, and a merge sets and
removes the changed keys' map entries on the server, so concurrent requests that change
different keys both survive. A rotation is one ``TransactWriteItems``: the new item is put
and the old one deleted, only if it is still live, or neither happens. Expiry is enforced
on every load from ``expires_at``; the native TTL attribute ``ttl`` only cleans up (AWS
deletes expired items within days, not at the second), so there is no sweep to run.

The user index is a sparse global secondary index on ``user``. GSI reads are eventually
consistent (AWS: usually well under a second behind the table): a device list or a
"log out everywhere" may miss a session bound a moment ago. That is also why there is no
``max_sessions_per_user`` here: DynamoDB cannot count a user's sessions and write in one
atomic step through an index it reads late (docs/stores/dynamodb.md).

The async flavour runs this sync client in a worker thread (the base class's default): it
measured faster than aiobotocore on the same emulator (benchmarks/bench_dynamodb.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NoReturn

# boto3 and botocore ship no type information
import boto3  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import (  # type: ignore[import-untyped]
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
)

from sessionkit.doctor import Finding, Level
from sessionkit.errors import ConfigError, SessionTooLarge, StoreUnavailable
from sessionkit.ids import handle, is_digest
from sessionkit.records import Record, RecordMeta, SessionInfo, Write
from sessionkit.stores.base import (
    PollingLocks,
    Store,
    mask_url,
    reject_record,
    require_digests,
)
from sessionkit.stores.dynamodb import items as it
from sessionkit.stores.dynamodb.url import Target, parse, table_definition

log = logging.getLogger("sessionkit")

#: DynamoDB's answers that mean "too many requests": the request was refused, not applied
THROTTLED = frozenset({
    "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
    "Throttling", "TooManyRequestsException",
})  # fmt: skip
#: ... and the same as a cancelled transaction's reasons name it
_THROTTLED_REASONS = frozenset(
    {"ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"}
)
_CREDENTIALS = (
    "Check the AWS credentials this process uses and that its IAM policy allows the table's "
    "actions (docs/stores/dynamodb.md lists them)"
)
#: what to do about the answers that are not "the server is down"
_HINTS = {
    "AccessDeniedException": _CREDENTIALS, "UnrecognizedClientException": _CREDENTIALS,
    "InvalidSignatureException": _CREDENTIALS, "ExpiredTokenException": _CREDENTIALS,
    "ValidationException": "DynamoDB refused the request as malformed: is the table one "
    "that `sessionkit init` made? Otherwise this is a bug in sessionkit, please report it",
}  # fmt: skip
#: the operations that change the table (a reply lost after sending them is ambiguous)
_WRITES = frozenset({"put_item", "update_item", "delete_item", "transact_write_items"})
#: the operations that name their tables inside the request
_NO_TABLE = frozenset({"transact_write_items", "batch_get_item"})
#: DynamoDB's most items in one transaction
_TRANSACTION_LIMIT = 100
#: how many times a write retries a rival's concurrent transaction or version bump
_RETRIES = 8
#: ... and a login under ``max_sessions_per_user``, which loses to every other login of the
#: user that lands between its read of the guard and its transaction
_LOGIN_RETRIES = 50


class _ConditionFailed(Exception):
    """A write's condition did not hold: nothing was written. ``reasons``: for a
    transaction, each item's cancellation code, in order."""

    def __init__(self, reasons: list[str] | None = None) -> None:
        super().__init__(reasons)
        self.reasons = reasons or []


class DynamoDBStore(PollingLocks, Store):
    supports_user_index = True
    supports_lock = True
    supports_scan = True
    supports_session_limit = True
    supports_reseal = True
    supports_challenges = True

    # each try is a conditional PutItem (a request, billed as a write): back off further
    lock_poll = 0.005
    lock_poll_max = 0.25

    def __init__(
        self, target: Target, *, client: Any = None, clock: Callable[[], float] = time.time
    ) -> None:
        """A store on the table ``target`` names (``DynamoDBStore.from_url``). ``client``:
        a boto3 DynamoDB client the application made (its own credentials, retries, hooks);
        ``close()`` then leaves it open."""
        self.target = target
        self.url = target.url
        self.table = target.table
        self._clock = clock
        self._own_client = client is None
        self._client = client if client is not None else _make_client(target)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> DynamoDBStore:
        """``dynamodb://TABLE?region=...&endpoint=...``; ``options``: ``client=``,
        ``clock=`` and any query option (they win over the URL's)."""
        client = options.pop("client", None)
        clock = options.pop("clock", time.time)
        return cls(parse(url, **options), client=client, clock=clock)

    # -- the protocol --------------------------------------------------------------------
    def load(self, digest: str) -> Record | None:
        if not is_digest(digest):
            return None
        found = self._call("get_item", Key=it.key(digest), ConsistentRead=True).get("Item")
        if found is None:
            return None
        try:
            record, expires_at = it.decode(digest, found)
        except ValueError as exc:
            reject_record(digest, f"unreadable DynamoDB item ({exc})")
            return None
        return record if expires_at > self._clock() else None

    def save(self, write: Write) -> bool:
        require_digests("DynamoDBStore.save", write.digest, write.rotated_from)
        now = self._clock()
        if write.create:
            put = self._create_put(write, now)
            if write.rotated_from is None:
                return self._conditional("put_item", **put)
            return self._rotate(write, put, now)
        update = self._merge_update(write, now)
        if update is None:
            return self._rewrite(write)
        if self._conditional("update_item", **update):
            return True
        if not write.replace:
            self._report_unreadable(write.digest, now)
        return False

    def save_limited(self, write: Write) -> list[str] | None:
        """One ``TransactWriteItems``: the write, the user's guard item (its version
        must still be the one read, so two logins of one user never count the same
        sessions: the second retries) and the evictions. The count is of the user's
        sessions the index lists or the guard names (the guard holds those bound under
        the limit, which the eventually consistent index may not list yet), each read
        again with a consistent read to see that it is live."""
        assert write.limit is not None and write.meta.user is not None
        require_digests("DynamoDBStore.save_limited", write.digest, write.rotated_from)
        user = write.meta.user
        guard_key = it.key(it.guard_of(user))
        for attempt in range(_LOGIN_RETRIES):
            if attempt:  # another login of this user moved the guard: count again
                time.sleep(random.uniform(0, min(0.1, 0.005 * attempt)))
            now = self._clock()
            guard = self._call("get_item", Key=guard_key, ConsistentRead=True).get("Item")
            read, following, members = it.guard_state(guard)
            listed = {item[it.KEY]["S"] for item in self._user_items(user)}
            candidates = (listed | members) - {write.digest, write.rotated_from}
            others = self._live_others(user, candidates, now)
            doomed = write.limit.evictions(others)  # may refuse: nothing written
            parts = self._transaction_parts(write, now)
            if parts is None:
                return None
            own = len(parts)
            kept = {d for _, d in others} - set(doomed) | {write.digest}
            values: dict[str, Any] = {
                ":next": it.number(following),
                ":members": {"M": {d: it.number(1) for d in sorted(kept)}},
            }
            if read is not None:
                values[":read"] = read
            parts.append({"Update": {
                "TableName": self.table, "Key": guard_key,
                "UpdateExpression": "SET #v = :next, #mem = :members",
                "ConditionExpression": (
                    "attribute_not_exists(#v)" if read is None else "#v = :read"
                ),
                "ExpressionAttributeNames": {"#v": it.VERSION, "#mem": it.MEMBERS},
                "ExpressionAttributeValues": values,
            }})  # fmt: skip
            room = _TRANSACTION_LIMIT - len(parts)
            parts += [
                {"Delete": {"TableName": self.table, "Key": it.key(d)}} for d in doomed[:room]
            ]
            try:
                self._call(
                    "transact_write_items", TransactItems=parts,
                    ClientRequestToken=secrets.token_hex(16),
                )  # fmt: skip
            except _ConditionFailed as failed:
                if "ConditionalCheckFailed" in failed.reasons[:own]:
                    return None  # the write's own condition: the session is gone
                continue
            except _Conflict:
                continue
            for extra in doomed[room:]:  # only after the limit was lowered a long way
                self._call("delete_item", Key=it.key(extra))
            return doomed
        raise StoreUnavailable(
            self.url, f"{_LOGIN_RETRIES} concurrent logins of one user kept conflicting"
        )

    def _live_others(
        self, user: str, digests: set[str | None], now: float
    ) -> list[tuple[int, str]]:
        """``(last_seen, digest)`` of those of ``digests`` that are live sessions of
        ``user``, read consistently (BatchGetItem, 100 keys a request)."""
        wanted = sorted(d for d in digests if d is not None and is_digest(d))
        found: list[tuple[int, str]] = []
        for start in range(0, len(wanted), 100):
            keys: list[Any] = [it.key(d) for d in wanted[start : start + 100]]
            while keys:
                page = self._call("batch_get_item", RequestItems={self.table: {
                    "Keys": keys, "ConsistentRead": True,
                    "ProjectionExpression": "#k, #u, #x, #ls",
                    "ExpressionAttributeNames": {
                        "#k": it.KEY, "#u": it.USER, "#x": it.EXPIRES, "#ls": it.LAST_SEEN,
                    },
                }})  # fmt: skip
                for item in page.get("Responses", {}).get(self.table, ()):
                    entry = it.live_entry(item, user, now)
                    if entry is not None:
                        found.append(entry)
                keys = page.get("UnprocessedKeys", {}).get(self.table, {}).get("Keys", [])
                if keys:
                    time.sleep(0.01)
        return found

    def _create_put(self, write: Write, now: float) -> dict[str, Any]:
        item = it.full_item(write, dict(write.items), 1, now + write.ttl)
        self._check_size(item)
        return {
            "TableName": self.table, "Item": item, "ConditionExpression": it.ABSENT,
            "ExpressionAttributeNames": {"#v": it.VERSION, "#x": it.EXPIRES},
            "ExpressionAttributeValues": {":now": it.number(now)},
        }  # fmt: skip

    def _live_delete(self, digest: str, now: float) -> dict[str, Any]:
        return {
            "TableName": self.table, "Key": it.key(digest), "ConditionExpression": it.LIVE,
            "ExpressionAttributeNames": {"#v": it.VERSION, "#x": it.EXPIRES},
            "ExpressionAttributeValues": {":now": it.number(now)},
        }  # fmt: skip

    def _merge_update(self, write: Write, now: float) -> dict[str, Any] | None:
        """``UpdateItem``'s request for a save that is not a create; ``None`` when its
        expression would be longer than DynamoDB takes (then ``_rewrite_put``)."""
        update = it.merge_update(write, now)
        self._check_size({"pending": {"M": update["ExpressionAttributeValues"]}})
        if len(update["UpdateExpression"]) > it.EXPRESSION_LIMIT:
            return None
        return {"TableName": self.table, "Key": it.key(write.digest), **update}

    def _transaction_parts(self, write: Write, now: float) -> list[dict[str, Any]] | None:
        """The write as transaction items (``None``: the session is gone)."""
        if write.create:
            parts = [{"Put": self._create_put(write, now)}]
            if write.rotated_from is not None:
                parts.append({"Delete": self._live_delete(write.rotated_from, now)})
            return parts
        update = self._merge_update(write, now)
        if update is not None:
            return [{"Update": update}]
        put = self._rewrite_put(write)
        return None if put is None else [{"Put": put}]

    def delete(self, digest: str) -> None:
        if is_digest(digest):
            self._call("delete_item", Key=it.key(digest))

    def touch(self, digest: str, last_seen: int, ttl: float) -> bool:
        if not is_digest(digest):
            return False
        now = self._clock()
        return self._conditional(
            "update_item", Key=it.key(digest), UpdateExpression="SET #ls = :ls, #x = :x, #t = :t",
            ConditionExpression=it.LIVE,
            ExpressionAttributeNames={k: it.NAMES[k] for k in ("#v", "#ls", "#x", "#t")},
            ExpressionAttributeValues={
                ":ls": it.number(last_seen), ":x": it.number(now + ttl),
                ":t": it.ttl_of(now + ttl), ":now": it.number(now),
            },
        )  # fmt: skip

    def close(self) -> None:
        if self._own_client:
            self._client.close()

    # -- writes that are more than one request --------------------------------------------
    def _rotate(self, write: Write, put: dict[str, Any], now: float) -> bool:
        """Put the new item and delete the old one in one transaction, only while the old
        one is live (a rotation racing a logout must not bring the session back). The
        request token makes botocore's own resend after a lost reply idempotent."""
        old = write.rotated_from
        assert old is not None
        parts = [{"Put": put}, {"Delete": self._live_delete(old, now)}]
        for attempt in range(_RETRIES):
            try:  # a token per attempt: botocore's resend of one attempt reuses it
                self._call(
                    "transact_write_items", TransactItems=parts,
                    ClientRequestToken=secrets.token_hex(16),
                )  # fmt: skip
            except _ConditionFailed:
                return False
            except _Conflict:  # a rival transaction on one of the items: step aside
                time.sleep(random.uniform(0, 0.002 * (attempt + 1)))
                continue
            if write.meta.user is not None and write.previous_user == write.meta.user:
                self._swap_member(write.meta.user, old, write.digest)
            return True
        raise StoreUnavailable(self.url, "the rotated session kept changing meanwhile")

    def _swap_member(self, user: str, old: str, new: str) -> None:
        """A bound session moved to a new digest (``regenerate()``): where the user's
        guard names the old one, it names the new one instead, and its version moves, so
        a login counting meanwhile counts again. Nothing happens for a user the guard
        does not know (no limit has ever been kept for them)."""
        with contextlib.suppress(_ConditionFailed):
            self._call(
                "update_item", Key=it.key(it.guard_of(user)),
                UpdateExpression="SET #v = #v + :one, #mem.#new = :one REMOVE #mem.#old",
                ConditionExpression="attribute_exists(#mem.#old)",
                ExpressionAttributeNames={
                    "#v": it.VERSION, "#mem": it.MEMBERS, "#new": new, "#old": old,
                },
                ExpressionAttributeValues={":one": it.number(1)},
            )  # fmt: skip

    def _rewrite(self, write: Write) -> bool:
        """A merge of more keys than one update expression may name (4 KB of text): read
        the item, merge here and put it back on condition that its version is still the
        one read, retrying when a concurrent save bumped it."""
        for attempt in range(_RETRIES):
            if attempt:
                time.sleep(random.uniform(0, 0.002 * attempt))
            put = self._rewrite_put(write)
            if put is None:
                return False
            if self._conditional("put_item", **put):
                return True
        raise StoreUnavailable(
            self.url, f"{_RETRIES} concurrent writes to one session kept conflicting"
        )

    def _rewrite_put(self, write: Write) -> dict[str, Any] | None:
        """The whole item once ``write`` lands on the stored one, as a ``PutItem``
        conditional on the version read; ``None`` when there is no live session."""
        now = self._clock()
        found = self._call("get_item", Key=it.key(write.digest), ConsistentRead=True)
        if "Item" not in found:
            return None
        try:
            current, expires_at = it.decode(write.digest, found["Item"])
        except ValueError as exc:
            reject_record(write.digest, f"unreadable DynamoDB item, not saved ({exc})")
            return None
        if expires_at <= now:
            return None
        merged = _merged(write, current.items)
        item = it.full_item(write, merged, current.version + 1, now + write.ttl)
        self._check_size(item)
        return {
            "TableName": self.table, "Item": item,
            "ConditionExpression": "#v = :read AND #x > :now",
            "ExpressionAttributeNames": {"#v": it.VERSION, "#x": it.EXPIRES},
            "ExpressionAttributeValues": {
                ":read": it.number(current.version), ":now": it.number(now),
            },
        }  # fmt: skip

    def _report_unreadable(self, digest: str, now: float) -> None:
        """A merge whose condition failed while the item is live: its data is not what a
        merge can build on (a merge must not build on data nobody can read). A missing or
        expired item is the ordinary no-resurrection case, not a security event."""
        found = self._call("get_item", Key=it.key(digest), ConsistentRead=True).get("Item")
        if found is None:
            return
        try:
            if float(found[it.EXPIRES]["N"]) <= now:
                return
        except (KeyError, TypeError, ValueError):
            pass
        reject_record(digest, "stored DynamoDB item is corrupted; the save was refused")

    def _check_size(self, item: dict[str, Any]) -> None:
        size = it.item_size(item)
        if size > it.ITEM_LIMIT:
            raise _too_large(size)

    # -- per-user index ------------------------------------------------------------------
    def _user_items(self, user: str) -> list[dict[str, Any]]:
        """The user's entries in the user index (eventually consistent), live or not."""
        found: list[dict[str, Any]] = []
        request: dict[str, Any] = {
            "IndexName": self.target.user_index, "KeyConditionExpression": "#u = :u",
            "ExpressionAttributeNames": {"#u": it.USER},
            "ExpressionAttributeValues": {":u": it.string(it.user_key(user))},
        }  # fmt: skip
        while True:
            page = self._call("query", **request)
            found += [i for i in page.get("Items", ()) if is_digest(i[it.KEY]["S"])]
            if "LastEvaluatedKey" not in page:
                return found
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _live(self, user: str) -> list[tuple[str, dict[str, Any]]]:
        now = self._clock()
        out = []
        for item in self._user_items(user):
            try:
                live = float(item[it.EXPIRES]["N"]) > now
            except (KeyError, TypeError, ValueError):
                live = True  # listed, so that it can be revoked
            if live:
                out.append((item[it.KEY]["S"], item))
        return sorted(out, key=lambda pair: pair[0])

    def user_sessions(self, user: str) -> list[SessionInfo]:
        return [_info(user, digest, item) for digest, item in self._live(user)]

    def user_digests(self, user: str) -> list[str]:
        return [digest for digest, _ in self._live(user)]

    def revoke_user(self, user: str, *, keep: str | None = None) -> int:
        revoked = 0
        for item in self._user_items(user):
            digest = item[it.KEY]["S"]
            if digest != keep and self._delete_of(user, digest):
                revoked += 1
        return revoked

    def revoke_handle(self, user: str, handle_: str) -> bool:
        for item in self._user_items(user):
            digest = item[it.KEY]["S"]
            if handle(digest) == handle_:
                return self._delete_of(user, digest)
        return False

    def _delete_of(self, user: str, digest: str) -> bool:
        """Delete the session only while it is still bound to ``user`` (the index may be a
        moment behind a rebinding)."""
        return self._conditional(
            "delete_item", Key=it.key(digest), ConditionExpression="#u = :u",
            ExpressionAttributeNames={"#u": it.USER},
            ExpressionAttributeValues={":u": it.string(it.user_key(user))},
        )  # fmt: skip

    # -- scan ----------------------------------------------------------------------------
    def scan(self) -> Iterator[RecordMeta]:
        """Every session item's metadata, a page (1 MB) per request; locks are skipped."""
        request: dict[str, Any] = {
            "FilterExpression": "attribute_exists(#m)", "ProjectionExpression": "#k, #m, #ls",
            "ExpressionAttributeNames": {"#k": it.KEY, "#m": it.META, "#ls": it.LAST_SEEN},
        }  # fmt: skip
        while True:
            page = self._call("scan", **request)
            for item in page.get("Items", ()):
                meta = _meta(item)
                if meta is not None:
                    yield meta
            if "LastEvaluatedKey" not in page:
                return
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # -- re-seal (compare-and-set per key, one conditional update per record) ------------
    def reseal(self, digest: str, pairs: Mapping[str, tuple[str, str]]) -> int:
        """Read the record, then one UpdateItem setting ``new`` on every key that still
        holds ``old``, conditional on each of those values and on the record being live;
        when the condition fails (a key changed meanwhile) read again and retry with the
        keys that still match, so a changed key is skipped and the others re-sealed."""
        if not is_digest(digest) or not pairs:
            return 0
        for _ in range(8):
            now = self._clock()
            found = self._call("get_item", Key=it.key(digest), ConsistentRead=True).get("Item")
            if found is None or it.LAYOUT not in found:
                return 0
            try:
                _, expires_at = it.decode(digest, found)
            except ValueError:
                return 0
            if expires_at <= now:
                return 0
            data = found[it.DATA]["M"]
            matched = [
                (n, old, new) for n, (old, new) in pairs.items()
                if data.get("k" + n, {}).get("S") == old
            ]  # fmt: skip
            if not matched:
                return 0
            names: dict[str, str] = {"#v": it.VERSION, "#x": it.EXPIRES, "#d": it.DATA}
            values: dict[str, Any] = {":now": it.number(now)}
            sets, conditions = [], ["attribute_exists(#v)", "#x > :now"]
            for i, (name, old, new) in enumerate(matched):
                names[f"#k{i}"] = "k" + name
                values[f":o{i}"], values[f":n{i}"] = it.string(old), it.string(new)
                sets.append(f"#d.#k{i} = :n{i}")
                conditions.append(f"#d.#k{i} = :o{i}")
            if self._conditional(
                "update_item", Key=it.key(digest), UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression=" AND ".join(conditions),
                ExpressionAttributeNames=names, ExpressionAttributeValues=values,
            ):  # fmt: skip
                return len(matched)
        return 0

    def scan_digests(self) -> Iterator[str]:
        """Every session item's digest (locks, guards and challenges skipped), paginated."""
        request: dict[str, Any] = {
            "FilterExpression": "attribute_exists(#m)", "ProjectionExpression": "#k",
            "ExpressionAttributeNames": {"#k": it.KEY, "#m": it.META},
        }  # fmt: skip
        while True:
            page = self._call("scan", **request)
            for item in page.get("Items", ()):
                digest = item.get(it.KEY, {}).get("S")
                if isinstance(digest, str) and is_digest(digest):
                    yield digest
            if "LastEvaluatedKey" not in page:
                return
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # -- one-use challenges (an item each, native TTL plus an expiry check) ----------------
    def put_challenge(self, key: str, value: str, ttl: float) -> None:
        now = self._clock()
        self._call(
            "put_item",
            Item={
                it.KEY: it.string(it.CHALLENGE_PREFIX + key), it.TOKEN: it.string(value),
                it.EXPIRES: it.number(now + ttl), it.TTL: it.ttl_of(now + ttl + 60),
            },
        )  # fmt: skip

    def take_challenge(self, key: str) -> str | None:
        try:
            reply = self._call(
                "delete_item", Key=it.key(it.CHALLENGE_PREFIX + key),
                ConditionExpression="#x > :now", ReturnValues="ALL_OLD",
                ExpressionAttributeNames={"#x": it.EXPIRES},
                ExpressionAttributeValues={":now": it.number(self._clock())},
            )  # fmt: skip
        except _ConditionFailed:
            return None
        value = reply.get("Attributes", {}).get(it.TOKEN, {}).get("S")
        return value if isinstance(value, str) else None

    # -- locks (an item per held lock, with its expiry by the store's clock) ---------------
    def _try_lock(self, digest: str, token: str, ttl: float) -> bool:
        now = self._clock()
        return self._conditional(
            "put_item",
            Item={
                it.KEY: it.string(it.LOCK_PREFIX + digest), it.TOKEN: it.string(token),
                it.EXPIRES: it.number(now + ttl), it.TTL: it.ttl_of(now + ttl + 60),
            },
            ConditionExpression="attribute_not_exists(#k) OR #x <= :now",
            ExpressionAttributeNames={"#k": it.KEY, "#x": it.EXPIRES},
            ExpressionAttributeValues={":now": it.number(now)},
        )  # fmt: skip

    def _unlock(self, digest: str, token: str) -> None:
        try:
            self._conditional(
                "delete_item", Key=it.key(it.LOCK_PREFIX + digest),
                ConditionExpression="#tok = :tok", ExpressionAttributeNames={"#tok": it.TOKEN},
                ExpressionAttributeValues={":tok": it.string(token)},
            )  # fmt: skip
        except StoreUnavailable as exc:  # never mask the request's outcome; the ttl frees it
            log.warning("sessionkit: could not release lock %s: %s", handle(digest), exc)

    async def _atry_lock(self, digest: str, token: str, ttl: float) -> bool:
        return await asyncio.to_thread(self._try_lock, digest, token, ttl)

    async def _aunlock(self, digest: str, token: str) -> None:
        await asyncio.to_thread(self._unlock, digest, token)

    # -- the table -----------------------------------------------------------------------
    def create_schema(self) -> bool:
        """Create the table with its user index, wait until it is active and turn on the
        native TTL on ``ttl``; ``False`` when the table was already there (the TTL setting
        is still checked and turned on, and a missing user index is an error)."""
        created = True
        try:
            self._call("create_table", **table_definition(self.target))
        except _InUse:
            created = False
        try:
            self._client.get_waiter("table_exists").wait(
                TableName=self.table, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
            )
        except BotoCoreError as exc:
            raise StoreUnavailable(self.url, f"the table did not become active: {exc}") from exc
        if not created:
            described = self._call("describe_table")["Table"]
            indexes = {i["IndexName"] for i in described.get("GlobalSecondaryIndexes", ())}
            if self.target.user_index not in indexes:
                raise ConfigError(
                    "store", f"the table {self.table!r} exists but has no global secondary "
                    f"index {self.target.user_index!r} on {it.USER!r} (S): add it, or point "
                    "the URL at a table made by `sessionkit init`"
                )  # fmt: skip
        ttl = self._call("describe_time_to_live").get("TimeToLiveDescription", {})
        if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            self._call(
                "update_time_to_live",
                TimeToLiveSpecification={"Enabled": True, "AttributeName": it.TTL},
            )
        return created

    def diagnostics(
        self, *, fix: bool = False, progress: Callable[[int], None] | None = None
    ) -> list[Finding]:
        """The user index, the native TTL (``fix`` turns it on), the capacity mode; the
        clock is the app's own (``expires_at`` is written and read by the app servers)."""
        table = self._call("describe_table")["Table"]
        indexes = {i["IndexName"]: i for i in table.get("GlobalSecondaryIndexes", ())}
        index = indexes.get(self.target.user_index)
        found = []
        if index is None:
            found.append(Finding(
                "error", "user index", f"the table has no global secondary index "
                f"{self.target.user_index!r} on {it.USER!r}: device lists, revocation and "
                "max_sessions_per_user fail; create the table with `sessionkit init`",
            ))  # fmt: skip
        else:
            status = index.get("IndexStatus", "ACTIVE")
            level: Level = "ok" if status == "ACTIVE" else "warn"
            found.append(Finding(
                level, "user index", f"{self.target.user_index!r} is {status}; DynamoDB "
                "keeps it (eventually consistent), so there are no stale entries to repair",
            ))  # fmt: skip
        ttl = self._call("describe_time_to_live").get("TimeToLiveDescription", {})
        if ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
            found.append(Finding("ok", "ttl", f"native TTL on {ttl.get('AttributeName')!r}"))
        elif fix:
            self._call(
                "update_time_to_live",
                TimeToLiveSpecification={"Enabled": True, "AttributeName": it.TTL},
            )
            found.append(Finding("ok", "ttl", f"turned DynamoDB's TTL on, on {it.TTL!r}"))
        else:
            found.append(Finding(
                "warn", "ttl", "DynamoDB's TTL is off: expired sessions never load, but they "
                f"are never deleted either; run `sessionkit doctor --fix` or turn TTL on for "
                f"the attribute {it.TTL!r}",
            ))  # fmt: skip
        billing = table.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED")
        if billing == "PAY_PER_REQUEST":
            found.append(Finding("ok", "capacity", "on-demand: no capacity to run out of"))
        else:
            units = table.get("ProvisionedThroughput", {})
            found.append(Finding(
                "warn", "capacity", f"provisioned ({units.get('ReadCapacityUnits')} reads, "
                f"{units.get('WriteCapacityUnits')} writes a second): past that, requests are "
                "throttled and answered 503; switch to on-demand or turn on auto scaling",
            ))  # fmt: skip
        found.append(Finding(
            "ok", "clock", "expiry is written and checked by the app servers' clocks only: "
            "keep them in sync with each other (NTP)",
        ))  # fmt: skip
        return found

    # -- requests ------------------------------------------------------------------------
    def _conditional(self, operation: str, **request: Any) -> bool:
        """``operation``; ``False`` when its condition failed (nothing was written)."""
        try:
            self._call(operation, **request)
        except _ConditionFailed:
            return False
        return True

    def _call(self, operation: str, **request: Any) -> Any:
        """One request on this store's table; every failure becomes a sessionkit error."""
        if operation not in _NO_TABLE:
            request.setdefault("TableName", self.table)
        try:
            return getattr(self._client, operation)(**request)
        except ClientError as exc:
            self._client_error(operation, exc)
        except (EndpointConnectionError, ConnectTimeoutError) as exc:
            raise StoreUnavailable(self.url, _said(exc)) from exc  # nothing was sent
        except (NoCredentialsError, PartialCredentialsError) as exc:
            raise StoreUnavailable(
                self.url, _said(exc), hint="Give boto3 credentials (AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, ~/.aws/credentials or an instance role)",
            ) from exc  # fmt: skip
        except BotoCoreError as exc:  # read timeouts, closed connections: maybe applied
            raise StoreUnavailable(self.url, _said(exc), ambiguous=operation in _WRITES) from exc

    def _client_error(self, operation: str, exc: ClientError) -> NoReturn:
        error = exc.response.get("Error", {})
        code, message = str(error.get("Code", "")), str(error.get("Message", ""))
        if code == "ConditionalCheckFailedException":
            raise _ConditionFailed from exc
        if code == "TransactionCanceledException":
            codes = [str(r.get("Code")) for r in exc.response.get("CancellationReasons") or ()]
            reasons = set(codes)
            if "ConditionalCheckFailed" in reasons:
                raise _ConditionFailed(codes) from exc
            if "TransactionConflict" in reasons:
                raise _Conflict from exc
            if "ValidationError" in reasons and "size" in message.lower():
                raise _too_large(None) from exc
            throttled = reasons & _THROTTLED_REASONS
            if throttled:  # a transaction's items are throttled one by one
                code = f"{code}: {', '.join(sorted(throttled))}"
                raise self._throttled(code, message) from exc
        if code == "TransactionConflictException":
            raise _Conflict from exc
        if code == "ResourceInUseException" and operation == "create_table":
            raise _InUse from exc
        if code == "ValidationException" and "size" in message.lower() and "exceed" in message:
            raise _too_large(None) from exc
        if code in THROTTLED:
            raise self._throttled(code, message) from exc
        if code == "ResourceNotFoundException":
            raise StoreUnavailable(
                self.url, f"{code}: {message}", hint=f"The table {self.table!r} does not "
                "exist in this region and account: create it with `sessionkit init STORE`",
            ) from exc  # fmt: skip
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        raise StoreUnavailable(
            self.url, f"{code or status}: {message}", hint=_HINTS.get(code),
            ambiguous=status >= 500 and operation in _WRITES,
        ) from exc  # fmt: skip

    def _throttled(self, code: str, message: str) -> StoreUnavailable:
        return StoreUnavailable(
            self.url, f"DynamoDB throttled the request ({code}: {message})",
            hint="The table's capacity is used up: raise it (or switch it to on-demand), "
            "or retry in a moment",
        )  # fmt: skip


class _Conflict(Exception):
    """A transaction lost to a concurrent one on the same items; nothing was written."""


class _InUse(Exception):
    """``CreateTable``: the table is already there."""


def _make_client(target: Target) -> Any:
    try:
        session = boto3.session.Session(
            region_name=target.region, profile_name=target.profile,
            aws_access_key_id=target.access_key_id,
            aws_secret_access_key=target.secret_access_key,
            aws_session_token=target.session_token,
        )  # fmt: skip
        config = Config(
            connect_timeout=target.connect_timeout, read_timeout=target.timeout,
            retries={"mode": "standard", "total_max_attempts": target.max_attempts},
            max_pool_connections=32,
        )  # fmt: skip
        return session.client("dynamodb", endpoint_url=target.endpoint, config=config)
    except NoRegionError:
        raise ConfigError(
            "store", f"{mask_url(target.url)!r}: no AWS region is configured; add "
            "?region=... to the URL, or set AWS_REGION"
        ) from None  # fmt: skip
    except ProfileNotFound as exc:
        raise ConfigError(
            "store", f"{mask_url(target.url)!r}: {exc}; name a profile of ~/.aws/config "
            "in ?profile=..., or leave it out to use boto3's usual credentials"
        ) from None  # fmt: skip


def _said(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _too_large(size: int | None) -> SessionTooLarge:
    shown = f"{size} bytes" if size is not None else "over the limit"
    return SessionTooLarge(
        size or it.ITEM_LIMIT + 1, it.ITEM_LIMIT,
        f"the session record is {shown}, over DynamoDB's item size limit ({it.ITEM_LIMIT} "
        "bytes, names and values together), so it was not saved. Store less in the session, "
        "or use a store without that limit (redis://, sqlite:///, file:///).",
    )  # fmt: skip


def _merged(write: Write, current: Any) -> dict[str, str]:
    """``write`` over ``current`` in the session's order: keys the write adds (new, or
    removed and set again) go last, keys changed in place keep their position."""
    fresh = set(write.items) if write.new_keys is None else set(write.new_keys)
    if write.replace:
        return dict(write.items)
    merged = {k: v for k, v in current.items() if k not in write.removed and k not in fresh}
    merged.update(write.items)
    return merged


def _meta(item: dict[str, Any]) -> RecordMeta | None:
    try:
        last_seen = int(float(item[it.LAST_SEEN]["N"]))
        return RecordMeta.from_list(json.loads(item[it.META]["S"]), last_seen=last_seen)
    except (KeyError, TypeError, ValueError):
        return None


def _info(user: str, digest: str, item: dict[str, Any]) -> SessionInfo:
    """A device-list entry: a handle, never the digest (an entry whose metadata does not
    parse is still listed, without a device label, so it can be revoked)."""
    meta = _meta(item)
    if meta is None:
        return SessionInfo(handle(digest), user, 0, 0, None)
    return SessionInfo.of(digest, meta)
