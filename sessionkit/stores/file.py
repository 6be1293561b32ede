"""FileStore: one file per session in a local directory, safe for several processes.

For a single machine that runs several worker processes and has no Redis or database. The
layout under the store's directory::

    sessions/ab/<digest>         one record: a small versioned JSON document
    sessions/ab/.lock            the shard's lock (``fcntl.flock``), held for microseconds
    sessions/ab/<digest>.lock    a route lock: "token expiry", guarded by the shard's lock
    sessions/ab/.tmp-<digest>-*  a write in progress (or the leftover of a crash)
    users/<sha256(user)>/<digest>  an empty marker per session of a user
    user-locks/<xx>/.lock        a login lock for the users whose SHA-256 starts with xx
                                 (``max_sessions_per_user``: count, write, evict)

Only names built from a strictly checked 64-hex digest (or a SHA-256 of the user ID) ever
reach the file system, so nothing a client sends can name a path. Records are replaced
atomically (temporary file, fsync, ``os.replace``, fsync of the directory): a crash leaves
the old record or the new one, never half of either. Every read-modify-write of a record
runs under its shard's ``flock``, which serialises threads and processes alike, so
conditional writes and key-level merges are exact. Route locks carry their own expiry, so
a holder that crashed (or hangs) stops blocking others once its ttl has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import os
import re
import secrets
import stat
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from sessionkit.errors import ConfigError, StoreUnavailable
from sessionkit.ids import handle, is_digest
from sessionkit.records import Record, RecordMeta, SessionInfo, Write
from sessionkit.stores.base import (
    PollingLocks,
    Store,
    decode_document,
    encode_document,
    query_options,
    reject_record,
    require_digests,
)

FORMAT = "sessionkit.file"
STALE_TEMP_SECONDS = 60.0  # a temporary file this old belongs to a writer that died
_SHARD = re.compile(r"[0-9a-f]{2}")
_TEMP = ".tmp-"
_LOCK_SUFFIX = ".lock"


def encode(record: Record, expires_at: float) -> bytes:
    """The stored file: one JSON document (see ``encode_document``)."""
    return encode_document(record, expires_at, FORMAT)


def decode(raw: bytes) -> tuple[Record, float]:
    """Parse a stored file, all or nothing; ``ValueError`` for anything not ours."""
    return decode_document(raw, FORMAT)


class FileStore(PollingLocks, Store):
    supports_user_index = True
    supports_lock = True
    supports_sweep = True
    supports_scan = True
    supports_session_limit = True
    supports_reseal = True
    supports_challenges = True

    def __init__(
        self, path: str | os.PathLike[str], *, clock: Callable[[], float] = time.time,
        fsync: bool = True,
    ) -> None:  # fmt: skip
        root = Path(os.path.abspath(os.fspath(path)))
        try:
            plainly_wrong = not stat.S_ISDIR(os.stat(root).st_mode)
        except OSError:  # missing (created on first write) or not ours to see: told on use
            plainly_wrong = False
        if plainly_wrong:
            raise ConfigError("store", f"file store path {str(root)!r} is not a directory")
        self.root = root
        self.url = f"file://{root}"
        self.fsync = fsync
        self._clock = clock
        self._records = root / "sessions"
        self._records_text = f"{self._records}{os.sep}"
        self._users = root / "users"
        self._challenges = root / "challenges"

    @classmethod
    def from_url(cls, url: str, **options: Any) -> FileStore:
        """``file:///abs/dir``, ``file://localhost/abs/dir`` or ``file:relative/dir``
        (relative to the working directory at start-up); ``?fsync=false`` skips fsync."""
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(
                "store",
                f"{url!r} names host {parts.netloc!r}; a file store is a local directory: "
                "write file:///absolute/path (three slashes) or file:relative/path",
            )
        path = unquote(parts.path)
        if not path:
            raise ConfigError("store", f"{url!r} names no directory; e.g. file:///var/lib/app")
        for name, value in query_options(url, {"fsync": bool}).items():
            options.setdefault(name, value)
        return cls(path, **options)

    # -- the protocol --------------------------------------------------------------------
    def load(self, digest: str) -> Record | None:
        if not is_digest(digest):
            return None
        entry = self._read(digest)
        if entry is None or entry[1] <= self._clock():
            return None
        return entry[0]

    def save(self, write: Write) -> bool:
        digest, old = write.digest, write.rotated_from
        require_digests("FileStore.save", digest, old)
        with self._locked(digest, *([old] if old else [])):
            now = self._clock()
            current = self._live(digest, now)
            previous = None
            if write.create:
                if current is not None:
                    return False
                previous = self._live(old, now) if old is not None else None
                if old is not None and previous is None:
                    return False  # rotated away or logged out meanwhile: no resurrection
                items = dict(write.items)
                version = 1
            else:
                if current is None:
                    return False
                items = write.items_over(current.items)
                version = current.version + 1
            self._write(digest, Record(items, write.meta, version), now + write.ttl)
            if write.meta.user is not None:
                self._index(write.meta.user, digest)
            if current is not None and current.meta.user not in (None, write.meta.user):
                self._unindex(current.meta.user, digest)
            if old is not None and previous is not None:
                self._remove(old, previous.meta.user)
            return True

    def save_limited(self, write: Write) -> list[str] | None:
        """Under the user's login lock (one ``flock`` per 256th of the users, taken before
        any shard lock, so never in the other order): count the user's other live
        sessions, then refuse, or save and evict the least recently used. Every write that
        adds a session to a user's index is such a bind, so the count cannot change
        underneath; a revoke or expiry meanwhile only lowers it."""
        user, digest, old = write.meta.user, write.digest, write.rotated_from
        assert write.limit is not None and user is not None
        require_digests("FileStore.save_limited", digest, old)
        shard = hashlib.sha256(user.encode("utf-8", "surrogatepass")).hexdigest()[:2]
        fd = self._lock_shard(self.root / "user-locks" / shard, True)
        assert fd is not None  # a blocking lock is taken, or raises
        try:
            now = self._clock()
            others = []
            for other in self._indexed(user):
                if other in (digest, old):
                    continue
                entry = self._read(other, warn=False)  # whole files: no lock needed to read
                if entry is not None and entry[1] > now and entry[0].meta.user == user:
                    others.append((entry[0].meta.last_seen, other))
            evicted = write.limit.evictions(others)
            if not self.save(write):
                return None
            return [other for other in evicted if self._revoke(user, other)]
        finally:
            os.close(fd)  # releases the login lock

    def delete(self, digest: str) -> None:
        if not is_digest(digest):
            return
        with self._locked(digest):
            entry = self._read(digest, warn=False)
            self._remove(digest, entry[0].meta.user if entry is not None else None)

    def touch(self, digest: str, last_seen: int, ttl: float) -> bool:
        if not is_digest(digest):
            return False
        with self._locked(digest):
            now = self._clock()
            current = self._live(digest, now)
            if current is None:
                return False
            meta = current.meta._replace(last_seen=last_seen)
            self._write(digest, current._replace(meta=meta), now + ttl)
            return True

    # -- per-user index ------------------------------------------------------------------
    def user_sessions(self, user: str) -> list[SessionInfo]:
        now = self._clock()
        out = []
        for digest in self._indexed(user):
            entry = self._read(digest)
            if entry is not None and entry[1] > now and entry[0].meta.user == user:
                out.append(SessionInfo.of(digest, entry[0].meta))
            else:
                self._prune(user, digest)
        return out

    def user_digests(self, user: str) -> list[str]:
        return sorted(self._indexed(user))

    def revoke_user(self, user: str, *, keep: str | None = None) -> int:
        return sum(self._revoke(user, d) for d in self._indexed(user) if d != keep)

    def revoke_handle(self, user: str, handle_: str) -> bool:
        return any(self._revoke(user, d) for d in self._indexed(user) if handle(d) == handle_)

    # -- sweep and scan ------------------------------------------------------------------
    def delete_expired(self, progress: Callable[[int], None] | None = None) -> int:
        """Remove expired records (and their index markers), corrupt records, lapsed route
        locks and temporary files older than a minute; ``progress`` sees running totals."""
        removed = 0
        stale_before = time.time() - STALE_TEMP_SECONDS  # file times are real, not the clock
        for shard in self._shards():
            for name in self._listdir(shard):
                path = shard / name
                if is_digest(name):
                    if self._sweep_record(name):
                        removed += 1
                        if progress is not None and removed % 100 == 0:
                            progress(removed)
                elif name.startswith(_TEMP):
                    with contextlib.suppress(FileNotFoundError):
                        if path.stat().st_mtime < stale_before:
                            path.unlink(missing_ok=True)
                elif name.endswith(_LOCK_SUFFIX) and is_digest(name[: -len(_LOCK_SUFFIX)]):
                    self._sweep_route_lock(name[: -len(_LOCK_SUFFIX)])
        self._sweep_index()
        self._sweep_challenges()
        if progress is not None:
            progress(removed)
        return removed

    def scan(self) -> Iterator[RecordMeta]:
        for shard in self._shards():
            for name in self._listdir(shard):
                if is_digest(name):
                    entry = self._read(name, warn=False)
                    if entry is not None:
                        yield entry[0].meta

    def scan_digests(self) -> Iterator[str]:
        for shard in self._shards():
            for name in self._listdir(shard):
                if is_digest(name):
                    yield name

    def reseal(self, digest: str, pairs: Mapping[str, tuple[str, str]]) -> int:
        """Compare and replace under the record's shard lock (the one every save holds);
        the record keeps its version and its expiry."""
        require_digests("FileStore.reseal", digest)
        with self._locked(digest):
            entry = self._read(digest)
            if entry is None or entry[1] <= self._clock():
                return 0
            record, expires_at = entry
            items = record.items
            same = {k: new for k, (old, new) in pairs.items() if items.get(k) == old}
            if same:
                self._write(digest, record._replace(items={**items, **same}), expires_at)
            return len(same)

    def create_schema(self) -> bool:
        created = not self._records.is_dir() or not self._users.is_dir()
        self._ensure_dir(self._records)
        self._ensure_dir(self._users)
        return created

    # -- one-use challenges (DBSC): a file each; taking one is a rename, which exactly one
    # of any number of concurrent takers wins ---------------------------------------------
    def put_challenge(self, key: str, value: str, ttl: float) -> None:
        require_digests("FileStore.put_challenge", key)
        self._ensure_dir(self._challenges)
        final = self._challenges / key
        temp = self._challenges / f"{_TEMP}{key}-{secrets.token_hex(4)}"
        text = f"{self._clock() + ttl!r} {value}"
        try:
            _write_small(temp, text)
            os.replace(temp, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise self._unavailable(exc, "write", final) from exc

    def take_challenge(self, key: str) -> str | None:
        require_digests("FileStore.take_challenge", key)
        path = self._challenges / key
        taken = self._challenges / f"{_TEMP}{key}-taken-{secrets.token_hex(4)}"
        try:
            os.rename(path, taken)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._unavailable(exc, "take", path) from exc
        try:
            expires, _, value = taken.read_text("utf-8").partition(" ")
            taken.unlink(missing_ok=True)
        except OSError as exc:
            raise self._unavailable(exc, "read", taken) from exc
        try:
            live = float(expires) > self._clock()
        except ValueError:
            return None
        return value if live else None

    def _sweep_challenges(self) -> None:
        now, stale_before = self._clock(), time.time() - STALE_TEMP_SECONDS
        for name in self._listdir(self._challenges):
            path = self._challenges / name
            with contextlib.suppress(OSError, ValueError):
                if name.startswith(_TEMP):
                    if path.stat().st_mtime < stale_before:
                        path.unlink(missing_ok=True)
                elif float(path.read_text("utf-8").partition(" ")[0]) <= now:
                    path.unlink(missing_ok=True)

    # -- route locks ---------------------------------------------------------------------
    async def _atry_lock(self, digest: str, token: str, ttl: float) -> bool:
        # non-blocking attempts: a busy shard lock never stalls the event loop
        return self._try_lock(digest, token, ttl, blocking=False)

    async def _aunlock(self, digest: str, token: str) -> None:
        # the release waits for the shard lock (a save holds it while it fsyncs): off the loop
        await asyncio.to_thread(self._unlock, digest, token)

    def _try_lock(self, digest: str, token: str, ttl: float, *, blocking: bool = True) -> bool:
        with self._locked(digest, blocking=blocking) as got:
            if not got:
                return False
            now = self._clock()
            path = self._route_lock(digest)
            holder, expires = _read_route_lock(path)
            if holder and holder != token and expires > now:
                return False
            self._guard(lambda: _write_small(path, f"{token} {now + ttl!r}"), "lock", path)
            return True

    def _unlock(self, digest: str, token: str) -> None:
        with self._locked(digest):
            path = self._route_lock(digest)
            if _read_route_lock(path)[0] == token:
                path.unlink(missing_ok=True)

    def _sweep_route_lock(self, digest: str) -> None:
        with self._locked(digest):
            path = self._route_lock(digest)
            if _read_route_lock(path)[1] <= self._clock():
                path.unlink(missing_ok=True)

    # -- internals: paths, reading, writing ----------------------------------------------
    def _shard(self, digest: str) -> Path:
        return self._records / digest[:2]

    def _route_lock(self, digest: str) -> Path:
        return self._shard(digest) / f"{digest}{_LOCK_SUFFIX}"

    def _user_dir(self, user: str) -> Path:
        return self._users / hashlib.sha256(user.encode("utf-8", "surrogatepass")).hexdigest()

    def _read(self, digest: str, *, warn: bool = True) -> tuple[Record, float] | None:
        path = f"{self._records_text}{digest[:2]}/{digest}"  # a str: pathlib costs more here
        try:
            raw = _read_file(path)
        except FileNotFoundError:
            return None
        except (IsADirectoryError, NotADirectoryError):
            raw = b""
        except OSError as exc:
            raise self._unavailable(exc, "read", Path(path)) from exc
        try:
            return decode(raw)
        except ValueError as exc:
            if warn:
                reject_record(digest, f"unreadable file record ({exc})")
            return None

    def _live(self, digest: str, now: float) -> Record | None:
        entry = self._read(digest)
        return entry[0] if entry is not None and entry[1] > now else None

    def _write(self, digest: str, record: Record, expires_at: float) -> None:
        """Replace the record atomically: a reader sees the old file or the new, whole."""
        shard = self._shard(digest)
        final = shard / digest
        temp = shard / f"{_TEMP}{digest}-{secrets.token_hex(4)}"
        data = encode(record, expires_at)
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                with open(fd, "wb", closefd=False) as out:
                    out.write(data)
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise self._unavailable(exc, "write", final) from exc
        if self.fsync:
            self._sync_dir(shard)

    def _remove(self, digest: str, user: str | None) -> None:
        path = self._shard(digest) / digest
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise self._unavailable(exc, "delete", path) from exc
        if self.fsync:
            self._sync_dir(path.parent)  # a lost unlink would bring a logged-out session back
        if user is not None:
            self._unindex(user, digest)

    def _sync_dir(self, directory: Path) -> None:
        try:
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise self._unavailable(exc, "sync", directory) from exc

    @contextlib.contextmanager
    def _locked(self, *digests: str, blocking: bool = True) -> Iterator[bool]:
        """Hold the shard locks of ``digests`` (sorted, so two writers never deadlock).
        Never nest: a second ``flock`` on a new descriptor would wait for the first."""
        fds: list[int] = []
        try:
            for shard in sorted({d[:2] for d in digests}):
                fd = self._lock_shard(self._records / shard, blocking)
                if fd is None:
                    yield False
                    return
                fds.append(fd)
            yield True
        finally:
            for fd in reversed(fds):
                os.close(fd)  # closing the descriptor releases its flock

    def _lock_shard(self, shard: Path, blocking: bool) -> int | None:
        path = shard / ".lock"
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
        try:
            try:
                fd = os.open(path, flags, 0o600)
            except FileNotFoundError:
                self._ensure_dir(shard)
                fd = os.open(path, flags, 0o600)
        except OSError as exc:
            raise self._unavailable(exc, "lock", path) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except OSError as exc:
            os.close(fd)
            raise self._unavailable(exc, "lock", path) from exc
        return fd

    def _ensure_dir(self, path: Path) -> None:
        """Create ``path`` (and missing parents up to the root) with mode 0700."""
        try:
            if path == self.root:
                os.makedirs(path, 0o700, exist_ok=True)
                return
            try:
                os.mkdir(path, 0o700)
            except FileNotFoundError:
                self._ensure_dir(path.parent)
                os.mkdir(path, 0o700)
        except FileExistsError:
            if not path.is_dir():
                raise self._unavailable(
                    OSError(errno.ENOTDIR, "exists and is not a directory"), "create", path
                ) from None
        except OSError as exc:
            raise self._unavailable(exc, "create", path) from exc

    def _unavailable(self, exc: OSError, doing: str, path: Path) -> StoreUnavailable:
        why = exc.strerror or str(exc)
        return StoreUnavailable(
            self.url,
            f"cannot {doing} {path}: {why}. The directory must exist or be creatable, and be "
            "readable and writable by the user the app runs as (only that user: mode 0700)",
        )

    def _guard(self, action: Callable[[], None], doing: str, path: Path) -> None:
        try:
            action()
        except OSError as exc:
            raise self._unavailable(exc, doing, path) from exc

    def _listdir(self, directory: Path) -> list[str]:
        try:
            return sorted(os.listdir(directory))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise self._unavailable(exc, "list", directory) from exc

    def _shards(self) -> Iterator[Path]:
        for name in self._listdir(self._records):
            if _SHARD.fullmatch(name):
                yield self._records / name

    # -- internals: the per-user index ---------------------------------------------------
    def _index(self, user: str, digest: str) -> None:
        directory = self._user_dir(user)
        marker = directory / digest
        flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC
        try:
            try:
                os.close(os.open(marker, flags, 0o600))
            except FileNotFoundError:  # first session of this user, or a sweep removed it
                self._ensure_dir(directory)
                os.close(os.open(marker, flags, 0o600))
        except OSError as exc:
            raise self._unavailable(exc, "index", marker) from exc

    def _unindex(self, user: str, digest: str) -> None:
        marker = self._user_dir(user) / digest
        self._guard(lambda: marker.unlink(missing_ok=True), "unindex", marker)

    def _indexed(self, user: str) -> list[str]:
        return [name for name in self._listdir(self._user_dir(user)) if is_digest(name)]

    def _prune(self, user: str, digest: str) -> None:
        """Drop a stale marker, re-checking under the lock a save of the record would hold."""
        with self._locked(digest):
            entry = self._read(digest, warn=False)
            if entry is None or entry[1] <= self._clock() or entry[0].meta.user != user:
                self._unindex(user, digest)

    def _revoke(self, user: str, digest: str) -> bool:
        with self._locked(digest):
            entry = self._read(digest, warn=False)
            if entry is None or entry[0].meta.user != user:
                self._unindex(user, digest)
                return False
            self._remove(digest, user)
            return entry[1] > self._clock()

    def _sweep_record(self, digest: str) -> bool:
        with self._locked(digest):
            path = self._shard(digest) / digest
            try:
                raw = path.read_bytes()
            except FileNotFoundError:
                return False
            except OSError as exc:
                raise self._unavailable(exc, "read", path) from exc
            try:
                record, expires_at = decode(raw)
            except ValueError:
                self._remove(digest, None)  # foreign or damaged: it can never load anyway
                return False
            if expires_at > self._clock():
                return False
            self._remove(digest, record.meta.user)
            return True

    def _sweep_index(self) -> None:
        for user_dir in self._listdir(self._users):
            directory = self._users / user_dir
            for digest in self._listdir(directory):
                if is_digest(digest) and not (self._shard(digest) / digest).exists():
                    with self._locked(digest):
                        if not (self._shard(digest) / digest).exists():
                            (directory / digest).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                directory.rmdir()  # only succeeds when empty


def _read_route_lock(path: Path) -> tuple[str, float]:
    """``(token, expiry)``; a missing or damaged lock file reads as free."""
    try:
        token, _, expires = path.read_text("ascii").partition(" ")
        return token, float(expires)
    except (OSError, ValueError):
        return "", 0.0


_CHUNK = 1 << 16


def _read_file(path: str) -> bytes:
    """The whole file in open + read + close: no ``fstat`` for its size (``Path.read_bytes``
    makes one), since a regular file's read returns short only at its end."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, _CHUNK)
        if len(data) < _CHUNK:
            return data
        chunks = [data]
        while chunk := os.read(fd, _CHUNK):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _write_small(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, text.encode("ascii"))
    finally:
        os.close(fd)
