"""Monitoring stages for one batch: load and validate, score, profile, estimate, decide, record, announce."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tasks.core.records import FromDict
from tasks.core.timeutil import utc
from tasks.policy.decide import (
    Action,
    PolicyDecision,
    PolicyEvidence,
    decide,
    policy_clock,
)
from tasks.resources import events
from tasks.stages.monitor_caches import (
    calibrated_sizes,
    keep_calibrations,
    production_estimator,
    production_reference_profile,
    reference_cache_path,
)
from tasks.stages.policy_memory import concept_drift_evidence, concept_signal, policy_state, slice_evidence

if TYPE_CHECKING:
    import polars as pl

    from tasks.data.labels import LabelSet
    from tasks.drift.reference import ReferenceProfile
    from tasks.drift.results import BatchProfile
    from tasks.performance.estimation import PerformanceEstimate, PerformanceEstimator, RealizedPerformance
    from tasks.performance.fitted import FittedCBPE
    from tasks.registry.model import ModelVersion
    from tasks.resources.workspace import Workspace


@dataclass(frozen=True)
class LoadedBatch:
    batch_id: str
    source: str
    frame: pl.DataFrame
    scored_by: str  # version that produced the scores, or "supplied" when the batch came with them
    raw_schema: dict[str, Any] = field(default_factory=dict)  # dtypes as read, before validation cast them
    production: str | None = None  # production version the batch is judged for


@dataclass(frozen=True)
class MonitorContext:
    """What monitoring needs from the production model, built once per run."""

    version: ModelVersion
    model_text: str
    reference_profile: ReferenceProfile
    estimator: PerformanceEstimator | FittedCBPE  # FittedCBPE: estimated in numpy, without NannyML


@dataclass(frozen=True)
class MonitorOutcome(FromDict):
    batch_id: str
    source: str
    rows: int
    scored_by: str
    action: str
    reasons: tuple[str, ...]
    priority_class: str
    drifted_features: tuple[str, ...]
    estimated: float | None
    realized: float | None
    quality_passed: bool
    retrain_key: str | None
    report_path: str
    window_start: datetime | None
    window_end: datetime | None


def select_batches(ws: Workspace, patterns: list[str] | None, only_new: bool) -> list[str]:
    """Expand names and globs; with only_new, skip batches the audit store has seen (and allow none).
    No patterns at all means the home's inbox (setting ``inbox``), as the scheduled deployment asks."""
    from tasks.core.errors import DataFileError
    from tasks.data.files import expand_paths
    from tasks.resources.lake import batch_id_for

    if not patterns:
        patterns = [ws.settings.inbox_pattern]
    if not only_new:
        return [str(p) for p in expand_paths(patterns)]
    seen = {row["batch_id"] for row in ws.store.batches(ws.model)}
    found: list[str] = []
    for pattern in patterns:
        try:
            found.extend(str(p) for p in expand_paths(pattern))
        except DataFileError:
            continue
    return [p for p in found if batch_id_for(p) not in seen]


def prepare_context(ws: Workspace) -> MonitorContext:

    version = ws.production()
    reference = ws.reference_of(version)
    return MonitorContext(
        version=version,
        model_text=ws.model_text(version),
        reference_profile=production_reference_profile(ws, version, reference),
        estimator=production_estimator(ws, version, reference),
    )


def read_labels(ws: Workspace, paths: list[str] | None) -> LabelSet | None:
    """Every label file of one call, read and checked together (tasks/data/labels.py); None without files."""
    from tasks.data.labels import read_labels as read_label_files

    return read_label_files(paths, ws.contract) if paths else None


