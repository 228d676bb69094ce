"""The retrain deployment's event trigger on a real Prefect server with a process worker.

A stationary batch starts nothing; a degraded, labelled batch makes the monitor decide RETRAIN and emit
`driftgate.retrain.requested`, whose trigger creates exactly one retrain flow run that the worker completes; the
same event re-sent is ignored, and a new event for the same window completes as a no-op.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from flows.monitor import monitor_flow
from tasks.data.files import STATIONARY, ScenarioGenerator, Shift, split_labels, write_frame
from tasks.data.scenarios import DRIFT
from tasks.resources import events
from tests.integration.conftest import MODEL, Stack, poll

pytestmark = pytest.mark.integration

BATCH_ROWS = 3000
# Measured 0.1-0.3 s from emit to flow run on a quiet machine, 7 s with four other test sessions on 2 cores.
RUN_CREATED_TIMEOUT = 60.0
RUN_FINISHED_TIMEOUT = 180.0  # worker poll + subprocess start + a two-trial retrain on 2 shared cores
NO_RUN_GRACE = 4.0  # how long "nothing was created" is watched after the server has the event


@dataclass(frozen=True)
class RetrainRequest:
    outcome: dict[str, Any]
    key: str
    run_id: uuid.UUID
    versions_after: list[str]


@pytest.fixture(scope="module")
def days(stack: Stack) -> ScenarioGenerator:
    """One seeded stream of daily batches, so each batch covers its own day (and its own retraining window)."""
    # The first half of the analysis period is unseen by the champion and drawn like its reference.
    return ScenarioGenerator(stack.analysis.head(25_000), seed=11)


def _monitor(stack: Stack, days: ScenarioGenerator, name: str, shift: Shift) -> dict[str, Any]:
    features, labels = split_labels(days.batch(BATCH_ROWS, shift), entity_id="id", target="repaid")
    folder = stack.home / "inputs"
    batch = str(write_frame(features, folder / f"{name}.parquet"))
    label_file = str(write_frame(labels, folder / f"{name}-labels.parquet"))
    (outcome,) = monitor_flow(batches=[batch], labels=[label_file], home=str(stack.home), config=str(stack.config))[
        "batches"
    ]
    return outcome


def _persisted(stack: Stack, name: str, batch_id: str) -> list[Any] | None:
    found = [e for e in stack.events(name) if e.payload.get("batch_id") == batch_id]
    return found or None


def _assert_no_new_run(stack: Stack, key: str | None, expected: int) -> None:
    deadline = time.monotonic() + NO_RUN_GRACE
    while time.monotonic() < deadline:
        runs = stack.retrain_runs(key)
        assert len(runs) == expected, [(r.name, r.parameters) for r in runs]
        time.sleep(0.25)


def test_stationary_batch_starts_no_retrain(stack: Stack, days: ScenarioGenerator) -> None:
    before = len(stack.retrain_runs())
    outcome = _monitor(stack, days, "stationary", STATIONARY)

    assert outcome["action"] in {"NONE", "ALERT"}, outcome["reasons"]
    assert outcome["retrain_key"] is None
    # The server has the batch's events, so the absence of a run below is not a lost event.
    poll(lambda: _persisted(stack, events.BATCH_PROFILED, outcome["batch_id"]), 30, "batch.profiled", stack)
    assert _persisted(stack, events.RETRAIN_REQUESTED, outcome["batch_id"]) is None
    _assert_no_new_run(stack, None, before)


@pytest.fixture(scope="module")
def retrain_request(stack: Stack, days: ScenarioGenerator) -> RetrainRequest:
    """A degraded batch decides RETRAIN; its event (not flushed by hand) starts one run, which completes."""
    versions_before = stack.registry_versions()
    outcome = _monitor(stack, days, "degraded", DRIFT)
    assert outcome["action"] == "RETRAIN", outcome["reasons"]
    key = outcome["retrain_key"]
    assert key

    runs = poll(lambda: stack.retrain_runs(key) or None, RUN_CREATED_TIMEOUT, f"a retrain run for {key}", stack)
    assert len(runs) == 1, [r.name for r in runs]
    final = stack.wait_until_final(runs[0].id, RUN_FINISHED_TIMEOUT)
    assert final.state is not None and final.state.is_completed(), (final.state, stack.prefect.logs())
    versions_after = stack.registry_versions()
    assert len(versions_after) == len(versions_before) + 1, (versions_before, versions_after)
    return RetrainRequest(outcome=outcome, key=key, run_id=runs[0].id, versions_after=versions_after)


def test_retrain_event_runs_the_retrain_deployment(stack: Stack, retrain_request: RetrainRequest) -> None:
    run = stack.flow_run(retrain_request.run_id)
    outcome = retrain_request.outcome
    assert run.parameters["idempotency_key"] == retrain_request.key
    assert run.parameters["window_start"] == outcome["window_start"].isoformat()
    assert run.parameters["window_end"] == outcome["window_end"].isoformat()
    assert run.parameters["model"] == MODEL
    assert run.parameters["priority_class"] == outcome["priority_class"]
    assert run.parameters["reason"] == f"policy RETRAIN on batch {outcome['batch_id']}"
    # Routed by priority class: the event's resource label picks the retrain deployment on that queue.
    assert run.work_queue_name == outcome["priority_class"]
    assert run.deployment_id == stack.retrain_deployments[outcome["priority_class"]]

    (event,) = _persisted(stack, events.RETRAIN_REQUESTED, outcome["batch_id"]) or []
    assert event.id == events.event_id_for(retrain_request.key)
    assert event.payload["idempotency_key"] == retrain_request.key
    assert run.created is not None and run.created >= event.occurred


def test_the_server_and_the_audit_store_keep_their_state_in_postgres(
    stack: Stack, retrain_request: RetrainRequest
) -> None:
    """The Prefect server runs on PostgreSQL, as in production, and the worker's retrain wrote its audit rows
    (and its Optuna trials) to the home's PostgreSQL store, not to files on the worker's disk."""
    import psycopg

    def connect(url: str) -> psycopg.Connection[Any]:
        return psycopg.connect(re.sub(r"^postgresql\+\w+://", "postgresql://", url))

    with connect(stack.prefect_database) as conn:
        row = conn.execute("SELECT count(*) FROM flow_run WHERE id = %s", (retrain_request.run_id,)).fetchone()
        assert row is not None and row[0] == 1
    with connect(stack.store_database) as conn:
        version = retrain_request.versions_after[-1]
        row = conn.execute(
            "SELECT count(*) FROM driftgate_decision WHERE kind = 'gate' AND version = %s", (version,)
        ).fetchone()
        assert row is not None and row[0] == 1
        trials = conn.execute("SELECT count(*) FROM trials").fetchone()  # Optuna's RDB storage
        assert trials is not None and trials[0] >= 1
    assert not (stack.home / "audit.db").exists()


def test_the_deployed_gate_report_artifact_carries_its_images(stack: Stack, retrain_request: RetrainRequest) -> None:
    """The Prefect UI shows the gate report with its forest plot (images inline, no relative image link) and the
    gate's rules as a table, each keyed by model and version so the artifact pages keep their history."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from tasks.report.publish import artifact_key

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[retrain_request.run_id]))
        )
    version = retrain_request.versions_after[-1]
    by_key = {a.key: a for a in artifacts}
    report, rules = (
        by_key.get(artifact_key("gate", MODEL, version)),
        by_key.get(artifact_key("gate-rules", MODEL, version)),
    )
    assert report is not None and rules is not None, sorted(str(k) for k in by_key)
    assert report.type == "markdown" and rules.type == "table"
    markdown = str(report.data)
    assert "](data:image/png;base64," in markdown
    assert not re.search(r"!\[[^\]]*\]\((?![a-z][a-z0-9+.-]*:)[^)]*\)", markdown)  # no relative image link
    table = json.loads(str(rules.data))
    assert {"superiority", "slices"} <= {row["rule"] for row in table}, table
    assert all(row["verdict"] in {"pass", "fail", "reported", "skipped"} for row in table)


