"""The event outbox of direct mode: events kept in the audit store, delivered once, never lost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tasks.resources import events
from tasks.resources.store import AuditStore


@pytest.fixture()
def store(tmp_path: Path) -> AuditStore:
    with AuditStore(f"sqlite:///{tmp_path / 'audit.db'}") as audit:
        yield audit


def _emit_three(store: AuditStore) -> None:
    with events.outbox(store):
        assert events.deliverable()
        events.emit(events.BATCH_PROFILED, "m", {"batch_id": "b1", "action": "NONE"})
        events.emit(events.DRIFT_DETECTED, "m", {"batch_id": "b1", "features": ["x"]})
        first = events.emit(events.RETRAIN_REQUESTED, "m", {"priority_class": "urgent"}, idempotency_key="k1")
        again = events.emit(events.RETRAIN_REQUESTED, "m", {"priority_class": "urgent"}, idempotency_key="k1")
    assert first == again == str(events.event_id_for("k1"))


def test_emit_with_an_outbox_keeps_the_events_with_their_final_ids(store: AuditStore) -> None:
    _emit_three(store)
    assert not events.outbox_active()
    rows = store.outbox(pending=True)
    assert [r["name"] for r in rows] == [events.BATCH_PROFILED, events.DRIFT_DETECTED, events.RETRAIN_REQUESTED]
    retrain = rows[-1]
    assert retrain["event_id"] == str(events.event_id_for("k1")) and retrain["idempotency_key"] == "k1"
    assert retrain["resource"] == {
        "prefect.resource.id": "driftgate.model.m",
        "prefect.resource.name": "m",
        events.PRIORITY_LABEL: "urgent",
    }
    assert all(r["delivered_at"] is None for r in rows)


def test_flush_delivers_each_event_exactly_once(store: AuditStore) -> None:
    _emit_three(store)
    sent: list[str] = []
    assert store.deliver_outbox(lambda rows: sent.extend(r["event_id"] for r in rows), batch=2) == 3
    assert store.deliver_outbox(lambda rows: sent.extend(r["event_id"] for r in rows)) == 0
    assert len(sent) == len(set(sent)) == 3
    assert store.outbox(pending=True) == [] and len(store.outbox(pending=False)) == 3


def test_a_failure_mid_flush_leaves_the_rest_pending_and_a_retry_sends_the_same_ids(store: AuditStore) -> None:
    _emit_three(store)
    sent: list[str] = []

    def flaky(rows: list[dict[str, Any]]) -> None:
        sent.extend(r["event_id"] for r in rows)
        if len(sent) == 2:  # the second event reached the API, then the process "crashed" before the mark
            raise ConnectionError("API went away")

    with pytest.raises(ConnectionError):
        store.deliver_outbox(flaky, batch=1)
    pending = store.outbox(pending=True)
    assert [r["event_id"] for r in pending] == sent[1:] + [r["event_id"] for r in pending][1:]
    assert len(store.outbox(pending=False)) == 1

    retried: list[str] = []
    assert store.deliver_outbox(lambda rows: retried.extend(r["event_id"] for r in rows)) == 2
    assert retried[0] == sent[1]  # re-delivered with the same id: the API keeps one event per id
    assert store.outbox(pending=True) == []


def test_without_an_outbox_and_without_an_api_nothing_is_deliverable(
    store: AuditStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with events.outbox(None):
        assert not events.outbox_active()
    with events.outbox(store):
        assert events.outbox_active()


def test_a_decision_and_its_outbox_events_are_kept_together_or_not_at_all(store: AuditStore) -> None:
    from tasks.resources.store import DecisionRecord

    decision = DecisionRecord(model="m", kind="policy", outcome="RETRAIN", reasons=("r",), batch_id="b1")
    with pytest.raises(RuntimeError), store.atomic(), events.outbox(store):
        with store.transaction() as conn:  # a stage's own transaction joins the atomic block
            store.record_decision(decision, conn=conn)
        events.emit(events.BATCH_PROFILED, "m", {"batch_id": "b1"})
        assert len(store.decisions("m")) == 1  # reads inside the block see its writes
        raise RuntimeError("crash before the block ends")
    assert store.decisions("m") == [] and store.outbox() == []

    with store.atomic(), events.outbox(store):
        with store.transaction() as conn:
            store.record_decision(decision, conn=conn)
        events.emit(events.BATCH_PROFILED, "m", {"batch_id": "b1"})
    assert len(store.decisions("m")) == 1 and len(store.outbox(pending=True)) == 1
