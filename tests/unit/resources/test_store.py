from __future__ import annotations

import multiprocessing
import pickle
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from tasks.core.errors import StoreError
from tasks.resources.events import resource_id
from tasks.resources.sql import mask_url
from tasks.resources.store import AuditStore, DecisionRecord, LabelRecord, SignalRecord

MODEL = "car-loan"
T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AuditStore]:
    """The contract suite runs on both backends: SQLite (the embedded default) and a real PostgreSQL."""
    url = f"sqlite:///{tmp_path / 'audit.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    audit = AuditStore(url)
    yield audit
    audit.close()


def _signal(name: str, value: float | None, *, batch_id: str = "b1", kind: str = "drift", alert: bool = False):
    return SignalRecord(
        model=MODEL,
        batch_id=batch_id,
        kind=kind,
        name=name,
        method="jensen_shannon",
        value=value,
        threshold=0.1,
        alert=alert,
        window_start=T0,
        window_end=T0 + timedelta(days=1),
        payload={"chunk": 3, "score": np.float64(0.25), "nan": float("nan"), "at": T0},
    )


def test_batches_upsert_and_return_aware_utc(store: AuditStore) -> None:
    cet = timezone(timedelta(hours=1))
    store.record_batch(MODEL, "b1", "lake/b1.parquet", 500, T0.astimezone(cet), T0 + timedelta(days=1), "received")
    store.record_batch(MODEL, "b1", "lake/b1.parquet", 480, T0, T0 + timedelta(days=1), "profiled")
    store.record_batch(MODEL, "b2", "lake/b2.parquet", 700, datetime(2024, 3, 2), None, "received")

    batches = store.batches(MODEL)
    assert [(b["batch_id"], b["rows"], b["status"]) for b in batches] == [
        ("b1", 480, "profiled"),
        ("b2", 700, "received"),
    ]
    assert batches[0]["window_start"] == T0
    assert batches[0]["window_start"].tzinfo is not None
    assert batches[1]["window_start"] == datetime(2024, 3, 2, tzinfo=UTC)  # naive input is taken as UTC
    assert batches[1]["window_end"] is None
    assert store.batches("other-model") == []


def test_signals_round_trip_with_json_payload(store: AuditStore) -> None:
    written = store.record_signals(
        [
            _signal("car_value", 0.03),
            _signal("salary_range", 0.4, alert=True),
            _signal("roc_auc", float("nan"), kind="estimate", batch_id="b2"),
        ]
    )
    assert written == 3
    assert store.record_signals([]) == 0

    drift = store.signals(MODEL, batch_id="b1")
    assert [(s["name"], s["value"], s["alert"]) for s in drift] == [
        ("car_value", 0.03, False),
        ("salary_range", 0.4, True),
    ]
    assert drift[0]["payload"] == {"chunk": 3, "score": 0.25, "nan": None, "at": T0.isoformat()}
    assert drift[0]["window_end"] == T0 + timedelta(days=1)
    estimate = store.signals(MODEL, kind="estimate")
    assert len(estimate) == 1 and estimate[0]["value"] is None  # NaN is stored as missing
    assert store.signals(MODEL, batch_id="b1", kind="estimate") == []


def test_signals_filter_by_name_time_and_batches_and_recent_batches(store: AuditStore) -> None:
    for index in range(5):
        store.record_batch(MODEL, f"b{index}", f"lake/b{index}.parquet", 10, T0, None, "profiled")
        store.record_signals([_signal("car_value", 0.1, batch_id=f"b{index}"), _signal("concept_drift", 0.2)])
    assert store.recent_batch_ids(MODEL, 3) == ["b2", "b3", "b4"]
    assert store.recent_batch_ids(MODEL, 10) == [f"b{i}" for i in range(5)]
    assert store.recent_batch_ids("other-model", 3) == []

    shown = store.signals(MODEL, kind="drift", batch_ids=["b3", "b4"])
    assert [s["batch_id"] for s in shown] == ["b3", "b4"]
    assert len(store.signals(MODEL, name="concept_drift")) == 5
    middle = store.signals(MODEL, name="concept_drift")[2]["recorded_at"]
    later = store.signals(MODEL, name="concept_drift", since=middle)
    assert all(s["recorded_at"] > middle for s in later)
    assert store.signals(MODEL, batch_ids=[]) == []


