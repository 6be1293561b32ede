"""Session: a real ``dict`` that knows whether it was read, changed, or must get a new ID.

It is a ``dict`` subclass so ``json.dumps(session)`` and framework JSON responses take it as
is. Every reading method marks it ``accessed`` (that is what makes a response ``Vary:
Cookie``); every mutating method records which keys changed, so a save writes only those
keys. Values handed out that could be mutated in place (``session["cart"].append(1)``) are
snapshotted when first read and compared at commit, so nested changes are saved too.

A session may be *pending*: its cookie was verified but the record not yet fetched. The
first use of any method loads it (sync frameworks); async adapters load it up front.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from uuid import UUID

from sessionkit import serialization

if TYPE_CHECKING:
    from sessionkit.stores.base import RecordMeta

_IMMUTABLE = frozenset(
    {str, int, float, bool, type(None), bytes, date, datetime, UUID, Decimal, frozenset}
)
_MISSING: Any = object()
_FOREVER = float("inf")


class Session(dict[str, Any]):
    """The session a view sees. Use it as a dict; the methods below add what sessions need."""

    __slots__ = (
        "_accessed",
        "_browser",
        "_changed",
        "_cleared",
        "_ctx",
        "_expires",
        "_flash_new",
        "_flash_old",
        "_force",
        "_idle",
        "_invalidated",
        "_loader",
        "_meta",
        "_meta_changed",
        "_new",
        "_removed",
        "_rotate",
        "_snapshots",
        "_until",
        "_user",
        "_user_changed",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if args or kwargs:  # the engine builds every session empty: skip dict's init then
            super().__init__(*args, **kwargs)
        self._loader: Callable[[Session], None] | None = None
        self._ctx: Any = None
        self._accessed = False
        self._new = True
        self._changed: set[str] = set(dict.keys(self)) if args or kwargs else set()
        self._removed: set[str] = set()
        self._cleared = False
        self._force = False
        self._snapshots: dict[str, str] = {}
        self._meta: RecordMeta | None = None
        self._meta_changed = False
        self._rotate = False
        self._invalidated = False
        self._user: str | None = None
        self._user_changed = False
        self._idle: float | None = None
        self._browser: bool | None = None
        self._until: float | None = None
        self._flash_new: list[str] = []
        self._flash_old: list[str] = []
        self._expires: float | None = None

    # -- loading ---------------------------------------------------------------------------
    def _pend(self, loader: Callable[[Session], None]) -> None:
        """Defer loading to ``loader``, called with this session on first use."""
        self._loader = loader

    def _unpend(self) -> None:
        self._loader = None

    def _ensure(self) -> None:
        loader = self._loader
        if loader is not None:
            self._loader = None  # what _unpend does, without the call: on every first use
            loader(self)

    def _read(self) -> None:
        if self._loader is not None:
            self._ensure()
        self._accessed = True

    def _write(self, key: str) -> None:
        if self._loader is not None:
            self._ensure()
        self._accessed = True
        self._changed.add(key)
        self._removed.discard(key)

    def _watch(self, key: str, value: Any) -> Any:
        if (
            type(value) not in _IMMUTABLE
            and key not in self._changed
            and key not in self._snapshots
        ):
            self._snapshots[key] = serialization.dumps(value)
        return value

    def _forget(self, key: str) -> None:
        self._changed.discard(key)
        self._snapshots.pop(key, None)
        self._removed.add(key)

    # -- reading ---------------------------------------------------------------------------
    # The hottest methods inline _read and the immutable case of _watch: a view reads a
    # value or two on nearly every request.
    def __getitem__(self, key: str) -> Any:
        if self._loader is not None:
            self._ensure()
        self._accessed = True
        value = dict.__getitem__(self, key)
        return value if type(value) in _IMMUTABLE else self._watch(key, value)

    def get(self, key: str, default: Any = None) -> Any:
        if self._loader is not None:
            self._ensure()
        self._accessed = True
        value = dict.get(self, key, _MISSING)
        if value is _MISSING:
            return default
        return value if type(value) in _IMMUTABLE else self._watch(key, value)

    def __contains__(self, key: object) -> bool:
        self._read()
        return dict.__contains__(self, key)

    def __len__(self) -> int:
        self._read()
        return dict.__len__(self)

    def __iter__(self) -> Iterator[str]:
        self._read()
        return dict.__iter__(self)

    def __reversed__(self) -> Iterator[str]:
        self._read()
        return dict.__reversed__(self)

    def keys(self) -> Any:
        self._read()
        return dict.keys(self)

    def values(self) -> Any:
        self._read()
        for key, value in dict.items(self):
            self._watch(key, value)
        return dict.values(self)

    def items(self) -> Any:
        self._read()
        for key, value in dict.items(self):
            self._watch(key, value)
        return dict.items(self)

    def copy(self) -> dict[str, Any]:
        """A plain ``dict`` copy (shallow). Its values are the session's own objects, so a
        value changed in place through the copy is still saved, as through ``items()``."""
        self._read()
        for key, value in dict.items(self):
            self._watch(key, value)
        return dict(dict.items(self))

    def __eq__(self, other: object) -> bool:
        self._read()
        return dict.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None

    def __or__(self, other: Any) -> dict[str, Any]:  # type: ignore[override]
        merged: dict[str, Any] = self.copy() | other
        return merged

    def __repr__(self) -> str:
        if self._loader is not None:
            return "<Session (not loaded)>"
        return f"<Session {dict.__repr__(self)}>"

    # -- writing ---------------------------------------------------------------------------
    def __setitem__(self, key: str, value: Any) -> None:
        serialization.check_item(key, value)  # refused here, in the view, naming the key
        if self._loader is not None:
            self._ensure()
        self._accessed = True
        self._changed.add(key)
        if self._removed:
            self._removed.discard(key)
        dict.__setitem__(self, key, value)

    def __delitem__(self, key: str) -> None:
        self._read()
        dict.__delitem__(self, key)
        self._forget(key)

    def setdefault(self, key: str, default: Any = None) -> Any:
        self._read()
        if dict.__contains__(self, key):
            return self._watch(key, dict.__getitem__(self, key))
        serialization.check_item(key, default)
        self._write(key)
        return dict.setdefault(self, key, default)

    def pop(self, key: str, default: Any = _MISSING) -> Any:
        self._read()
        if dict.__contains__(self, key):
            self._forget(key)
            return dict.pop(self, key)
        if default is _MISSING:
            raise KeyError(key)
        return default

    def popitem(self) -> tuple[str, Any]:
        self._read()
        key, value = dict.popitem(self)
        self._forget(key)
        return key, value

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def __ior__(self, other: Any) -> Session:  # type: ignore[override]
        self.update(other)
        return self

    def clear(self) -> None:
        self._read()
        dict.clear(self)
        self._changed.clear()
        self._removed.clear()
        self._snapshots.clear()
        self._cleared = True
        self._flash_new.clear()
        self._flash_old.clear()

    # -- state -----------------------------------------------------------------------------
    @property
    def accessed(self) -> bool:
        """True once the request read or wrote the session (responses then vary on Cookie)."""
        return self._accessed

    @accessed.setter
    def accessed(self, value: bool) -> None:
        self._accessed = bool(value)

    @property
    def modified(self) -> bool:
        """True when this request changed the session. Set it to force a full save."""
        return bool(
            self._changed
            or self._removed
            or self._cleared
            or self._force
            or self._meta_changed
            or self._rotate
        )

    @modified.setter
    def modified(self, value: bool) -> None:
        if self._loader is not None:
            self._ensure()
        self._force = bool(value)
        if value:
            self._accessed = True

    @property
    def new(self) -> bool:
        """True when no stored session stands behind this one (yet)."""
        if self._loader is not None:
            self._ensure()
        return self._new

    @property
    def loaded(self) -> bool:
        return self._loader is None

    def load(self) -> None:
        """Fetch the record now if the session is still pending (a no-op otherwise), without
        marking it accessed: for an adapter that must know the session at the end of a
        request the view did not use it in."""
        if self._loader is not None:
            self._ensure()

    @property
    def changed_keys(self) -> frozenset[str]:
        """The keys this request set or removed so far (``clear()`` starts again)."""
        return frozenset(self._changed | self._removed)

    @property
    def expiry_choice(self) -> str | None:
        """What ``set_expiry`` chose for the cookie: ``"persistent"`` (seconds or a
        datetime), ``"browser"`` (``0``), or ``None`` (the configured defaults)."""
        if self._loader is not None:
            self._ensure()
        if self._browser is None:
            return None
        return "browser" if self._browser else "persistent"

    @property
    def user_id(self) -> str | None:
        """The user this session was bound to with ``bind_user``."""
        if self._loader is not None:
            self._ensure()
        return self._user

    @property
    def created(self) -> datetime | None:
        """When this session was first stored (UTC), or ``None`` for a new one."""
        if self._loader is not None:
            self._ensure()
        return _utc(self._meta.created) if self._meta is not None else None

    @property
    def last_seen(self) -> datetime | None:
        """When a request last extended this session (UTC)."""
        if self._loader is not None:
            self._ensure()
        return _utc(self._meta.last_seen) if self._meta is not None else None

    @property
    def expires(self) -> datetime | None:
        """When the session dies if left alone (UTC), as of its last load or commit."""
        if self._loader is not None:
            self._ensure()
        return _utc(self._expires) if self._expires is not None else None

    @property
    def handle(self) -> str | None:
        """A short, opaque name for this session, safe to show or log; never the ID."""
        if self._loader is not None:
            self._ensure()
        ctx = self._ctx
        return getattr(ctx, "handle", None) if ctx is not None else None

    # -- lifecycle -------------------------------------------------------------------------
    def regenerate(self) -> None:
        """Move the data to a new ID at the end of the request; the old ID stops working.

        Call it whenever privileges change (login, sudo mode) to defeat session fixation.
        """
        if self._loader is not None:
            self._ensure()
        self._accessed = True
        self._rotate = True

    def invalidate(self) -> None:
        """Discard the data and kill the ID server-side (logout). Values set afterwards
        start a fresh session with a new ID."""
        self.clear()
        self._rotate = True
        self._invalidated = True
        self._user = None
        self._user_changed = True
        self._idle = self._browser = self._until = None
        self._meta_changed = True

    def bind_user(self, user_id: object, *, regenerate: bool = True) -> None:
        """Tie this session to a user, so it appears in that user's session list and is
        revoked with it. Regenerates the ID by default: binding is a login, and a login
        that keeps the pre-login ID invites fixation. The absolute timeout restarts."""
        if self._loader is not None:
            self._ensure()
        self._accessed = True
        self._user = None if user_id is None else str(user_id)
        self._user_changed = True
        self._meta_changed = True
        if regenerate:
            self._rotate = True

    def start_device_binding(self) -> None:
        """Offer this response's browser to bind the session to a key it holds (DBSC, with
        ``dbsc=True``): the response carries the registration header. ``bind_user`` does
        this by itself over HTTPS; call it to bind a session that is already signed in,
        or one on plain HTTP. Without ``dbsc`` on, it does nothing."""
        if self._loader is not None:
            self._ensure()
        self._accessed = True
        # saved, so the response re-sends the cookie with Cache-Control: private: the
        # header's one-time challenge must never sit in a shared cache
        self._meta_changed = True
        if self._ctx is not None:
            self._ctx.dbsc_start = True

    def set_expiry(self, value: float | timedelta | datetime | None) -> None:
        """Per-session expiry, e.g. "remember me".

        - seconds or ``timedelta``: this session's idle timeout;
        - ``0``: a browser-session cookie (gone when the browser closes);
        - ``datetime``: die at that moment at the latest;
        - ``None``: back to the configured defaults.

        The absolute timeout still applies in every case.
        """
        if isinstance(value, bool) or not (
            value is None or isinstance(value, (datetime, timedelta, int, float))
        ):  # refused before anything changes
            raise TypeError(
                f"set_expiry takes seconds, a timedelta, an aware datetime or None, not "
                f"{value!r}"
            )
        if self._loader is not None:
            self._ensure()
        self._accessed = True
        self._meta_changed = True
        if value is None:
            self._idle = self._browser = self._until = None
        elif isinstance(value, datetime):
            if value.tzinfo is None:
                raise ValueError("set_expiry needs an aware datetime (with tzinfo)")
            self._until = value.timestamp()
            self._browser = False
        else:
            seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
            if not 0 <= seconds < _FOREVER:  # NaN fails this too
                raise ValueError(
                    "set_expiry needs a finite, non-negative number of seconds; for a session "
                    "that outlives the idle timeout set a long one (the absolute timeout still "
                    "applies), or None for the configured defaults"
                )
            if seconds == 0:
                self._browser = True
                self._idle = None
            else:
                self._idle = seconds
                self._browser = False

    # -- flash data (Laravel semantics) ----------------------------------------------------
    def flash(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key`` for this request and the next one that uses the
        session; then it is removed."""
        self[key] = value
        if key in self._flash_old:
            self._flash_old.remove(key)
        if key not in self._flash_new:
            self._flash_new.append(key)
        self._meta_changed = True

    def now(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key`` for this request only."""
        self[key] = value
        if key in self._flash_new:
            self._flash_new.remove(key)
        if key not in self._flash_old:
            self._flash_old.append(key)
        self._meta_changed = True

    def reflash(self) -> None:
        """Keep every flashed value for one more request."""
        self.keep(*self._flash_old)

    def keep(self, *keys: str) -> None:
        """Keep the named flashed values (all, with no names) for one more request."""
        self._read()
        for key in keys or tuple(self._flash_old):
            if key in self._flash_old:
                self._flash_old.remove(key)
                if key not in self._flash_new:
                    self._flash_new.append(key)
                self._meta_changed = True

    def _age_flash(self) -> None:
        """End of request: drop this request's flashed values, promote the next's."""
        if not (self._flash_old or self._flash_new):
            return
        for key in self._flash_old:
            if dict.__contains__(self, key):
                dict.__delitem__(self, key)
                self._forget(key)
        self._meta_changed = True
        self._flash_old = self._flash_new
        self._flash_new = []

    # -- for the engine --------------------------------------------------------------------
    def _nested_changes(self) -> None:
        """Promote in-place mutations of values read this request to real changes."""
        if not self._snapshots:
            return
        for key, before in self._snapshots.items():
            if key in self._changed or not dict.__contains__(self, key):
                continue
            if serialization.dumps(dict.__getitem__(self, key)) != before:
                self._changed.add(key)
        self._snapshots.clear()

    def _attach(
        self,
        data: Mapping[str, Any],
        meta: RecordMeta,
        expires: float,
    ) -> None:
        dict.update(self, data)
        self._meta = meta
        self._new = False
        self._user = meta.user
        self._idle, self._browser, self._until = meta.idle, meta.browser, meta.until
        self._flash_new = list(meta.flash_new)
        self._flash_old = list(meta.flash_old)
        self._expires = expires


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)
