"""The policy's memory and evidence rebuilt from the audit store: each earlier batch's latest verdict in data
order, when retraining happened, the model's reference error for concept-drift tests and per-slice evidence.
Both monitoring (a batch arrives) and label arrivals (a batch is judged again) decide through the same policy
with the same memory, so both read it from here.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tasks.core.timeutil import parse_utc
from tasks.policy.decide import (
    Action,
    ConceptDriftEvidence,
    PastDecision,
    PendingJudgement,
    PolicyState,
    SliceEvidence,
    state_for_batch,
)
from tasks.registry.model import PRODUCTION

if TYPE_CHECKING:
    import polars as pl

    from tasks.core.settings import ConceptDriftSettings
    from tasks.data.contract import ModelContract
    from tasks.drift.concept import ErrorBaseline
    from tasks.performance.estimation import PerformanceEstimate, RealizedPerformance
    from tasks.registry.model import ModelVersion
    from tasks.resources.workspace import Workspace


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
    state = state_for_batch(verdicts, batch_id, retrain_times(ws), now, model_version=model_version)
    return replace(state, inconclusive=pending_judgement(ws))


def pending_judgement(ws: Workspace) -> PendingJudgement | None:
    """The newest retrain's gate, when it was inconclusive and its candidate has not gone into production since.

    Only the newest gate counts: a later retrain judged on more labels settles (or renews) the question.
    """
    gates = ws.store.decisions(ws.model, kind="gate")
    if not gates:
        return None
    newest = gates[-1]
    payload = newest["payload"] or {}
    needed = payload.get("awaiting_labels")
    version = newest.get("version")
    if needed is None or version is None:
        return None
    if ws.registry.aliases(ws.model).get(PRODUCTION) == version:
        return None  # promoted by hand after all: nothing to wait for
    power = (payload.get("gate") or {}).get("power") or {}
    detail = f"holdout {power.get('rows')} rows, {power.get('positives')} positive; power {power.get('power')}"
    return PendingJudgement(version=str(version), labelled_rows_needed=int(needed), detail=detail)


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


def slice_evidence(est: PerformanceEstimate, realized: RealizedPerformance | None) -> tuple[SliceEvidence, ...]:
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