def test_decisions_filters_and_last_decision(store: AuditStore) -> None:
    first = store.record_decision(
        DecisionRecord(MODEL, "policy", "ALERT", ("drift on 2 features",), batch_id="b1", payload={"priority": 0.5})
    )
    second = store.record_decision(DecisionRecord(MODEL, "policy", "RETRAIN", ("auc drop 0.05", "persisted 2")))
    gate = store.record_decision(DecisionRecord(MODEL, "gate", "passed", (), version="v3"))
    assert first < second < gate

    policy = store.decisions(MODEL, kind="policy")
    assert [d["outcome"] for d in policy] == ["ALERT", "RETRAIN"]
    assert policy[1]["reasons"] == ["auc drop 0.05", "persisted 2"]
    assert policy[0]["payload"] == {"priority": 0.5}
    assert policy[0]["decided_at"].tzinfo is not None
    assert len(store.decisions(MODEL)) == 3

    assert store.last_decision(MODEL, "policy")["id"] == second
    assert store.last_decision(MODEL, "policy", "ALERT")["id"] == first
    assert store.last_decision(MODEL, "rollback") is None
    assert store.last_decision(MODEL, "gate")["version"] == "v3"

    future = datetime.now(UTC) + timedelta(hours=1)
    assert store.decisions(MODEL, since=future) == []
    past = datetime.now(UTC) - timedelta(hours=1)
    assert len(store.decisions(MODEL, since=past)) == 3
    # An offset-aware bound is compared in UTC.
    assert len(store.decisions(MODEL, since=past.astimezone(timezone(timedelta(hours=-5))))) == 3


def test_events_are_deduplicated_by_idempotency_key(store: AuditStore) -> None:
    resource = resource_id(MODEL)
    assert store.record_event("driftgate.retrain.requested", resource, {"window": "w1"}, "retrain-abc")
    assert not store.record_event("driftgate.retrain.requested", resource, {"window": "w1"}, "retrain-abc")
    # Events without a key are never deduplicated.
    assert store.record_event("driftgate.batch.profiled", resource, {"batch": "b1"}, None)
    assert store.record_event("driftgate.batch.profiled", resource, {"batch": "b1"}, None)
    assert store.record_event("driftgate.batch.profiled", "driftgate.model.other", {}, None)

    events = store.events(resource)
    assert [e["name"] for e in events] == [
        "driftgate.retrain.requested",
        "driftgate.batch.profiled",
        "driftgate.batch.profiled",
    ]
    assert events[0]["payload"] == {"window": "w1"}
    assert len(store.events()) == 4


def test_unknown_kinds_are_rejected(store: AuditStore) -> None:
    with pytest.raises(StoreError, match="'feelings'"):
        store.record_signals([_signal("x", 1.0, kind="feelings")])
    with pytest.raises(StoreError, match="'vibe'"):
        store.record_decision(DecisionRecord(MODEL, "vibe", "NONE", ()))


def test_transaction_commits_all_writes(store: AuditStore) -> None:
    with store.transaction() as conn:
        store.record_batch(MODEL, "b1", "src", 10, T0, T0, "decided", conn=conn)
        store.record_signals([_signal("car_value", 0.1)], conn=conn)
        store.record_decision(DecisionRecord(MODEL, "policy", "NONE", ()), conn=conn)
        store.record_labels([LabelRecord(MODEL, "b1", "labels.parquet", 7, 7)], conn=conn)
        assert store.record_event("e", resource_id(MODEL), {}, "k1", conn=conn)
        # Reads inside the transaction see its own writes.
        assert store.last_decision(MODEL, "policy", conn=conn) is not None
    assert store.counts(MODEL) == {
        "batches": 1,
        "signals": 1,
        "decisions": 1,
        "events": 1,
        "claims": 0,
        "labels": 1,
    }


def test_transaction_rolls_back_everything_on_error(store: AuditStore) -> None:
    with pytest.raises(RuntimeError, match="boom"), store.transaction() as conn:
        store.record_batch(MODEL, "b1", "src", 10, T0, T0, "decided", conn=conn)
        store.record_signals([_signal("car_value", 0.1)], conn=conn)
        store.record_decision(DecisionRecord(MODEL, "policy", "RETRAIN", ()), conn=conn)
        store.record_labels([LabelRecord(MODEL, "b1", "labels.parquet", 7, 7)], conn=conn)
        store.record_event("e", resource_id(MODEL), {}, "k1", conn=conn)
        raise RuntimeError("boom")
    assert store.counts(MODEL) == {
        "batches": 0,
        "signals": 0,
        "decisions": 0,
        "events": 0,
        "claims": 0,
        "labels": 0,
    }
    # The key of the rolled-back event is free again.
    assert store.record_event("e", resource_id(MODEL), {}, "k1")


def test_claim_is_exactly_once_in_one_process(store: AuditStore) -> None:
    assert store.claim("retrain-w1", purpose="retrain", model=MODEL)
    assert not store.claim("retrain-w1", purpose="retrain", model=MODEL)
    assert store.claim("retrain-w2", purpose="retrain")
    assert store.counts(MODEL)["claims"] == 1


