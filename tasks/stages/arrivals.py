"""Stage: labels arrive for batches monitored earlier — realized performance, then the batch judged again.

In production labels arrive days after their batch. When they land (``driftgate labels``, or the labels of
``driftgate monitor --labels`` that belong to earlier batches) every batch that gained labels is, in batch order:

1. measured: realized performance on all its labelled rows (with the error of the earlier estimate) and the
   concept-drift detector on the newly labelled rows;
2. judged again: the evidence recorded when the batch was monitored, with the realized drops, labelled rows and
   concept-drift verdict of now, goes through the same policy with the same memory (tasks/stages/monitoring.py
   ``policy_state``), on the batch's own clock. A realized degradation is evidence exactly like an estimated
   drop, so a RETRAIN can be decided when labels land, whether or not a new batch arrives;
3. recorded in one transaction: the label arrival, the signals and the decision (kind ``policy``, trigger
   ``labels``), then announced like a monitored batch (``driftgate.retrain.requested`` with its key).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tasks.core.records import FromDict, from_fields, many
from tasks.policy.decide import Action, PolicyDecision, PolicyEvidence, SliceEvidence, decide, policy_clock
from tasks.stages.monitoring import announce, decision_key, decision_payload, estimate_error
from tasks.stages.policy_memory import concept_drift_evidence, concept_signal, latest_verdicts, policy_state

if TYPE_CHECKING:
    from tasks.data.labels import LabelJoin, LabelSet
    from tasks.performance.estimation import RealizedPerformance
    from tasks.resources.workspace import Workspace


@dataclass(frozen=True)
class LabelOutcome(FromDict):
    """One batch that gained labels: what it realized and what the policy decided on it now."""

    batch_id: str
    new_rows: int
    rows_labelled: int
    realized: float | None
    reference: float | None
    action: str | None  # None: the batch has no recorded evidence to judge again (e.g. refused at the boundary)
    reasons: tuple[str, ...]
    retrain_key: str | None
    priority_class: str
    window_start: datetime | None
    window_end: datetime | None
    already_labelled: int = 0
    conflicting: int = 0


@dataclass(frozen=True)
class ArrivalOutcome:
    """One label arrival: the accounting of every label and the outcome of every batch it completed."""

    summary: str
    files: tuple[str, ...]
    ids: int
    new_rows: int
    unknown_ids: int
    reused_ids: int
    duplicates: int
    batches: tuple[LabelOutcome, ...]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArrivalOutcome:
        """Rebuilt from its ``asdict`` form (a flow's result)."""
        return from_fields(cls, data, batches=many(LabelOutcome.from_dict))

    @property
    def retrain(self) -> LabelOutcome | None:
        """The first batch whose re-judgement decided RETRAIN (the one to act on)."""
        return next((b for b in self.batches if b.action == Action.RETRAIN.value), None)


def attach_labels(ws: Workspace, labels: LabelSet, *, require_match: bool = True) -> ArrivalOutcome:
    """Join one arrival into the lake, then measure, judge again, record and announce each batch it completed.

    With ``require_match`` an arrival none of whose ids belongs to a monitored batch is a typed error (labels
    sent before their batch, or for another model); unknown ids among known ones are counted and reported.
    """
    from tasks.core.errors import DataError
    from tasks.report.performance_plots import write_performance_chart
    from tasks.resources.lake import join_into_lake

    joined = join_into_lake(ws.lake, labels, ws.contract)
    if require_match and not joined.batches:
        raise DataError(
            f"none of the {labels.ids} labelled id(s) matches a monitored batch of {ws.model}; "
            "monitor the batches first (labels join by the contract's entity id)",
            source=", ".join(labels.files[:4]),
            column=ws.contract.entity_id,
        )
    touched = set(joined.touched)
    order = _batch_positions(ws)
    outcomes = [
        _judge_again(ws, joined, batch_id, labels)
        for batch_id in sorted(touched, key=lambda b: order.get(b, (len(order), b)))
    ]
    if touched:
        write_performance_chart(ws)
    return ArrivalOutcome(
        summary=joined.describe(),
        files=labels.files,
        ids=labels.ids,
        new_rows=joined.new_rows,
        unknown_ids=joined.unknown_ids,
        reused_ids=joined.reused_ids,
        duplicates=labels.duplicates,
        batches=tuple(outcomes),
    )


def _batch_positions(ws: Workspace) -> dict[str, tuple[int, str]]:
    from tasks.stages.policy_memory import batch_order

    ranked = sorted(batch_order(ws).items(), key=lambda item: item[1])
    return {batch_id: (index, batch_id) for index, (batch_id, _) in enumerate(ranked)}


def _judge_again(ws: Workspace, joined: LabelJoin, batch_id: str, labels: LabelSet) -> LabelOutcome:
    import polars as pl

    from tasks.performance.estimation import realized_performance
    from tasks.resources.store import DecisionRecord, LabelRecord, SignalRecord

    contract = ws.contract
    counts = next(b for b in joined.batches if b.batch_id == batch_id)
    frame = ws.lake.read(batch_id)
    realized = realized_performance(frame, contract, threshold=ws.settings.gate.decision_threshold)
    estimate = next(iter(reversed(ws.store.signals(ws.model, batch_id=batch_id, kind="estimate"))), None)
    reference = _opt(((estimate or {}).get("payload") or {}).get("reference"))
    signals: list[SignalRecord] = []
    if realized.value is not None:
        band = _band(estimate)
        signals.append(
            SignalRecord(
                model=ws.model,
                batch_id=batch_id,
                kind="realized",
                name=realized.metric,
                method="labels",
                value=realized.value,
                threshold=(estimate or {}).get("threshold"),
                alert=False,
                window_start=(estimate or {}).get("window_start"),
                window_end=(estimate or {}).get("window_end"),
                payload={
                    "rows_labelled": realized.rows_labelled,
                    "delayed": True,
                    **estimate_error(band.get("value"), _Band(band), realized.value),
                },
            )
        )
    row = latest_verdicts(ws).get(batch_id)
    arrival = LabelRecord(
        ws.model,
        batch_id,
        ", ".join(ws.settings.shareable(f) for f in labels.files[:4]),
        counts.new_rows,
        counts.labelled_rows,
        {"already_labelled": counts.already_labelled, "conflicting": counts.conflicting},
    )
    decision: PolicyDecision | None = None
    key: str | None = None
    if row is not None:
        stored = PolicyEvidence.from_dict(row["payload"]["evidence"])
        judged_for = stored.model_version or _version_of(row)
        fresh = frame.filter(pl.col(contract.entity_id).is_in(labels.frame.get_column(contract.entity_id).implode()))
        concept = concept_drift_evidence(ws, fresh, str(row.get("version") or judged_for or ""), "labels", judged_for)
        if concept is not None:
            signals.append(concept_signal(ws, batch_id, concept, judged_for or "", "labels", (None, None)))
        serving = ws.registry.resolve(ws.model, "production")
        evidence = replace(
            stored,
            realized_drop=(reference - realized.value)
            if reference is not None and realized.value is not None
            else stored.realized_drop,
            labelled_rows=realized.rows_labelled,
            concept_drift=concept if concept is not None else stored.concept_drift,
            slices=_slices_now(stored.slices, realized),
            trigger="labels",
            model_version=judged_for,
            serving_version=serving.version if serving is not None else None,
        )
        clock = policy_clock(evidence, datetime.now(UTC))
        state = policy_state(ws, clock, batch_id=batch_id, model_version=judged_for)
        decision = decide(evidence, state, ws.settings.policy, clock)
        key = decision_key(ws, decision, {batch_id: counts.labelled_rows})
    with ws.store.transaction() as conn:
        ws.store.record_labels([arrival], conn=conn)
        ws.store.record_signals(signals, conn=conn)
        if decision is not None and row is not None:
            ws.store.record_decision(
                DecisionRecord(
                    model=ws.model,
                    kind="policy",
                    outcome=decision.action.value,
                    reasons=decision.reasons,
                    batch_id=batch_id,
                    version=row.get("version"),
                    payload=decision_payload(
                        decision,
                        key,
                        scored_by=(row["payload"] or {}).get("scored_by"),
                        labels=[ws.settings.shareable(f) for f in labels.files],
                    ),
                ),
                conn=conn,
            )
    if decision is not None:
        announce(ws, batch_id, decision, key)
    return LabelOutcome(
        batch_id=batch_id,
        new_rows=counts.new_rows,
        rows_labelled=realized.rows_labelled,
        realized=realized.value,
        reference=reference,
        action=decision.action.value if decision is not None else None,
        reasons=decision.reasons if decision is not None else ("no recorded evidence to judge again",),
        retrain_key=key,
        priority_class=decision.priority_class if decision is not None else "low",
        window_start=decision.window_start if decision is not None else None,
        window_end=decision.window_end if decision is not None else None,
        already_labelled=counts.already_labelled,
        conflicting=counts.conflicting,
    )


def _slices_now(slices: tuple[SliceEvidence, ...], realized: RealizedPerformance) -> tuple[SliceEvidence, ...]:
    """The stored slice evidence with the realized drops and labelled rows of now."""
    by_slice = {(r.column, r.value): r for r in realized.slices}
    out = []
    for item in slices:
        real = by_slice.get((item.column, item.value))
        if real is None or real.realized is None or item.reference_value is None:
            out.append(item)
            continue
        out.append(replace(item, realized_drop=item.reference_value - real.realized, labelled_rows=real.rows_labelled))
    return tuple(out)


def _version_of(row: dict[str, Any]) -> str | None:
    version = row.get("version")
    return None if version in (None, "supplied") else str(version)


def _opt(value: Any) -> float | None:
    return None if value is None else float(value)


def _band(estimate: dict[str, Any] | None) -> dict[str, Any]:
    if estimate is None:
        return {}
    payload = estimate.get("payload") or {}
    return {"value": estimate.get("value"), "lower": payload.get("lower"), "upper": payload.get("upper")}


@dataclass(frozen=True)
class _Band:
    """An estimate signal read back as (lower, upper) for ``estimate_error``."""

    data: dict[str, Any]

    @property
    def lower(self) -> float | None:
        return _opt(self.data.get("lower"))

    @property
    def upper(self) -> float | None:
        return _opt(self.data.get("upper"))
