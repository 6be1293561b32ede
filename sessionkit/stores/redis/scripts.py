"""The Lua scripts behind RedisStore: each one is a single round trip and runs atomically.

A session is one HASH under ``<prefix>{<digest>}``:

    m        metadata, ``RecordMeta.to_list()`` as JSON
    v        version, incremented by every save
    t        last_seen written by ``touch`` (newer than the one in ``m``; a save clears it)
    u        name of the user-index key this session is listed in (absent: no user)
    x        until when (epoch ms) the user index is known to outlive us (with ``u``)
    d:<key>  one field per session key: the tagged-JSON text the engine gives us
    f        the record layout: ``2`` (absent: layout 1, which had no ``o`` and no ``n``)
    o        the session's key order, a JSON array of the key names (``["a","b"]``, ASCII,
             no spaces): a HASH keeps no order, a session (a dict) does
    n        the nonce of the CREATE that made the record: a CREATE retried after its reply
             was lost finds its own record and succeeds instead of reporting "taken"
    r        (alone) a Cluster rotation's tombstone: the ID was rotated away by the
             write with this nonce; read as "no session"

``ARGV[1]`` of every session script is ``1`` on a single server (or a Sentinel-managed
master) and ``0`` on a Cluster. On a single server the scripts also maintain the user
index, whose key lives elsewhere; on a Cluster a script may only touch keys of one hash
slot, so they return what the index needs and the store sends those commands separately.

The scripts call Redis as few times as they can: each ``redis.call`` costs the server about
a microsecond, and each argument a little more, so a save is split by case (``CREATE``,
``UPDATE``) rather than one script with every argument, and no script parses JSON.
Arguments reach ``redis.call`` as the strings they arrived as where possible: a Lua number
is formatted back to text with ``%.17g`` on every call, which costs about as much again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redis import exceptions as _rx

# Shared helpers, prepended to the scripts that need them. ``fields`` reads a session's
# bookkeeping in one call and returns nil for anything that is not one of our HASHes
# (missing, another type, no metadata), so a foreign key is never written to.
# ``extend_index`` lists a session in its user's index and keeps the index alive at least
# ``pttl`` ms. ``bulk`` sends ARGV[first..last] as the arguments of one command, in chunks:
# Lua's unpack() takes at most ~8000 values.
_HELPERS = """
local function extend_index(ik, member, pttl)
  redis.call('SADD', ik, member)
  local left = redis.call('PTTL', ik)
  if left == -1 or left < pttl then redis.call('PEXPIRE', ik, pttl) end
end
local function fields(key, ...)
  local got = redis.pcall('HMGET', key, 'm', ...)
  if type(got) ~= 'table' or got.err or not got[1] then return nil end
  return got
end
local function bulk(command, key, first, last)
  for i = first, last, 7000 do
    redis.call(command, key, unpack(ARGV, i, math.min(i + 6999, last)))
  end