def load_batch(ws: Workspace, ctx: MonitorContext, path: str, labels: LabelSet | None = None) -> LoadedBatch:
    """Read, validate against the contract, join the labels of this call, and score with production if unscored.

    Labels of this call that belong to earlier batches are attached after the batches (``attach_labels``).
    """
    from tasks.data.contract import validate_batch
    from tasks.data.files import read_file
    from tasks.data.labels import join_frame
    from tasks.resources.lake import batch_id_for
    from tasks.training.scoring import score_frame

    contract = ws.contract
    raw = read_file(path)
    frame = validate_batch(raw, contract, source=path, min_rows=1)
    if labels is not None:
        frame, _ = join_frame(frame, labels, contract)
    if contract.probability in frame.columns:
        scored_by = "supplied"
    else:
        frame = score_frame(
            frame,
            ctx.model_text,
            contract,
            version=ctx.version.version,
            num_threads=ws.settings.num_threads,
            threshold=ws.settings.gate.decision_threshold,
        )
        scored_by = ctx.version.version
    return LoadedBatch(
        batch_id=batch_id_for(path),
        source=ws.settings.shareable(path),
        frame=frame,
        scored_by=scored_by,
        raw_schema=dict(raw.schema),
        production=ctx.version.version,
    )


def refuse(ws: Workspace, path: str, error: Exception) -> MonitorOutcome:
    """A batch refused at the boundary (a typed error) is recorded as a BLOCK decision with the error; the
    batch itself is kept out of the lake and out of the policy's memory of degraded batches."""
    from tasks.resources.lake import batch_id_for
    from tasks.resources.store import DecisionRecord

    batch_id = batch_id_for(path)
    reason = f"refused at the boundary: {error}"
    with ws.store.transaction() as conn:
        ws.store.record_batch(ws.model, batch_id, ws.settings.shareable(path), 0, None, None, "refused", conn=conn)
        ws.store.record_decision(
            DecisionRecord(
                model=ws.model,
                kind="policy",
                outcome=Action.BLOCK.value,
                reasons=(reason,),
                batch_id=batch_id,
                payload={"error": str(error), "error_type": type(error).__name__, "refused": True},
            ),
            conn=conn,
        )
    return MonitorOutcome(
        batch_id=batch_id,
        source=ws.settings.shareable(path),
        rows=0,
        scored_by="",
        action=Action.BLOCK.value,
        reasons=(reason,),
        priority_class="low",
        drifted_features=(),
        estimated=None,
        realized=None,
        quality_passed=False,
        retrain_key=None,
        report_path="",
        window_start=None,
        window_end=None,
    )


def profile(ws: Workspace, ctx: MonitorContext, batch: LoadedBatch) -> BatchProfile:
    from tasks.drift.profiling import profile_batch

    known = calibrated_sizes(ctx.reference_profile)
    result = profile_batch(
        ctx.reference_profile,
        batch.frame,
        ws.contract,
        ws.settings.profiling,
        source=batch.source,
        raw_schema=batch.raw_schema,
    )
    if calibrated_sizes(ctx.reference_profile) > known:
        keep_calibrations(ws, ctx.version, ctx.reference_profile)
    return result


def estimate(
    ws: Workspace, ctx: MonitorContext, batch: LoadedBatch
) -> tuple[PerformanceEstimate, RealizedPerformance | None]:
    from tasks.performance.estimation import estimate_performance, realized_performance
    from tasks.performance.fitted import FittedCBPE, estimate_fitted

    if isinstance(ctx.estimator, FittedCBPE):
        est = estimate_fitted(ctx.estimator, batch.frame, ws.contract)
    else:
        est = estimate_performance(ctx.estimator, batch.frame, ws.contract)
    realized = None
    if ws.contract.target in batch.frame.columns:
        realized = realized_performance(batch.frame, ws.contract, threshold=ws.settings.gate.decision_threshold)
    return est, realized


@dataclass(frozen=True)
class MeasuredBatch:
    """What one batch says on its own: loaded (validated, labels joined, scored), profiled and estimated."""

    batch: LoadedBatch
    profile: BatchProfile
    estimate: PerformanceEstimate
    realized: RealizedPerformance | None


def measure(ws: Workspace, ctx: MonitorContext, path: str, labels: LabelSet | None = None) -> MeasuredBatch:
    """Load, profile and estimate one batch: the part of monitoring that depends on no other batch.

    Batches are measured independently, so a flow may measure many at once on its task runner (threads, or
    Dask workers on other machines); judging and recording then follow in batch order, because the policy's
    memory (persistence, cooldown, budget) is the sequence of earlier verdicts.
    """
    ctx = _warm(ws, ctx)
    batch = load_batch(ws, ctx, path, labels)
    est, realized = estimate(ws, ctx, batch)
    return MeasuredBatch(batch=batch, profile=profile(ws, ctx, batch), estimate=est, realized=realized)


