"""The audit store's tables, and the plain values their columns take.

Seven tables, all prefixed ``driftgate_`` (the store may share a Postgres database with Prefect's own tables,
which include "events"), with timestamps stored as UTC and handed back tz-aware. :func:`jsonable` turns what
a caller records (dataclasses, enums, numpy scalars, NaN) into the plain JSON every dialect accepts.

Apart from :mod:`tasks.resources.store` because the schema is a description, read once when the tables are
created, while the store is behaviour: keeping them apart lets the store read as what it records and reads.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tasks.core.timeutil import utc

if TYPE_CHECKING:
    from sqlalchemy import MetaData, Table


def nullable_float(value: float | None) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def build_metadata() -> tuple[MetaData, dict[str, Table]]:
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