end
local function ms(n) return string.format('%.0f', n) end
local function reorder(o, first_add, last_add, first_drop, last_drop)
  local kept, seen, drop = {}, {}, {}
  for i = first_drop, last_drop do drop[ARGV[i]] = true end
  if o ~= '[]' then  -- split '["a","b"]' at '","' (see below why that is exact)
    local body, start = string.sub(o, 2, -2), 1
    while start do
      local stop = string.find(body, '","', start, true)
      local name = string.sub(body, start, stop or -1)
      if not drop[name] then kept[#kept + 1] = name; seen[name] = true end
      start = stop and stop + 2
    end
  end
  for i = first_add, last_add do
    local name = ARGV[i]
    if not seen[name] and not drop[name] then kept[#kept + 1] = name; seen[name] = true end
  end
  return '[' .. table.concat(kept, ',') .. ']'
end
"""

# The key order (``o``) is a JSON array of JSON strings written by Python's encoder with
# ``ensure_ascii`` and no spaces: inside an encoded name every quote is escaped (preceded by
# a backslash), so a quote that follows a comma always opens a name, and ``","`` occurs in
# the array only between two names. ``reorder`` splits there, keeps the order, drops the
# removed names and appends the new ones: no JSON parser in the script.

# The user index and its coverage mark. A session bound to a user keeps ``u`` (its index
# key) and ``x`` (until when, in epoch ms, the index is known to live). A save or touch
# that finds ``x`` far enough ahead leaves the index alone; otherwise it lists the session
# in the index again and keeps the index alive for twice the session's TTL, so a busy
# session pays for index upkeep about once per TTL rather than on every request. On a
# Cluster the index lives in another slot: the script says so, and the store sends the
# index commands itself (INDEX_ADD, SREM).

#: A new session (a first save, or a rotation to a new ID: ``regenerate()``, login).
#: KEYS: session key, then on a single server the rotated-away key and the index key
#:       (declared; a Cluster passes the session key only and rotates in two steps).
#: ARGV: single, pttl, index_or_'', digest, old_key_or_'', old_digest, nonce_or_'', then
#:       the fields to write as name, value pairs: 'v', 1, 'm', meta, ['n', nonce, 'f', 2,
#:       'o', order,] ['u', index, 'x', covered,] 'd:<key>', value, ...
#: Returns 1, or 0 when the key is taken or the rotated-away session is gone (a logout
#: won the race: nothing is created). A key that holds this write's own nonce is not
#: "taken": the write was applied and its reply lost, so the retry reports success (the
#: rotated-away record is gone by then: failing would log the user out).
_CREATE_BODY = """
local key, single, pttl, index = KEYS[1], ARGV[1] == '1', tonumber(ARGV[2]), ARGV[3]
local digest, old_key, old_digest, nonce = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
if redis.call('EXISTS', key) == 1 then
  if nonce ~= '' and redis.pcall('HGET', key, 'n') == nonce then return 1 end
  return 0
end
if old_key ~= '' then  -- rotation: the old record must still exist, and goes
  local old = fields(old_key, 'u')
  if not old then return 0 end
  redis.call('DEL', old_key)
  if old[2] then redis.call('SREM', old[2], old_digest) end
end
bulk('HSET', key, 8, #ARGV)
redis.call('PEXPIRE', key, ARGV[2])
if index ~= '' and single then extend_index(index, digest, 2 * pttl) end
return 1
"""
CREATE = _HELPERS + _CREATE_BODY

#: A change to an existing session: merge the changed keys in (or, ``replace``, swap the
#: whole record), refresh the TTL. The common case is three server calls: HMGET (the
#: condition), HSET (metadata, version and changed keys at once), PEXPIRE. HDEL joins
#: only when keys were removed or a touch left its last-seen; index work only when the
#: user changed or the coverage mark ran out.
#: KEYS: session key, then on a single server the index keys (declared only).
#: ARGV: single, pttl, index_or_'', digest, now_ms, replace, n, a, r, 't', removed field...,
#:       a encoded names to list, r encoded names to unlist,
#:       'v', <placeholder for the version>, 'm', meta, ['f', 2, 'o', order,]
#:       'd:<key>', value, ...
#:       (n counts 't' and the removed fields: 't', a touch's last-seen, is always
#:       dropped, because the new metadata holds a newer one; a merge lists its keys in the
#:       record's key order, when it has one, and unlists the removed ones; a replace
#:       brings the whole order and a = r = 0)
#: Returns 0 (gone or foreign: nothing written), 1, or on a Cluster when the index needs
#: the store's help {1, stale_index_or_'', index_needs_update}.
_UPDATE_BODY = """
local key, single, pttl, index = KEYS[1], ARGV[1] == '1', tonumber(ARGV[2]), ARGV[3]
local digest, now, replace, n = ARGV[4], tonumber(ARGV[5]), ARGV[6] == '1', tonumber(ARGV[7])
local a, r = tonumber(ARGV[8]), tonumber(ARGV[9])
local got = fields(key, 'v', 't', 'u', 'x', 'o')
if not got then return 0 end
local first = 10 + n + a + r               -- ARGV[first] is 'v'
ARGV[first + 1] = (tonumber(got[2]) or 0) + 1
local order = got[6]
if order and not replace and a + r > 0 then  -- layout 2: keep the key order
  local changed = reorder(order, 10 + n, 9 + n + a, 10 + n + a, 9 + n + a + r)
  if changed ~= order then
    ARGV[#ARGV + 1] = 'o'
    ARGV[#ARGV + 1] = changed
  end
end
local current, covered = got[4] or '', tonumber(got[5]) or 0
local stale, update, owner = '', 0, replace
if current ~= index then                   -- the session moved to another user, or none
  stale, covered, owner = current, 0, true
  if single and current ~= '' then redis.call('SREM', current, digest) end
end
if index ~= '' and covered < now + pttl then
  covered, owner = now + 2 * pttl, true
  if single then extend_index(index, digest, 2 * pttl) else update = 1 end
end
if replace then
  redis.call('DEL', key)
elseif n > 1 or got[3] then
  bulk('HDEL', key, 10, 9 + n)
end
bulk('HSET', key, first, #ARGV)
if owner then
  if index ~= '' then
    redis.call('HSET', key, 'u', index, 'x', ms(covered))
  elseif current ~= '' then
    redis.call('HDEL', key, 'u', 'x')
  end
end
redis.call('PEXPIRE', key, ARGV[2])
if single or (stale == '' and update == 0) then return 1 end
return {1, stale, update}
"""
UPDATE = _HELPERS + _UPDATE_BODY

# max_sessions_per_user on a single server (or a Sentinel master): the save and the limit
# in one script, so the count, the write and the evictions are one atomic step. The limit's
# five arguments ride at the end of the save's ARGV and are taken off before the save runs
# (CREATE and UPDATE read their fields up to #ARGV). It reads each member's metadata (``m``
# as JSON, ``t``), deletes the evicted records (keys the script computes from the prefix:
# fine on one server, impossible on a Cluster, where the store holds a per-user lock
# instead) and prunes index members that are no longer the user's.
#: ARGV: the save's, then prefix, index, max, refuse ('1'/'0'), rotated-away digest or ''.
#: Returns {-1} (refused: nothing written), {0} (the save's condition failed) or
#: {1, evicted digest...}.
_LIMITED = """
local l_skip = table.remove(ARGV)
local l_refuse = table.remove(ARGV) == '1'
local l_max = tonumber(table.remove(ARGV))
local l_index = table.remove(ARGV)
local l_prefix = table.remove(ARGV)
local l_digest = ARGV[4]
local others, stale = {}, {}
for _, member in ipairs(redis.call('SMEMBERS', l_index)) do
  if member ~= l_digest and member ~= l_skip then
    local got = redis.pcall('HMGET', l_prefix .. '{' .. member .. '}', 'm', 't', 'u')
    if type(got) == 'table' and not got.err and got[1] and got[3] == l_index then
      local seen = tonumber(got[2])
      if not seen then
        local ok, meta = pcall(cjson.decode, got[1])
        seen = ok and type(meta) == 'table' and tonumber(meta[3]) or 0
      end
      others[#others + 1] = {seen, member}
    else
      stale[#stale + 1] = member
    end
  end
end
local excess = #others - (l_max - 1)
if excess > 0 and l_refuse then return {-1} end
if save() == 0 then return {0} end
table.sort(others, function(a, b)
  if a[1] ~= b[1] then return a[1] < b[1] end
  return a[2] < b[2]
end)
local out = {1}
for i = 1, excess do
  local member = others[i][2]
  redis.call('DEL', l_prefix .. '{' .. member .. '}')
  out[#out + 1] = member
  stale[#stale + 1] = member
end
for _, member in ipairs(stale) do redis.call('SREM', l_index, member) end
return out
"""
CREATE_LIMITED = _HELPERS + "local function save()\n" + _CREATE_BODY + "end\n" + _LIMITED
UPDATE_LIMITED = _HELPERS + "local function save()\n" + _UPDATE_BODY + "end\n" + _LIMITED

#: UPDATE for the local cache's write-through (single server only): the same merge, and it
#: returns the version it wrote (``ARGV[first + 1]``, which UPDATE set to the stored
#: version + 1), or 0 when nothing was written. The cache compares that with the version
#: it holds: only ``held + 1`` means the merge landed on exactly the record it holds.
#: It also sets the field ``w``, which the same MULTI deletes with a plain ``HDEL`` right
#: after it (``w`` never outlives the transaction): Redis 7.0 counts a script's writes as
#: the script engine's, not the connection's, so only that last plain write makes the
#: change "ours" for ``CLIENT TRACKING ... NOLOOP`` (see ``tracking``). On anything that is
#: not our record the script writes nothing, and the HDEL finds no ``w``.
UPDATE_VERSIONED = (
    _HELPERS
    + "local function save()\n"
    + _UPDATE_BODY
    + """end
if save() == 0 then return 0 end
redis.call('HSET', KEYS[1], 'w', '1')
return ARGV[11 + tonumber(ARGV[7]) + tonumber(ARGV[8]) + tonumber(ARGV[9])]
"""
)

#: KEYS: session key. ARGV: single, last_seen, pttl, now_ms, digest.
#: Returns 0 (gone), 1 (done), or on a Cluster the index key that must be extended.
TOUCH = (
    _HELPERS
    + """
local key, single, pttl, now = KEYS[1], ARGV[1] == '1', tonumber(ARGV[3]), tonumber(ARGV[4])
local got = fields(key, 'u', 'x')
if not got then return 0 end
local index = got[2]
if index and (tonumber(got[3]) or 0) < now + pttl then
  redis.call('HSET', key, 't', ARGV[2], 'x', ms(now + 2 * pttl))
  redis.call('PEXPIRE', key, ARGV[3])
  if not single then return index end  -- a Cluster: the caller extends the index
  extend_index(index, ARGV[5], 2 * pttl)
  return 1
end
redis.call('HSET', key, 't', ARGV[2])
redis.call('PEXPIRE', key, ARGV[3])
return 1
"""
)

#: KEYS: session key. ARGV: single, digest. Returns {deleted, index_or_''}.
DELETE = """
local key = KEYS[1]
local got = redis.pcall('HGET', key, 'u')
local index = type(got) == 'string' and got or false
local deleted = redis.call('DEL', key)
if not index then return {deleted, ''} end
if ARGV[1] == '1' then redis.call('SREM', index, ARGV[2]) end
return {deleted, index}
"""

#: KEYS: the rotated-away key. ARGV: nonce. (Cluster: the first half of a rotation, whose
#: new record lives in another slot.) Replaces the record with a tombstone ``r`` = nonce
#: for a minute, so that a retry of this write after a lost reply recognises its own
#: rotation. Returns {1, index_or_''} (rotated now, or earlier by this same write) or
#: {0, ''} (gone: a logout won the race).
ROTATE_OUT = """
local got = redis.pcall('HMGET', KEYS[1], 'm', 'u', 'r')
if type(got) ~= 'table' or got.err then return {0, ''} end
if got[3] == ARGV[1] then return {1, ''} end
if not got[1] then return {0, ''} end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'r', ARGV[1])
redis.call('PEXPIRE', KEYS[1], 60000)
return {1, got[2] or ''}
"""

#: KEYS: index key. ARGV: digest, pttl. (Cluster: the index half of a save or touch.)
INDEX_ADD = (
    _HELPERS
    + """
extend_index(KEYS[1], ARGV[1], tonumber(ARGV[2]))
return 1
"""
)

#: KEYS: lock key. ARGV: token, pttl, deadline (epoch ms, or 0). Takes the lock for
#: ``token`` unless another token holds it, or renews it (a new lease of ``pttl``) when
#: ``token`` already does: so a retried attempt whose first reply was lost finds the lock
#: its own, and the holder's renewals are the same script. An attempt that runs after its
#: caller's deadline (by the server's clock; clocks may differ by a second) takes nothing:
#: its caller has given up. Returns 1 (held by ``token`` now) or 0.
LOCK = """
if ARGV[3] ~= '0' then
  local now = redis.call('TIME')
  if tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) > tonumber(ARGV[3]) + 1000
  then return 0 end
end
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

#: KEYS: lock key. ARGV: token. Deletes the lock only if we still hold it.
UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Script:
    """A Lua script run by SHA, sent in full only when the server does not know it yet
    (a restarted server has an empty script cache)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()  # noqa: S324 - Redis's script id

    def run(self, call: Callable[..., Any], keys: Sequence[str], args: Sequence[Any]) -> Any:
        """``call`` is a redis-py client's ``execute_command`` (so tracing, metrics and the
        client's retry policy see every script run)."""
        try:
            return call("EVALSHA", self.sha, len(keys), *keys, *args)
        except _rx.NoScriptError:
            return call("EVAL", self.source, len(keys), *keys, *args)

    async def arun(
        self, call: Callable[..., Awaitable[Any]], keys: Sequence[str], args: Sequence[Any]
    ) -> Any:
        try:
            return await call("EVALSHA", self.sha, len(keys), *keys, *args)
        except _rx.NoScriptError:
            return await call("EVAL", self.source, len(keys), *keys, *args)


CREATE_SCRIPT, UPDATE_SCRIPT, TOUCH_SCRIPT = Script(CREATE), Script(UPDATE), Script(TOUCH)
DELETE_SCRIPT, INDEX_ADD_SCRIPT, UNLOCK_SCRIPT = Script(DELETE), Script(INDEX_ADD), Script(UNLOCK)
LOCK_SCRIPT, ROTATE_OUT_SCRIPT = Script(LOCK), Script(ROTATE_OUT)
CREATE_LIMITED_SCRIPT, UPDATE_LIMITED_SCRIPT = Script(CREATE_LIMITED), Script(UPDATE_LIMITED)
UPDATE_VERSIONED_SCRIPT = Script(UPDATE_VERSIONED)
ALL_SCRIPTS = (
    LOCK_SCRIPT,
    ROTATE_OUT_SCRIPT,
    CREATE_SCRIPT,
    UPDATE_SCRIPT,
    TOUCH_SCRIPT,
    DELETE_SCRIPT,
    INDEX_ADD_SCRIPT,
    UNLOCK_SCRIPT,
)
