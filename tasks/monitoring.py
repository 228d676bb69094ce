"""Monitoring stages for one batch: load and validate, score, profile, estimate, decide, record, announce."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from tasks import events
from tasks.policy import Action, PolicyDecision, PolicyEvidence, PolicyState, decide

if TYPE_CHECKING:
    import polars as pl

    from tasks.estimation import PerformanceEstimate, PerformanceEstimator, RealizedPerformance
    from tasks.profiling import BatchProfile, ReferenceProfile
    from tasks.registry import ModelVersion
    from tasks.workspace import Workspace


@dataclass(frozen=True)
class LoadedBatch:
    batch_id: str
    source: str
    frame: pl.DataFrame
    scored_by: str  # version that produced the scores, or "supplied" when the batch came with them


@dataclass(frozen=True)
class MonitorContext:
    """What monitoring needs from the production model, built once per run."""

    version: ModelVersion
    model_text: str
    reference_profile: ReferenceProfile
    estimator: PerformanceEstimator


@dataclass(frozen=True)
class MonitorOutcome:
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


def select_batches(ws: Workspace, patterns: list[str], only_new: bool) -> list[str]:
    """Expand names and globs; with only_new, skip batches the audit store has seen (and allow none)."""
    from tasks.data import expand_paths
    from tasks.errors import DataFileError
    from tasks.lake import batch_id_for

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
    from tasks.estimation import fit_estimator
    from tasks.profiling import fit_reference_profile

    version = ws.production()
    reference = ws.reference_of(version)
    return MonitorContext(
        version=version,
        model_text=ws.model_text(version),
        reference_profile=fit_reference_profile(reference, ws.contract, ws.settings.profiling),
        # CBPE's thresholds come from the spread across reference chunks; a retrained model's reference (its
        # holdout) can be small, so keep at least three chunks.
        estimator=fit_estimator(
            reference, ws.contract, chunk_size=min(ws.settings.profiling.chunk_size, reference.height // 3)
        ),
    )


def load_batch(ws: Workspace, ctx: MonitorContext, path: str, labels: list[str] | None = None) -> LoadedBatch:
    """Read, validate against the contract, join delayed labels, and score with production if unscored."""
    from tasks.data import join_labels, read_file
    from tasks.lake import batch_id_for
    from tasks.schema import validate_batch
    from tasks.scoring import score_frame

    contract = ws.contract
    frame = validate_batch(read_file(path), contract, source=path, min_rows=1)
    for label_path in labels or []:
        label_frame = validate_labels(read_file(label_path), ws, source=label_path)
        frame = join_labels(frame, label_frame, entity_id=contract.entity_id, target=contract.target, source=label_path)
    if contract.probability in frame.columns:
        scored_by = "supplied"
    else:
        frame = score_frame(
            frame, ctx.model_text, contract, version=ctx.version.version, num_threads=ws.settings.num_threads
        )
        scored_by = ctx.version.version
    return LoadedBatch(batch_id=batch_id_for(path), source=path, frame=frame, scored_by=scored_by)


def validate_labels(frame: pl.DataFrame, ws: Workspace, *, source: str) -> pl.DataFrame:
    from tasks.errors import EmptyBatchError, MissingColumnError
    from tasks.schema import _canonical_target

    contract = ws.contract
    for column in (contract.entity_id, contract.target):
        if column not in frame.columns:
            raise MissingColumnError("label file lacks a column", source=source, column=column)
    if frame.height == 0:
        raise EmptyBatchError("label file has no rows", source=source)
    return _canonical_target(frame.select(contract.entity_id, contract.target), contract, source)


def profile(ws: Workspace, ctx: MonitorContext, batch: LoadedBatch) -> BatchProfile:
    from tasks.profiling import profile_batch

    return profile_batch(ctx.reference_profile, batch.frame, ws.contract, ws.settings.profiling)


def estimate(
    ws: Workspace, ctx: MonitorContext, batch: LoadedBatch
) -> tuple[PerformanceEstimate, RealizedPerformance | None]:
    from tasks.estimation import estimate_performance, realized_performance

    est = estimate_performance(ctx.estimator, batch.frame, ws.contract)
    realized = None
    if ws.contract.target in batch.frame.columns:
        realized = realized_performance(batch.frame, ws.contract)
    return est, realized


def policy_state(ws: Workspace, now: datetime) -> PolicyState:
    """Rebuild what the policy remembers from the audit store."""
    policy_rows = ws.store.decisions(ws.model, kind="policy")
    retrains = ws.store.decisions(ws.model, kind="retrain")
    last_retrain = retrains[-1]["decided_at"] if retrains else None
    streak = 0
    stretch_start: datetime | None = None
    for row in reversed(policy_rows):
        if not row["payload"].get("degraded"):
            break
        streak += 1
        start = row["payload"].get("window_start")
        stretch_start = datetime.fromisoformat(start) if start else stretch_start
    labelled = sum(
        int(row["payload"].get("evidence", {}).get("labelled_rows", 0))
        for row in policy_rows
        if last_retrain is None or row["decided_at"] > last_retrain
    )
    return PolicyState(
        consecutive_degraded=streak,
        last_retrain_at=last_retrain,
        retrains_last_24h=sum(1 for r in retrains if r["decided_at"] >= now - timedelta(hours=24)),
        labelled_rows_since_retrain=labelled,
        degraded_window_start=stretch_start,
    )


def judge(
    ws: Workspace,
    batch: LoadedBatch,
    batch_profile: BatchProfile,
    est: PerformanceEstimate,
    realized: RealizedPerformance | None,
    now: datetime | None = None,
) -> PolicyDecision:
    now = now or datetime.now(UTC)
    evidence = PolicyEvidence(
        batch_id=batch.batch_id,
        rows=batch_profile.rows,
        quality_passed=batch_profile.quality.passed,
        quality_failures=tuple(f"{i.check}:{i.column}" for i in batch_profile.quality.issues if i.severity == "fail"),
        drifted_features=tuple(batch_profile.drifted_features),
        drift_share=batch_profile.drift_share,
        estimated_drop=est.reference_value - est.value,
        estimate_alert=est.alert,
        realized_drop=(est.reference_value - realized.value) if realized and realized.value is not None else None,
        labelled_rows=realized.rows_labelled if realized else 0,
        window_start=batch_profile.window_start,
        window_end=batch_profile.window_end,
    )
    return decide(evidence, policy_state(ws, now), ws.settings.policy, now)


def record(
    ws: Workspace,
    batch: LoadedBatch,
    batch_profile: BatchProfile,
    est: PerformanceEstimate,
    realized: RealizedPerformance | None,
    decision: PolicyDecision,
) -> str | None:
    """Write batch, signals and decision in one transaction; returns the retrain idempotency key if any."""
    from tasks.store import DecisionRecord, SignalRecord

    model = ws.model
    start, end = batch_profile.window_start, batch_profile.window_end
    signals = [
        SignalRecord(
            model=model,
            batch_id=batch.batch_id,
            kind="drift",
            name=d.feature,
            method=d.method,
            value=d.statistic,
            threshold=d.threshold,
            alert=d.alert,
            window_start=start,
            window_end=end,
        )
        for d in batch_profile.drift
    ]
    signals.append(
        SignalRecord(
            model=model,
            batch_id=batch.batch_id,
            kind="quality",
            name="data_quality",
            method="checks",
            value=float(len(batch_profile.quality.issues)),
            threshold=None,
            alert=not batch_profile.quality.passed,
            window_start=start,
            window_end=end,
            payload={"issues": [asdict(i) for i in batch_profile.quality.issues]},
        )
    )
    signals.append(
        SignalRecord(
            model=model,
            batch_id=batch.batch_id,
            kind="estimate",
            name=est.metric,
            method=est.method,
            value=est.value,
            threshold=est.lower_threshold,
            alert=est.alert,
            window_start=start,
            window_end=end,
            payload={"lower": est.lower, "upper": est.upper, "reference": est.reference_value},
        )
    )
    if realized is not None and realized.value is not None:
        signals.append(
            SignalRecord(
                model=model,
                batch_id=batch.batch_id,
                kind="realized",
                name=realized.metric,
                method="labels",
                value=realized.value,
                threshold=est.lower_threshold,
                alert=False,
                window_start=start,
                window_end=end,
                payload={"rows_labelled": realized.rows_labelled},
            )
        )
    key = (
        events.retrain_key(model, decision.window_start, decision.window_end)
        if (decision.action == Action.RETRAIN)
        else None
    )
    payload: dict[str, Any] = decision.to_dict()
    payload["scored_by"] = batch.scored_by
    payload["retrain_key"] = key
    with ws.store.transaction() as conn:
        ws.store.record_batch(
            model, batch.batch_id, batch.source, batch_profile.rows, start, end, "monitored", conn=conn
        )
        ws.store.record_signals(signals, conn=conn)
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
    ws.lake.save(batch.batch_id, batch.frame)
    return key


def announce(ws: Workspace, batch: LoadedBatch, decision: PolicyDecision, key: str | None) -> list[str]:
    """Emit the monitoring events; returns their names. Events go nowhere without a Prefect API."""
    if not ws.settings.emit_events:
        return []
    base = {
        "model": ws.model,
        "batch_id": batch.batch_id,
        "window_start": decision.window_start,
        "window_end": decision.window_end,
    }
    sent = [events.BATCH_PROFILED]
    events.emit(events.BATCH_PROFILED, ws.model, {**base, "action": decision.action.value})
    if decision.drifted:
        events.emit(events.DRIFT_DETECTED, ws.model, {**base, "features": list(decision.evidence.drifted_features)})
        sent.append(events.DRIFT_DETECTED)
    if decision.degraded:
        events.emit(events.PERFORMANCE_DEGRADED, ws.model, {**base, "reasons": list(decision.reasons)})
        sent.append(events.PERFORMANCE_DEGRADED)
    if decision.action == Action.RETRAIN and key is not None:
        events.emit(
            events.RETRAIN_REQUESTED,
            ws.model,
            {**base, "priority": decision.priority, "priority_class": decision.priority_class, "idempotency_key": key},
            idempotency_key=key,
        )
        sent.append(events.RETRAIN_REQUESTED)
    for name in sent:
        ws.store.record_event(name, events.resource_id(ws.model), {**base, "batch_id": batch.batch_id}, None)
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
    from tasks.reporting import drift_chart, monitor_markdown, publish_markdown, write_report

    folder = ws.settings.reports_dir / "monitor"
    png = drift_chart(batch_profile, folder / f"{batch.batch_id}-drift.png", title=f"drift — {batch.batch_id}")
    markdown = monitor_markdown(
        model=ws.model,
        batch_id=batch.batch_id,
        source=batch.source,
        scored_by=batch.scored_by,
        profile=batch_profile,
        estimate=est,
        realized=realized,
        decision=decision,
        drift_png=png,
    )
    path = write_report(folder / f"{batch.batch_id}.md", markdown)
    publish_markdown(markdown, key=f"monitor-{ws.model}-{batch.batch_id}", description=f"monitor {batch.batch_id}")
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


@dataclass(frozen=True)
class LabelOutcome:
    batch_id: str
    rows_labelled: int
    realized: float | None


def attach_labels(ws: Workspace, label_paths: list[str]) -> list[LabelOutcome]:
    """Delayed labels: join them into the monitored batches they belong to and record realized performance."""
    import polars as pl

    from tasks.data import read_file
    from tasks.estimation import realized_performance
    from tasks.store import SignalRecord

    contract = ws.contract
    touched: set[str] = set()
    for path in label_paths:
        labels = validate_labels(read_file(path), ws, source=path)
        touched |= set(ws.lake.attach_labels(labels, contract, source=path))
    outcomes: list[LabelOutcome] = []
    signals: list[SignalRecord] = []
    for batch_id in sorted(touched):
        frame = pl.read_parquet(ws.lake.path(batch_id))
        realized = realized_performance(frame, contract)
        outcomes.append(LabelOutcome(batch_id, realized.rows_labelled, realized.value))
        if realized.value is not None:
            signals.append(
                SignalRecord(
                    model=ws.model,
                    batch_id=batch_id,
                    kind="realized",
                    name=realized.metric,
                    method="labels",
                    value=realized.value,
                    threshold=None,
                    alert=False,
                    payload={"rows_labelled": realized.rows_labelled, "delayed": True},
                )
            )
    ws.store.record_signals(signals)
    return outcomes
