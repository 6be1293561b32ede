"""How a session is laid out in a DynamoDB item, and the expressions that change it.

One item per session, keyed by the ID digest::

    digest      S  the partition key (a lock's item: "lock:" + digest; a DBSC challenge's:
                   "challenge:" + its key, with token, expires_at and ttl)
    layout      N  this layout's version, 1 (an item of any other is not read as a session)
    version     N  bumped by every save; the condition of every write names the item
    meta        S  RecordMeta.to_list() as JSON
    last_seen   N  kept apart from meta, so a touch rewrites only it and the expiry
    user        S  "u" + the bound user, the user index's key (absent: anonymous, not indexed)
    expires_at  N  by the store's clock, checked on every load (DynamoDB's TTL sweep lags)
    ttl         N  whole epoch seconds: DynamoDB's native TTL attribute, deletes in time
    data        M  "k" + session key -> that key's tagged-JSON text
    order       M  "k" + session key -> its position (keys come back in dict order)

Each session key is one map entry, so a merge is ``SET data.#k = :v`` and ``REMOVE data.#k``
per changed key: two requests changing different keys both survive, computed by DynamoDB
under the write's condition. Map keys carry a "k" prefix, so the empty string is a key too.

A map keeps no order, so ``order`` gives each key a number: a key added by the save that
moves the version from ``v`` to ``v + 1`` gets ``v + i/10**9`` (``SET order.#k = version +
:f``, computed from the version as it was, in the same update), so later additions sort
after earlier ones and each save's own keep their order; a key changed in place keeps its.
"""

from __future__ import annotations

import hashlib
import json
import math
from decimal import Decimal
from typing import Any

from sessionkit.records import Record, RecordMeta, Write

KEY, VERSION, META, LAST_SEEN, USER = "digest", "version", "meta", "last_seen", "user"
EXPIRES, TTL, DATA, ORDER, TOKEN = "expires_at", "ttl", "data", "order", "token"
MEMBERS, LAYOUT = "members", "layout"
#: the version of this item layout (``layout``): a release reads what the previous one wrote
LAYOUT_VERSION = 1
#: what the user index projects: enough for a device list and its liveness
INDEXED = (META, LAST_SEEN, EXPIRES)
LOCK_PREFIX = "lock:"
GUARD_PREFIX = "user:"
CHALLENGE_PREFIX = "challenge:"
#: DynamoDB's largest item, 400 KB, counted as it counts: names and values, UTF-8 bytes
ITEM_LIMIT = 400 * 1024
#: DynamoDB's limit on one expression's text; a merge whose expression would be longer is
#: done as a read and a rewrite conditional on the version read (see ``store``)
EXPRESSION_LIMIT = 4096
_FRACTION_DIGITS = 9

NAMES = {
    "#v": VERSION, "#m": META, "#ls": LAST_SEEN, "#u": USER, "#x": EXPIRES, "#t": TTL,
    "#d": DATA, "#o": ORDER,
}  # fmt: skip
#: the record exists and is live (a write never brings back one deleted or expired)
LIVE = "attribute_exists(#v) AND #x > :now"
#: ... and its data is what a merge can build on
MERGEABLE = f"{LIVE} AND attribute_type(#d, :map) AND attribute_type(#o, :map)"
#: nothing live holds the digest (a create never overwrites)
ABSENT = "attribute_not_exists(#v) OR #x <= :now"


def guard_of(user: str) -> str:
    """The key of a user's guard item (``max_sessions_per_user``): a version that every
    login of the user under the limit moves, and ``members``, the digests bound under it.
    Keyed by a hash of the user, which the item does not hold (and it has no ``user``
    attribute, so the user index never lists it)."""
    return GUARD_PREFIX + hashlib.sha256(user.encode("utf-8")).hexdigest()


def guard_state(item: dict[str, Any] | None) -> tuple[dict[str, Any] | None, int, set[str]]:
    """What a login's transaction needs of the user's guard item: its ``version`` attribute
    exactly as read (the condition; ``None``: no guard yet), the next version, and the
    member digests. A damaged version or member map is taken as read and replaced."""
    if item is None or VERSION not in item:
        return None, 1, set()
    try:
        following = int(item[VERSION]["N"]) + 1
    except (KeyError, TypeError, ValueError):
        following = 1
    members = item.get(MEMBERS, {})
    names = members.get("M") if type(members) is dict else None
    return item[VERSION], following, set(names) if type(names) is dict else set()


def live_entry(item: dict[str, Any], user: str, now: float) -> tuple[int, str] | None:
    """``(last_seen, digest)`` of a session item that is live and bound to ``user``."""
    try:
        if item[USER]["S"] != user_key(user) or float(item[EXPIRES]["N"]) <= now:
            return None
        return int(Decimal(item[LAST_SEEN]["N"])), str(item[KEY]["S"])
    except (KeyError, TypeError, ValueError, ArithmeticError):
        return None


def user_key(user: str) -> str:
    """The ``user`` attribute, the user index's key: ``"u"`` + the user, since a key
    attribute may not be empty and a user ID may."""
    return "u" + user


def number(value: float | int) -> dict[str, str]:
    if isinstance(value, float) and not math.isfinite(value):
        value = 2**40  # "never" (the year 36812): DynamoDB numbers are finite
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return {"N": repr(value) if isinstance(value, float) else str(value)}


def string(value: str) -> dict[str, str]:
    return {"S": value}


def key(digest: str) -> dict[str, dict[str, str]]:
    return {KEY: string(digest)}


def fraction(i: int) -> str:
    """The ``i``-th (from 1) key's share of a save's position, in (0, 1), as a number text."""
    return f"0.{i:0{_FRACTION_DIGITS}d}"


