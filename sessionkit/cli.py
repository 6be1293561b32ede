"""The ``sessionkit`` command: keys and store maintenance. Needs ``click`` (``sessionkit[cli]``).

``build_group()`` makes the click group. The Django and Flask adapters reuse it as
``manage.py sessionkit`` and ``flask sessionkit`` by passing ``get_store``: then the
commands use the application's configured store instead of taking a STORE argument.
Errors are one line on stderr and exit status 1, never a traceback.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from sessionkit.config import SessionConfig
from sessionkit.doctor import diagnose
from sessionkit.engine import SessionEngine
from sessionkit.errors import ConfigError, SessionKitError
from sessionkit.health import Health, probe
from sessionkit.rekey import RekeyReport
from sessionkit.sealing import SealFailed
from sessionkit.stores import Store, open_store
from sessionkit.stores.cache import hit_rate, published_counters, total_counters
from sessionkit.stores.fallback import FallbackStore

# (label, upper bound of age in seconds) for `stats`
AGE_BUCKETS: tuple[tuple[str, float], ...] = (
    ("under 1 hour", 3600.0),
    ("1 hour to 1 day", 86400.0),
    ("1 to 7 days", 7 * 86400.0),
    ("7 to 30 days", 30 * 86400.0),
    ("over 30 days", float("inf")),
)


def age_histogram(created: Iterator[float], now: float) -> dict[str, int]:
    """Count sessions by age, youngest bucket first."""
    counts = dict.fromkeys((label for label, _ in AGE_BUCKETS), 0)
    for moment in created:
        age = now - moment
        label = next(label for label, bound in AGE_BUCKETS if age < bound)
        counts[label] += 1
    return counts


def _count(n: int, noun: str) -> str:
    """``1 session``, ``2 sessions``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


#: (heading, counter) of the cache table `stats` prints
CACHE_COLUMNS = (("hits", "hits"), ("misses", "misses"), ("hit rate", "hit_rate"),
                 ("invalidations", "invalidations"), ("flushes", "flushes"),
                 ("entries", "entries"))  # fmt: skip


def cache_lines(processes: list[dict[str, Any]] | None) -> list[str]:
    """The lines `stats` prints about the processes' local caches: nothing for a store
    that has none, one line when no process publishes, else a table with a total."""
    if processes is None:
        return []
    if not processes:
        return ["local caches: no process is publishing counters (none runs with cache=)"]

    def cells(row: dict[str, Any]) -> list[str]:
        rate = hit_rate(row)
        shown = "-" if rate is None else f"{rate:.1%}"
        return [shown if name == "hit_rate" else str(row.get(name, 0)) for _, name in CACHE_COLUMNS]

    pids = [(row.get("host"), row.get("pid")) for row in processes]

    def label(row: dict[str, Any]) -> str:  # (several caches in one process: which one)
        host, pid = row.get("host"), row.get("pid")
        which = f" cache {row.get('cache')}" if pids.count((host, pid)) > 1 else ""
        return f"{host} pid {pid}{which}"

    table = [["process", *(heading for heading, _ in CACHE_COLUMNS)]]
    table += [[label(row), *cells(row)] for row in processes]
    table.append(["total", *cells(total_counters(processes))])
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    count = len(processes)
    lines = [f"local caches: {count} {'process' if count == 1 else 'processes'} publishing"]
    for first, *rest in table:
        right = (cell.rjust(width) for cell, width in zip(rest, widths[1:], strict=True))
        lines.append("  " + "  ".join([first.ljust(widths[0]), *right]))
    return [line.rstrip() for line in lines]


def parse_duration(text: str) -> float:
    """``"90d"``, ``"12h"``, ``"30m"``, ``"45s"`` or plain seconds, as seconds."""
    units = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
    raw = text.strip().lower()
    scale = units.get(raw[-1:])
    number = raw[:-1] if scale is not None else raw
    try:
        seconds = float(number) * (scale or 1.0)
    except ValueError:
        raise ValueError(f"{text!r} is no duration (e.g. 90d, 12h, 30m, 3600)") from None
    if not 0 < seconds < float("inf"):
        raise ValueError(f"{text!r}: a duration must be positive")
    return seconds