# Per process: the reference profile each (home, version, contract, profiling settings) was first measured with.
# A Dask worker receives a fresh copy of the context with every task; the warm copy keeps the thresholds that
# earlier batches in this process calibrated for their sizes, so each size is simulated once per process.
_WARM_PROFILES: dict[str, ReferenceProfile] = {}


def _warm(ws: Workspace, ctx: MonitorContext) -> MonitorContext:
    key = str(reference_cache_path(ws, ctx.version))
    warm = _WARM_PROFILES.setdefault(key, ctx.reference_profile)
    return ctx if warm is ctx.reference_profile else replace(ctx, reference_profile=warm)


HEATMAP_BATCHES = 30  # batches (columns) of the drift heat map in each monitor report


def judge(
    ws: Workspace,
    batch: LoadedBatch,
    batch_profile: BatchProfile,
    est: PerformanceEstimate,
    realized: RealizedPerformance | None,
    now: datetime | None = None,
) -> PolicyDecision:
    evidence = PolicyEvidence(
        batch_id=batch.batch_id,
        rows=batch_profile.rows,
        quality_passed=batch_profile.quality.passed,
        quality_failures=tuple(f"{i.check}:{i.column}" for i in batch_profile.quality.issues if i.severity == "fail"),
        drifted_features=tuple(batch_profile.drifted_features),
        drift_share=batch_profile.drift_share,
        multivariate_drift=bool(batch_profile.multivariate_drift and batch_profile.multivariate_drift.drifts),
        estimated_drop=est.reference_value - est.value,
        estimate_alert=est.alert,
        realized_drop=(est.reference_value - realized.value) if realized and realized.value is not None else None,
        labelled_rows=realized.rows_labelled if realized else 0,
        window_start=batch_profile.window_start,
        window_end=batch_profile.window_end,
        concept_drift=concept_drift_evidence(ws, batch.frame, batch.scored_by, "monitor", batch.production),
        slices=slice_evidence(est, realized),
        model_version=batch.production,
        serving_version=batch.production,
    )
    clock = now or policy_clock(evidence, datetime.now(UTC))
    state = policy_state(ws, clock, batch_id=batch.batch_id, model_version=batch.production)
    return decide(evidence, state, ws.settings.policy, clock)


def record(
    ws: Workspace,
    batch: LoadedBatch,
    batch_profile: BatchProfile,
    est: PerformanceEstimate,
    realized: RealizedPerformance | None,
    decision: PolicyDecision,
) -> str | None:
    """Write batch, signals and decision in one transaction; returns the retrain idempotency key if any."""
    from tasks.resources.store import DecisionRecord, LabelRecord, SignalRecord

    model = ws.model
    start, end = batch_profile.window_start, batch_profile.window_end

    def signal(
        kind: str,
        name: str,
        method: str,
        value: float | None,
        threshold: float | None,
        alert: bool,
        payload: dict[str, Any] | None = None,
    ) -> SignalRecord:
        return SignalRecord(
            model=model,
            batch_id=batch.batch_id,
            kind=kind,
            name=name,
            method=method,
            value=value,
            threshold=threshold,
            alert=alert,
            window_start=start,
            window_end=end,
            payload=payload or {},
        )

    # ``alert`` is the test's own calibrated alert; the payload adds its p-value and whether it survives the
    # batch-level control (None: not among the tests that reach the policy).
    signals = [
        signal(
            "drift",
            d.feature,
            d.method,
            d.statistic,
            d.threshold,
            d.alert,
            {"p_value": d.p_value, "batch_alert": d.batch_alert, "primary": d.primary},
        )
        for d in batch_profile.drift
    ]
    quality = batch_profile.quality
    issues = {"issues": [asdict(i) for i in quality.issues]}
    signals.append(
        signal("quality", "data_quality", "checks", float(len(quality.issues)), None, not quality.passed, issues)
    )
    bounds = {"lower": est.lower, "upper": est.upper, "reference": est.reference_value}
    signals.append(signal("estimate", est.metric, est.method, est.value, est.lower_threshold, est.alert, bounds))
    if realized is not None and realized.value is not None:
        realized_payload = {"rows_labelled": realized.rows_labelled, **estimate_error(est.value, est, realized.value)}
        signals.append(
            signal("realized", realized.metric, "labels", realized.value, est.lower_threshold, False, realized_payload)
        )
    concept = decision.evidence.concept_drift
    if concept is not None:
        signals.append(concept_signal(ws, batch.batch_id, concept, batch.scored_by, "monitor", (start, end)))
    labelled = realized.rows_labelled if realized is not None else 0
    key = decision_key(ws, decision, {batch.batch_id: labelled})
    payload = decision_payload(decision, key, scored_by=batch.scored_by)
    arrivals = [LabelRecord(model, batch.batch_id, "with the batch", labelled, labelled)] if labelled else []
    with ws.store.transaction() as conn:
        ws.store.record_batch(
            model, batch.batch_id, batch.source, batch_profile.rows, start, end, "monitored", conn=conn
        )
        ws.store.record_signals(signals, conn=conn)
        ws.store.record_labels(arrivals, conn=conn)
        ws.store.record_decision(
            DecisionRecord(
                model=model,
                kind="policy",
                outcome=decision.action.value,
                reasons=decision.reasons,
                batch_id=batch.batch_id,
                version=batch.scored_by,
                payload=payload,
            ),
            conn=conn,
        )
    if decision.action != Action.BLOCK:
        # Bad data never trains a model: a blocked batch stays out of the lake the retraining windows read.
        ws.lake.save(batch.batch_id, batch.frame)
    from tasks.report.performance_plots import write_performance_chart

    write_performance_chart(ws)
    return key


