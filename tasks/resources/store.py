"""The audit store: every batch, signal, decision and event, in SQL (SQLite by default, any SQLAlchemy URL).

Written with SQLAlchemy 2 Core. Tables are created on first use. Timestamps go in as UTC (naive values are taken
to be UTC) and come back as tz-aware UTC datetimes. This module holds what the trail records and reads back:
the typed records and :class:`AuditStore`'s writes (batches, signals, decisions, events, the event outbox,
claims, labels) and reads. How it connects (engine, SQLite locking, transactions) is
:mod:`tasks.resources.sql`; its tables and column values are :mod:`tasks.resources.audit_tables`.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tasks.core.errors import StoreError
from tasks.core.jsonable import jsonable
from tasks.core.timeutil import utc
from tasks.resources.audit_tables import build_metadata, nullable_float
from tasks.resources.events import resource_id
from tasks.resources.sql import WRITE_OPTION, SqlDatabase, dialect_insert

if TYPE_CHECKING:
    from sqlalchemy import Connection

SIGNAL_KINDS = ("quality", "drift", "estimate", "realized", "profile")
DECISION_KINDS = ("policy", "retrain", "gate", "promotion", "rollback", "registration")


@dataclass(frozen=True)
class SignalRecord:
    """One measured signal of a batch: a data-quality check, a drift statistic, a performance estimate."""

    model: str
    batch_id: str
    kind: str
    name: str
    method: str | None
    value: float | None
    threshold: float | None
    alert: bool
    window_start: datetime | None = None
    window_end: datetime | None = None
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DecisionRecord:
    """One decision and its reasons: a policy verdict, a retrain, a gate result, an alias move."""

    model: str
    kind: str
    outcome: str
    reasons: tuple[str, ...]
    batch_id: str | None = None
    version: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LabelRecord:
    """Labels arriving for one monitored batch: how many rows they labelled and how many the batch now has."""

    model: str
    batch_id: str
    source: str
    new_rows: int
    labelled_rows: int
    payload: dict[str, Any] = field(default_factory=dict)


def _now() -> datetime:
    return datetime.now(UTC)


class AuditStore(SqlDatabase):
    """Append-mostly audit trail of one driftgate installation, behind one SQLAlchemy URL."""

    def __init__(self, url: str) -> None:
        super().__init__(url, build_metadata)

    def __repr__(self) -> str:
        return f"AuditStore({self.masked_url!r})"

    def __reduce__(self) -> tuple[type[AuditStore], tuple[str]]:
        # An engine holds sockets/file handles; a copy in another process reconnects from the URL.
        return (AuditStore, (self.url,))

    def __enter__(self) -> AuditStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- writes ------------------------------------------------------------------------------
    def record_batch(
        self,
        model: str,
        batch_id: str,
        source: str,
        rows: int,
        window_start: datetime | None,
        window_end: datetime | None,
        status: str,
        *,
        conn: Connection | None = None,
    ) -> None:
        """Insert the batch, or update it when (model, batch_id) is already known (status moves along)."""
        from sqlalchemy import update

        table = self.table("batches")
        now = _now()
        values = {
            "source": source,
            "rows": int(rows),
            "window_start": window_start,
            "window_end": window_end,
            "status": status,
            "updated_at": now,
        }
        with self._writing(conn, f"recording batch {batch_id!r} of {model!r}") as c:
            dialect = c.dialect.name
            if dialect in ("sqlite", "postgresql"):
                insert = dialect_insert(dialect)
                statement = insert(table).values(model=model, batch_id=batch_id, recorded_at=now, **values)
                c.execute(statement.on_conflict_do_update(index_elements=["model", "batch_id"], set_=values))
                return
            # Portable fallback; a concurrent first insert of the same batch surfaces as a StoreError.
            changed = c.execute(
                update(table).where(table.c.model == model, table.c.batch_id == batch_id).values(**values)
            ).rowcount
            if not changed:
                c.execute(table.insert().values(model=model, batch_id=batch_id, recorded_at=now, **values))

    def record_signals(self, signals: Sequence[SignalRecord], *, conn: Connection | None = None) -> int:
        """Insert signals; returns how many rows were written."""
        if not signals:
            return 0
        for signal in signals:
            if signal.kind not in SIGNAL_KINDS:
                raise StoreError(
                    f"audit store {self.masked_url}: signal {signal.name!r} has unknown kind {signal.kind!r}; "
                    f"expected one of {SIGNAL_KINDS}"
                )
        table = self.table("signals")
        now = _now()
        rows = [
            {
                "model": s.model,
                "batch_id": s.batch_id,
                "kind": s.kind,
                "name": s.name,
                "method": s.method,
                "value": nullable_float(s.value),
                "threshold": nullable_float(s.threshold),
                "alert": bool(s.alert),
                "window_start": s.window_start,
                "window_end": s.window_end,
                "payload": jsonable(s.payload),
                "recorded_at": now,
            }
            for s in signals
        ]
        with self._writing(conn, f"recording {len(rows)} signals of {signals[0].model!r}") as c:
            c.execute(table.insert(), rows)
        return len(rows)

    def record_decision(self, decision: DecisionRecord, *, conn: Connection | None = None) -> int:
        """Insert a decision; returns its row id."""
        if decision.kind not in DECISION_KINDS:
            raise StoreError(
                f"audit store {self.masked_url}: decision of {decision.model!r} has unknown kind "
                f"{decision.kind!r}; expected one of {DECISION_KINDS}"
            )
        table = self.table("decisions")
        values = {
            "model": decision.model,
            "kind": decision.kind,
            "outcome": decision.outcome,
            "reasons": [str(r) for r in decision.reasons],
            "batch_id": decision.batch_id,
            "version": decision.version,
            "payload": jsonable(decision.payload),
            "decided_at": _now(),
        }
        with self._writing(conn, f"recording a {decision.kind} decision of {decision.model!r}") as c:
            key = c.execute(table.insert().values(**values)).inserted_primary_key
            if key is None:
                raise StoreError(f"audit store {self.masked_url}: the database returned no id for the decision")
            return int(key[0])

    def record_event(
        self,
        name: str,
        resource: str,
        payload: Mapping[str, Any],
        idempotency_key: str | None,
        *,
        conn: Connection | None = None,
    ) -> bool:
        """Record an emitted event; False (and nothing written) when its idempotency key was seen before."""
        table = self.table("events")
        values = {
            "name": name,
            "resource": resource,
            "payload": jsonable(dict(payload)),
            "idempotency_key": idempotency_key,
            "occurred_at": _now(),
        }
        with self._writing(conn, f"recording event {name!r}") as c:
            dialect = c.dialect.name
            if idempotency_key is not None and dialect in ("sqlite", "postgresql"):
                # ON CONFLICT instead of catching IntegrityError: inside a caller's transaction a failed
                # INSERT would abort the whole transaction on Postgres.
                # RETURNING, not rowcount: psycopg reports -1 for an INSERT that SQLAlchemy gives a RETURNING.
                statement = (
                    dialect_insert(dialect)(table).values(**values).on_conflict_do_nothing().returning(table.c.id)
                )
                return c.execute(statement).first() is not None
            if (
                idempotency_key is not None
                and c.execute(table.select().where(table.c.idempotency_key == idempotency_key)).first()
            ):
                return False
            c.execute(table.insert().values(**values))
            return True

    # --- event outbox (direct mode) --------------------------------------------------------------
    def add_to_outbox(
        self,
        event_id: str,
        name: str,
        resource: Mapping[str, str],
        payload: Mapping[str, Any],
        idempotency_key: str | None,
        *,
        conn: Connection | None = None,
    ) -> bool:
        """Keep an event for later delivery; False (nothing written) when its id is already in the outbox."""
        table = self.table("outbox")
        values = {
            "event_id": event_id,
            "name": name,
            "resource": dict(resource),
            "payload": jsonable(dict(payload)),
            "idempotency_key": idempotency_key,
            "created_at": _now(),
            "delivered_at": None,
        }
        with self._writing(conn, f"keeping event {name!r} in the outbox") as c:
            dialect = c.dialect.name
            if dialect in ("sqlite", "postgresql"):
                statement = dialect_insert(dialect)(table).values(**values).on_conflict_do_nothing()
                return bool(c.execute(statement).rowcount)
            if c.execute(table.select().where(table.c.event_id == event_id)).first():
                return False
            c.execute(table.insert().values(**values))
            return True

    def outbox(self, *, pending: bool | None = None, conn: Connection | None = None) -> list[dict[str, Any]]:
        """Outbox rows, oldest first; ``pending=True`` only those not delivered yet, False only delivered ones."""
        table = self.table("outbox")
        conditions = []
        if pending is not None:
            column = table.c.delivered_at
            conditions.append(column.is_(None) if pending else column.is_not(None))
        return self._rows("outbox", "reading the event outbox", conn, *conditions)

    def deliver_outbox(self, send: Callable[[list[dict[str, Any]]], None], *, batch: int = 50) -> int:
        """Send pending outbox rows in order, ``batch`` at a time, marking each batch delivered once ``send``
        returns; returns how many were delivered. Never lost: a row is marked only after its send succeeded,
        and an exception stops the flush with the rest still pending. Never duplicated in the store: the
        mark is conditional (``delivered_at IS NULL``), so two flushes racing mark each row once; a crash
        between a send and its mark re-sends the same event ids next time (the API keeps one per id).
        """
        from sqlalchemy import update

        table = self.table("outbox")
        delivered = 0
        while True:
            with self._reading(None, "reading the event outbox") as c:
                query = table.select().where(table.c.delivered_at.is_(None)).order_by(table.c.id).limit(batch)
                rows = [dict(row._mapping) for row in c.execute(query)]
            if not rows:
                return delivered
            send(rows)
            ids = [row["id"] for row in rows]
            with self._writing(None, "marking outbox events delivered") as c:
                statement = (
                    update(table).where(table.c.id.in_(ids), table.c.delivered_at.is_(None)).values(delivered_at=_now())
                )
                delivered += int(c.execute(statement).rowcount)

    def claim(self, idempotency_key: str, *, purpose: str, model: str | None = None, holder: str | None = None) -> bool:
        """Insert-if-absent on a unique key, in its own committed transaction.

        True for exactly one caller per key, across threads and processes: the unique constraint decides,
        and the losers see an IntegrityError. Used so that a repeated event never starts a second retrain.
        A ``holder`` (default: host and pid) that already holds the key gets True again: a Prefect flow run
        retried after its worker was killed keeps its id, and is the same request, not a duplicate.
        """
        from sqlalchemy.exc import IntegrityError, SQLAlchemyError

        table = self.table("claims")
        engine = self._ready()
        values = {
            "idempotency_key": idempotency_key,
            "purpose": purpose,
            "model": model,
            "holder": holder or f"{socket.gethostname()}:{os.getpid()}",
            "claimed_at": _now(),
        }
        try:
            with engine.connect() as conn:
                conn.execution_options(**{WRITE_OPTION: True})
                with conn.begin():
                    conn.execute(table.insert().values(**values))
        except IntegrityError:
            if holder is None:
                return False
            query = table.select().where(table.c.idempotency_key == idempotency_key)
            try:
                with engine.connect() as conn:
                    row = conn.execute(query).first()
            except SQLAlchemyError as exc:
                raise self._error(f"reading the claim {idempotency_key!r}", exc) from exc
            return row is not None and row._mapping["holder"] == holder
        except SQLAlchemyError as exc:
            raise self._error(f"claiming {idempotency_key!r} for {purpose}", exc) from exc
        return True

    def record_decision_once(self, decision: DecisionRecord, idempotency_key: str, *, purpose: str) -> bool:
        """Insert the decision unless a decision with this key was recorded; False (nothing written) then.

        One transaction holds a claim on the key (unique) and the decision row: both are written or neither,
        so a process killed between them leaves the key free for the repair that writes the row later.
        """
        claims = self.table("claims")
        values = {
            "idempotency_key": idempotency_key,
            "purpose": purpose,
            "model": decision.model,
            "holder": f"{socket.gethostname()}:{os.getpid()}",
            "claimed_at": _now(),
        }
        with self._writing(None, f"recording decision {idempotency_key!r}") as c:
            dialect = c.dialect.name
            if dialect in ("sqlite", "postgresql"):
                claimed = c.execute(dialect_insert(dialect)(claims).values(**values).on_conflict_do_nothing()).rowcount
            elif c.execute(claims.select().where(claims.c.idempotency_key == idempotency_key)).first():
                claimed = 0
            else:
                claimed = c.execute(claims.insert().values(**values)).rowcount
            if not claimed:
                return False
            self.record_decision(
                DecisionRecord(
                    model=decision.model,
                    kind=decision.kind,
                    outcome=decision.outcome,
                    reasons=decision.reasons,
                    batch_id=decision.batch_id,
                    version=decision.version,
                    payload={**decision.payload, "idempotency_key": idempotency_key},
                ),
                conn=c,
            )
            return True

    def claimed_keys(self, purpose: str, model: str | None = None) -> set[str]:
        """The idempotency keys claimed for ``purpose`` (of ``model``)."""
        rows = self._rows("claims", f"reading {purpose} claims", None, purpose=purpose, model=model)
        return {str(row["idempotency_key"]) for row in rows}

    def record_labels(self, arrivals: Sequence[LabelRecord], *, conn: Connection | None = None) -> int:
        """Record label arrivals (one per batch they completed); returns how many were written."""
        if not arrivals:
            return 0
        table = self.table("labels")
        now = _now()
        rows = [
            {
                "model": a.model,
                "batch_id": a.batch_id,
                "source": a.source,
                "new_rows": int(a.new_rows),
                "labelled_rows": int(a.labelled_rows),
                "payload": jsonable(dict(a.payload)),
                "arrived_at": now,
            }
            for a in arrivals
        ]
        with self._writing(conn, f"recording {len(rows)} label arrival(s)") as c:
            c.execute(table.insert(), rows)
        return len(rows)

    # --- reads -------------------------------------------------------------------------------
    def labelled_rows(self, model: str, *, conn: Connection | None = None) -> dict[str, int]:
        """Labelled rows of each batch of a model now (the newest arrival per batch)."""
        current: dict[str, int] = {}
        for row in self._rows("labels", f"reading labels of {model!r}", conn, model=model):
            current[str(row["batch_id"])] = int(row["labelled_rows"])
        return current

    def label_arrivals(self, model: str, *, conn: Connection | None = None) -> list[dict[str, Any]]:
        """Every label arrival of a model, oldest first."""
        return self._rows("labels", f"reading labels of {model!r}", conn, model=model)

    def decisions(
        self,
        model: str,
        kind: str | None = None,
        since: datetime | None = None,
        *,
        conn: Connection | None = None,
    ) -> list[dict[str, Any]]:
        """Decisions of a model, oldest first; optionally of one kind and at or after ``since``."""
        after = [self.table("decisions").c.decided_at >= utc(since)] if since is not None else []
        return self._rows("decisions", f"reading decisions of {model!r}", conn, *after, model=model, kind=kind)

    def signals(
        self,
        model: str,
        batch_id: str | None = None,
        kind: str | None = None,
        *,
        name: str | None = None,
        since: datetime | None = None,
        batch_ids: Sequence[str] | None = None,
        conn: Connection | None = None,
    ) -> list[dict[str, Any]]:
        """Signals of a model, oldest first; optionally of one batch (or of ``batch_ids``), kind and name,
        recorded after ``since``. Readers of a long history filter here rather than in Python."""
        table = self.table("signals")
        conditions = []
        if since is not None:
            conditions.append(table.c.recorded_at > utc(since))
        if batch_ids is not None:
            conditions.append(table.c.batch_id.in_(list(batch_ids)))
        return self._rows(
            "signals",
            f"reading signals of {model!r}",
            conn,
            *conditions,
            model=model,
            batch_id=batch_id,
            kind=kind,
            name=name,
        )

    def batches(self, model: str, *, conn: Connection | None = None) -> list[dict[str, Any]]:
        return self._rows("batches", f"reading batches of {model!r}", conn, model=model)

    def recent_batch_ids(self, model: str, last: int, *, conn: Connection | None = None) -> list[str]:
        """The ``last`` most recently recorded batches of a model, oldest first."""
        table = self.table("batches")
        query = table.select().where(table.c.model == model).order_by(table.c.id.desc()).limit(last)
        with self._reading(conn, f"reading recent batches of {model!r}") as c:
            rows = [str(row._mapping["batch_id"]) for row in c.execute(query)]
        return rows[::-1]

    def events(self, model_resource: str | None = None, *, conn: Connection | None = None) -> list[dict[str, Any]]:
        """Recorded events, oldest first; ``model_resource`` is a resource id such as ``driftgate.model.<name>``."""
        return self._rows("events", "reading events", conn, resource=model_resource)

    def last_decision(
        self, model: str, kind: str, outcome: str | None = None, *, conn: Connection | None = None
    ) -> dict[str, Any] | None:
        table = self.table("decisions")
        query = table.select().where(table.c.model == model, table.c.kind == kind)
        if outcome is not None:
            query = query.where(table.c.outcome == outcome)
        with self._reading(conn, f"reading the last {kind} decision of {model!r}") as c:
            row = c.execute(query.order_by(table.c.id.desc()).limit(1)).first()
        return dict(row._mapping) if row is not None else None

    def counts(self, model: str) -> dict[str, int]:
        """Rows per table that concern one model (events by resource id, claims by model)."""
        from sqlalchemy import func, select

        self._ready()
        filters = {
            "batches": lambda t: t.c.model == model,
            "signals": lambda t: t.c.model == model,
            "decisions": lambda t: t.c.model == model,
            "events": lambda t: t.c.resource == resource_id(model),
            "claims": lambda t: t.c.model == model,
            "labels": lambda t: t.c.model == model,
        }
        out: dict[str, int] = {}
        with self._reading(None, f"counting rows of {model!r}") as c:
            for name, where in filters.items():
                table = self._tables[name]
                out[name] = int(c.execute(select(func.count()).select_from(table).where(where(table))).scalar_one())
        return out