def build_group(
    get_store: Callable[[], Store] | None = None, *, name: str = "sessionkit",
    get_config: Callable[[], SessionConfig] | None = None,
) -> Any:  # fmt: skip
    """The click group. With ``get_store``, commands take no STORE argument; with
    ``get_config`` (the app's settings: its keys, its audit trail), the commands that need
    an engine use them instead of ``SESSIONKIT_SECRET_KEY``/``SESSIONKIT_AUDIT``."""
    import click

    @contextmanager
    def failures() -> Iterator[None]:
        try:
            yield
        except SessionKitError as exc:
            click.echo(f"{name}: {exc}", err=True)
            raise SystemExit(1) from None

    def with_store(command: Callable[..., None]) -> Callable[..., None]:
        """Add the STORE argument (or use ``get_store``) and turn errors into one line."""

        def run(store_url: str | None = None, **kwargs: Any) -> None:
            with failures():
                if get_store is None and (store_url or "").split(":", 1)[0] == "memory":
                    raise ConfigError(
                        "store",
                        "memory:// lives inside one process, so a command cannot see your "
                        "app's sessions; pass the URL of the store the app uses",
                    )
                store = get_store() if get_store is not None else open_store(store_url or "")
                try:
                    command(store, **kwargs)
                finally:
                    store.close()

        run.__name__ = command.__name__
        run.__doc__ = command.__doc__
        if get_store is None:
            return click.argument("store_url", metavar="STORE", envvar="SESSIONKIT_STORE")(run)
        return run

    @click.group(name=name, help="sessionkit: manage keys and session stores.")
    def group() -> None:
        pass

    if get_store is None:
        group = click.version_option(package_name="sessionkit")(group)

    @group.command(help="Print a new random secret key (48 bytes, base64url).")
    @click.option("--bytes", "size", default=48, show_default=True, type=click.IntRange(32, 256))
    def keygen(size: int) -> None:
        click.echo(secrets.token_urlsafe(size))

    @group.command(help="Create the store's table or directory ahead of first use.")
    @with_store
    def init(store: Store) -> None:
        if store.create_schema():
            click.echo(f"created the session storage in {store!r}")
        else:
            click.echo(f"nothing to create: {store!r} is ready")

    @group.command(help="Remove expired sessions (in bounded chunks).")
    @click.option("--quiet", is_flag=True, help="Print only the final count.")
    @click.option(
        "--audit-retention", "audit_retention", default=None, callback=_duration,
        help="Also delete audit entries older than this (e.g. 90d), all of them.",
    )  # fmt: skip
    @with_store
    def gc(store: Store, quiet: bool, audit_retention: float | None) -> None:
        if not store.supports_sweep:
            click.echo(f"nothing to do: {store!r} expires sessions by itself")
            return
        interactive = sys.stdout.isatty() and not quiet

        def progress(total: int) -> None:
            if interactive:
                click.echo(f"\rremoved {_count(total, 'expired session')} so far...", nl=False)
            elif not quiet:
                click.echo(f"removed {total} so far")

        total = store.delete_expired(progress=progress)
        if interactive:
            click.echo("")
        click.echo(f"removed {_count(total, 'expired session')}")
        sink = store.audit_sink()
        if audit_retention is not None and sink is not None:
            trimmed = sink.trim(time.time() - audit_retention)
            click.echo(f"removed {_count(trimmed, 'audit entry')} older than the retention")

    def fallback_of(store: Store, url: str | None) -> tuple[Store, Callable[[], None]]:
        """``store`` behind its fallback (``--fallback``, or the app's ``fallback``
        setting), and what closes the fallback afterwards."""
        chosen: str | Store | None = url
        if chosen is None and get_config is not None:
            chosen = get_config().fallback
        if chosen is None:
            return store, lambda: None
        other = open_store(chosen) if isinstance(chosen, str) else chosen
        return FallbackStore(store, other), other.close if isinstance(chosen, str) else _nothing

    @group.command(
        help="Probe the store: reachable, round trip, server version (exit 1 if down). "
        "With a fallback store, both are probed and the mode is shown."
    )
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @click.option(
        "--fallback", "fallback_url", default=None, envvar="SESSIONKIT_FALLBACK",
        metavar="URL", help="The fallback store's URL (the app's `fallback` setting).",
    )  # fmt: skip
    @with_store
    def health(store: Store, as_json: bool, fallback_url: str | None) -> None:
        probed, close = fallback_of(store, fallback_url)
        # a switch over logs what requests will get (reads from the fallback, changes
        # refused, retried every few seconds): this command serves none, its output says it
        log = logging.getLogger("sessionkit")
        quiet, log.disabled = log.disabled, probed is not store
        try:
            found = probe(probed)
        finally:
            log.disabled = quiet
            close()
        if as_json:
            click.echo(json.dumps(found.as_dict()))
        else:
            _show_health(click, found)
        # the primary down is an exit 1 even while the fallback serves reads (degraded)
        if not found.ok or (found.fallback is not None and found.mode != "primary"):
            raise SystemExit(1)

    @group.command(help="Check the store: connectivity, version, settings, clock, indexes.")
    @click.option("--fix", is_flag=True, help="Repair what can be (stale index entries).")
    @with_store
    def doctor(store: Store, fix: bool) -> None:
        interactive = sys.stdout.isatty()

        def progress(checked: int) -> None:
            if interactive:
                click.echo(f"\rchecked {checked} index entries...", nl=False)

        findings = diagnose(store, fix=fix, progress=progress)
        if interactive:
            click.echo("\r", nl=False)
        for finding in findings:
            click.echo(str(finding))
        if any(f.level == "error" for f in findings):
            raise SystemExit(1)

    def engine_for(store: Store) -> SessionEngine:
        """An engine on ``store`` with the app's keys (``SESSIONKIT_SECRET_KEY``, several
        comma-separated), needed to open values sealed by ``encrypt_records`` and for the
        same erasure pseudonyms as the app's; ``SESSIONKIT_AUDIT=store`` (and
        ``SESSIONKIT_AUDIT_RETENTION``) records the command's revokes in the audit trail.
        With ``get_config``: the app's own settings."""
        if get_config is not None:
            config = get_config().replace(store=store)
        else:
            keys = [k for k in os.environ.get("SESSIONKIT_SECRET_KEY", "").split(",") if k]
            audit: dict[str, Any] = {}
            if os.environ.get("SESSIONKIT_AUDIT"):
                audit["audit"] = os.environ["SESSIONKIT_AUDIT"]
            if os.environ.get("SESSIONKIT_AUDIT_RETENTION"):
                audit["audit_retention"] = parse_duration(os.environ["SESSIONKIT_AUDIT_RETENTION"])
            secret = keys or secrets.token_urlsafe(48)
            config = SessionConfig(secret_key=secret, store=store, **audit)
        return SessionEngine(config, store=store)

    @contextmanager
    def engine_on(store: Store) -> Iterator[SessionEngine]:
        engine = engine_for(store)
        try:
            yield engine
        finally:
            if engine.audit is not None:
                engine.audit.close()

    @group.command(name="export", help="Write everything stored about a user's sessions (JSON).")
    @click.option("--user", required=True, help="The user key sessions are bound to.")
    @click.option("--out", type=click.Path(dir_okay=False, writable=True), help="A file.")
    @with_store
    def export_(store: Store, user: str, out: str | None) -> None:
        try:
            document = engine_for(store).export_user(user)
        except SealFailed as exc:
            raise ConfigError(
                "SESSIONKIT_SECRET_KEY",
                f"{exc}: the store holds values sealed by encrypt_records; set "
                "SESSIONKIT_SECRET_KEY to the app's secret key (several: comma-separated)",
            ) from None
        text = json.dumps(document, ensure_ascii=False, indent=2)
        if out is None:
            click.echo(text)
            return
        with open(out, "w", encoding="utf-8") as file:
            file.write(text + "\n")
        click.echo(f"wrote {_count(len(document['sessions']), 'session')} of {user} to {out}")

    @group.command(help="Erase a user's sessions: every record and index entry.")
    @click.option("--user", required=True, help="The user key sessions are bound to.")
    @click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
    @with_store
    def erase(store: Store, user: str, yes: bool) -> None:
        if not yes:
            click.confirm(f"erase every session of {user!r}?", abort=True)
        with engine_on(store) as engine:
            erased = engine.erase_user(user, actor="cli")
        click.echo(f"erased {_count(erased, 'session')} of {user}")

    @group.command(help="Count stored sessions, by age.")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @with_store
    def stats(store: Store, as_json: bool) -> None:
        metas = list(store.scan())
        users = {m.user for m in metas if m.user is not None}
        histogram = age_histogram((m.created for m in metas), time.time())
        caches = published_counters(store)
        if as_json:
            report = {"sessions": len(metas), "users": len(users), "by_age": histogram,
                      "caches": None if caches is None else
                      {"processes": caches, "total": total_counters(caches)}}  # fmt: skip
            click.echo(json.dumps(report))
            return
        click.echo(f"{_count(len(metas), 'session')}, {_count(len(users), 'signed-in user')}")
        for label, count in histogram.items():
            click.echo(f"  {label:<16} {count}")
        for line in cache_lines(caches):
            click.echo(line)

    @group.command(name="list", help="List a user's sessions (opaque handles, never IDs).")
    @click.option("--user", required=True, help="The user ID the sessions are bound to.")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @with_store
    def list_(store: Store, user: str, as_json: bool) -> None:
        sessions = store.user_sessions(user)
        if as_json:
            rows = [
                {"handle": s.handle, "device": s.device, "created": s.created,
                 "last_seen": s.last_seen}
                for s in sessions
            ]  # fmt: skip
            click.echo(json.dumps(rows))
            return
        if not sessions:
            click.echo(f"no sessions for user {user!r}")
        devices = [info.device or "unknown device" for info in sessions]
        width = max(map(len, devices), default=0)
        for info, device in zip(sessions, devices, strict=True):
            created, seen = _when(info.created), _when(info.last_seen)
            click.echo(f"{info.handle}  {device:<{width}}  created {created}  last seen {seen}")

    @group.command(help="Revoke all of a user's sessions, or one by its handle.")
    @click.option("--user", required=True, help="The user whose sessions to revoke.")
    @click.option("--handle", default=None, help="Only this session (from `list`).")
    @with_store
    def revoke(store: Store, user: str, handle: str | None) -> None:
        if handle is not None:
            with engine_on(store) as engine:
                done = engine.revoke_handle(user, handle, actor="cli")
            if not done:
                click.echo(f"{name}: no session {handle} for user {user!r}", err=True)
                raise SystemExit(1)
            click.echo(f"revoked session {handle}")
            return
        with engine_on(store) as engine:
            count = engine.revoke_user(user, actor="cli")
        click.echo(f"revoked {_count(count, 'session')} of user {user!r}")

    @group.command(help="Re-seal every stored session with the newest key (encrypt_records).")
    @click.option(
        "--plain", is_flag=True,
        help="Write sealed values back plain (to turn encrypt_records off).",
    )  # fmt: skip
    @click.option("--chunk", default=500, show_default=True, type=click.IntRange(1, 100_000),
                  help="Records per chunk.")  # fmt: skip
    @with_store
    def rekey(store: Store, plain: bool, chunk: int) -> None:
        if get_config is not None:  # the app's keys: SECRET_KEY and its fallbacks
            config = get_config().replace(store=store, encrypt_records=not plain)
        else:
            keys = [k for k in os.environ.get("SESSIONKIT_SECRET_KEY", "").split(",") if k]
            if not keys:
                raise ConfigError(
                    "SESSIONKIT_SECRET_KEY",
                    "rekey needs the app's keys: set SESSIONKIT_SECRET_KEY to them, the "
                    "newest first, then the older ones that sealed the stored values "
                    "(comma-separated)",
                )
            config = SessionConfig(secret_key=keys, store=store, encrypt_records=not plain)
        engine = SessionEngine(config, store=store)
        able = store.supports_scan and store.supports_reseal  # else engine.rekey says why
        total = sum(1 for _ in store.scan_digests()) if able else 0
        label = "writing plain" if plain else "re-sealing"
        with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
            done = [0]

            def progress(report: RekeyReport) -> None:
                bar.update(report.seen - done[0])
                done[0] = report.seen

            report = engine.rekey(progress=progress, chunk=chunk)
        what = "written plain" if plain else "re-sealed with the newest key"
        click.echo(f"{_count(report.seen, 'record')} seen")
        click.echo(
            f"{_count(report.resealed, 'value')} {what} (in {_count(report.records, 'record')})"
        )
        click.echo(f"{_count(report.changed, 'record')} changed meanwhile: those values skipped")
        if report.gone:
            click.echo(f"{_count(report.gone, 'record')} gone meanwhile (logged out or expired)")
        if report.unreadable:
            where = "SESSIONKIT_SECRET_KEY" if get_config is None else "the app's key fallbacks"
            click.echo(
                f"{name}: {_count(report.unreadable, 'record')} left as they were: they hold "
                f"values no configured key opens (is their key in {where}?)",
                err=True,
            )
            raise SystemExit(1)

    @group.command(help="Show a user's audit trail entries (oldest first).")
    @click.option("--user", default=None, help="The user key the entries are about.")
    @click.option("--anonymous", is_flag=True, help="Entries of no user (cookie rejections).")
    @click.option("--since", default=None, callback=_duration, help="Only this recent (7d).")
    @click.option("--limit", default=None, type=click.IntRange(1), help="The newest N only.")
    @click.option("--json", "as_json", is_flag=True, help="JSON lines, one entry each.")
    @with_store
    def audit(
        store: Store, user: str | None, anonymous: bool, since: float | None,
        limit: int | None, as_json: bool,
    ) -> None:  # fmt: skip
        if (user is None) == (not anonymous):
            raise ConfigError("--user", "give --user U, or --anonymous")
        sink = store.audit_sink()
        if sink is None:
            raise ConfigError("store", f"{store!r} keeps no audit trail (audit='store')")
        floor = None if since is None else time.time() - since
        entries = sink.entries(user, since=floor, limit=limit)
        for entry in entries:
            if as_json:
                click.echo(json.dumps(entry.as_dict(), ensure_ascii=False))
            else:
                row = entry.as_dict()
                where = " ".join(str(row[k]) for k in ("device", "network") if row[k])
                click.echo(
                    f"{row['time']}  {entry.kind:<20} {entry.handle or '-':<16}  "
                    f"by {entry.actor}{'  ' + where if where else ''}"
                    f"{'  ' + entry.reason if entry.reason else ''}"
                )
        if not entries and not as_json:
            click.echo(f"no audit entries for {'no user' if user is None else repr(user)}")

    return group


