"""The Redis store (``redis://``, ``rediss://``, ``redis+cluster://``, ``redis+sentinel://``).

- ``store``: ``RedisStore``, the store protocol over redis-py's public client API;
- ``scripts``: the Lua scripts and the record layout they write;
- ``records``: decoding a record's HASH into a ``Record``;
- ``url``: URL parsing and the clients a URL describes;
- ``tracking``: client-side caching invalidations (``?cache=on``).
"""

from sessionkit.stores.redis.store import RedisStore

__all__ = ["RedisStore"]
