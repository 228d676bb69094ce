"""The W&B side of a retrain decision: what the retrain run logs beyond metrics, and its W&B Report.

``retraining.record`` calls :func:`run_context` before it starts the run (config, group, tags),
:func:`log_details` inside it (Optuna trials, feature-importance change, training-data lineage) and
:func:`write_report` once after it (the report of the decision: its specification is written under
``<home>/reports/wandb/<model>/<version>.report.json``; when tracking is online it is saved to the project
at once, else ``driftgate wandb publish`` saves it later).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tasks.core.timeutil import utc

if TYPE_CHECKING:
    from tasks.gate.comparison import ModelComparison
    from tasks.gate.results import GateDecision
    from tasks.registry.model import ModelVersion
    from tasks.report.wandb_report import RetrainReportInput, TriggerBatch
    from tasks.resources.tracking import TrackingRun
    from tasks.resources.workspace import Workspace
    from tasks.training.train import TrainedModel

logger = logging.getLogger(__name__)


class Judgement(Protocol):
    """What this module reads of ``retraining.Judgement`` (a Protocol: retraining imports this module)."""

    @property
    def gate(self) -> GateDecision: ...

    @property
    def champion(self) -> ModelVersion | None: ...

    @property
    def window(self) -> dict[str, Any] | None: ...

    @property
    def comparison(self) -> ModelComparison | None: ...


@dataclass(frozen=True)
class RunContext:
    """Who and what a retrain run is about: its config (safe to share), group and tags."""

    config: dict[str, Any]
    group: str
    tags: tuple[str, ...]
    triggers: tuple[TriggerBatch, ...]
    flow_run_id: str | None
    flow_run_url: str | None
    data_fingerprint: str | None


def trigger_batches(ws: Workspace, key: str | None) -> tuple[TriggerBatch, ...]:
    """The batches behind a retrain request: the batch whose RETRAIN carried ``key`` and the degraded stretch
    its window covers, each with its drift alerts, CBPE estimate and band, realized metric and verdict."""
    from tasks.report.wandb_report import TriggerBatch

    if key is None:
        return ()
    decisions = ws.store.decisions(ws.model, kind="policy")
    requests = [d for d in decisions if (d.get("payload") or {}).get("retrain_key") == key]
    if not requests:
        return ()
    payload = requests[-1]["payload"]
    start, end = (payload.get(k) for k in ("window_start", "window_end"))
    wanted = {str(d["batch_id"]) for d in requests if d.get("batch_id")}
    for batch in ws.store.batches(ws.model):
        when = batch.get("window_end")
        if when is not None and start and end and _parse(start) < utc(when) <= _parse(end):
            wanted.add(str(batch["batch_id"]))
    if not wanted:
        return ()
    signals = ws.store.signals(ws.model, batch_ids=sorted(wanted))
    verdicts = {str(d["batch_id"]): str(d["outcome"]) for d in decisions if str(d.get("batch_id")) in wanted}
    rows: dict[str, dict[str, Any]] = {b: {"alerts": [], "time": ""} for b in wanted}
    for signal in signals:
        row = rows[str(signal["batch_id"])]
        if signal.get("window_end") is not None:
            row["time"] = utc(signal["window_end"]).isoformat()
        if signal["kind"] == "drift" and signal["alert"]:
            row["alerts"].append(f"{signal['name']}/{signal.get('method') or 'value'}")
        elif signal["kind"] == "estimate":
            row["estimate"] = signal.get("value")
            row["lower"] = (signal.get("payload") or {}).get("lower")
            row["upper"] = (signal.get("payload") or {}).get("upper")
        elif signal["kind"] == "realized":
            row["realized"] = signal.get("value")
    out = [
        TriggerBatch(
            batch_id=batch,
            batch_time=row["time"],
            drift_alerts=tuple(sorted(set(row["alerts"]))),
            estimate=row.get("estimate"),
            lower=row.get("lower"),
            upper=row.get("upper"),
            realized=row.get("realized"),
            decision=verdicts.get(batch),
        )
        for batch, row in rows.items()
    ]
    return tuple(sorted(out, key=lambda t: (t.batch_time, t.batch_id)))


def run_context(
    ws: Workspace, trained: TrainedModel, judgement: Judgement, *, key: str | None, reason: str, fingerprint: str | None
) -> RunContext:
    """The retrain run's config: parameters, settings (no secrets, paths relative unless shared), window,
    reason, triggering batches, Prefect flow run and data fingerprints; grouped by model, tagged by the verdict."""
    from tasks.resources.events import current_flow_run
    from tasks.resources.wandb_retrain import safe_settings

    flow_run_id, flow_run_url = current_flow_run()
    triggers = trigger_batches(ws, key)
    settings = safe_settings(ws.settings.model_dump(mode="json"), share_absolute_paths=ws.settings.share_absolute_paths)
    config = {
        "model": ws.model,
        "params": trained.params,
        "settings": settings,
        "window": judgement.window,
        "training_window": [_iso(trained.window_start), _iso(trained.window_end)],
        "reason": reason,
        "idempotency_key": key,
        "triggering_batches": [t.batch_id for t in triggers],
        "prefect_flow_run_id": flow_run_id,
        "prefect_flow_run_url": flow_run_url,
        "data_fingerprint": fingerprint,
        "study_name": trained.study_name,
        "champion": judgement.champion.version if judgement.champion else None,
    }
    verdict = "gate-passed" if judgement.gate.passed else "gate-failed"
    return RunContext(config, ws.model, (verdict,), triggers, flow_run_id, flow_run_url, fingerprint)


def log_details(
    ws: Workspace, run: TrackingRun, trained: TrainedModel, judgement: Judgement, context: RunContext
) -> None:
    """Every Optuna trial, the final fit's learning curve, the feature-importance change, both models'
    calibration and the training data's fingerprint (lineage)."""
    from tasks.resources.wandb_retrain import (
        log_calibration,
        log_importance,
        log_learning_curve,
        log_trials,
        trials_of,
    )

    log_trials(run, trials_of(ws.settings.optuna_dir, trained.study_name, ws.settings.optuna_storage_url))
    log_learning_curve(run, trained.learning_curve)
    if judgement.comparison is not None:
        log_importance(run, [s.row() for s in judgement.comparison.importance])
        log_calibration(run, judgement.comparison.calibration_rows())
    if context.data_fingerprint:
        run.use_dataset(
            f"{ws.model}-training-data",
            context.data_fingerprint,
            {"window": judgement.window, "training_window": context.config["training_window"]},
        )


