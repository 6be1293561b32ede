"""The SQL store (``sqlite:///path``, ``postgresql://...``), through SQLAlchemy Core.

- ``store``: ``SQLStore``, the store protocol;
- ``connections``: the sync and native async engines, SQLite pragmas, schema creation;
- ``schema``: the tables, every prepared statement and the row codec;
- ``url``: URL parsing and sessionkit's own query options.
"""

from sessionkit.stores.sql.store import SQLStore

__all__ = ["SQLStore"]
