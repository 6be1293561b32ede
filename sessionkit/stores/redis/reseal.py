"""``RedisStore.reseal``: re-encode stored values in place, compare-and-set per key.

Apart from the save scripts (``scripts.py``) on purpose: a re-seal touches only ``d:<key>``
fields of an existing record (never ``m``, ``v``, ``o``, the user index or the TTL), so it
needs none of their bookkeeping, and the two evolve separately.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from sessionkit.stores.redis.scripts import Script

#: KEYS: session key. ARGV: field, old, new, field, old, new, ... (fields as ``d:<key>``).
#: One HMGET reads the metadata (no ``m``: gone, rotated away or foreign: nothing written)
#: and every named field; one HSET writes the fields that still hold their old text.
#: Returns how many were replaced.
RESEAL = """
local n = #ARGV / 3
local names = {'m'}
for i = 1, n do names[i + 1] = ARGV[3 * i - 2] end
local got = redis.pcall('HMGET', KEYS[1], unpack(names))
if type(got) ~= 'table' or got.err or not got[1] then return 0 end
local set = {}
for i = 1, n do
  if got[i + 1] == ARGV[3 * i - 1] then
    set[#set + 1] = ARGV[3 * i - 2]
    set[#set + 1] = ARGV[3 * i]
  end
end
if #set == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(set))
return #set / 2
"""
RESEAL_SCRIPT = Script(RESEAL)

#: keys per script run: Lua's unpack() takes at most ~8000 values (each key is three)
CHUNK = 2000


def reseal_args(pairs: Mapping[str, tuple[str, str]]) -> Iterator[list[str]]:
    """The ARGV of each run (a session with more than ``CHUNK`` stale keys takes several,
    each atomic on its own keys: the compare-and-set is per key anyway)."""
    args: list[str] = []
    for key, (old, new) in pairs.items():
        args += (f"d:{key}", old, new)
        if len(args) >= 3 * CHUNK:
            yield args
            args = []
    if args:
        yield args