def report_input(
    ws: Workspace,
    trained: TrainedModel,
    judgement: Judgement,
    version: str,
    *,
    reason: str,
    context: RunContext,
    run_name: str,
    report_path: Path,
    forest_plot: bool,
) -> RetrainReportInput:
    from tasks.report.wandb_report import GateRuleRow, RetrainReportInput, SliceInterval
    from tasks.resources.wandb_monitoring import drift_key

    gate = judgement.gate
    comparison = judgement.comparison
    champion = judgement.champion.version if judgement.champion else None
    decision = "first model" if champion is None else ("promote" if gate.passed else "keep the champion")
    canary = next(
        (
            f"{d['outcome']}: {'; '.join(d['reasons'])}"
            for d in reversed(ws.store.decisions(ws.model, kind="canary"))
            if d.get("version") == version
        ),
        None,
    )
    drift_keys = sorted({drift_key(*a.split("/", 1)) for t in context.triggers for a in t.drift_alerts})
    return RetrainReportInput(
        model=ws.model,
        project=ws.settings.wandb_project,
        entity=ws.settings.wandb_entity or "",
        candidate_version=version,
        champion_version=champion,
        gate_passed=gate.passed,
        decision=decision,
        reason=reason,
        metric=gate.metric,
        candidate_metric=gate.candidate_metric,
        champion_metric=gate.champion_metric,
        diff=gate.diff,
        ci_low=gate.ci_low,
        ci_high=gate.ci_high,
        retrain_run=run_name,
        rules=tuple(GateRuleRow(r.rule, str(r.verdict), r.blocking, r.detail) for r in gate.rules),
        slices=tuple(SliceInterval(s.column, s.value, s.n, s.diff, s.ci_low, s.ci_high) for s in gate.slices),
        triggers=context.triggers,
        importance=tuple(s.row() for s in comparison.importance) if comparison else (),
        calibration=tuple(comparison.calibration_rows()) if comparison else (),
        drift_keys=tuple(drift_keys),
        canary=canary,
        flow_run_id=context.flow_run_id,
        flow_run_url=context.flow_run_url,
        html_report=ws.settings.shareable(report_path),
        forest_plot=forest_plot,
        window=judgement.window or {},
    )


def write_report(data: RetrainReportInput, ws: Workspace) -> Path:
    """Write the report's specification; online, also save it to the project (a failure there is logged:
    the written specification is published later by ``driftgate wandb publish``)."""
    from tasks.report.wandb_report import build_report, report_spec, save_spec, spec_path, write_spec

    report = build_report(data)
    path = write_spec(report, spec_path(ws.settings.reports_dir, data.model, data.candidate_version))
    if ws.settings.tracking_mode == "online":
        try:
            save_spec(report_spec(report), entity=ws.settings.wandb_entity)
            _mark_saved(ws, path)
        except Exception as exc:  # network or auth: the spec on disk is the fallback
            logger.warning(
                "W&B report for %s %s not saved (%s); `driftgate wandb publish` saves %s later",
                data.model,
                data.candidate_version,
                exc,
                path,
            )
    return path


def _mark_saved(ws: Workspace, spec: Path) -> None:
    """Note a report saved online in the publish cursor: ``driftgate wandb publish`` then does not save it twice."""
    from tasks.resources.wandb_monitoring import cursor_path, read_cursor, with_published, write_cursor

    cursor = cursor_path(ws.settings.wandb_dir)
    write_cursor(cursor, with_published(read_cursor(cursor), "reports", [ws.settings.shareable(spec)]))


def _parse(text: str) -> datetime:
    return utc(datetime.fromisoformat(text))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
