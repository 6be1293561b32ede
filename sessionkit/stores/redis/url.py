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
from sessionkit.urls import is_secret_option, mask_url, parse_flag

Kind = Literal["single", "cluster", "sentinel"]
DEFAULT_PREFIX = "sessionkit:"

#: Fail fast: a session store that does not answer must not tie up a worker for long. A
#: command waits at most ``socket_timeout`` for its reply and is not retried after a timeout
#: (the server is stalled or gone: a second wait would double the cost); a connection that
#: breaks (a restarted server, an idle connection the server closed) is retried once.
DEFAULT_SOCKET_TIMEOUT = 1.0
DEFAULT_CONNECT_TIMEOUT = 1.0
DEFAULT_RETRIES = 1
#: Record layouts this release writes: 2 keeps the session's key order (and the per-write
#: nonce that makes a retried CREATE safe); 1 is the layout of sessionkit before it, for a
#: rolling deploy whose old workers still run (both are always read).
RECORD_FORMATS = (1, 2)

_FLOATS = ("socket_timeout", "socket_connect_timeout", "health_check_interval")
_INTS = ("max_connections", "retries", "record_format")
_BOOLS = ("ssl_check_hostname",)
_STRINGS = (
    "prefix", "ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile",
    "sentinel_username", "sentinel_password",
)  # fmt: skip
_KNOWN = frozenset((*_FLOATS, *_INTS, *_BOOLS, *_STRINGS))


@dataclass(frozen=True)
class RedisTarget:
    """Everything a Redis URL says, validated. Its repr masks every secret."""

    url: str
    kind: Kind
    nodes: tuple[tuple[str, int], ...]
    ssl: bool = False
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    service: str | None = None
    prefix: str = DEFAULT_PREFIX
    socket_timeout: float = DEFAULT_SOCKET_TIMEOUT
    socket_connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    record_format: int = 2
    options: dict[str, Any] = field(default_factory=dict)  # passed through to redis-py

    def __repr__(self) -> str:
        shown = {k: "***" if is_secret_option(k) else v for k, v in self.options.items()}
        return (
            f"RedisTarget(url={mask_url(self.url)!r}, kind={self.kind!r}, "
            f"nodes={self.nodes!r}, db={self.db}, prefix={self.prefix!r}, options={shown!r})"
        )

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

        return self._client(redis, cluster, sentinel, Retry)

    def async_client(self) -> tuple[Any, list[Any]]:
        """The asyncio flavour of ``sync_client`` (native async, no worker thread)."""
        import redis.asyncio
        from redis.asyncio import cluster, sentinel
        from redis.asyncio.retry import Retry

        return self._client(redis.asyncio, cluster, sentinel, Retry)

    def _client(
        self, flavour: Any, cluster: Any, sentinel: Any, retry_class: Any
    ) -> tuple[Any, list[Any]]:
        """One construction for both flavours: redis-py mirrors its sync API in asyncio."""
        from redis.backoff import ExponentialBackoff
        from redis.exceptions import ConnectionError as RedisConnectionError

        retry = retry_class(
            ExponentialBackoff(cap=0.2, base=0.02), self.retries,
            supported_errors=(RedisConnectionError,),  # never after a timeout: fail fast
        )  # fmt: skip
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
        limit = common.pop("max_connections", None)
        if limit is None:
            return flavour.Redis(host=host, port=port, db=self.db, **common), []
        # A bounded pool that makes a caller wait for a free connection (up to the socket
        # timeout) instead of failing at once with "Too many connections" under a burst.
        tls = common.pop("ssl", False)
        pool = flavour.BlockingConnectionPool(
            max_connections=limit, timeout=self.socket_timeout or None,
            connection_class=flavour.SSLConnection if tls else flavour.Connection,
            host=host, port=port, db=self.db, **common,
        )  # fmt: skip
        return flavour.Redis.from_pool(pool), []  # the client closes the pool with it

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


def target_of_client(client: Any, prefix: str = DEFAULT_PREFIX) -> RedisTarget:
    """A ``RedisTarget`` describing a client the application built itself (``client=``):
    its kind, and a URL for messages (no password: the client keeps its credentials)."""
    from redis.asyncio.cluster import RedisCluster as AsyncCluster
    from redis.cluster import RedisCluster

    if not prefix or "{" in prefix or "}" in prefix:
        raise _bad("redis://", "prefix must be non-empty and must not contain { or } (hash tags)")
    if isinstance(client, (RedisCluster, AsyncCluster)):
        nodes = tuple((n.host, int(n.port)) for n in client.get_nodes()) or (("?", 0),)
        hosts = ",".join(f"{h}:{p}" for h, p in nodes)
        return RedisTarget(url=f"redis+cluster://{hosts}", kind="cluster", nodes=nodes,
                           prefix=prefix)  # fmt: skip
    kwargs = client.connection_pool.connection_kwargs
    if kwargs.get("decode_responses"):
        raise _bad("redis://", "the client must not set decode_responses=True (sessionkit "
                               "reads raw bytes)")  # fmt: skip
    host, port = kwargs.get("host", "localhost"), int(kwargs.get("port", 6379))
    db = kwargs.get("db", 0)
    where, service = kwargs.get("path"), getattr(client.connection_pool, "service_name", None)
    if service is not None:  # a Sentinel's master_for() client
        url = f"redis+sentinel:///{service}/{db}"
    else:
        url = f"unix://{where}" if where else f"redis://{host}:{port}/{db}"
    return RedisTarget(url=url, kind="single", nodes=((str(host), port),), db=int(db or 0),
                       prefix=prefix)  # fmt: skip


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
    if options.get("record_format", 2) not in RECORD_FORMATS:
        raise _bad(url, f"record_format must be one of {RECORD_FORMATS}")
    prefix = str(options.pop("prefix", DEFAULT_PREFIX))
    if not prefix or "{" in prefix or "}" in prefix:
        raise _bad(url, "prefix must be non-empty and must not contain { or } (hash tags)")
    return RedisTarget(
        url=url, kind=kind, nodes=nodes, ssl=ssl, db=db, username=username, password=password,
        service=service, prefix=prefix,
        socket_timeout=options.pop("socket_timeout", DEFAULT_SOCKET_TIMEOUT),
        socket_connect_timeout=options.pop("socket_connect_timeout", DEFAULT_CONNECT_TIMEOUT),
        retries=options.pop("retries", DEFAULT_RETRIES),
        record_format=options.pop("record_format", 2), options=options,
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
