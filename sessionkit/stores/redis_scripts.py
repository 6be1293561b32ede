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

# Shared helpers, prepended to the scripts that need them.
_EXTEND_INDEX = """
local function extend_index(ik, member, pttl)
  redis.call('SADD', ik, member)
  local left = redis.call('PTTL', ik)
  if left == -1 or left < pttl then redis.call('PEXPIRE', ik, pttl) end
end
local function is_session(key)
  return redis.call('TYPE', key).ok == 'hash' and redis.call('HEXISTS', key, 'm') == 1
end
"""

#: KEYS: session key, then (single server only) the rotated-away key and index keys.
#: ARGV: single, create, replace, pttl, meta, digest, old_key_or_'', old_digest,
#:       index_key_or_'', now_ms, n_removed, removed..., field, value, ...
#: Returns {ok, stale_index_or_'', index_needs_update} (the last two matter on a Cluster).
SAVE = (
    _EXTEND_INDEX
    + """
local key = KEYS[1]
local single, create, replace = ARGV[1] == '1', ARGV[2] == '1', ARGV[3] == '1'
local pttl, meta, digest = tonumber(ARGV[4]), ARGV[5], ARGV[6]
local old_key, old_digest, index, now = ARGV[7], ARGV[8], ARGV[9], tonumber(ARGV[10])
local version = 1
local stale, covered = '', 0
if create then
  if redis.call('EXISTS', key) == 1 then return {0, '', 0} end
  if old_key ~= '' then
    if not is_session(old_key) then return {0, '', 0} end
    local old_index = redis.call('HGET', old_key, 'u')
    redis.call('DEL', old_key)
    if old_index then redis.call('SREM', old_index, old_digest) end
  end
else
  if not is_session(key) then return {0, '', 0} end
  local current = redis.call('HGET', key, 'u')
  if current and current ~= index then
    stale = current
    if single then redis.call('SREM', current, digest) end
  end
  version = tonumber(redis.call('HGET', key, 'v') or '0') + 1
  covered = tonumber(redis.call('HGET', key, 'x') or '0')
  if replace then
    redis.call('DEL', key)
  else
    local n = tonumber(ARGV[11])
    for i = 12, 11 + n, 200 do
      redis.call('HDEL', key, unpack(ARGV, i, math.min(i + 199, 11 + n)))
    end
  end
end
local first = 12 + tonumber(ARGV[11])
redis.call('HSET', key, 'm', meta, 'v', version)
redis.call('HDEL', key, 't')
for i = first, #ARGV, 200 do
  redis.call('HSET', key, unpack(ARGV, i, math.min(i + 199, #ARGV)))
end
redis.call('PEXPIRE', key, pttl)
local update = 0
if index == '' then
  redis.call('HDEL', key, 'u', 'x')
else
  redis.call('HSET', key, 'u', index)
  if single then
    extend_index(index, digest, pttl)
  elseif create or stale ~= '' or covered < now + pttl then
    redis.call('HSET', key, 'x', string.format('%.0f', now + 2 * pttl))
    update = 1
  else
    redis.call('HSET', key, 'x', string.format('%.0f', covered))
  end
end
return {1, stale, update}
"""
)

#: KEYS: session key. ARGV: single, last_seen, pttl, now_ms, digest.
#: Returns 0 (gone), 1 (done), or on a Cluster the index key that must be extended.
TOUCH = (
    _EXTEND_INDEX
    + """
local key = KEYS[1]
if not is_session(key) then return 0 end
local pttl, now = tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('HSET', key, 't', ARGV[2])
redis.call('PEXPIRE', key, pttl)
local index = redis.call('HGET', key, 'u')
if not index then return 1 end
if ARGV[1] == '1' then
  extend_index(index, ARGV[5], pttl)
  return 1
end
local covered = tonumber(redis.call('HGET', key, 'x') or '0')
if covered >= now + pttl then return 1 end
redis.call('HSET', key, 'x', string.format('%.0f', now + 2 * pttl))
return index
"""
)

#: KEYS: session key. ARGV: single, digest. Returns {deleted, index_or_''}.
DELETE = """
local key = KEYS[1]
local index = false
if redis.call('TYPE', key).ok == 'hash' then index = redis.call('HGET', key, 'u') end
local deleted = redis.call('DEL', key)
if not index then return {deleted, ''} end
if ARGV[1] == '1' then redis.call('SREM', index, ARGV[2]) end
return {deleted, index}
"""

#: KEYS: index key. ARGV: digest, pttl. (Cluster: the index half of a save or touch.)
INDEX_ADD = (
    _EXTEND_INDEX
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
