"""The retraining policy: a pure function from a batch's evidence to NONE / ALERT / BLOCK / RETRAIN.

Layers, in order: data quality blocks; drift alone alerts (unless configured to retrain);
performance evidence is required for RETRAIN: an estimated or realized drop overall, a concept-drift
alarm on the error stream, or a degraded slice (each of the last two configurable to alert only).
The degradation must persist for N batches and respect the cooldown, the daily budget and a minimum
of new labelled rows; after a retrain whose gate was inconclusive (too few labels to tell) it also waits for
the labelled rows that gate asked for. The decision names the rules it applied (machine-readable), the slices that
degraded, and the data window a retrain should use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from tasks.core.settings import PolicySettings
from tasks.core.timeutil import utc
from tasks.core.verdicts import RuleResult, Verdict


class Action(StrEnum):
    NONE = "NONE"
    ALERT = "ALERT"
    BLOCK = "BLOCK"
    RETRAIN = "RETRAIN"


@dataclass(frozen=True)
class SliceEvidence:
    """Performance of one slice (a value of a segment column of the contract) in one batch."""

    column: str
    value: str
    rows: int
    estimated_drop: float | None = None  # slice's reference metric minus its estimate (positive = worse)
    realized_drop: float | None = None
    sampling_error: float | None = None  # of the estimate at this slice's size
    labelled_rows: int = 0
    reference_value: float | None = None  # the slice's realized metric on the reference (for late labels)

    @property
    def name(self) -> str:
        return f"{self.column}={self.value}"


@dataclass(frozen=True)
class ConceptDriftEvidence:
    """A concept-drift detector's verdict on the error stream of the labelled rows (tasks/drift/concept.py)."""

    method: str
    detected: bool
    statistic: float
    threshold: float
    rows: int
    detail: str = ""
    # The detector's state after this batch, to be stored with its signal (not part of the verdict).
    state_json: str = field(default="", repr=False, compare=False)


@dataclass(frozen=True)
class PolicyEvidence:
    """What one monitored batch tells the policy."""

    batch_id: str
    rows: int
    quality_passed: bool
    quality_failures: tuple[str, ...] = ()
    drifted_features: tuple[str, ...] = ()
    drift_share: float = 0.0
    multivariate_drift: bool = False  # joint shift (PCA reconstruction error) that per-feature tests may miss
    estimated_drop: float | None = None  # reference metric minus estimated metric (positive = worse)
    estimate_alert: bool = False
    realized_drop: float | None = None
    labelled_rows: int = 0
    window_start: datetime | None = None
    window_end: datetime | None = None
    concept_drift: ConceptDriftEvidence | None = None  # None: no labelled rows reached a detector
    slices: tuple[SliceEvidence, ...] = ()
    trigger: str = "monitor"  # "monitor": the batch arrived; "labels": its labels arrived later (a re-judgement)
    model_version: str | None = None  # production version the batch was judged for
    serving_version: str | None = None  # production version when this decision is taken

    @property
    def serving(self) -> bool:
        """The batch judges the model that serves now (labels of a retired model's batch cannot retrain)."""
        return self.model_version is None or self.serving_version is None or self.model_version == self.serving_version

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PolicyEvidence:
        """Rebuild evidence from its stored form (``PolicyDecision.to_dict()["evidence"]``)."""
        concept = data.get("concept_drift")
        return cls(
            batch_id=str(data["batch_id"]),
            rows=int(data["rows"]),
            quality_passed=bool(data["quality_passed"]),
            quality_failures=tuple(data.get("quality_failures") or ()),
            drifted_features=tuple(data.get("drifted_features") or ()),
            drift_share=float(data.get("drift_share") or 0.0),
            multivariate_drift=bool(data.get("multivariate_drift", False)),
            estimated_drop=_opt_float(data.get("estimated_drop")),
            estimate_alert=bool(data.get("estimate_alert", False)),
            realized_drop=_opt_float(data.get("realized_drop")),
            labelled_rows=int(data.get("labelled_rows") or 0),
            window_start=_opt_time(data.get("window_start")),
            window_end=_opt_time(data.get("window_end")),
            concept_drift=ConceptDriftEvidence(**concept) if concept else None,
            slices=tuple(SliceEvidence(**item) for item in data.get("slices") or ()),
            trigger=str(data.get("trigger") or "monitor"),
            model_version=data.get("model_version"),
            serving_version=data.get("serving_version"),
        )