def decision_key(ws: Workspace, decision: PolicyDecision, pending: dict[str, int] | None = None) -> str | None:
    """The idempotency key of a RETRAIN: the model, its data window and the labelled rows that window holds now
    (``pending``: labelled rows of batches not yet in the store). A re-sent request collapses into the first;
    a grown stretch, or the same stretch with new labels, gets a new key and may retrain again."""
    if decision.action != Action.RETRAIN:
        return None
    return events.retrain_key(
        ws.model, decision.window_start, decision.window_end, window_fingerprint(ws, decision, pending or {})
    )


def window_fingerprint(ws: Workspace, decision: PolicyDecision, pending: dict[str, int]) -> str:
    """(batch id, labelled rows) of every batch inside the decision's window, in batch-id order."""
    start, end = utc(decision.window_start), utc(decision.window_end)
    labelled = {**ws.store.labelled_rows(ws.model), **pending}
    inside: dict[str, int] = {}
    for row in ws.store.batches(ws.model):
        batch_id = str(row["batch_id"])
        first, last = row["window_start"], row["window_end"]
        if start is not None and first is not None and first < start:
            continue
        if end is not None and last is not None and last > end:
            continue
        inside[batch_id] = labelled.get(batch_id, 0)
    for batch_id, rows in pending.items():
        inside.setdefault(batch_id, rows)
    return ";".join(f"{b}={n}" for b, n in sorted(inside.items()) if n)


def decision_payload(decision: PolicyDecision, key: str | None, **extra: Any) -> dict[str, Any]:
    """A policy decision as stored: the decision, its retrain key, and what the caller adds."""
    payload: dict[str, Any] = decision.to_dict()
    payload["retrain_key"] = key
    payload.update(extra)
    if payload["evidence"].get("concept_drift"):
        # The detector's state is kept once, in its signal, not in every decision.
        payload["evidence"]["concept_drift"].pop("state_json", None)
    return payload


def estimate_error(estimated: float | None, est: Any, realized: float | None) -> dict[str, Any]:
    """The running error of the estimate, stored with each realized value (est: a PerformanceEstimate or None)."""
    if estimated is None or realized is None:
        return {}
    lower, upper = getattr(est, "lower", None), getattr(est, "upper", None)
    return {
        "estimated": estimated,
        "error": realized - estimated,
        "within_band": None if lower is None or upper is None else bool(lower <= realized <= upper),
    }


