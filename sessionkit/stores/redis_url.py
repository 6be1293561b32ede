"""Store URLs for Redis, and the redis-py clients they describe.

Forms (all take ``?prefix=`` and the connection options below)::

    redis://[[user]:password@]host[:port][/db]            one server
    rediss://...                                           one server over TLS
    redis+cluster://[[user]:password@]host:port[,host:port...]    Redis Cluster
    rediss+cluster://...                                   Redis Cluster over TLS
    redis+sentinel://[[user]:password@]host:port[,host:port...]/service[/db]   Sentinel

Unknown query options are refused at start-up, so a typo never silently changes behaviour.
The clients are built here but connect lazily, on first use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

from sessionkit.errors import ConfigError
from sessionkit.stores.base import mask_url, parse_flag

Kind = Literal["single", "cluster", "sentinel"]
DEFAULT_PREFIX = "sessionkit:"

_FLOATS = ("socket_timeout", "socket_connect_timeout", "health_check_interval")
_INTS = ("max_connections", "retries")
_BOOLS = ("ssl_check_hostname",)
_STRINGS = (
    "prefix", "ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile",
    "sentinel_username", "sentinel_password",
)  # fmt: skip
_KNOWN = frozenset((*_FLOATS, *_INTS, *_BOOLS, *_STRINGS))


@dataclass(frozen=True)
class RedisTarget:
    """Everything a Redis URL says, validated."""

    url: str
    kind: Kind
    nodes: tuple[tuple[str, int], ...]
    ssl: bool = False
    db: int = 0
    username: str | None = None
    password: str | None = None
    service: str | None = None
    prefix: str = DEFAULT_PREFIX
    socket_timeout: float = 5.0
    socket_connect_timeout: float = 5.0
    retries: int = 1
    options: dict[str, Any] = field(default_factory=dict)  # passed through to redis-py

    # -- clients ---------------------------------------------------------------------------
    def _common(self, retry: Any) -> dict[str, Any]:
        common: dict[str, Any] = {
            "username": self.username,
            "password": self.password,
            "socket_timeout": self.socket_timeout,
            "socket_connect_timeout": self.socket_connect_timeout,
            "retry": retry,
            **{k: v for k, v in self.options.items() if not k.startswith("sentinel_")},
        }
        if self.ssl:
            common["ssl"] = True
        return common

    def sync_client(self) -> tuple[Any, list[Any]]:
        """A redis-py client (``Redis``, ``RedisCluster`` or a Sentinel master proxy), and
        the clients it leans on (the Sentinels), to be closed with it."""
        import redis
        from redis import cluster, sentinel
        from redis.retry import Retry

        return self._client(redis.Redis, cluster, sentinel, Retry)

    def async_client(self) -> tuple[Any, list[Any]]:
        """The asyncio flavour of ``sync_client`` (native async, no worker thread)."""
        from redis.asyncio import Redis, cluster, sentinel
        from redis.asyncio.retry import Retry

        return self._client(Redis, cluster, sentinel, Retry)

    def _client(
        self, redis_class: Any, cluster: Any, sentinel: Any, retry_class: Any
    ) -> tuple[Any, list[Any]]:
        """One construction for both flavours: redis-py mirrors its sync API in asyncio."""
        from redis.backoff import ExponentialBackoff

        retry = retry_class(ExponentialBackoff(cap=0.2, base=0.02), self.retries)
        common = self._common(retry)
        if self.kind == "cluster":
            nodes = [cluster.ClusterNode(host, port) for host, port in self.nodes]
            return cluster.RedisCluster(startup_nodes=nodes, **common), []
        if self.kind == "sentinel":
            watchers = sentinel.Sentinel(
                list(self.nodes), sentinel_kwargs=self._sentinel_kwargs(retry), **common
            )
            return watchers.master_for(self.service, db=self.db), watchers.sentinels
        host, port = self.nodes[0]
        return redis_class(host=host, port=port, db=self.db, **common), []

    def _sentinel_kwargs(self, retry: Any) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "retry": retry,
            "socket_timeout": self.socket_timeout,
            "socket_connect_timeout": self.socket_connect_timeout,
        }
        for name in ("sentinel_username", "sentinel_password"):
            if name in self.options:
                kwargs[name.removeprefix("sentinel_")] = self.options[name]
        return kwargs


def parse(url: str, **overrides: Any) -> RedisTarget:
    """Validate a Redis store URL; ``overrides`` (keyword options) beat query options."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    kinds: dict[str, tuple[Kind, bool]] = {
        "redis": ("single", False), "rediss": ("single", True),
        "redis+cluster": ("cluster", False), "rediss+cluster": ("cluster", True),
        "redis+sentinel": ("sentinel", False), "rediss+sentinel": ("sentinel", True),
    }  # fmt: skip
    if scheme not in kinds:
        raise _bad(url, f"unknown scheme {scheme!r}")
    kind, ssl = kinds[scheme]
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    username = password = None
    if userinfo:
        user, has_password, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if has_password else None
    default_port = 26379 if kind == "sentinel" else 6379
    nodes = tuple(_node(url, item, default_port) for item in hostlist.split(",") if item)
    if not nodes:
        nodes = (("localhost", default_port),)
    if kind == "single" and len(nodes) > 1:
        raise _bad(url, "several hosts need redis+cluster:// or redis+sentinel://")

    path = [p for p in parts.path.split("/") if p]
    service = None
    if kind == "sentinel":
        if not path:
            raise _bad(url, "name the monitored service: redis+sentinel://host:port/service")
        service, path = unquote(path[0]), path[1:]
    if len(path) > 1:
        raise _bad(url, f"unexpected path {parts.path!r}")
    db = _number(url, "db", path[0], int) if path else 0
    if kind == "cluster" and db != 0:
        raise _bad(url, "Redis Cluster has only database 0")

    options: dict[str, Any] = {}
    for name, values in parse_qs(parts.query, keep_blank_values=True).items():
        options[name] = values[-1]
    options.update(overrides)
    unknown = sorted(set(options) - _KNOWN)
    if unknown:
        raise _bad(
            url, f"unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(_KNOWN))}"
        )
    for name in _FLOATS:
        if name in options:
            options[name] = _number(url, name, options[name], float)
    for name in _INTS:
        if name in options:
            options[name] = _number(url, name, options[name], int)
    for name in _BOOLS:
        if name in options and isinstance(options[name], str):
            try:
                options[name] = parse_flag(options[name])
            except ValueError:
                raise _bad(url, f"{name} must be true or false") from None
    if any(name.startswith("ssl_") for name in options) and not ssl:
        raise _bad(url, "ssl_* options need a rediss:// URL")
    prefix = str(options.pop("prefix", DEFAULT_PREFIX))
    if not prefix or "{" in prefix or "}" in prefix:
        raise _bad(url, "prefix must be non-empty and must not contain { or } (hash tags)")
    return RedisTarget(
        url=url, kind=kind, nodes=nodes, ssl=ssl, db=db, username=username, password=password,
        service=service, prefix=prefix,
        socket_timeout=options.pop("socket_timeout", 5.0),
        socket_connect_timeout=options.pop("socket_connect_timeout", 5.0),
        retries=options.pop("retries", 1), options=options,
    )  # fmt: skip


def _node(url: str, item: str, default_port: int) -> tuple[str, int]:
    if item.startswith("["):  # [ipv6]:port
        host, _, rest = item[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = item.partition(":")
    return (host or "localhost", _number(url, "port", port, int) if port else default_port)


def _number(url: str, name: str, value: Any, kind: type[int] | type[float]) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise _bad(url, f"{name} must be a number, not {value!r}") from None
    if number < 0:
        raise _bad(url, f"{name} must not be negative")
    return number


def _bad(url: str, problem: str) -> ConfigError:
    return ConfigError("store", f"{mask_url(url)!r}: {problem}")