@dataclass(frozen=True)
class PendingJudgement:
    """A retrain whose gate was inconclusive: it failed only because its holdout had too few labels to tell.

    Retraining again on as few labels would be judged just as blindly, so the policy waits until about
    ``labelled_rows_needed`` new labelled rows (the gate's missing holdout rows over the holdout fraction) have
    arrived since that retrain; then the next degraded batch retrains on the larger window and is judged again.
    """

    version: str
    labelled_rows_needed: int
    detail: str = ""  # the gate's own "need about N more labelled rows" line

    def __post_init__(self) -> None:
        if self.labelled_rows_needed < 0:
            raise ValueError(f"labelled_rows_needed {self.labelled_rows_needed} must be >= 0")


@dataclass(frozen=True)
class PolicyState:
    """What the audit store remembers that the policy needs."""

    consecutive_degraded: int = 0  # degraded batches in a row just before this one
    last_retrain_at: datetime | None = None
    retrains_last_24h: int = 0
    labelled_rows_since_retrain: int = 0  # excluding this batch
    degraded_window_start: datetime | None = None  # start of the current degraded stretch
    pending_concept_drift: ConceptDriftEvidence | None = None  # an alarm raised by late labels since the last decision
    inconclusive: PendingJudgement | None = None  # the last retrain's gate could not tell: wait for its labels


@dataclass(frozen=True)
class PastDecision:
    """What the policy remembers of an earlier batch (from the audit store, or from a replay): its latest verdict.

    ``decided_at`` is on the policy clock (:func:`policy_clock`): the batch's data time when it has one.
    ``labelled_rows`` is what is labelled in the batch *now*, not what was labelled when it was first judged.
    """

    decided_at: datetime
    degraded: bool
    window_start: datetime | None
    labelled_rows: int
    batch_id: str = ""
    model_version: str | None = None  # production version the batch was judged for


def policy_clock(evidence: PolicyEvidence, wall: datetime) -> datetime:
    """The time the policy judges a batch at: the end of its data window, else the wall clock.

    Cooldown and the daily budget count in batch time, so a back-fill or a burst of late labels behaves
    like the days it covers rather than like the minutes it took to monitor them.
    """
    moment = evidence.window_end or wall
    # Batch timestamps may be naive; the store's times are UTC-aware: one clock compares them as UTC.
    return utc(moment)


def state_from_history(
    past: Sequence[PastDecision],
    retrains: Sequence[datetime],
    now: datetime,
    pending_concept_drift: ConceptDriftEvidence | None = None,
    *,
    model_version: str | None = None,
) -> PolicyState:
    """The policy's memory, derived the same way for the monitor (store rows) and the replay harness.

    ``past`` holds the latest verdict of each earlier batch, in batch order, without the batch being judged;
    ``retrains`` are the (policy-clock) times retraining happened. With ``model_version``, the degraded streak
    stops at a batch judged for another production version: a retired model's evidence does not persist.
    """
    last_retrain = max(retrains) if retrains else None
    streak = 0
    stretch_start: datetime | None = None
    for item in reversed(past):
        if not item.degraded:
            break
        if model_version and item.model_version and item.model_version != model_version:
            break
        streak += 1
        stretch_start = item.window_start or stretch_start
    labelled = sum(item.labelled_rows for item in past if last_retrain is None or item.decided_at > last_retrain)
    return PolicyState(
        consecutive_degraded=streak,
        last_retrain_at=last_retrain,
        retrains_last_24h=sum(1 for at in retrains if now - timedelta(hours=24) < at <= now),  # (now - 24 h, now]
        labelled_rows_since_retrain=labelled,
        degraded_window_start=stretch_start,
        pending_concept_drift=pending_concept_drift,
    )


