"""`driftgate events flush` against a real Prefect server: outbox events arrive with their ids, and a re-delivery
of the same rows (a crash between send and mark) leaves one event per id on the server."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from tasks.resources import events
from tasks.resources.store import AuditStore
from tests.integration.conftest import MODEL, Stack, poll

pytestmark = pytest.mark.integration


def test_flush_delivers_outbox_events_once_per_id(stack: Stack, tmp_path: Path) -> None:
    from sqlalchemy import update

    batch_id = f"outbox-{uuid.uuid4().hex[:8]}"
    with AuditStore(f"sqlite:///{tmp_path / 'audit.db'}") as store:
        with events.outbox(store):
            event_id = events.emit(events.BATCH_PROFILED, MODEL, {"batch_id": batch_id, "action": "NONE"})
        assert store.deliver_outbox(events.prefect_sender()) == 1

        def arrived() -> list[str] | None:
            found = [str(e.id) for e in stack.events(events.BATCH_PROFILED) if e.payload.get("batch_id") == batch_id]
            return found or None

        assert poll(arrived, 60, "the flushed event on the server") == [event_id]

        table = store.table("outbox")  # the crash: sent, but never marked delivered
        with store.transaction() as conn:
            conn.execute(update(table).values(delivered_at=None))
        assert store.deliver_outbox(events.prefect_sender()) == 1
        time.sleep(10)  # the server persists asynchronously (batched): give a duplicate the time to show up
        assert arrived() == [event_id]
