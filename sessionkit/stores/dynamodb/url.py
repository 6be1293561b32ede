"""DynamoDB store URLs: ``dynamodb://TABLE?region=...&endpoint=...`` and their options."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from sessionkit.errors import ConfigError
from sessionkit.stores.base import mask_url, query_options

DEFAULT_INDEX = "sessionkit-user"
_TABLE_RE = re.compile(r"[A-Za-z0-9_.-]{3,255}")  # DynamoDB's own rule for table names
_KINDS: dict[str, type] = {
    "region": str, "endpoint": str, "profile": str, "access_key_id": str,
    "secret_access_key": str, "session_token": str, "user_index": str, "timeout": float,
    "connect_timeout": float, "max_attempts": int,
}  # fmt: skip


@dataclass(frozen=True)
class Target:
    """Where a ``dynamodb://`` URL points and how to reach it (the credentials, when the
    URL carries them, stay out of ``repr``: only ``mask_url(url)`` is ever shown)."""

    url: str
    table: str
    region: str | None = None
    endpoint: str | None = None
    profile: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    user_index: str = DEFAULT_INDEX
    timeout: float = 2.0
    connect_timeout: float = 1.0
    max_attempts: int = 3

    def __repr__(self) -> str:
        return f"Target({mask_url(self.url)!r})"


def parse(url: str, **overrides: Any) -> Target:
    """``dynamodb://TABLE`` with the options above; ``overrides`` (keyword arguments of
    ``open_store``) win over the query string. Credentials default to boto3's own chain
    (environment, shared config, instance role): putting them in the URL is for tests."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "dynamodb":
        raise ConfigError("store", f"{mask_url(url)!r} is not a dynamodb:// URL")
    if "@" in parts.netloc:
        raise ConfigError(
            "store", f"{mask_url(url)!r}: DynamoDB URLs take no user or password; give "
            "credentials through boto3's usual chain (AWS_* variables, ~/.aws, a role), "
            "or ?access_key_id=...&secret_access_key=..."
        )  # fmt: skip
    table = unquote(parts.netloc or parts.path.lstrip("/"))
    if not _TABLE_RE.fullmatch(table):
        raise ConfigError(
            "store", f"{mask_url(url)!r}: name a table, dynamodb://TABLE, 3 to 255 letters, "
            "digits, '_', '-' or '.'"
        )  # fmt: skip
    options = query_options(url, _KINDS)
    options.update({k: v for k, v in overrides.items() if k in _KINDS})
    unknown = sorted(set(overrides) - set(_KINDS) - {"clock"})
    if unknown:
        raise ConfigError("store", f"DynamoDBStore takes no option {unknown[0]!r}")
    if options.get("max_attempts", 3) < 1:
        raise ConfigError("store", f"{mask_url(url)!r}: max_attempts must be at least 1")
    endpoint = options.get("endpoint")
    if endpoint is not None and urlsplit(endpoint).scheme not in ("http", "https"):
        raise ConfigError("store", f"{mask_url(url)!r}: endpoint must be an http(s):// URL")
    return Target(url=url, table=table, **options)


def table_definition(target: Target) -> dict[str, Any]:
    """``CreateTable``'s arguments: the digest as the partition key, on-demand capacity
    (nothing to size), and the user index, a GSI keyed on ``user``. Only bound sessions
    carry ``user``, so the index is sparse: anonymous sessions cost it nothing."""
    from sessionkit.stores.dynamodb.items import INDEXED, KEY, USER

    return {
        "TableName": target.table,
        "AttributeDefinitions": [
            {"AttributeName": KEY, "AttributeType": "S"},
            {"AttributeName": USER, "AttributeType": "S"},
        ],
        "KeySchema": [{"AttributeName": KEY, "KeyType": "HASH"}],
        "BillingMode": "PAY_PER_REQUEST",
        "GlobalSecondaryIndexes": [{
            "IndexName": target.user_index,
            "KeySchema": [{"AttributeName": USER, "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": list(INDEXED)},
        }],
    }  # fmt: skip
