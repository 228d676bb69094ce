"""Retrain flow: window → Optuna-tuned LightGBM → paired gate vs champion → registered candidate (→ promote)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from prefect import flow

from flows import steps
from flows._common import banner, retrain_slot, workspace
from flows.promote import promote_flow
from tasks.core import progress
from tasks.stages import retraining
from tasks.stages.retraining import RetrainOutcome


@flow(name="driftgate-retrain", log_prints=True)
def retrain_flow(
    window_start: str | None = None,
    window_end: str | None = None,
    idempotency_key: str | None = None,
    reason: str = "retrain requested",
    priority_class: str | None = None,
    auto_promote: bool = True,
    actor: str = "driftgate",
    home: str | None = None,
    config: str | None = None,
    model: str | None = None,
    study: str | None = None,
) -> dict[str, Any]:
    """Retrain on the labelled window [window_start, window_end] (ISO times; default: the newest rows).

    study: the Optuna study to tune in (default: the request's key, or one per data window for a manual retrain).
    """
    with workspace(home, config, model) as ws:
        banner(f"claim {idempotency_key or 'manual retrain'} ({priority_class or 'unprioritised'})")
        if not steps.claim_window(ws, idempotency_key):
            outcome = steps.record_duplicate(ws, idempotency_key, reason)
            banner(f"duplicate request: {idempotency_key} was already claimed, nothing to retrain")
            return asdict(outcome)
        start = datetime.fromisoformat(window_start) if window_start else None
        end = datetime.fromisoformat(window_end) if window_end else None
        banner(f"wait for the retrain slot ({ws.settings.retrain_slot or 'none'})")
        with retrain_slot(ws.settings.retrain_slot):
            banner("collect the labelled window")
            frame = steps.collect_window(ws, start, end)
            window = steps.split_holdout(ws, frame)
            banner(
                f"tune and train on a {window.kind} window of {window.train.height} rows "
                f"({window.reference_rows} from the reference; {ws.settings.training.n_trials} trials)"
            )
            trained = steps.train(
                ws,
                window,
                study_name=retraining.study_for(ws, window, idempotency_key, study),
                progress=progress.trial_reporter("tune"),
            )
            banner(f"gate: candidate vs champion on {window.holdout.height} paired holdout rows")
            champion = ws.registry.resolve(ws.model, "production")
            judgement = steps.evaluate(ws, trained, window, champion)
            version = steps.register(ws, trained, judgement, reason=reason, actor=actor)
            report = steps.record_retrain(ws, trained, judgement, version, key=idempotency_key, reason=reason)
        gate = judgement.gate
        outcome = RetrainOutcome(
            candidate_version=version.version,
            champion_version=champion.version if champion else None,
            gate_passed=gate.passed,
            reasons=gate.reasons,
            report_path=str(report),
            idempotency_key=idempotency_key,
            candidate_metric=gate.candidate_metric,
            champion_metric=gate.champion_metric,
        )
    if gate.passed and auto_promote:
        promote_flow(
            version=version.version,
            reason=f"gate passed: {reason}",
            actor=actor,
            evidence=str(report),
            home=home,
            config=config,
            model=model,
        )
    return asdict(outcome)
