"""The Lua scripts behind RedisStore: each one is a single round trip and runs atomically.

A session is one HASH under ``<prefix>{<digest>}``:

    m        metadata, ``RecordMeta.to_list()`` as JSON
    v        version, incremented by every save
    t        last_seen written by ``touch`` (newer than the one in ``m``; a save clears it)
    u        name of the user-index key this session is listed in (absent: no user)
    x        Cluster only: until when (epoch ms) the user index is known to outlive us
    d:<key>  one field per session key: the tagged-JSON text the engine gives us

``ARGV[1]`` of every script is ``1`` on a single server (or a Sentinel-managed master) and
``0`` on a Cluster. On a single server the scripts also maintain the user index, whose key
lives elsewhere; on a Cluster a script may only touch keys of one hash slot, so they return
what the index needs and the store sends those commands separately.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from redis import exceptions as _rx

# Shared helpers, prepended to the scripts that need them. ``fields`` reads a session's
# bookkeeping in one call and returns nil for anything that is not one of our HASHes
# (missing, another type, no metadata), so a foreign key is never written to.
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
local function ms(n) return string.format('%.0f', n) end
"""

#: KEYS: session key, then (single server only) the rotated-away key and index keys.
#: ARGV: single, create, replace, pttl, meta, digest, old_key_or_'', old_digest,
#:       index_key_or_'', now_ms, n_removed, removed..., field, value, ...
#: Returns {ok, stale_index_or_'', index_needs_update} (the last two matter on a Cluster).
SAVE = (
    _HELPERS
    + """
local key = KEYS[1]
local single, create, replace = ARGV[1] == '1', ARGV[2] == '1', ARGV[3] == '1'
local pttl, meta, digest = tonumber(ARGV[4]), ARGV[5], ARGV[6]
local old_key, old_digest, index, now = ARGV[7], ARGV[8], ARGV[9], tonumber(ARGV[10])
local n_removed = tonumber(ARGV[11])
local version, stale, covered, current = 1, '', 0, false
if create then
  if redis.call('EXISTS', key) == 1 then return {0, '', 0} end
  if old_key ~= '' then
    local old = fields(old_key, 'u')
    if not old then return {0, '', 0} end
    redis.call('DEL', old_key)
    if old[2] then redis.call('SREM', old[2], old_digest) end
  end
else
  local got = fields(key, 'u', 'v', 'x')
  if not got then return {0, '', 0} end
  current = got[2]
  version = (tonumber(got[3]) or 0) + 1
  covered = tonumber(got[4]) or 0
  if current and current ~= index then
    stale = current
    if single then redis.call('SREM', current, digest) end
  end
  if replace then
    redis.call('DEL', key)
  else  -- drop the removed keys and the touch's last-seen (folded into the new metadata)
    redis.call('HDEL', key, 't', unpack(ARGV, 12, math.min(11 + n_removed, 11 + 7000)))
    for i = 11 + 7001, 11 + n_removed, 7000 do
      redis.call('HDEL', key, unpack(ARGV, i, math.min(i + 6999, 11 + n_removed)))
    end
  end
end
local update = 0
local head = {'m', meta, 'v', version}
if index ~= '' then
  head[5], head[6] = 'u', index
  if not single then
    if create or stale ~= '' or covered < now + pttl then
      covered, update = now + 2 * pttl, 1
    end
    head[7], head[8] = 'x', ms(covered)
  end
elseif current then
  redis.call('HDEL', key, 'u', 'x')
end
local first = 12 + n_removed
for i = first, math.min(#ARGV, first + 5999) do head[#head + 1] = ARGV[i] end
redis.call('HSET', key, unpack(head))  -- metadata and (up to 3000) changed keys at once
for i = first + 6000, #ARGV, 7000 do
  redis.call('HSET', key, unpack(ARGV, i, math.min(i + 6999, #ARGV)))
end
redis.call('PEXPIRE', key, pttl)
if index ~= '' and single then extend_index(index, digest, pttl) end
return {1, stale, update}
"""
)

#: KEYS: session key. ARGV: single, last_seen, pttl, now_ms, digest.
#: Returns 0 (gone), 1 (done), or on a Cluster the index key that must be extended.
TOUCH = (
    _HELPERS
    + """
local key = KEYS[1]
local got = fields(key, 'u', 'x')
if not got then return 0 end
local pttl, now, index = tonumber(ARGV[3]), tonumber(ARGV[4]), got[2]
if index and ARGV[1] ~= '1' and (tonumber(got[3]) or 0) < now + pttl then
  redis.call('HSET', key, 't', ARGV[2], 'x', ms(now + 2 * pttl))
  redis.call('PEXPIRE', key, pttl)
  return index  -- a Cluster: the caller extends the index, which lives in another slot
end
redis.call('HSET', key, 't', ARGV[2])
redis.call('PEXPIRE', key, pttl)
if index and ARGV[1] == '1' then extend_index(index, ARGV[5], pttl) end
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

#: KEYS: index key. ARGV: digest, pttl. (Cluster: the index half of a save or touch.)
INDEX_ADD = (
    _HELPERS
    + """
extend_index(KEYS[1], ARGV[1], tonumber(ARGV[2]))
return 1
"""
)

#: KEYS: lock key. ARGV: token. Deletes the lock only if we still hold it.
UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Script:
    """A Lua script run by SHA, sent in full only when the server does not know it yet."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()  # noqa: S324 - Redis's script id

    def run(self, client: Any, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except _rx.NoScriptError:
            return client.eval(self.source, len(keys), *keys, *args)

    async def arun(self, client: Any, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except _rx.NoScriptError:
            return await client.eval(self.source, len(keys), *keys, *args)


SAVE_SCRIPT, TOUCH_SCRIPT, DELETE_SCRIPT = Script(SAVE), Script(TOUCH), Script(DELETE)
INDEX_ADD_SCRIPT, UNLOCK_SCRIPT = Script(INDEX_ADD), Script(UNLOCK)
