"""The policy's memory of an inconclusive gate, rebuilt from the audit store: the newest retrain's gate decides
whether the policy waits for labels, and a later gate (or a promotion) ends the wait."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from tasks.core.settings import load_settings
from tasks.resources.store import DecisionRecord
from tasks.resources.workspace import open_home
from tasks.stages.policy_memory import pending_judgement, policy_state

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def _gate(version: str, awaiting: int | None) -> DecisionRecord:
    power = {"rows": 1500, "positives": 30, "power": 0.21}
    return DecisionRecord(
        model="m",
        kind="gate",
        outcome="failed",
        reasons=("inconclusive" if awaiting else "no better",),
        version=version,
        payload={"gate": {"power": power}, "awaiting_labels": awaiting},
    )


def test_the_newest_inconclusive_gate_makes_the_policy_wait_and_a_later_gate_ends_it(tmp_path: Path) -> None:
    settings = load_settings(home=str(tmp_path), model_name="m", tracking_mode="disabled", emit_events=False)
    with open_home(settings) as ws:
        assert pending_judgement(ws) is None and policy_state(ws, NOW).inconclusive is None
        ws.store.record_decision(_gate("v1", None))
        ws.store.record_decision(_gate("v2", 12_000))
        pending = policy_state(ws, NOW).inconclusive
        assert pending is not None and (pending.version, pending.labelled_rows_needed) == ("v2", 12_000)
        assert "30 positive" in pending.detail
        ws.store.record_decision(_gate("v3", None))  # judged again on more labels: settled either way
        assert pending_judgement(ws) is None