def announce(ws: Workspace, batch_id: str, decision: PolicyDecision, key: str | None) -> list[str]:
    """Emit the events of a policy decision; returns their names. Events go nowhere without a Prefect API."""
    if not ws.settings.emit_events:
        return []
    base = {
        "model": ws.model,
        "batch_id": batch_id,
        "trigger": decision.evidence.trigger,
        "window_start": decision.window_start,
        "window_end": decision.window_end,
    }
    sent = [events.BATCH_PROFILED]
    events.emit(events.BATCH_PROFILED, ws.model, {**base, "action": decision.action.value})
    if decision.drifted:
        events.emit(events.DRIFT_DETECTED, ws.model, {**base, "features": list(decision.evidence.drifted_features)})
        sent.append(events.DRIFT_DETECTED)
    if decision.degraded:
        events.emit(
            events.PERFORMANCE_DEGRADED,
            ws.model,
            {
                **base,
                "reasons": list(decision.reasons),
                "degraded_slices": list(decision.degraded_slices),
                "concept_drift": decision.concept_drift,
            },
        )
        sent.append(events.PERFORMANCE_DEGRADED)
    if decision.action == Action.RETRAIN and key is not None:
        # emit() also puts priority_class on the resource as a label: prefect.yaml routes on it to a queue.
        events.emit(
            events.RETRAIN_REQUESTED,
            ws.model,
            {
                **base,
                "priority": decision.priority,
                "priority_class": decision.priority_class,
                "idempotency_key": key,
                "degraded_slices": list(decision.degraded_slices),
                "window_basis": decision.window_basis,
            },
            idempotency_key=key,
        )
        sent.append(events.RETRAIN_REQUESTED)
    for name in sent:
        ws.store.record_event(name, events.resource_id(ws.model), base, None)
    return sent


def report(
    ws: Workspace,
    batch: LoadedBatch,
    batch_profile: BatchProfile,
    est: PerformanceEstimate,
    realized: RealizedPerformance | None,
    decision: PolicyDecision,
    key: str | None,
) -> MonitorOutcome:
    from tasks.report.drift_plots import distribution_overlays, drift_bars, drift_heatmap, history_frame
    from tasks.report.markdown import monitor_markdown, write_report

    folder = ws.settings.reports_dir / "monitor"
    bars = drift_bars(batch_profile, folder / f"{batch.batch_id}-drift.svg", title=f"drift — {batch.batch_id}")
    # This batch's signals are already recorded, so the heat map ends with it; only the batches shown are read.
    shown = ws.store.recent_batch_ids(ws.model, HEATMAP_BATCHES)
    heatmap = drift_heatmap(
        history_frame(ws.store.signals(ws.model, kind="drift", batch_ids=shown), batch_profile, last=HEATMAP_BATCHES),
        folder / f"{batch.batch_id}-heatmap.svg",
        title=f"drift by batch — {ws.model}",
        xlabel="monitored batch",
    )
    overlays = distribution_overlays(
        batch_profile, folder / f"{batch.batch_id}-distributions.svg", title=f"reference vs {batch.batch_id}"
    )
    markdown = monitor_markdown(
        model=ws.model,
        batch_id=batch.batch_id,
        source=batch.source,
        scored_by=batch.scored_by,
        profile=batch_profile,
        estimate=est,
        realized=realized,
        decision=decision,
        drift_image=bars,
        heatmap_image=heatmap,
        overlays_image=overlays,
    )
    path = write_report(folder / f"{batch.batch_id}.md", markdown, reports_root=ws.settings.reports_dir)
    from tasks.report.publish import publish

    publish(
        markdown,
        key=f"monitor-{ws.model}-{batch.batch_id}",
        description=f"monitor {batch.batch_id}",
        images_from=path.parent,
    )
    return MonitorOutcome(
        batch_id=batch.batch_id,
        source=batch.source,
        rows=batch_profile.rows,
        scored_by=batch.scored_by,
        action=decision.action.value,
        reasons=decision.reasons,
        priority_class=decision.priority_class,
        drifted_features=tuple(batch_profile.drifted_features),
        estimated=est.value,
        realized=realized.value if realized else None,
        quality_passed=batch_profile.quality.passed,
        retrain_key=key,
        report_path=str(path),
        window_start=decision.window_start,
        window_end=decision.window_end,
    )
