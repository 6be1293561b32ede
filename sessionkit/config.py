"""SessionConfig: every setting in one frozen dataclass, validated once at start-up.

A mistake here fails the process before it serves a request, with a ``ConfigError`` that
names the setting and says what to do. Nothing downstream re-checks a setting.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from sessionkit.errors import ConfigError
from sessionkit.failures import Failure, FailurePolicy, policies
from sessionkit.urls import mask_url

if TYPE_CHECKING:
    from sessionkit.stores.base import Store

MIN_KEY_BYTES = 32
DAY = 24 * 3600.0
#: The default absolute timeout; adapters never let it cut a session below its max_age.
DEFAULT_ABSOLUTE_TIMEOUT = 30 * DAY


def timeouts_for_age(age: float) -> dict[str, float]:
    """The settings for a framework's cookie age (Starlette's ``max_age``, Django's
    ``SESSION_COOKIE_AGE``): it is counted from the last save, so it is the idle timeout;
    the absolute timeout stays, but never cuts a session shorter than that age."""
    return {"idle_timeout": float(age), "absolute_timeout": max(DEFAULT_ABSOLUTE_TIMEOUT, age)}


SameSite = Literal["lax", "strict", "none"]
CookieSpelling = Literal["standard", "starlette"]
FingerprintAction = Literal["log", "regenerate", "invalidate"]
SessionLimitPolicy = Literal["evict_oldest", "refuse"]
DbscMissingAction = Literal["absent", "invalidate"]
AuditErasure = Literal["pseudonymise", "delete"]
#: Stores that keep a per-user index, so ``max_sessions_per_user`` can hold there.
LIMIT_STORES = "memory://, file:///, sqlite:///, postgresql://, redis:// (also Sentinel, Cluster)"
LIMIT_STORES += ", dynamodb://"
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclasses.dataclass(frozen=True)
class SessionConfig:
    """All of sessionkit's settings. Build it with keywords or ``from_mapping``.

    Timeouts are seconds (``timedelta`` accepted). ``secret_key`` is one key or a sequence
    of keys, newest first: the newest signs, all verify, so keys rotate without logouts.
    """

    secret_key: str | bytes | Sequence[str | bytes]
    store: str | Store = "cookie://"
    cookie_name: str = "session"
    cookie_path: str = "/"
    cookie_domain: str | None = None
    cookie_secure: bool = False
    cookie_httponly: bool = True
    cookie_samesite: SameSite | None = "lax"
    cookie_partitioned: bool = False
    #: Sliding: a session unused this long dies. ``None``: no idle limit.
    idle_timeout: float | None = 14 * DAY
    #: Fixed: a session dies this long after it was created, however busy. ``None``: none.
    absolute_timeout: float | None = DEFAULT_ABSOLUTE_TIMEOUT
    #: Cookies without Max-Age, dropped when the browser closes (server expiry still applies).
    browser_session: bool = False
    #: A read-only request extends the expiry at most this often (seconds).
    touch_interval: float = 60.0
    #: A persistent session's cookie is re-sent on every request that presents it, read or
    #: not, so the browser's expiry slides too (Flask's ``SESSION_REFRESH_EACH_REQUEST``).
    #: The store write is still throttled by ``touch_interval``.
    refresh_each_request: bool = False
    #: Persistent cookies also carry ``Expires=`` beside ``Max-Age`` (as Flask's do).
    cookie_expires: bool = False
    #: Seal each stored value of a server-side store with AES-256-GCM (``sessionkit.sealing``):
    #: the store then holds no readable session data, only the metadata its indexes need.
    encrypt_records: bool = False
    #: Clear a cookie that fails verification. ``False`` leaves it alone (as Flask and
    #: Starlette do): during a rolling key rotation it may be valid for another worker.
    clear_unverified_cookie: bool = True
    fingerprint_user_agent: bool = True
    fingerprint_ip: bool = False
    fingerprint_ipv4_prefix: int = 24
    fingerprint_ipv6_prefix: int = 64
    fingerprint_action: FingerprintAction = "invalidate"
    #: Proxies whose ``X-Forwarded-For`` is believed (addresses or networks).
    trusted_proxies: Sequence[str | IPNetwork] = ()
    #: The largest Set-Cookie header value sessionkit will send.
    max_cookie_size: int = 4096
    #: The status answered for a failure, by name (``{"lock_timeout": 423}``); the others
    #: keep their defaults (see ``sessionkit.failures`` and docs/failures.md).
    failure_status: Mapping[str, int] = dataclasses.field(default_factory=dict, hash=False)
    #: How Set-Cookie attributes are written: ``"standard"`` (``Path=/; HttpOnly``) or
    #: ``"starlette"`` (``path=/; httponly``, in Starlette's order), for the drop-in whose
    #: users' tests grep the header. Browsers read both alike.
    cookie_spelling: CookieSpelling = "standard"
    #: Sessions that die with the response (Starlette's ``max_age <= 0``): the cookie goes
    #: out with ``Max-Age=0``, nothing is stored, and a cookie sent back is ignored.
    ephemeral: bool = False
    #: At most this many live sessions per user (ASVS 5.0 7.1.2); ``None``: no limit. It
    #: is checked when a session is bound to a user (``bind_user``, a framework's login),
    #: atomically in the store, which must keep a user index (docs/session-limit.md).
    max_sessions_per_user: int | None = None
    #: At the limit, a new login ``"evict_oldest"`` (deletes the user's least recently
    #: used session) or is refused (``"refuse"``: ``SessionLimitReached``, answered 409).
    session_limit_policy: SessionLimitPolicy = "evict_oldest"
    #: A second store that serves reads while ``store`` is down, typically a replica of it
    #: (``redis://replica...``): read-only degraded mode, every change refused with a 503
    #: (``StoreReadOnly``) until the primary is back (docs/fallback.md). ``None``: none.
    fallback: str | Store | None = None
    #: While the fallback serves, one request at most this often (seconds) tries the
    #: primary again; the others never wait for a store that is down.
    fallback_probe_interval: float = 5.0
    #: Device Bound Session Credentials (docs/dbsc.md): a login offers a browser that can
    #: keep a private key the chance to bind the session to it; a bound session then also
    #: needs a short-lived cookie only that key can renew. Needs a server-side store.
    dbsc: bool = False
    #: How long a bound cookie lives (seconds): a copied session cookie works that long.
    dbsc_cookie_lifetime: float = 600.0
    #: Where the registration and refresh endpoints are mounted (``<path>/registration``,
    #: ``<path>/refresh``), by every adapter, when ``dbsc`` is on.
    dbsc_path: str = "/sessionkit/dbsc"
    #: A bound session seen without its bound cookie: ``"absent"`` (the request has no
    #: session; the session lives on for its device) or ``"invalidate"`` (it is deleted).
    dbsc_missing_action: DbscMissingAction = "absent"
    #: The audit trail (docs/audit.md): ``"log"`` (JSON lines on ``sessionkit.audit``),
    #: ``"store"`` (the store's own sink: SQL table, Redis streams, memory), both
    #: (``"log,store"``), or ``None`` (off).
    audit: str | Sequence[str] | None = None
    #: How long audit entries are kept (seconds or ``timedelta``); older ones are removed.
    audit_retention: float = 90 * DAY
    #: The most entries kept per user in Redis (``MAXLEN ~``) and in all in memory.
    audit_max_entries: int = 10_000
    #: Cookie rejections recorded per minute and process; the rest are counted, not kept.
    audit_rejections_per_minute: int = 60
    #: What ``erase_user`` does to a user's entries: ``"pseudonymise"`` (the user key
    #: becomes a keyed hash, device and network are dropped) or ``"delete"``.
    audit_erasure: AuditErasure = "pseudonymise"
    #: Metrics and traces: ``"prometheus"``, ``"otel"`` or both (``"prometheus,otel"``);
    #: empty: none, and nothing is measured (docs/metrics.md, ``sessionkit.metrics``).
    metrics: str | Sequence[str] = ()
    #: Seconds between two background counts of the active sessions (``0``: never).
    metrics_interval: float = 30.0

    # Derived, validated values (filled in __post_init__).
    secret_keys: tuple[bytes, ...] = dataclasses.field(init=False, repr=False)
    trusted_networks: tuple[IPNetwork, ...] = dataclasses.field(init=False, repr=False)
    failure_policies: Mapping[Failure, FailurePolicy] = dataclasses.field(
        init=False, repr=False, compare=False, hash=False
    )
    audit_sinks: tuple[str, ...] = dataclasses.field(init=False, repr=False)

    def __repr__(self) -> str:  # never print keys or store passwords
        def show(name: str) -> str:
            value = getattr(self, name)
            return repr(mask_url(value) if isinstance(value, str) else value)

        shown = ", ".join(
            f"{f.name}={show(f.name)}"
            for f in dataclasses.fields(self)
            if f.init and f.name != "secret_key"
        )
        return f"SessionConfig(secret_key=<{len(self.secret_keys)} key(s)>, {shown})"

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "secret_keys", _keys(self.secret_key))
        for name in ("idle_timeout", "absolute_timeout"):
            set_(self, name, _seconds(name, getattr(self, name), allow_none=True))
        set_(self, "touch_interval", _seconds("touch_interval", self.touch_interval, zero=True))
        if self.idle_timeout is None and self.absolute_timeout is None:
            raise ConfigError(
                "idle_timeout",
                "both idle_timeout and absolute_timeout are None, so sessions would never "
                "expire; set at least one of them",
            )
        set_(self, "trusted_networks", _networks(self.trusted_proxies))
        if not isinstance(self.failure_status, Mapping):
            raise ConfigError("failure_status", "give a dict, e.g. {'lock_timeout': 423}")
        set_(self, "failure_policies", policies(self.failure_status))
        self._check_cookie()
        self._check_fingerprint()
        self._check_session_limit()
        self._check_fallback()
        self._check_dbsc()
        self._check_audit()
        from sessionkit.metrics import backends_of  # here: it imports this module

        set_(self, "metrics", backends_of(self.metrics))
        interval = _seconds("metrics_interval", self.metrics_interval, zero=True)
        set_(self, "metrics_interval", interval)
        if not isinstance(self.store, str) and not hasattr(self.store, "client_side"):
            raise ConfigError(
                "store", f"expected a store URL or a store object, got {self.store!r}"
            )
        if isinstance(self.store, str) and "://" not in self.store:
            raise ConfigError(
                "store",
                f"{self.store!r} is not a store URL; use e.g. 'cookie://', 'memory://', "
                "'redis://localhost:6379/0', 'sqlite:///sessions.db' or 'file:///var/sessions'",
            )

    def _check_cookie(self) -> None:
        name = self.cookie_name
        if not name or not _is_token(name):
            raise ConfigError(
                "cookie_name", f"{name!r} is not a valid cookie name (letters, digits, -_.)"
            )
        if not self.cookie_path.startswith("/") or any(c in self.cookie_path for c in ";\r\n,"):
            raise ConfigError("cookie_path", f"{self.cookie_path!r} must start with '/'")
        if self.cookie_domain is not None and (
            not self.cookie_domain or any(c in self.cookie_domain for c in ";, \r\n")
        ):
            raise ConfigError("cookie_domain", f"{self.cookie_domain!r} is not a domain")
        samesite = self.cookie_samesite
        if samesite is not None:
            lowered = samesite.lower()
            if lowered not in ("lax", "strict", "none"):
                raise ConfigError(
                    "cookie_samesite", f"{samesite!r}: use 'lax', 'strict', 'none' or None"
                )
            object.__setattr__(self, "cookie_samesite", lowered)
        if self.cookie_samesite == "none" and not self.cookie_secure:
            raise ConfigError(
                "cookie_samesite",
                "SameSite=None requires cookie_secure=True (browsers drop such cookies "
                "otherwise, and they would be sent cross-site over plain HTTP)",
            )
        if self.cookie_partitioned and not self.cookie_secure:
            raise ConfigError(
                "cookie_partitioned", "Partitioned cookies require cookie_secure=True"
            )
        lowered_name = name.lower()
        if lowered_name.startswith("__host-"):
            if not name.startswith("__Host-"):
                raise ConfigError("cookie_name", "write the prefix exactly as '__Host-'")
            if not self.cookie_secure:
                raise ConfigError("cookie_secure", "a __Host- cookie must set cookie_secure=True")
            if self.cookie_domain is not None:
                raise ConfigError(
                    "cookie_domain",
                    "a __Host- cookie must not set a Domain; remove cookie_domain "
                    "or use the __Secure- prefix",
                )
            if self.cookie_path != "/":
                raise ConfigError("cookie_path", "a __Host- cookie must use cookie_path='/'")
        elif lowered_name.startswith("__secure-"):
            if not name.startswith("__Secure-"):
                raise ConfigError("cookie_name", "write the prefix exactly as '__Secure-'")
            if not self.cookie_secure:
                raise ConfigError("cookie_secure", "a __Secure- cookie must set cookie_secure=True")
        if self.cookie_spelling not in ("standard", "starlette"):
            raise ConfigError(
                "cookie_spelling", f"{self.cookie_spelling!r}: use 'standard' or 'starlette'"
            )
        if not 256 <= self.max_cookie_size <= 4096:
            raise ConfigError("max_cookie_size", "must be between 256 and 4096 bytes")

    def _check_fingerprint(self) -> None:
        if self.fingerprint_action not in ("log", "regenerate", "invalidate"):
            raise ConfigError(
                "fingerprint_action",
                f"{self.fingerprint_action!r}: use 'log', 'regenerate' or 'invalidate'",
            )
        if not 8 <= self.fingerprint_ipv4_prefix <= 32:
            raise ConfigError("fingerprint_ipv4_prefix", "must be between 8 and 32")
        if not 16 <= self.fingerprint_ipv6_prefix <= 128:
            raise ConfigError("fingerprint_ipv6_prefix", "must be between 16 and 128")

    def _check_session_limit(self) -> None:
        limit = self.max_sessions_per_user
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        ):
            raise ConfigError(
                "max_sessions_per_user", f"{limit!r}: use a positive whole number, or None"
            )
        if self.session_limit_policy not in ("evict_oldest", "refuse"):
            raise ConfigError(
                "session_limit_policy",
                f"{self.session_limit_policy!r}: use 'evict_oldest' or 'refuse'",
            )
        # A store URL known to keep no user index fails here; the default "cookie://" may
        # be a placeholder for a store object handed to the engine, which checks the store
        # it actually uses (SessionEngine.__init__).
        if limit is not None and isinstance(self.store, str):
            scheme = self.store.partition("://")[0].lower()
            if scheme == "memcached" or (scheme == "cookie" and self.store != "cookie://"):
                raise ConfigError("max_sessions_per_user", limit_unsupported(scheme + "://"))

    def _check_fallback(self) -> None:
        set_ = object.__setattr__
        set_(self, "fallback_probe_interval",
             _seconds("fallback_probe_interval", self.fallback_probe_interval))  # fmt: skip
        fallback = self.fallback
        if fallback is None:
            return
        if isinstance(fallback, str):
            if "://" not in fallback:
                raise ConfigError(
                    "fallback", f"{mask_url(fallback)!r} is not a store URL; use e.g. "
                    "'redis://replica.internal:6379/0'",
                )  # fmt: skip
            if fallback.partition("://")[0].lower() == "cookie":
                raise ConfigError("fallback", FALLBACK_NOT_COOKIE)
            if fallback == self.store:
                raise ConfigError(
                    "fallback", "is the same URL as store; give a replica of the store"
                )
        elif not hasattr(fallback, "client_side"):
            raise ConfigError(
                "fallback", f"expected a store URL or a store object, got {fallback!r}"
            )
        elif fallback.client_side:
            raise ConfigError("fallback", FALLBACK_NOT_COOKIE)
        store = self.store
        if (isinstance(store, str) and store.partition("://")[0].lower() == "cookie"
                and store != "cookie://") or getattr(store, "client_side", False):  # fmt: skip
            raise ConfigError(
                "fallback", "the cookie store has no server to go down: it needs no fallback"
            )

    def _check_dbsc(self) -> None:
        if not isinstance(self.dbsc, bool):
            raise ConfigError("dbsc", f"{self.dbsc!r}: use True or False")
        lifetime = _seconds("dbsc_cookie_lifetime", self.dbsc_cookie_lifetime)
        if not 10 <= lifetime <= DAY:
            raise ConfigError(
                "dbsc_cookie_lifetime",
                f"{lifetime!r}: use between 10 seconds and a day (minutes are usual: a "
                "copied session cookie works for this long)",
            )
        object.__setattr__(self, "dbsc_cookie_lifetime", lifetime)
        path = self.dbsc_path
        if (
            not isinstance(path, str) or not path.startswith("/") or path == "/"
            or path.endswith("/") or not all(c.isascii() and (c.isalnum() or c in "/-_.~")
                                             for c in path)
        ):  # fmt: skip
            raise ConfigError(
                "dbsc_path", f"{path!r}: use a path like '/sessionkit/dbsc' (no trailing '/')"
            )
        if self.dbsc_missing_action not in ("absent", "invalidate"):
            raise ConfigError(
                "dbsc_missing_action",
                f"{self.dbsc_missing_action!r}: use 'absent' or 'invalidate'",
            )

    def _check_audit(self) -> None:
        from sessionkit.audit import parse_audit

        try:
            object.__setattr__(self, "audit_sinks", parse_audit(self.audit))
        except (ValueError, TypeError, AttributeError):
            raise ConfigError(
                "audit", f"{self.audit!r}: use 'log', 'store', 'log,store' or None (off)"
            ) from None
        object.__setattr__(
            self, "audit_retention", _seconds("audit_retention", self.audit_retention)
        )
        for name in ("audit_max_entries", "audit_rejections_per_minute"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(name, f"{value!r}: use a positive whole number")
        if self.audit_erasure not in ("pseudonymise", "delete"):
            raise ConfigError(
                "audit_erasure", f"{self.audit_erasure!r}: use 'pseudonymise' or 'delete'"
            )

    # ------------------------------------------------------------------------------------
    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any], **overrides: Any) -> SessionConfig:
        """Build a config from a settings dict (``{"SECRET_KEY": ..., "STORE": ...}``).

        Keys are matched case-insensitively; unknown keys are an error that suggests the
        closest known setting, because a typo in a security setting must not pass silently.
        """
        known = {f.name for f in dataclasses.fields(cls) if f.init}
        values: dict[str, Any] = {}
        for raw_key, value in settings.items():
            key = raw_key.lower()
            if key not in known:
                hint = difflib.get_close_matches(key, sorted(known), n=1)
                # in the user's own spelling: IDLE_TIMEOUT in a settings dict, idle_timeout
                # for keyword arguments (the ASGI middleware's options)
                suggestion = ""
                if hint:
                    spelt = hint[0] if raw_key.islower() else hint[0].upper()
                    suggestion = f"; did you mean {spelt!r}?"
                raise ConfigError(raw_key, f"unknown setting{suggestion}")
            values[key] = value
        values.update(overrides)
        if "secret_key" not in values:
            raise ConfigError(
                "secret_key",
                "missing; generate one with `sessionkit keygen` (or "
                "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`)",
            )
        return cls(**values)

    def replace(self, **changes: Any) -> SessionConfig:
        return dataclasses.replace(self, **changes)


#: Why ``fallback="cookie://"`` is refused (docs/fallback.md).
FALLBACK_NOT_COOKIE = (
    "the cookie store cannot be a fallback: sessions made in cookies during an outage "
    "would live outside the primary store, where no logout or revoke reaches them, and a "
    "visitor would hold two sessions at once; use a replica of the store (a Redis replica, "
    "a SQL read replica)"
)


def limit_unsupported(store: str) -> str:
    """The message for a ``max_sessions_per_user`` that ``store`` cannot hold."""
    return (
        f"{store} keeps no per-user index, so it cannot count a user's sessions; use a "
        f"store that does ({LIMIT_STORES}), or set max_sessions_per_user=None"
    )


def _is_token(name: str) -> bool:
    return all(c.isascii() and (c.isalnum() or c in "!#$%&'*+-.^_`|~") for c in name)


def _keys(value: Any) -> tuple[bytes, ...]:
    items: Iterable[Any] = [value] if isinstance(value, (str, bytes)) else value
    keys: list[bytes] = []
    for position, key in enumerate(items or ()):
        if isinstance(key, str):
            key = key.encode("utf-8")
        if not isinstance(key, bytes):
            which = "the secret key" if position == 0 else f"fallback key #{position}"
            raise ConfigError("secret_key", f"{which} must be str or bytes")
        if len(key) < MIN_KEY_BYTES:
            which = "the secret key" if position == 0 else f"fallback key #{position}"
            raise ConfigError(
                "secret_key",
                f"{which} is {len(key)} bytes; at least {MIN_KEY_BYTES} random bytes are "
                "required. Generate one with `sessionkit keygen`",
            )
        if not _looks_random(key):
            which = "the secret key" if position == 0 else f"fallback key #{position}"
            raise ConfigError(
                "secret_key",
                f"{which} is not random (it repeats a short pattern or a few characters). "
                "Generate one with `sessionkit keygen`",
            )
        keys.append(key)
    if not keys:
        raise ConfigError(
            "secret_key", "no secret key given; generate one with `sessionkit keygen`"
        )
    return tuple(keys)


def _looks_random(key: bytes) -> bool:
    """Refuse the keys people type: few distinct characters (``"x" * 40``) or one short
    pattern repeated (``"changeme-" * 4``). A key from ``sessionkit keygen``, Django's
    ``get_random_secret_key()`` or ``secrets.token_hex(32)`` always passes."""
    if len(set(key)) < 8:
        return False
    for period in range(1, len(key) // 2 + 1):
        if all(key[i] == key[i % period] for i in range(len(key))):
            return False
    return True


def _seconds(name: str, value: Any, *, allow_none: bool = False, zero: bool = False) -> Any:
    if value is None and allow_none:
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(name, f"expected seconds (a number or timedelta), got {value!r}")
    if value < 0 or (value == 0 and not zero):
        raise ConfigError(name, f"must be positive, got {value!r}")
    return float(value)


def _networks(values: Sequence[str | IPNetwork]) -> tuple[IPNetwork, ...]:
    if isinstance(values, str):
        values = [v.strip() for v in values.split(",") if v.strip()]
    out = []
    for value in values:
        try:
            out.append(ipaddress.ip_network(value, strict=False))
        except ValueError as exc:
            raise ConfigError("trusted_proxies", f"{value!r} is not an address or network") from exc
    return tuple(out)
