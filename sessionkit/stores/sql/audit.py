"""The SQL store's audit trail: the table ``<table>_audit``, one row per entry.

Created with the sessions table (``sessionkit init``, or on first use), append-only: rows are
inserted by the trail's writer thread in batches, deleted when older than the retention
(one bounded chunk per trim, so a trim never holds a long lock), and rewritten only by an
erasure (``audit_erasure``). Indexed by user and time, so ``sessionkit audit --user`` and
an export read one user's rows without a scan.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from sessionkit.audit import AuditEntry, AuditSink

if TYPE_CHECKING:
    from sessionkit.stores.sql.store import SQLStore


class AuditStatements:
    """The audit table and its statements, on the sessions table's metadata."""

    def __init__(self, table: str, metadata: sa.MetaData) -> None:
        name = f"{table}_audit"
        self.table = t = sa.Table(
            name, metadata,
            sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                      primary_key=True, autoincrement=True),
            sa.Column("at", sa.Float, nullable=False),
            sa.Column("kind", sa.String(32), nullable=False),
            sa.Column("handle", sa.String(32), nullable=True),
            sa.Column("user_id", sa.Text, nullable=True),
            sa.Column("device", sa.Text, nullable=True),
            sa.Column("network", sa.String(64), nullable=True),
            sa.Column("actor", sa.Text, nullable=False),
            sa.Column("reason", sa.Text, nullable=False),
            sa.Index(f"ix_{name}_user", "user_id", "at"),
            sa.Index(f"ix_{name}_at", "at"),
        )  # fmt: skip
        self.insert = sa.insert(t)
        since = t.c.at >= sa.bindparam("since", type_=sa.Float)
        columns = (t.c.at, t.c.kind, t.c.handle, t.c.user_id, t.c.device, t.c.network,
                   t.c.actor, t.c.reason)  # fmt: skip
        self.of_user = (
            sa.select(*columns).where(t.c.user_id == sa.bindparam("user"), since)
            .order_by(t.c.at.desc(), t.c.id.desc()).limit(sa.bindparam("limit"))
        )  # fmt: skip
        self.of_nobody = (
            sa.select(*columns).where(t.c.user_id.is_(None), since)
            .order_by(t.c.at.desc(), t.c.id.desc()).limit(sa.bindparam("limit"))
        )  # fmt: skip
        user = t.c.user_id == sa.bindparam("user")
        self.pseudonymise = (
            sa.update(t)
            .where(user)
            .values(user_id=sa.bindparam("pseudonym"), device=None, network=None)
        )
        self.delete_user = sa.delete(t).where(user)
        old = (
            sa.select(t.c.id).where(t.c.at < sa.bindparam("before"))
            .order_by(t.c.at).limit(sa.bindparam("chunk"))
        )  # fmt: skip
        self.trim = sa.delete(t).where(t.c.id.in_(old.scalar_subquery()))


class SQLAuditSink(AuditSink):
    """``audit="store"`` on ``SQLStore``: rows in ``<table>_audit``, through the store's
    own engine and error policy (a database that is down raises ``StoreUnavailable``)."""

    def __init__(self, store: SQLStore, statements: AuditStatements) -> None:
        self.store = store
        self.sql = statements

    def write(self, entries: Sequence[AuditEntry], *, retention: float, max_entries: int) -> None:
        rows = [
            {"at": e.at, "kind": e.kind, "handle": e.handle, "user_id": e.user,
             "device": e.device, "network": e.network, "actor": e.actor, "reason": e.reason}
            for e in entries
        ]  # fmt: skip
        if not rows:
            return
        store, insert = self.store, self.sql.insert
        store._ready()

        def run() -> None:
            with store._engine.begin() as conn:
                conn.execute(insert, rows)

        store._call(run)

    def entries(
        self, user: str | None, *, since: float | None = None, limit: int | None = None
    ) -> list[AuditEntry]:
        params: dict[str, Any] = {
            "since": -1e300 if since is None else since,
            "limit": 1 << 62 if limit is None else limit,
        }
        if user is None:
            rows = self.store._rows(self.sql.of_nobody, params)
        else:
            rows = self.store._rows(self.sql.of_user, {**params, "user": user})
        return [AuditEntry(float(r[0]), *r[1:]) for r in reversed(rows)]

    def erase(self, user: str, pseudonym: str | None) -> int:
        if pseudonym is None:
            return self.store._rowcount(self.sql.delete_user, {"user": user})
        return self.store._rowcount(self.sql.pseudonymise, {"user": user, "pseudonym": pseudonym})

    def trim(self, before: float, *, chunk: int | None = None) -> int:
        size = chunk or self.store.sweep_chunk
        total = 0
        while True:
            removed = self.store._rowcount(self.sql.trim, {"before": before, "chunk": size})
            total += removed
            if chunk is not None or removed < size:
                return total