def test_repeated_event_starts_no_second_run_and_a_new_event_is_a_no_op(
    stack: Stack, retrain_request: RetrainRequest
) -> None:
    key = retrain_request.key
    (event,) = _persisted(stack, events.RETRAIN_REQUESTED, retrain_request.outcome["batch_id"]) or []

    # 1. The same event again (same payload, same id): Prefect has seen this id, no trigger fires.
    assert events.emit(events.RETRAIN_REQUESTED, MODEL, dict(event.payload), idempotency_key=key) == str(event.id)
    # 2. A new event for the same window: a second run, which the flow's claim turns into a no-op. Events are
    # evaluated in order, so once this run exists the repeated event above has been judged too.
    from prefect.events import emit_event

    fresh = emit_event(
        event=events.RETRAIN_REQUESTED,
        resource=dict(event.resource),
        payload=dict(event.payload),
        id=uuid.uuid4(),
    )
    assert fresh is not None
    runs = poll(
        lambda: found if len(found := stack.retrain_runs(key)) >= 2 else None,
        RUN_CREATED_TIMEOUT,
        "the second run for the same key",
        stack,
    )
    _assert_no_new_run(stack, key, 2)
    (second,) = [r for r in runs if r.id != retrain_request.run_id]
    final = stack.wait_until_final(second.id, RUN_FINISHED_TIMEOUT)
    assert final.state is not None and final.state.is_completed(), final.state
    assert stack.registry_versions() == retrain_request.versions_after
    logs = poll(
        lambda: [m for m in stack.flow_run_logs(second.id) if "duplicate request" in m] or None,
        30,
        "the duplicate banner in the run's logs",
        stack,
    )
    assert key in logs[0]


def test_null_window_arrives_as_none(stack: Stack) -> None:
    """A request without a window (a contract without timestamps) templates to None, not the string 'None'."""
    from tasks.core.settings import load_settings
    from tasks.resources.workspace import open_workspace

    key = f"retrain-null-window-{uuid.uuid4().hex[:8]}"
    ws = open_workspace(load_settings(stack.config))
    try:
        assert ws.store.claim(key, purpose="retrain")  # already retrained: the run will be a no-op
    finally:
        ws.close()
    payload = {
        "model": MODEL,
        "batch_id": "no-window",
        "window_start": None,
        "window_end": None,
        "priority": 0.0,
        "priority_class": "low",
        "idempotency_key": key,
    }
    events.emit(events.RETRAIN_REQUESTED, MODEL, payload, idempotency_key=key)
    (run,) = poll(lambda: stack.retrain_runs(key) or None, RUN_CREATED_TIMEOUT, f"a run for {key}", stack)
    assert run.parameters["window_start"] is None
    assert run.parameters["window_end"] is None
    assert run.parameters["priority_class"] == "low"
    assert run.work_queue_name == "low"
    final = stack.wait_until_final(run.id, RUN_FINISHED_TIMEOUT)
    assert final.state is not None and final.state.is_completed(), final.state
