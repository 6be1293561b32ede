"""Stores by URL: ``open_store("memory://")``, ``open_store("redis://localhost/0")``, ..."""

from __future__ import annotations

import importlib
from typing import Any
from urllib.parse import urlsplit

from sessionkit.errors import ConfigError
from sessionkit.stores.base import Record, RecordMeta, SessionInfo, Store, Write, mask_url
from sessionkit.stores.cookie import CookieStore
from sessionkit.stores.memory import MemoryStore

# scheme → (module, class). Server-side stores import their client library lazily.
_REGISTRY: dict[str, tuple[str, str]] = {
    "memory": ("sessionkit.stores.memory", "MemoryStore"),
    "cookie": ("sessionkit.stores.cookie", "CookieStore"),
    "redis": ("sessionkit.stores.redis", "RedisStore"),
    "rediss": ("sessionkit.stores.redis", "RedisStore"),
    "redis+cluster": ("sessionkit.stores.redis", "RedisStore"),
    "rediss+cluster": ("sessionkit.stores.redis", "RedisStore"),
    "redis+sentinel": ("sessionkit.stores.redis", "RedisStore"),
    "rediss+sentinel": ("sessionkit.stores.redis", "RedisStore"),
    "sqlite": ("sessionkit.stores.sql", "SQLStore"),
    "postgresql": ("sessionkit.stores.sql", "SQLStore"),
    "postgres": ("sessionkit.stores.sql", "SQLStore"),
    "file": ("sessionkit.stores.file", "FileStore"),
    "memcached": ("sessionkit.stores.memcached", "MemcachedStore"),
}


def register_store(scheme: str, module: str, class_name: str) -> None:
    """Make ``scheme://`` URLs open ``module.class_name`` (for third-party stores)."""
    _REGISTRY[scheme] = (module, class_name)


def open_store(url: str, **options: Any) -> Store:
    """The store a URL names. Raises ``ConfigError`` for unknown schemes."""
    scheme = urlsplit(url).scheme.lower()
    target = _REGISTRY.get(scheme)
    if target is None:
        known = ", ".join(f"{s}://" for s in sorted(_REGISTRY))
        raise ConfigError("store", f"no store for {mask_url(url)!r}; available: {known}")
    try:
        module = importlib.import_module(target[0])
    except ImportError as exc:
        extra = {"sqlite": "sql", "postgresql": "postgres", "postgres": "postgres",
                 "memcached": "memcached", "file": "", }.get(scheme, "redis")  # fmt: skip
        hint = f"pip install 'sessionkit[{extra}]'" if extra else "reinstall sessionkit"
        raise ConfigError(
            "store", f"{mask_url(url)!r} needs a library that is not installed ({exc.name}); {hint}"
        ) from exc
    store: Store = getattr(module, target[1]).from_url(url, **options)
    return store


__all__ = [
    "CookieStore",
    "MemoryStore",
    "Record",
    "RecordMeta",
    "SessionInfo",
    "Store",
    "Write",
    "open_store",
    "register_store",
]