def _nothing() -> None:
    pass


def _show_health(click: Any, found: Health) -> None:
    """``sessionkit health``'s lines: the store, and with a fallback, it and the mode."""
    if found.fallback is None:
        _show_probe(click, "", found, found.ok)
        return
    # with a fallback, ``ok`` says sessions can be read; the primary is up in mode "primary"
    _show_probe(click, "", found, found.mode == "primary")
    _show_probe(click, "fallback ", found.fallback, found.fallback.ok)
    if found.mode == "primary":
        click.echo("mode: primary (the fallback stands by)")
    else:
        click.echo(
            f"mode: {found.mode}: sessions are read from the fallback and changes are refused "
            "(503) until the primary answers again"
        )


def _show_probe(click: Any, label: str, found: Health, up: bool) -> None:
    if up:
        took = "" if found.latency_ms is None else f" in {found.latency_ms:.2f} ms"
        server = f" ({found.server_version})" if found.server_version else ""
        click.echo(f"{label}ok: {found.store} answered{took}{server}")
    else:
        click.echo(f"{label}down: {found.error}", err=True)


def _duration(_ctx: Any, _param: Any, value: str | None) -> float | None:
    import click

    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def main(argv: list[str] | None = None) -> None:
    try:
        command = build_group()
    except ImportError:
        print(
            "sessionkit: the command line needs click; install it with "
            "`pip install 'sessionkit[cli]'`",
            file=sys.stderr,
        )
        raise SystemExit(2) from None
    command.main(args=argv, prog_name="sessionkit")


if __name__ == "__main__":
    main()
