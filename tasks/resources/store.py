"""The audit store: every batch, signal, decision and event, in SQL (SQLite by default, any SQLAlchemy URL).

Written with SQLAlchemy 2 Core. Tables are created on first use. On SQLite the store turns on WAL and a
busy timeout and takes the write lock at BEGIN (``BEGIN IMMEDIATE``) for writing transactions, so several
processes (flow runs, workers, notebooks) can share one file without "database is locked" surprises.
Timestamps go in as UTC (naive values are taken to be UTC) and come back as tz-aware UTC datetimes.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import os
import socket
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks.core.errors import StoreError
from tasks.core.timeutil import utc
from tasks.resources.events import resource_id

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine, MetaData, Table

SIGNAL_KINDS = ("quality", "drift", "estimate", "realized", "profile")
DECISION_KINDS = ("policy", "retrain", "gate", "promotion", "rollback", "registration")
BUSY_TIMEOUT_MS = 30_000
_WRITE = "driftgate_write"


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


def mask_url(url: str) -> str:
    """The URL with its password hidden, fit for messages and logs."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        # Not parseable as a URL: still hide whatever sits between "user:" and "@".
        from tasks.core.paths import mask_password

        return mask_password(url)


def _now() -> datetime:
    return datetime.now(UTC)


def _jsonable(value: Any) -> Any:
    """Plain JSON values: NaN becomes null (Postgres JSON rejects it), datetimes ISO strings, numpy scalars numbers."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return utc(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return _jsonable(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, Path):
        return str(value)
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return _jsonable(item())
    return str(value)


def _float(value: float | None) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def _build_metadata() -> tuple[MetaData, dict[str, Table]]:
    from sqlalchemy import (
        JSON,
        Boolean,
        Column,
        DateTime,
        Float,
        Index,
        Integer,
        MetaData,
        String,
        Table,
        TypeDecorator,
        UniqueConstraint,
    )

    class UTCDateTime(TypeDecorator[datetime]):
        """Stored as UTC; SQLite keeps no offset, so one is attached again on the way out."""

        impl = DateTime(timezone=True)
        cache_ok = True

        def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
            return utc(value)

        def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
            return utc(value)

    metadata = MetaData()
    # Prefixed names: the store may share a Postgres database with Prefect's own tables (it has "events").
    batches = Table(
        "driftgate_batch",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("model", String(200), nullable=False),
        Column("batch_id", String(200), nullable=False),
        Column("source", String(1000), nullable=False),
        Column("rows", Integer, nullable=False),
        Column("window_start", UTCDateTime),
        Column("window_end", UTCDateTime),
        Column("status", String(100), nullable=False),
        Column("recorded_at", UTCDateTime, nullable=False),
        Column("updated_at", UTCDateTime, nullable=False),
        UniqueConstraint("model", "batch_id", name="uq_driftgate_batch_model_batch"),
    )
    signals = Table(
        "driftgate_signal",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("model", String(200), nullable=False),
        Column("batch_id", String(200), nullable=False),
        Column("kind", String(50), nullable=False),
        Column("name", String(300), nullable=False),
        Column("method", String(100)),
        Column("value", Float),
        Column("threshold", Float),
        Column("alert", Boolean, nullable=False),
        Column("window_start", UTCDateTime),
        Column("window_end", UTCDateTime),
        Column("payload", JSON, nullable=False),
        Column("recorded_at", UTCDateTime, nullable=False),
        Index("ix_driftgate_signal_model_batch", "model", "batch_id"),
        Index("ix_driftgate_signal_model_kind", "model", "kind"),
    )
    decisions = Table(
        "driftgate_decision",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("model", String(200), nullable=False),
        Column("kind", String(50), nullable=False),
        Column("outcome", String(100), nullable=False),
        Column("reasons", JSON, nullable=False),
        Column("batch_id", String(200)),
        Column("version", String(100)),
        Column("payload", JSON, nullable=False),
        Column("decided_at", UTCDateTime, nullable=False),
        Index("ix_driftgate_decision_model_kind", "model", "kind", "decided_at"),
    )
    events = Table(
        "driftgate_event",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("name", String(200), nullable=False),
        Column("resource", String(300), nullable=False),
        Column("payload", JSON, nullable=False),
        # Unique but nullable: events without a key are never deduplicated (NULLs are distinct in SQL).
        Column("idempotency_key", String(500), unique=True),
        Column("occurred_at", UTCDateTime, nullable=False),
        Index("ix_driftgate_event_resource", "resource"),
    )
    # Direct mode's event outbox: written where the event happens, delivered by `driftgate events flush`
    # (delivered_at set only after the API accepted it). event_id is the id Prefect gets, fixed at write time.
    outbox = Table(
        "driftgate_outbox",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("name", String(200), nullable=False),
        Column("resource", JSON, nullable=False),
        Column("payload", JSON, nullable=False),
        Column("idempotency_key", String(500)),
        Column("created_at", UTCDateTime, nullable=False),
        Column("delivered_at", UTCDateTime),
        Index("ix_driftgate_outbox_pending", "delivered_at", "id"),
    )
    claims = Table(
        "driftgate_claim",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("idempotency_key", String(500), nullable=False, unique=True),
        Column("purpose", String(200), nullable=False),
        Column("model", String(200)),
        Column("holder", String(300), nullable=False),
        Column("claimed_at", UTCDateTime, nullable=False),
    )
    # Labels as they arrive: one row per (arrival, batch) with the batch's labelled rows after it. What is
    # labelled *now* (the policy's new-rows counter, retrain fingerprints) is the newest row per batch.
    labels = Table(
        "driftgate_label",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("model", String(200), nullable=False),
        Column("batch_id", String(200), nullable=False),
        Column("source", String(1000), nullable=False),
        Column("new_rows", Integer, nullable=False),
        Column("labelled_rows", Integer, nullable=False),
        Column("payload", JSON, nullable=False),
        Column("arrived_at", UTCDateTime, nullable=False),
        Index("ix_driftgate_label_model_batch", "model", "batch_id"),
    )
    return metadata, {
        "labels": labels,
        "batches": batches,
        "signals": signals,
        "decisions": decisions,
        "events": events,
        "claims": claims,
        "outbox": outbox,
    }


class AuditStore:
    """Append-mostly audit trail of one driftgate installation, behind one SQLAlchemy URL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.masked_url = mask_url(url)
        self._engine: Engine | None = None
        self._tables: dict[str, Table] = {}
        self._lock = threading.Lock()
        # The connection of an atomic() block, joined by every read and write of this store inside it.
        self._ambient: ContextVar[Connection | None] = ContextVar(f"driftgate_store_{id(self)}", default=None)

    def __repr__(self) -> str:
        return f"AuditStore({self.masked_url!r})"

    def __reduce__(self) -> tuple[type[AuditStore], tuple[str]]:
        # An engine holds sockets/file handles; a copy in another process reconnects from the URL.
        return (AuditStore, (self.url,))

    def __enter__(self) -> AuditStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- connection handling -----------------------------------------------------------------
    def _error(self, action: str, exc: BaseException) -> StoreError:
        detail = getattr(exc, "orig", None) or exc
        return StoreError(f"audit store {self.masked_url}: {action} failed: {type(detail).__name__}: {detail}")

    def _ready(self) -> Engine:
        if self._engine is not None:
            return self._engine
        with self._lock:
            if self._engine is None:
                engine = self._create_engine()
                self._create_tables(engine)
                self._engine = engine
        return self._engine

    def _create_engine(self) -> Engine:
        from sqlalchemy import create_engine, event
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError
        from sqlalchemy.pool import StaticPool

        try:
            url = make_url(self.url)
        except (ArgumentError, ValueError) as exc:
            raise StoreError(f"audit store URL {self.masked_url} is not a valid SQLAlchemy URL: {exc}") from exc
        kwargs: dict[str, Any] = {}
        is_sqlite = url.get_backend_name() == "sqlite"
        if is_sqlite:
            database = url.database or ""
            in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
            if in_memory:
                # One shared connection, else every connection would see its own empty database.
                kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
            else:
                try:
                    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise StoreError(
                        f"audit store {self.masked_url}: cannot create the directory of {database}: {exc}"
                    ) from exc
                kwargs["connect_args"] = {"timeout": BUSY_TIMEOUT_MS / 1000}
        else:
            kwargs["pool_pre_ping"] = True
        try:
            engine = create_engine(url, **kwargs)
        except (ArgumentError, NoSuchModuleError, ImportError) as exc:
            raise StoreError(f"audit store {self.masked_url}: cannot create an engine: {exc}") from exc

        if is_sqlite:

            @event.listens_for(engine, "connect")
            def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
                # Leave BEGIN to SQLAlchemy (see _on_begin): sqlite3's legacy mode skips it for SELECT/DDL.
                dbapi_connection.isolation_level = None
                cursor = dbapi_connection.cursor()
                cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.close()

            @event.listens_for(engine, "begin")
            def _on_begin(conn: Connection) -> None:
                # A writer takes the lock up front; a deferred writer could fail to upgrade from a stale
                # read snapshot with SQLITE_BUSY, which the busy timeout does not retry.
                mode = "IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "DEFERRED"
                conn.exec_driver_sql(f"BEGIN {mode}")

        return engine

    def _create_tables(self, engine: Engine) -> None:
        from sqlalchemy.exc import SQLAlchemyError

        metadata, tables = _build_metadata()
        for attempt in range(2):
            try:
                with engine.connect() as conn:
                    conn.execution_options(**{_WRITE: True})
                    with conn.begin():
                        metadata.create_all(conn, checkfirst=True)
                break
            except SQLAlchemyError as exc:
                # Two processes creating the tables at once: the loser sees "already exists"; look again.
                if attempt == 1:
                    engine.dispose()
                    raise self._error("creating tables", exc) from exc
        self._tables = tables

    def table(self, name: str) -> Table:
        self._ready()
        return self._tables[name]

    @contextmanager
    def _writing(self, conn: Connection | None, action: str) -> Iterator[Connection]:
        from sqlalchemy.exc import SQLAlchemyError

        conn = conn if conn is not None else self._ambient.get()
        try:
            if conn is not None:
                yield conn
                return
            with self._ready().connect() as own:
                own.execution_options(**{_WRITE: True})
                with own.begin():
                    yield own
        except SQLAlchemyError as exc:
            raise self._error(action, exc) from exc

    @contextmanager
    def _reading(self, conn: Connection | None, action: str) -> Iterator[Connection]:
        from sqlalchemy.exc import SQLAlchemyError

        conn = conn if conn is not None else self._ambient.get()
        try:
            if conn is not None:
                yield conn
                return
            with self._ready().connect() as own:
                yield own
        except SQLAlchemyError as exc:
            raise self._error(action, exc) from exc

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """Several writes, all or none: pass the yielded connection as ``conn=`` to the record_* methods.

        Any exception inside the block rolls everything back and propagates (database errors as StoreError).
        """
        with self._writing(None, "transaction") as conn:
            yield conn

    @contextmanager
    def atomic(self) -> Iterator[Connection]:
        """Every read and write of this store inside the block (in this thread or context) in one transaction:
        the record_* calls, transaction() blocks and the event outbox join it, so a decision and the events
        announcing it are kept together or not at all. A nested atomic() joins the outer one. ``claim`` keeps
        its own committed transaction: do not claim inside (on SQLite it would wait for this one's lock).
        """
        outer = self._ambient.get()
        if outer is not None:
            yield outer
            return
        with self._writing(None, "atomic block") as conn:
            token = self._ambient.set(conn)
            try:
                yield conn
            finally:
                self._ambient.reset(token)

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
                insert = _dialect_insert(dialect)
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
                "value": _float(s.value),
                "threshold": _float(s.threshold),
                "alert": bool(s.alert),
                "window_start": s.window_start,
                "window_end": s.window_end,
                "payload": _jsonable(s.payload),
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
            "payload": _jsonable(decision.payload),
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
            "payload": _jsonable(dict(payload)),
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
                    _dialect_insert(dialect)(table).values(**values).on_conflict_do_nothing().returning(table.c.id)
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
            "payload": _jsonable(dict(payload)),
            "idempotency_key": idempotency_key,
            "created_at": _now(),
            "delivered_at": None,
        }
        with self._writing(conn, f"keeping event {name!r} in the outbox") as c:
            dialect = c.dialect.name
            if dialect in ("sqlite", "postgresql"):
                statement = _dialect_insert(dialect)(table).values(**values).on_conflict_do_nothing()
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

    def claim(self, idempotency_key: str, *, purpose: str, model: str | None = None) -> bool:
        """Insert-if-absent on a unique key, in its own committed transaction.

        True for exactly one caller per key, across threads and processes: the unique constraint decides,
        and the losers see an IntegrityError. Used so that a repeated event never starts a second retrain.
        """
        from sqlalchemy.exc import IntegrityError, SQLAlchemyError

        table = self.table("claims")
        engine = self._ready()
        values = {
            "idempotency_key": idempotency_key,
            "purpose": purpose,
            "model": model,
            "holder": f"{socket.gethostname()}:{os.getpid()}",
            "claimed_at": _now(),
        }
        try:
            with engine.connect() as conn:
                conn.execution_options(**{_WRITE: True})
                with conn.begin():
                    conn.execute(table.insert().values(**values))
        except IntegrityError:
            return False
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
                claimed = c.execute(_dialect_insert(dialect)(claims).values(**values).on_conflict_do_nothing()).rowcount
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
                "payload": _jsonable(dict(a.payload)),
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

    def _rows(
        self,
        table_name: str,
        what: str,
        conn: Connection | None,
        *conditions: Any,
        **equal: Any,
    ) -> list[dict[str, Any]]:
        """Rows of one table, oldest first, where every non-None ``equal`` column matches and ``conditions`` hold."""
        table = self.table(table_name)
        query = table.select().where(
            *conditions, *(table.c[column] == value for column, value in equal.items() if value is not None)
        )
        with self._reading(conn, what) as c:
            return [dict(row._mapping) for row in c.execute(query.order_by(table.c.id))]

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

    def close(self) -> None:
        """Release pooled connections; the store reconnects if used again."""
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None


def _dialect_insert(dialect: str) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


# --- Prefect tasks -------------------------------------------------------------------------------
def write_batch(
    store: AuditStore,
    model: str,
    batch_id: str,
    source: str,
    rows: int,
    window_start: datetime | None,
    window_end: datetime | None,
    status: str,
) -> None:
    store.record_batch(model, batch_id, source, rows, window_start, window_end, status)


def write_signals(store: AuditStore, signals: Sequence[SignalRecord]) -> int:
    return store.record_signals(signals)


def write_decision(store: AuditStore, decision: DecisionRecord) -> int:
    return store.record_decision(decision)


def write_event(
    store: AuditStore, name: str, resource: str, payload: Mapping[str, Any], idempotency_key: str | None
) -> bool:
    return store.record_event(name, resource, payload, idempotency_key)
