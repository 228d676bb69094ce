"""Monitoring stages for one batch: load and validate, score, profile, estimate, decide, record, announce."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tasks import events
from tasks.policy import (
    Action,
    ConceptDriftEvidence,
    PastDecision,
    PolicyDecision,
    PolicyEvidence,
    PolicyState,
    SliceEvidence,
    decide,
    state_from_history,
)

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
    raw_schema: dict[str, Any] = field(default_factory=dict)  # dtypes as read, before validation cast them


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
    raw = read_file(path)
    frame = validate_batch(raw, contract, source=path, min_rows=1)
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
    return LoadedBatch(
        batch_id=batch_id_for(path), source=path, frame=frame, scored_by=scored_by, raw_schema=dict(raw.schema)
    )


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

    return profile_batch(
        ctx.reference_profile,
        batch.frame,
        ws.contract,
        ws.settings.profiling,
        source=batch.source,
        raw_schema=batch.raw_schema,
    )


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
    """Rebuild what the policy remembers from the audit store (the replay harness derives it the same way)."""
    policy_rows = ws.store.decisions(ws.model, kind="policy")
    retrains = ws.store.decisions(ws.model, kind="retrain")
    past = [
        PastDecision(
            decided_at=row["decided_at"],
            degraded=bool(row["payload"].get("degraded")),
            window_start=datetime.fromisoformat(row["payload"]["window_start"])
            if row["payload"].get("window_start")
            else None,
            labelled_rows=int(row["payload"].get("evidence", {}).get("labelled_rows", 0)),
        )
        for row in policy_rows
    ]
    return state_from_history(
        past,
        [row["decided_at"] for row in retrains],
        now,
        pending_concept_drift=_late_label_alarm(ws, policy_rows[-1]["decided_at"] if policy_rows else None),
    )


CONCEPT_SIGNAL = "concept_drift"
HEATMAP_BATCHES = 30  # batches (columns) of the drift heat map in each monitor report


def _late_label_alarm(ws: Workspace, since: datetime | None) -> ConceptDriftEvidence | None:
    """A concept-drift alarm raised by delayed labels (`driftgate labels`) after the last policy decision."""
    for row in reversed(ws.store.signals(ws.model, kind="drift", name=CONCEPT_SIGNAL, since=since)):
        payload = row["payload"] or {}
        if payload.get("source") == "labels" and row["alert"]:
            return ConceptDriftEvidence(
                method=str(row["method"]),
                detected=True,
                statistic=float(row["value"] or 0.0),
                threshold=float(row["threshold"] or 0.0),
                rows=int(payload.get("rows", 0)),
                detail=str(payload.get("detail", "")),
            )
    return None


def _concept_drift(ws: Workspace, frame: pl.DataFrame, version: str, source: str) -> ConceptDriftEvidence | None:
    """Feed the labelled rows (in time order) to the detector of this model version, continuing its stored state.

    Each production version has its own error stream: a new champion starts a fresh detector.
    """
    import polars as pl

    from tasks.concept_drift import config_from_settings, error_stream, update

    settings = ws.settings.policy.concept_drift
    contract = ws.contract
    if settings.method == "off" or contract.target not in frame.columns or contract.probability not in frame.columns:
        return None
    if contract.timestamp and contract.timestamp in frame.columns:
        frame = frame.sort(contract.timestamp, maintain_order=True)
    labelled = frame.filter(pl.col(contract.target).is_not_null() & pl.col(contract.probability).is_not_null())
    if labelled.height == 0:
        return None
    previous = next(
        (
            row
            for row in reversed(ws.store.signals(ws.model, kind="drift", name=CONCEPT_SIGNAL))
            if (row["payload"] or {}).get("version") == version
        ),
        None,
    )
    errors = error_stream(
        labelled.get_column(contract.target).to_numpy(),
        labelled.get_column(contract.probability).to_numpy(),
        settings.error,
    )
    result = update(config_from_settings(settings), (previous or {}).get("payload", {}).get("state"), errors)
    return ConceptDriftEvidence(
        method=result.method,
        detected=result.detected,
        statistic=result.statistic,
        threshold=result.threshold,
        rows=result.rows,
        detail=f"{result.detail()} [{source}, model {version}]",
        state_json=result.state_json,
    )


def _concept_signal(
    ws: Workspace, batch_id: str, concept: ConceptDriftEvidence, version: str, source: str, window: tuple[Any, Any]
) -> Any:
    from tasks.store import SignalRecord

    return SignalRecord(
        model=ws.model,
        batch_id=batch_id,
        kind="drift",
        name=CONCEPT_SIGNAL,
        method=concept.method,
        value=concept.statistic,
        threshold=concept.threshold,
        alert=concept.detected,
        window_start=window[0],
        window_end=window[1],
        payload={
            "version": version,
            "source": source,
            "rows": concept.rows,
            "detail": concept.detail,
            "state": concept.state_json,
        },
    )


def _slice_evidence(est: PerformanceEstimate, realized: RealizedPerformance | None) -> tuple[SliceEvidence, ...]:
    realized_by_slice = {(r.column, r.value): r for r in (realized.slices if realized else ())}
    out = []
    for item in est.slices:
        real = realized_by_slice.get((item.column, item.value))
        realized_drop = (
            item.reference_value - real.realized
            if real is not None and real.realized is not None and item.reference_value is not None
            else None
        )
        out.append(
            SliceEvidence(
                column=item.column,
                value=item.value,
                rows=item.rows,
                estimated_drop=item.drop,
                realized_drop=realized_drop,
                sampling_error=item.sampling_error,
                labelled_rows=real.rows_labelled if real is not None else 0,
            )
        )
    return tuple(out)


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
        multivariate_drift=bool(batch_profile.multivariate_drift and batch_profile.multivariate_drift.alert),
        estimated_drop=est.reference_value - est.value,
        estimate_alert=est.alert,
        realized_drop=(est.reference_value - realized.value) if realized and realized.value is not None else None,
        labelled_rows=realized.rows_labelled if realized else 0,
        window_start=batch_profile.window_start,
        window_end=batch_profile.window_end,
        concept_drift=_concept_drift(ws, batch.frame, batch.scored_by, "monitor"),
        slices=_slice_evidence(est, realized),
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

    signals = [signal("drift", d.feature, d.method, d.statistic, d.threshold, d.alert) for d in batch_profile.drift]
    quality = batch_profile.quality
    issues = {"issues": [asdict(i) for i in quality.issues]}
    signals.append(
        signal("quality", "data_quality", "checks", float(len(quality.issues)), None, not quality.passed, issues)
    )
    bounds = {"lower": est.lower, "upper": est.upper, "reference": est.reference_value}
    signals.append(signal("estimate", est.metric, est.method, est.value, est.lower_threshold, est.alert, bounds))
    if realized is not None and realized.value is not None:
        labelled = {"rows_labelled": realized.rows_labelled, **_estimate_error(est.value, est, realized.value)}
        signals.append(
            signal("realized", realized.metric, "labels", realized.value, est.lower_threshold, False, labelled)
        )
    concept = decision.evidence.concept_drift
    if concept is not None:
        signals.append(_concept_signal(ws, batch.batch_id, concept, batch.scored_by, "monitor", (start, end)))
    key = (
        events.retrain_key(model, decision.window_start, decision.window_end)
        if (decision.action == Action.RETRAIN)
        else None
    )
    payload: dict[str, Any] = decision.to_dict()
    payload["scored_by"] = batch.scored_by
    payload["retrain_key"] = key
    if payload["evidence"].get("concept_drift"):
        # The detector's state is kept once, in its signal, not in every decision.
        payload["evidence"]["concept_drift"].pop("state_json", None)
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
    from tasks.performance_plots import write_performance_chart

    write_performance_chart(ws)
    return key


def _estimate_error(estimated: float | None, est: Any, realized: float | None) -> dict[str, Any]:
    """The running error of the estimate, stored with each realized value (est: a PerformanceEstimate or None)."""
    if estimated is None or realized is None:
        return {}
    lower, upper = getattr(est, "lower", None), getattr(est, "upper", None)
    return {
        "estimated": estimated,
        "error": realized - estimated,
        "within_band": None if lower is None or upper is None else bool(lower <= realized <= upper),
    }


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
    from tasks.drift_plots import distribution_overlays, drift_heatmap, history_frame
    from tasks.reporting import drift_chart, monitor_markdown, publish_markdown, write_report

    folder = ws.settings.reports_dir / "monitor"
    png = drift_chart(batch_profile, folder / f"{batch.batch_id}-drift.png", title=f"drift — {batch.batch_id}")
    # This batch's signals are already recorded, so the heat map ends with it; only the batches shown are read.
    shown = ws.store.recent_batch_ids(ws.model, HEATMAP_BATCHES)
    heatmap = drift_heatmap(
        history_frame(ws.store.signals(ws.model, kind="drift", batch_ids=shown), batch_profile, last=HEATMAP_BATCHES),
        folder / f"{batch.batch_id}-heatmap.png",
        title=f"drift by batch — {ws.model}",
        xlabel="monitored batch",
    )
    overlays = distribution_overlays(
        batch_profile, folder / f"{batch.batch_id}-distributions.png", title=f"reference vs {batch.batch_id}"
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
        drift_png=png,
        heatmap_png=heatmap,
        overlays_png=overlays,
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
    """Delayed labels: join them into the monitored batches they belong to and record realized performance,
    the error of the batch's earlier estimate, and the concept-drift detector fed with the newly labelled rows."""
    import polars as pl

    from tasks.data import read_file
    from tasks.estimation import realized_performance
    from tasks.performance_plots import write_performance_chart
    from tasks.store import SignalRecord

    contract = ws.contract
    touched: set[str] = set()
    arrived: list[pl.Series] = []
    for path in label_paths:
        labels = validate_labels(read_file(path), ws, source=path)
        touched |= set(ws.lake.attach_labels(labels, contract, source=path))
        arrived.append(labels.get_column(contract.entity_id))
    new_ids = pl.concat(arrived).unique() if arrived else None
    versions = {row["batch_id"]: row["version"] for row in ws.store.decisions(ws.model, kind="policy")}
    outcomes: list[LabelOutcome] = []
    signals: list[SignalRecord] = []
    for batch_id in sorted(touched):
        frame = pl.read_parquet(ws.lake.path(batch_id))
        realized = realized_performance(frame, contract)
        outcomes.append(LabelOutcome(batch_id, realized.rows_labelled, realized.value))
        estimate = next(iter(reversed(ws.store.signals(ws.model, batch_id=batch_id, kind="estimate"))), None)
        if realized.value is not None:
            band = _StoredBand(estimate)
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
                    payload={
                        "rows_labelled": realized.rows_labelled,
                        "delayed": True,
                        **_estimate_error(band.value, band, realized.value),
                    },
                )
            )
        version = versions.get(batch_id)
        if version is not None and new_ids is not None:
            fresh = frame.filter(pl.col(contract.entity_id).is_in(new_ids.implode()))
            concept = _concept_drift(ws, fresh, version, "labels")
            if concept is not None:
                # Recorded at once, so the next batch of the same labels file sees the detector's new state.
                ws.store.record_signals([_concept_signal(ws, batch_id, concept, version, "labels", (None, None))])
    ws.store.record_signals(signals)
    write_performance_chart(ws)
    return outcomes


@dataclass(frozen=True)
class _StoredBand:
    """An estimate signal row read back as (value, lower, upper)."""

    row: dict[str, Any] | None

    @property
    def value(self) -> float | None:
        return None if self.row is None else self.row["value"]

    @property
    def lower(self) -> float | None:
        return None if self.row is None else (self.row["payload"] or {}).get("lower")

    @property
    def upper(self) -> float | None:
        return None if self.row is None else (self.row["payload"] or {}).get("upper")