def state_for_batch(
    verdicts: Sequence[PastDecision],
    batch_id: str | None,
    retrains: Sequence[datetime],
    now: datetime,
    *,
    model_version: str | None = None,
) -> PolicyState:
    """The policy's memory when judging ``batch_id``, from the latest verdict of every batch in batch order.

    The degraded streak runs over the batches *before* the judged one (a batch judged again on late labels sees
    only its predecessors); the labelled rows since the last retrain count every *other* batch, later ones
    included: what is labelled now. The monitor (store rows) and the replay harness both call this.
    """
    ids = [v.batch_id for v in verdicts]
    before = verdicts[: ids.index(batch_id)] if batch_id in ids else list(verdicts)
    state = state_from_history(before, retrains, now, model_version=model_version)
    last = state.last_retrain_at
    fresh = sum(v.labelled_rows for v in verdicts if v.batch_id != batch_id and (last is None or v.decided_at > last))
    return replace(state, labelled_rows_since_retrain=fresh)


@dataclass(frozen=True)
class PolicyDecision:
    action: Action
    reasons: tuple[str, ...]
    rules: tuple[RuleResult, ...]
    degraded: bool
    drifted: bool
    priority: float
    priority_class: str  # "urgent" | "normal" | "low"
    window_start: datetime | None
    window_end: datetime | None
    evidence: PolicyEvidence = field(repr=False)
    degraded_slices: tuple[str, ...] = ()  # "column=value" of every slice judged degraded
    concept_drift: bool = False
    window_basis: str = ""  # why the retraining window is what it is

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["action"] = self.action.value
        for key in ("window_start", "window_end"):
            value = data[key]
            data[key] = value.isoformat() if value else None
        ev = data["evidence"]
        for key in ("window_start", "window_end"):
            ev[key] = ev[key].isoformat() if ev[key] else None
        return data

    def rule(self, name: str) -> RuleResult | None:
        return next((r for r in self.rules if r.rule == name), None)


def priority_of(drop: float, rows: int, settings: PolicySettings) -> tuple[float, str]:
    """Estimated impact = metric points lost x business weight x traffic (rows per 10k)."""
    impact = max(drop, 0.0) * 100.0 * settings.business_weight * max(rows / 10_000.0, 0.1) * settings.traffic_weight
    if impact >= settings.urgent_impact:
        return impact, "urgent"
    if impact >= settings.normal_impact:
        return impact, "normal"
    return impact, "low"


def degraded_slices(slices: tuple[SliceEvidence, ...], settings: PolicySettings) -> tuple[list[SliceEvidence], str]:
    """Slices whose drop exceeds the slice threshold and ``slice_z`` sampling errors; and a one-line summary.

    The sampling-error condition keeps small slices from alarming on noise: many slices are judged per batch.
    """
    judged = [s for s in slices if s.rows >= settings.min_slice_rows]
    skipped = len(slices) - len(judged)
    bad: list[SliceEvidence] = []
    for item in judged:
        error = item.sampling_error or 0.0
        realized_error = error * math.sqrt(item.rows / item.labelled_rows) if item.labelled_rows else math.inf
        estimated = item.estimated_drop is not None and item.estimated_drop >= max(
            settings.slice_performance_drop, settings.slice_z * error
        )
        realized = item.realized_drop is not None and item.realized_drop >= max(
            settings.slice_performance_drop, settings.slice_z * realized_error
        )
        if estimated or realized:
            bad.append(item)
    parts = [
        f"{s.name} (rows {s.rows}, est. drop {_fmt(s.estimated_drop)}, realized drop {_fmt(s.realized_drop)})"
        for s in bad
    ]
    summary = (
        f"{len(bad)} of {len(judged)} judged slice(s) degraded{': ' + '; '.join(parts) if parts else ''}; "
        f"{skipped} below {settings.min_slice_rows} rows not judged; threshold drop "
        f"{settings.slice_performance_drop:.3f} and {settings.slice_z:g} sampling errors"
    )
    return bad, summary


