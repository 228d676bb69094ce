"""Monitoring stages for one batch: load and validate, score, profile, estimate, decide, record, announce."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tasks.core.timeutil import parse_utc, utc
from tasks.policy.decide import (
    Action,
    ConceptDriftEvidence,
    PastDecision,
    PolicyDecision,
    PolicyEvidence,
    PolicyState,
    SliceEvidence,
    decide,
    policy_clock,
    state_for_batch,
)
from tasks.resources import events

if TYPE_CHECKING:
    from pathlib import Path

    import polars as pl

    from tasks.core.settings import ConceptDriftSettings
    from tasks.data.contract import ModelContract
    from tasks.data.labels import LabelSet
    from tasks.drift.concept import ErrorBaseline
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


def prepare_version(ws: Workspace, version: ModelVersion) -> None:
    """Fit what monitoring a version needs (its reference profile and CBPE) now, at bootstrap or retrain, so that
    the first monitor after its promotion pays nothing for it. A failure here is logged, never fatal: the
    monitor fits lazily on a cache miss."""
    import logging

    from tasks.core.errors import DriftgateError

    try:
        reference = ws.reference_of(version)
        production_reference_profile(ws, version, reference)
        production_estimator(ws, version, reference)
    except DriftgateError as exc:
        logging.getLogger(__name__).warning("monitoring caches of %s not prepared: %s", version.version, exc)


REFERENCE_CACHE = ("cache", "references")  # <home>/cache/references/<model>/<key>.json
REFERENCE_CACHE_FORMAT = 1  # bump when ReferenceProfile.to_dict changes shape


def production_reference_profile(ws: Workspace, version: ModelVersion, reference: pl.DataFrame) -> ReferenceProfile:
    """The version's fitted reference profile (samples, bins, thresholds, PCA), fitted once per version and
    profiling settings: ``<home>/cache/references/<model>/<key>.json``, the key a sha256 of the reference file's
    digest, the contract and the profiling settings. ``ReferenceProfile.from_dict(to_dict())`` profiles a batch
    to the same results (tests/unit/drift/test_profiling.py); a file that does not parse is refitted."""
    import hashlib
    import json
    import logging

    from tasks.drift.reference import ReferenceProfile, fit_reference_profile

    inputs = {
        "format": REFERENCE_CACHE_FORMAT,
        "reference_sha256": _reference_digest(ws, version),
        "contract": ws.contract.model_dump(mode="json"),
        "profiling": ws.settings.profiling.model_dump(mode="json"),
    }
    key = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()
    path = ws.settings.home.joinpath(*REFERENCE_CACHE, ws.model, f"{key}.json")
    try:
        return ReferenceProfile.from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logging.getLogger(__name__).warning("reference cache %s is unreadable (%s): refitting", path, exc)
    profile = fit_reference_profile(reference, ws.contract, ws.settings.profiling)
    _write_cache(path, json.dumps(profile.to_dict()))
    return profile


def _reference_digest(ws: Workspace, version: ModelVersion) -> str:
    import hashlib

    from tasks.resources.workspace import REFERENCE_FILE

    return (
        version.digests.get(REFERENCE_FILE)
        or hashlib.sha256(ws.registry.read_file(version, REFERENCE_FILE)).hexdigest()
    )


def _write_cache(path: Path, text: str) -> None:
    """Atomic: a temporary file per process and thread, then ``os.replace``; readers see old or new, never half."""
    import os
    import threading

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


ESTIMATOR_CACHE = ("cache", "estimators")  # <home>/cache/estimators/<model>/<key>.json
MONITORED_METRIC = "roc_auc"


def estimator_chunk_size(ws: Workspace, reference_rows: int) -> int:
    """CBPE's thresholds come from the spread across reference chunks; a retrained model's reference (its
    holdout) can be small, so keep at least three chunks."""
    return min(ws.settings.profiling.chunk_size, reference_rows // 3)


def estimator_key(ws: Workspace, version: ModelVersion, reference_rows: int) -> str:
    """sha256 of everything the fitted estimator depends on: the version's reference file (its manifest digest),
    the contract's columns, chunk size, decision threshold, metric, and the versions of the fitter and NannyML."""
    import hashlib
    import json
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    from tasks.performance.estimation import MIN_SLICE_ROWS
    from tasks.performance.fitted import FORMAT

    contract = ws.contract
    try:
        nannyml_version = package_version("nannyml")
    except PackageNotFoundError:  # pragma: no cover - NannyML is a dependency
        nannyml_version = "absent"
    reference_digest = _reference_digest(ws, version)
    inputs = {
        "format": FORMAT,
        "nannyml": nannyml_version,
        "model": version.model,
        "version": version.version,
        "reference_sha256": reference_digest,
        "reference_rows": reference_rows,
        "columns": [contract.target, contract.probability, contract.prediction, contract.timestamp],
        "slices": list(contract.slices),
        "min_slice_rows": MIN_SLICE_ROWS,
        "chunk_size": estimator_chunk_size(ws, reference_rows),
        "threshold": ws.settings.gate.decision_threshold,
        "metric": MONITORED_METRIC,
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def production_estimator(
    ws: Workspace, version: ModelVersion, reference: pl.DataFrame
) -> PerformanceEstimator | FittedCBPE:
    """The version's CBPE, fitted once and applied in numpy (:mod:`tasks.performance.fitted`).

    Read from ``<home>/cache/estimators/<model>/<key>.json`` (:func:`estimator_key`); on a miss, or a file
    that does not parse (torn, edited, another format), NannyML fits on the reference (this imports it, once
    per version) and the extracted estimator is written atomically (temporary file, then ``os.replace``).
    An estimator the numpy CBPE does not mirror is used as fitted, with a log line.
    """
    import logging

    from tasks.performance.estimation import fit_estimator
    from tasks.performance.fitted import FittedCBPE, UnsupportedEstimator, extract

    log = logging.getLogger(__name__)
    key = estimator_key(ws, version, reference.height)
    path = ws.settings.home.joinpath(*ESTIMATOR_CACHE, ws.model, f"{key}.json")
    try:
        return FittedCBPE.from_json(path.read_text())
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        log.warning("estimator cache %s is unreadable (%s): refitting CBPE for %s", path, exc, version.version)
    estimator = fit_estimator(
        reference,
        ws.contract,
        metric=MONITORED_METRIC,
        chunk_size=estimator_chunk_size(ws, reference.height),
        threshold=ws.settings.gate.decision_threshold,
    )
    try:
        fitted = extract(estimator)
    except UnsupportedEstimator as exc:
        log.info("estimating with NannyML for %s: %s", version.version, exc)
        return estimator
    _write_cache(path, fitted.to_json())
    return fitted


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


def policy_state(
    ws: Workspace, now: datetime, *, batch_id: str | None = None, model_version: str | None = None
) -> PolicyState:
    """Rebuild what the policy remembers from the audit store (the replay harness derives it the same way).

    Each earlier batch counts with its *latest* verdict (a re-judgement on late labels replaces the first one),
    in batch order; the batch being judged (``batch_id``) is left out. Labelled rows are what the labels table
    holds now, so labels that arrived after a batch was first judged count towards ``min_new_rows``. Times are
    on the policy clock (``policy_clock``): batch time when batches carry timestamps.
    """
    latest = latest_verdicts(ws)
    labelled = ws.store.labelled_rows(ws.model)
    order = batch_order(ws)
    ranked = sorted(latest.items(), key=lambda item: order.get(item[0], (_decision_clock(item[1]), 0)))
    verdicts = [_past_decision(row, labelled) for _, row in ranked]
    return state_for_batch(verdicts, batch_id, retrain_times(ws), now, model_version=model_version)


def latest_verdicts(ws: Workspace) -> dict[str, dict[str, Any]]:
    """The newest policy decision of each batch with evidence (refusals at the boundary carry none)."""
    latest: dict[str, dict[str, Any]] = {}
    for row in ws.store.decisions(ws.model, kind="policy"):
        if row.get("batch_id") and (row["payload"] or {}).get("evidence"):
            latest[str(row["batch_id"])] = row
    return latest


def batch_order(ws: Workspace) -> dict[str, tuple[datetime, int]]:
    """Batches in data order: by the start of their window, then by when they were first recorded."""
    out: dict[str, tuple[datetime, int]] = {}
    for row in ws.store.batches(ws.model):
        out[str(row["batch_id"])] = (row["window_start"] or row["recorded_at"], int(row["id"]))
    return out


def retrain_times(ws: Workspace) -> list[datetime]:
    """When retraining happened, on the policy clock: each RETRAIN decision at its batch's time, and each retrain
    that no RETRAIN decision asked for (a manual one) at the end of the data it trained on."""
    requested: dict[str, datetime] = {}
    for row in ws.store.decisions(ws.model, kind="policy"):
        if row["outcome"] == Action.RETRAIN.value:
            requested[str((row["payload"] or {}).get("retrain_key") or row["id"])] = _decision_clock(row)
    times = list(requested.values())
    for row in ws.store.decisions(ws.model, kind="retrain"):
        payload = row["payload"] or {}
        if row["outcome"] == "duplicate" or payload.get("idempotency_key") in requested:
            continue
        data_end = payload.get("data_end")
        times.append(parse_utc(data_end) if data_end else row["decided_at"])
    return times


def _decision_clock(row: dict[str, Any]) -> datetime:
    end = ((row["payload"] or {}).get("evidence") or {}).get("window_end")
    return parse_utc(end) if end else row["decided_at"]


def _past_decision(row: dict[str, Any], labelled: dict[str, int]) -> PastDecision:
    payload = row["payload"] or {}
    evidence = payload.get("evidence") or {}
    start = payload.get("window_start")
    batch_id = str(row["batch_id"])
    return PastDecision(
        decided_at=_decision_clock(row),
        degraded=bool(payload.get("degraded")),
        window_start=datetime.fromisoformat(start) if start else None,
        labelled_rows=labelled.get(batch_id, int(evidence.get("labelled_rows") or 0)),
        batch_id=batch_id,
        model_version=evidence.get("model_version") or _judged_version(row),
    )


def _judged_version(row: dict[str, Any]) -> str | None:
    version = row.get("version")
    return None if version in (None, "supplied") else str(version)


CONCEPT_SIGNAL = "concept_drift"
HEATMAP_BATCHES = 30  # batches (columns) of the drift heat map in each monitor report


def error_baseline(ws: Workspace, version: str | None) -> ErrorBaseline | None:
    """The model version's per-row error on its own labelled reference rows (what ``mean_shift`` compares a
    batch's error with), stratified by its scores; None when the version or its labelled reference is missing."""
    from tasks.core.errors import VersionNotFoundError

    contract, settings = ws.contract, ws.settings.policy.concept_drift
    try:
        model_version = ws.production() if version in (None, "supplied") else ws.registry.get(ws.model, str(version))
    except VersionNotFoundError:
        return None
    # A version's reference never changes: its baseline is built once per workspace.
    cache: dict[str, ErrorBaseline | None] = ws.__dict__.setdefault("_error_baselines", {})
    if model_version.version not in cache:
        cache[model_version.version] = _baseline_of(ws, model_version, contract, settings)
    return cache[model_version.version]


def _baseline_of(
    ws: Workspace, model_version: ModelVersion, contract: ModelContract, settings: ConceptDriftSettings
) -> ErrorBaseline | None:
    import polars as pl

    from tasks.drift.concept import ErrorBaseline

    reference = ws.reference_of(model_version)
    if contract.target not in reference.columns or contract.probability not in reference.columns:
        return None
    labelled = reference.filter(pl.col(contract.target).is_not_null() & pl.col(contract.probability).is_not_null())
    if labelled.height < 2:
        return None
    return ErrorBaseline.from_scores(
        labelled.get_column(contract.target).to_numpy(),
        labelled.get_column(contract.probability).to_numpy(),
        settings.error,
        strata=settings.strata,
    )


def concept_drift_evidence(
    ws: Workspace, frame: pl.DataFrame, version: str, source: str, baseline_version: str | None = None
) -> ConceptDriftEvidence | None:
    """Feed the labelled rows (in time order) to the detector of this model version, continuing its stored state.

    Each production version has its own error stream: a new champion starts a fresh detector.
    """
    import polars as pl

    from tasks.drift.concept import config_from_settings, error_stream, update

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
    probability = labelled.get_column(contract.probability).to_numpy()
    errors = error_stream(labelled.get_column(contract.target).to_numpy(), probability, settings.error)
    baseline = error_baseline(ws, baseline_version or version) if settings.method == "mean_shift" else None
    state = (previous or {}).get("payload", {}).get("state")
    result = update(config_from_settings(settings), state, errors, baseline=baseline, probability=probability)
    return ConceptDriftEvidence(
        method=result.method,
        detected=result.detected,
        statistic=result.statistic,
        threshold=result.threshold,
        rows=result.rows,
        detail=f"{result.detail()} [{source}, model {version}]",
        state_json=result.state_json,
    )


def concept_signal(
    ws: Workspace, batch_id: str, concept: ConceptDriftEvidence, version: str, source: str, window: tuple[Any, Any]
) -> Any:
    from tasks.resources.store import SignalRecord

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
                reference_value=item.reference_value,
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
        concept_drift=concept_drift_evidence(ws, batch.frame, batch.scored_by, "monitor", batch.production),
        slices=_slice_evidence(est, realized),
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

    signals = [signal("drift", d.feature, d.method, d.statistic, d.threshold, d.alert) for d in batch_profile.drift]
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
