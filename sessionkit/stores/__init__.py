"""Stores by URL: ``open_store("memory://")``, ``open_store("redis://localhost/0")``, ..."""

from __future__ import annotations

import importlib
from typing import Any
from urllib.parse import urlsplit

from sessionkit.errors import ConfigError
from sessionkit.stores.base import Record, RecordMeta, SessionInfo, Store, Write, mask_url
from sessionkit.stores.cookie import CookieStore
from sessionkit.stores.memory import MemoryStore

# scheme → (module, class, the sessionkit extra that installs its client library or "" when
# it needs none). Server-side stores import their client library lazily.
_REGISTRY: dict[str, tuple[str, str, str | None]] = {
    "memory": ("sessionkit.stores.memory", "MemoryStore", ""),
    "cookie": ("sessionkit.stores.cookie", "CookieStore", ""),
    "file": ("sessionkit.stores.file", "FileStore", ""),
    **dict.fromkeys(
        ("redis", "rediss", "redis+cluster", "rediss+cluster", "redis+sentinel", "rediss+sentinel"),
        ("sessionkit.stores.redis", "RedisStore", "redis"),
    ),
    "sqlite": ("sessionkit.stores.sql", "SQLStore", "sql"),
    "postgresql": ("sessionkit.stores.sql", "SQLStore", "postgres"),
    "postgres": ("sessionkit.stores.sql", "SQLStore", "postgres"),
    "memcached": ("sessionkit.stores.memcached", "MemcachedStore", "memcached"),
    "dynamodb": ("sessionkit.stores.dynamodb", "DynamoDBStore", "dynamodb"),
}


def register_store(scheme: str, module: str, class_name: str) -> None:
    """Make ``scheme://`` URLs open ``module.class_name`` (for third-party stores)."""
    _REGISTRY[scheme] = (module, class_name, None)


def open_store(url: str, **options: Any) -> Store:
    """The store a URL names. Raises ``ConfigError`` for unknown schemes. A ``cache=``
    query option puts a coherent local cache in front of it (docs/stores/cache.md)."""
    if "cache=" in url:
        from sessionkit.stores.cache import cached, split_cache_option

        plain, option = split_cache_option(url)
        if option is not None:
            return cached(open_store(plain, **options), url, option, options.get("client"))
    scheme = urlsplit(url).scheme.lower()
    target = _REGISTRY.get(scheme)
    if target is None:
        known = ", ".join(f"{s}://" for s in sorted(_REGISTRY))
        raise ConfigError("store", f"no store for {mask_url(url)!r}; available: {known}")
    module_name, class_name, extra = target
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if extra is None:  # a third-party store: its own package is what is missing
            hint = f"install the package that provides {module_name!r}"
        else:
            hint = f"pip install 'sessionkit[{extra}]'" if extra else "reinstall sessionkit"
        raise ConfigError(
            "store", f"{mask_url(url)!r} needs a library that is not installed ({exc.name}); {hint}"
        ) from exc
    store: Store = getattr(module, class_name).from_url(url, **options)
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