def decide(evidence: PolicyEvidence, state: PolicyState, settings: PolicySettings, now: datetime) -> PolicyDecision:
    """The policy's verdict on one batch; pure (same inputs, same decision)."""
    rules: list[RuleResult] = []
    reasons: list[str] = []
    bad_slices: list[SliceEvidence] = []
    concept_detected = False

    def finish(action: Action, degraded: bool, drifted: bool, drop: float, rows: int) -> PolicyDecision:
        priority, klass = priority_of(drop, rows, settings) if action != Action.NONE else (0.0, "low")
        stretch = degraded and state.degraded_window_start is not None and state.consecutive_degraded > 0
        start = state.degraded_window_start if stretch else evidence.window_start
        if not degraded:
            basis = "this batch"
        elif stretch:
            basis = f"the degraded stretch: this batch and the {state.consecutive_degraded} before it"
        else:
            basis = "this batch, the first degraded one"
        if action == Action.RETRAIN:
            target = f"; slices to check after retraining: {[s.name for s in bad_slices]}" if bad_slices else ""
            reasons.append(f"retrain on the labelled rows of {basis}{target}")
        return PolicyDecision(
            action=action,
            reasons=tuple(reasons),
            rules=tuple(rules),
            degraded=degraded,
            drifted=drifted,
            priority=round(priority, 4),
            priority_class=klass,
            window_start=start,
            window_end=evidence.window_end,
            evidence=evidence,
            degraded_slices=tuple(s.name for s in bad_slices),
            concept_drift=concept_detected,
            window_basis=basis,
        )

    # 1. Bad data never trains a model.
    if not evidence.quality_passed:
        failures = ", ".join(evidence.quality_failures) or "unspecified"
        rules.append(RuleResult(rule="data_quality", verdict=Verdict.FAIL, detail=failures))
        reasons.append(f"data quality failed ({failures}): retraining on this batch is blocked")
        return finish(Action.BLOCK, False, False, 0.0, evidence.rows)
    rules.append(RuleResult(rule="data_quality", verdict=Verdict.PASS, detail="all checks passed"))

    # 2. Drift and performance evidence.
    drifted = bool(evidence.drifted_features) or evidence.multivariate_drift
    broad = evidence.drift_share >= settings.drift_feature_share
    rules.append(
        RuleResult(
            rule="drift",
            verdict=Verdict.FAIL if drifted else Verdict.PASS,
            detail=f"{len(evidence.drifted_features)} drifted feature(s) {list(evidence.drifted_features)}, "
            f"share {evidence.drift_share:.2f} (broad at >= {settings.drift_feature_share:.2f}); "
            f"joint (PCA) drift {evidence.multivariate_drift}",
        )
    )
    drops = [d for d in (evidence.estimated_drop, evidence.realized_drop) if d is not None]
    drop = max(drops) if drops else 0.0
    impact_drop, impact_rows = drop, evidence.rows
    est_degraded = evidence.estimated_drop is not None and evidence.estimated_drop >= settings.performance_drop
    real_degraded = evidence.realized_drop is not None and evidence.realized_drop >= settings.performance_drop
    # NannyML's own alert is reported but not decisive: its band depends on chunk size, the drop does not.
    overall_degraded = est_degraded or real_degraded
    perf_detail = (
        f"estimated drop {_fmt(evidence.estimated_drop)}, realized drop {_fmt(evidence.realized_drop)}, "
        f"estimate alert {evidence.estimate_alert}; threshold {settings.performance_drop:.3f}"
    )
    rules.append(
        RuleResult(rule="performance", verdict=Verdict.FAIL if overall_degraded else Verdict.PASS, detail=perf_detail)
    )

    # Concept drift: an alarm of this batch's labelled rows, or one raised by late labels since the last decision.
    concept = _merge_concept(evidence.concept_drift, state.pending_concept_drift)
    if settings.concept_drift.method == "off" or concept is None:
        why = "detector off" if settings.concept_drift.method == "off" else "no labelled rows reached the detector"
        rules.append(RuleResult(rule="concept_drift", verdict=Verdict.SKIPPED, detail=why))
    else:
        concept_detected = concept.detected
        rules.append(
            RuleResult(
                rule="concept_drift", verdict=Verdict.FAIL if concept.detected else Verdict.PASS, detail=concept.detail
            )
        )
    concept_degrades = concept_detected and settings.concept_drift.action == "retrain"

    # Slices: each judged against its own reference, with a sampling-error guard.
    if settings.slice_action == "off" or not evidence.slices:
        why = "slice evaluation off" if settings.slice_action == "off" else "the contract names no slice columns"
        rules.append(RuleResult(rule="slices", verdict=Verdict.SKIPPED, detail=why))
    else:
        bad_slices, slice_detail = degraded_slices(evidence.slices, settings)
        rules.append(
            RuleResult(rule="slices", verdict=Verdict.FAIL if bad_slices else Verdict.PASS, detail=slice_detail)
        )
        for item in bad_slices:
            slice_drop = max(d for d in (item.estimated_drop, item.realized_drop) if d is not None)
            if slice_drop * item.rows > impact_drop * impact_rows:
                impact_drop, impact_rows = slice_drop, item.rows
    slices_degrade = bool(bad_slices) and settings.slice_action == "retrain"

    degraded = overall_degraded or concept_degrades or slices_degrade
    if not degraded:
        alerts = []
        if concept_detected:
            alerts.append(f"concept drift on the error stream ({concept.detail if concept else ''})")
        if bad_slices:
            alerts.append(f"degraded slice(s) {[s.name for s in bad_slices]}")
        if drifted and broad and settings.retrain_on_drift_alone:
            reasons.append("broad drift and retrain_on_drift_alone is set")
        elif alerts:
            reasons.append(f"{' and '.join(alerts)}, configured to alert only")
            return finish(Action.ALERT, False, drifted, impact_drop, impact_rows)
        elif drifted:
            where = list(evidence.drifted_features) or "the joint distribution (PCA reconstruction error)"
            reasons.append(f"drift in {where} without performance evidence: alert only")
            return finish(Action.ALERT, False, True, drop, evidence.rows)
        else:
            reasons.append("no drift and no performance degradation")
            return finish(Action.NONE, False, False, 0.0, evidence.rows)
    else:
        found = []
        if overall_degraded:
            found.append(f"performance degraded: {perf_detail}")
        if concept_degrades and concept is not None:
            found.append(f"concept drift: {concept.detail}")
        if slices_degrade:
            found.append(f"slice(s) degraded: {[s.name for s in bad_slices]}")
        reasons.extend(found)

    # 3. Only evidence about the serving model can retrain it.
    if not evidence.serving:
        rules.append(
            RuleResult(
                rule="serving",
                verdict=Verdict.FAIL,
                detail=f"judged for {evidence.model_version}; production is now {evidence.serving_version}",
            )
        )
        reasons.append(
            f"the batch was judged for {evidence.model_version}, which production no longer serves "
            f"(now {evidence.serving_version}): recorded, not acted on"
        )
        return finish(Action.ALERT, degraded, drifted, impact_drop, impact_rows)

    # 4. Guards against retraining storms.
    streak = state.consecutive_degraded + 1
    if streak < settings.persistence:
        rules.append(
            RuleResult(
                rule="persistence",
                verdict=Verdict.FAIL,
                detail=f"{streak} of {settings.persistence} consecutive batches",
            )
        )
        reasons.append(f"degradation seen in {streak} of {settings.persistence} required consecutive batches")
        return finish(Action.ALERT, degraded, drifted, impact_drop, impact_rows)
    rules.append(
        RuleResult(
            rule="persistence", verdict=Verdict.PASS, detail=f"{streak} of {settings.persistence} consecutive batches"
        )
    )

    if state.last_retrain_at is not None and settings.cooldown_hours > 0:
        ready_at = state.last_retrain_at + timedelta(hours=settings.cooldown_hours)
        if now < ready_at:
            rules.append(
                RuleResult(
                    rule="cooldown", verdict=Verdict.FAIL, detail=f"last retrain {state.last_retrain_at.isoformat()}"
                )
            )
            reasons.append(f"cooldown: next retrain allowed after {ready_at.isoformat()}")
            return finish(Action.ALERT, degraded, drifted, impact_drop, impact_rows)
    rules.append(RuleResult(rule="cooldown", verdict=Verdict.PASS, detail=f"cooldown {settings.cooldown_hours} h"))

    if state.retrains_last_24h >= settings.max_retrains_per_day:
        rules.append(
            RuleResult(
                rule="budget",
                verdict=Verdict.FAIL,
                detail=f"{state.retrains_last_24h} of {settings.max_retrains_per_day} per day",
            )
        )
        reasons.append("retraining budget for the last 24 h is spent")
        return finish(Action.ALERT, degraded, drifted, impact_drop, impact_rows)
    rules.append(
        RuleResult(
            rule="budget",
            verdict=Verdict.PASS,
            detail=f"{state.retrains_last_24h} of {settings.max_retrains_per_day} per day",
        )
    )

    new_rows = state.labelled_rows_since_retrain + evidence.labelled_rows
    pending = state.inconclusive if settings.wait_after_inconclusive else None
    if pending is not None:
        needed = pending.labelled_rows_needed
        if new_rows < needed:
            rules.append(
                RuleResult(
                    rule="inconclusive_gate",
                    verdict=Verdict.FAIL,
                    detail=f"{new_rows} of about {needed} labelled rows since {pending.version}'s inconclusive gate",
                )
            )
            reasons.append(
                f"waiting for labels: the gate of {pending.version} could not tell (too few labelled rows); "
                f"{new_rows} of about {needed} labelled rows have arrived since: a retrain now would be judged as "
                "blindly"
            )
            return finish(Action.ALERT, degraded, drifted, impact_drop, impact_rows)
        rules.append(
            RuleResult(
                rule="inconclusive_gate",
                verdict=Verdict.PASS,
                detail=f"{new_rows} >= {needed} labelled rows since {pending.version}'s inconclusive gate",
            )
        )
        reasons.append(f"enough labels arrived since {pending.version}'s inconclusive gate to judge a retrain again")
    if new_rows < settings.min_new_rows:
        rules.append(
            RuleResult(
                rule="min_new_rows", verdict=Verdict.FAIL, detail=f"{new_rows} labelled rows < {settings.min_new_rows}"
            )
        )
        reasons.append(f"only {new_rows} labelled rows since the last retrain (need {settings.min_new_rows})")
        return finish(Action.ALERT, degraded, drifted, impact_drop, impact_rows)
    rules.append(
        RuleResult(
            rule="min_new_rows", verdict=Verdict.PASS, detail=f"{new_rows} labelled rows >= {settings.min_new_rows}"
        )
    )

    reasons.append("all retraining guards passed")
    return finish(Action.RETRAIN, degraded, drifted, impact_drop, impact_rows)


def _merge_concept(
    current: ConceptDriftEvidence | None, pending: ConceptDriftEvidence | None
) -> ConceptDriftEvidence | None:
    if pending is None or not pending.detected:
        return current
    if current is None or not current.detected:
        return ConceptDriftEvidence(
            method=pending.method,
            detected=True,
            statistic=pending.statistic,
            threshold=pending.threshold,
            rows=pending.rows + (current.rows if current else 0),
            detail=f"raised by late labels: {pending.detail}",
        )
    return current


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _opt_time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.4f}"