def test_a_claim_holder_claims_its_key_again_and_no_one_else_does(store: AuditStore) -> None:
    """A flow run retried after its worker was killed mid-retrain keeps its id: its claim is its own, not a
    duplicate request (before, the retried run ended as 'duplicate request' and the window was never retrained)."""
    assert store.claim("retrain-w1", purpose="retrain", model=MODEL, holder="flow-run:a")
    assert store.claim("retrain-w1", purpose="retrain", model=MODEL, holder="flow-run:a")  # the retried run
    assert not store.claim("retrain-w1", purpose="retrain", model=MODEL, holder="flow-run:b")  # another request
    assert not store.claim("retrain-w1", purpose="retrain", model=MODEL)  # a caller without a holder
    assert store.counts(MODEL)["claims"] == 1


def _race_claims(url: str, keys: list[str], barrier, results) -> None:
    store = AuditStore(url)
    store.claim("warm-up-" + str(multiprocessing.current_process().pid), purpose="test")
    won = []
    for key in keys:
        # Both processes go for every key at the same moment, so every key is contested.
        barrier.wait(timeout=60)
        if store.claim(key, purpose="retrain", model=MODEL):
            won.append(key)
    results.put((multiprocessing.current_process().name, won))
    store.close()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_claim_is_exactly_once_across_processes(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = (
        f"sqlite:///{tmp_path / 'race' / 'audit.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    keys = [f"retrain-window-{i}" for i in range(30)]
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    results = ctx.Queue()
    procs = [ctx.Process(target=_race_claims, args=(url, keys, barrier, results), name=f"p{i}") for i in range(2)]
    for proc in procs:
        proc.start()
    outcomes = dict(results.get(timeout=120) for _ in procs)
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    won_0, won_1 = set(outcomes["p0"]), set(outcomes["p1"])
    assert won_0.isdisjoint(won_1)
    assert won_0 | won_1 == set(keys)
    assert AuditStore(url).counts(MODEL)["claims"] == len(keys)


def test_sqlite_file_is_created_under_missing_parent_dirs_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "audit.db"
    store = AuditStore(f"sqlite:///{path}")
    assert not path.exists()  # nothing happens before first use
    store.record_decision(DecisionRecord(MODEL, "registration", "registered", ("first model",), version="v0"))
    store.close()
    assert path.is_file()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert AuditStore(f"sqlite:///{path}").last_decision(MODEL, "registration")["version"] == "v0"


def test_in_memory_sqlite_keeps_one_database() -> None:
    store = AuditStore("sqlite://")
    store.record_batch(MODEL, "b1", "src", 1, None, None, "received")
    assert store.counts(MODEL)["batches"] == 1


def test_store_pickles_by_url(store: AuditStore) -> None:
    store.record_batch(MODEL, "b1", "src", 1, None, None, "received")
    copy = pickle.loads(pickle.dumps(store))
    assert copy.url == store.url
    assert copy.batches(MODEL)[0]["batch_id"] == "b1"


def test_unreachable_backend_raises_store_error_with_masked_password() -> None:
    url = "postgresql+psycopg2://auditor:s3cr3t-pw@127.0.0.1:1/audit"
    store = AuditStore(url)
    assert "s3cr3t-pw" not in repr(store)
    with pytest.raises(StoreError) as info:
        store.decisions(MODEL)
    message = str(info.value)
    assert "s3cr3t-pw" not in message
    assert "auditor:***@127.0.0.1:1/audit" in message


def test_malformed_url_raises_store_error_with_masked_password() -> None:
    with pytest.raises(StoreError) as info:
        AuditStore("not a url://user:hunter2@db/x").counts(MODEL)
    assert "hunter2" not in str(info.value)
    assert mask_url("postgresql://u:hunter2@h/db") == "postgresql://u:***@h/db"


def test_sqlite_path_that_cannot_be_opened_raises_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="cannot create the directory"):
        AuditStore(f"sqlite:///{blocker / 'audit.db'}").counts(MODEL)
    directory = tmp_path / "a-directory"
    directory.mkdir()
    with pytest.raises(StoreError, match="OperationalError"):
        AuditStore(f"sqlite:///{directory}").counts(MODEL)


def test_labelled_rows_are_the_newest_arrival_per_batch(store: AuditStore) -> None:
    store.record_labels([LabelRecord(MODEL, "b1", "with the batch", 100, 100)])
    store.record_labels(
        [LabelRecord(MODEL, "b1", "late.parquet", 50, 150), LabelRecord(MODEL, "b2", "late.parquet", 9, 9)]
    )
    store.record_labels([LabelRecord("other", "b1", "x", 1, 1)])
    assert store.labelled_rows(MODEL) == {"b1": 150, "b2": 9}
    assert [row["source"] for row in store.label_arrivals(MODEL)] == ["with the batch", "late.parquet", "late.parquet"]