def ttl_of(expires_at: float) -> dict[str, str]:
    return number(math.ceil(expires_at) if math.isfinite(expires_at) else 2**40)


def meta_text(meta: RecordMeta) -> str:
    return json.dumps(meta.to_list(), separators=(",", ":"), ensure_ascii=False)


def full_item(
    write: Write, items: dict[str, str], version: int, expires_at: float
) -> dict[str, Any]:
    """The whole item a create (or a rewrite) puts; positions in (0, 1), in items' order."""
    item: dict[str, Any] = {
        KEY: string(write.digest), LAYOUT: number(LAYOUT_VERSION), VERSION: number(version),
        META: string(meta_text(write.meta)),
        LAST_SEEN: number(write.meta.last_seen), EXPIRES: number(expires_at),
        TTL: ttl_of(expires_at),
        DATA: {"M": {"k" + name: string(value) for name, value in items.items()}},
        ORDER: {"M": {"k" + name: {"N": fraction(i)} for i, name in enumerate(items, 1)}},
    }  # fmt: skip
    if write.meta.user is not None:
        item[USER] = string(user_key(write.meta.user))
    return item


def merge_update(write: Write, now: float) -> dict[str, Any]:
    """``UpdateItem``'s arguments (without table and key) for a save that is not a create:
    the metadata, expiry and version always; then each changed key on its own path (a
    merge), or the whole data (a replace)."""
    expires_at = now + write.ttl
    names = dict(NAMES)
    values: dict[str, Any] = {
        ":one": number(1), ":m": string(meta_text(write.meta)),
        ":ls": number(write.meta.last_seen), ":x": number(expires_at), ":t": ttl_of(expires_at),
        ":now": number(now),
    }  # fmt: skip
    sets = ["#v = #v + :one", "#m = :m", "#ls = :ls", "#x = :x", "#t = :t"]
    removes: list[str] = []
    if write.meta.user is not None:
        values[":u"] = string(user_key(write.meta.user))
        sets.append("#u = :u")
    else:
        removes.append("#u")
    if write.replace:
        items = dict(write.items)
        values[":data"] = {"M": {"k" + n: string(v) for n, v in items.items()}}
        values[":order"] = {"M": {"k" + n: {"N": fraction(i)} for i, n in enumerate(items, 1)}}
        sets += ["#d = :data", "#o = :order"]
        condition = LIVE
    else:
        fresh = set(write.items) if write.new_keys is None else set(write.new_keys)
        position = 0
        for i, (name, value) in enumerate(write.items.items()):
            names[f"#k{i}"] = "k" + name
            values[f":v{i}"] = string(value)
            sets.append(f"#d.#k{i} = :v{i}")
            if name in fresh:
                position += 1
                values[f":f{i}"] = {"N": fraction(position)}
                sets.append(f"#o.#k{i} = #v + :f{i}")
        for j, name in enumerate(sorted(write.removed - set(write.items))):
            names[f"#r{j}"] = "k" + name
            removes += [f"#d.#r{j}", f"#o.#r{j}"]
        values[":map"] = string("M")
        condition = MERGEABLE
    expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
    return {
        "UpdateExpression": expression, "ConditionExpression": condition,
        "ExpressionAttributeNames": names, "ExpressionAttributeValues": values,
    }  # fmt: skip


def decode(digest: str, item: dict[str, Any]) -> tuple[Record, float]:
    """A stored item as a record and its expiry, all or nothing: ``ValueError`` for any
    item that is not exactly what this module writes (the caller reads it as no session)."""
    if item.get(LAYOUT) != number(LAYOUT_VERSION):
        raise ValueError(f"not a sessionkit DynamoDB item of layout {LAYOUT_VERSION}")
    try:
        version = int(item[VERSION]["N"])
        expires_at = float(item[EXPIRES]["N"])
        last_seen = Decimal(item[LAST_SEEN]["N"])
        meta = RecordMeta.from_list(json.loads(item[META]["S"]), last_seen=int(last_seen))
        data, order = item[DATA]["M"], item[ORDER]["M"]
        if type(data) is not dict or type(order) is not dict:
            raise ValueError("malformed data")
        items: dict[str, str] = {}
        for name, value in data.items():
            if not name.startswith("k") or type(value.get("S")) is not str:
                raise ValueError("malformed data entry")
            items[name[1:]] = value["S"]
        positions = {n[1:]: Decimal(p["N"]) for n, p in order.items() if n[1:] in items}
    except (KeyError, TypeError, AttributeError, ArithmeticError, json.JSONDecodeError) as exc:
        raise ValueError(f"malformed DynamoDB item ({type(exc).__name__}: {exc})") from None
    if (None if meta.user is None else user_key(meta.user)) != (
        item[USER]["S"] if USER in item else None
    ):
        raise ValueError("the item's user and its metadata disagree")
    if len(positions) == len(items):
        ordered = sorted(items, key=positions.__getitem__)
    else:  # keys with no position (a merge raced a removal) follow, in the map's order
        ordered = sorted(positions, key=positions.__getitem__)
        ordered += [n for n in items if n not in positions]
    return Record({n: items[n] for n in ordered}, meta, version), expires_at


def item_size(item: dict[str, Any]) -> int:
    """An item's size as DynamoDB counts it, or a little more: UTF-8 bytes of attribute
    names and strings, about one byte per two digits of a number, 3 bytes per map plus one
    per entry and its name."""
    return sum(len(name.encode("utf-8")) + value_size(value) for name, value in item.items())


def value_size(value: dict[str, Any]) -> int:
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(inner.encode("utf-8"))
    if kind == "N":
        return len(inner) // 2 + 2
    if kind == "M":
        return 3 + sum(1 + len(n.encode("utf-8")) + value_size(v) for n, v in inner.items())
    return len(str(inner))
