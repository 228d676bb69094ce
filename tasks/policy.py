"""The retraining policy: a pure function from a batch's evidence to NONE / ALERT / BLOCK / RETRAIN.

Layers, in order: data quality blocks; drift alone alerts (unless configured to retrain);
performance evidence (estimated or realized drop) is required for RETRAIN, and must persist
for N batches, respect the cooldown, the daily budget and a minimum of new labelled rows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from tasks.settings import PolicySettings


class Action(StrEnum):
    NONE = "NONE"
    ALERT = "ALERT"
    BLOCK = "BLOCK"
    RETRAIN = "RETRAIN"


@dataclass(frozen=True)
class PolicyEvidence:
    """What one monitored batch tells the policy."""

    batch_id: str
    rows: int
    quality_passed: bool
    quality_failures: tuple[str, ...] = ()
    drifted_features: tuple[str, ...] = ()
    drift_share: float = 0.0
    estimated_drop: float | None = None  # reference metric minus estimated metric (positive = worse)
    estimate_alert: bool = False
    realized_drop: float | None = None
    labelled_rows: int = 0
    window_start: datetime | None = None
    window_end: datetime | None = None


@dataclass(frozen=True)
class PolicyState:
    """What the audit store remembers that the policy needs."""

    consecutive_degraded: int = 0  # degraded batches in a row just before this one
    last_retrain_at: datetime | None = None
    retrains_last_24h: int = 0
    labelled_rows_since_retrain: int = 0  # excluding this batch
    degraded_window_start: datetime | None = None  # start of the current degraded stretch


@dataclass(frozen=True)
class RuleResult:
    rule: str
    outcome: str  # "pass" | "fail" | "skip"
    detail: str


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


def priority_of(drop: float, rows: int, settings: PolicySettings) -> tuple[float, str]:
    """Estimated impact = metric points lost x business weight x traffic (rows per 10k)."""
    impact = max(drop, 0.0) * 100.0 * settings.business_weight * max(rows / 10_000.0, 0.1) * settings.traffic_weight
    if impact >= 5.0:
        return impact, "urgent"
    if impact >= 1.0:
        return impact, "normal"
    return impact, "low"


def decide(evidence: PolicyEvidence, state: PolicyState, settings: PolicySettings, now: datetime) -> PolicyDecision:
    rules: list[RuleResult] = []
    reasons: list[str] = []

    def finish(action: Action, degraded: bool, drifted: bool, drop: float) -> PolicyDecision:
        priority, klass = priority_of(drop, evidence.rows, settings) if action != Action.NONE else (0.0, "low")
        start = state.degraded_window_start if degraded and state.degraded_window_start else evidence.window_start
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
        )

    # 1. Bad data never trains a model.
    if not evidence.quality_passed:
        failures = ", ".join(evidence.quality_failures) or "unspecified"
        rules.append(RuleResult("data_quality", "fail", failures))
        reasons.append(f"data quality failed ({failures}): retraining on this batch is blocked")
        return finish(Action.BLOCK, False, False, 0.0)
    rules.append(RuleResult("data_quality", "pass", "all checks passed"))

    # 2. Drift and performance evidence.
    drifted = bool(evidence.drifted_features)
    broad = evidence.drift_share >= settings.drift_feature_share
    rules.append(
        RuleResult(
            "drift",
            "fail" if drifted else "pass",
            f"{len(evidence.drifted_features)} drifted feature(s) {list(evidence.drifted_features)}, "
            f"share {evidence.drift_share:.2f} (broad at >= {settings.drift_feature_share:.2f})",
        )
    )
    drops = [d for d in (evidence.estimated_drop, evidence.realized_drop) if d is not None]
    drop = max(drops) if drops else 0.0
    est_degraded = evidence.estimated_drop is not None and evidence.estimated_drop >= settings.performance_drop
    real_degraded = evidence.realized_drop is not None and evidence.realized_drop >= settings.performance_drop
    # NannyML's own alert is reported but not decisive: its band depends on chunk size, the drop does not.
    degraded = est_degraded or real_degraded
    perf_detail = (
        f"estimated drop {_fmt(evidence.estimated_drop)}, realized drop {_fmt(evidence.realized_drop)}, "
        f"estimate alert {evidence.estimate_alert}; threshold {settings.performance_drop:.3f}"
    )
    rules.append(RuleResult("performance", "fail" if degraded else "pass", perf_detail))

    if not degraded:
        if drifted and broad and settings.retrain_on_drift_alone:
            reasons.append("broad drift and retrain_on_drift_alone is set")
        elif drifted:
            reasons.append(f"drift in {list(evidence.drifted_features)} without performance evidence: alert only")
            return finish(Action.ALERT, False, True, drop)
        else:
            reasons.append("no drift and no performance degradation")
            return finish(Action.NONE, False, False, 0.0)
    else:
        reasons.append(f"performance degraded: {perf_detail}")

    # 3. Guards against retraining storms.
    streak = state.consecutive_degraded + 1
    if streak < settings.persistence:
        rules.append(RuleResult("persistence", "fail", f"{streak} of {settings.persistence} consecutive batches"))
        reasons.append(f"degradation seen in {streak} of {settings.persistence} required consecutive batches")
        return finish(Action.ALERT, degraded, drifted, drop)
    rules.append(RuleResult("persistence", "pass", f"{streak} of {settings.persistence} consecutive batches"))

    if state.last_retrain_at is not None and settings.cooldown_hours > 0:
        ready_at = state.last_retrain_at + timedelta(hours=settings.cooldown_hours)
        if now < ready_at:
            rules.append(RuleResult("cooldown", "fail", f"last retrain {state.last_retrain_at.isoformat()}"))
            reasons.append(f"cooldown: next retrain allowed after {ready_at.isoformat()}")
            return finish(Action.ALERT, degraded, drifted, drop)
    rules.append(RuleResult("cooldown", "pass", f"cooldown {settings.cooldown_hours} h"))

    if state.retrains_last_24h >= settings.max_retrains_per_day:
        rules.append(
            RuleResult("budget", "fail", f"{state.retrains_last_24h} of {settings.max_retrains_per_day} per day")
        )
        reasons.append("retraining budget for the last 24 h is spent")
        return finish(Action.ALERT, degraded, drifted, drop)
    rules.append(RuleResult("budget", "pass", f"{state.retrains_last_24h} of {settings.max_retrains_per_day} per day"))

    new_rows = state.labelled_rows_since_retrain + evidence.labelled_rows
    if new_rows < settings.min_new_rows:
        rules.append(RuleResult("min_new_rows", "fail", f"{new_rows} labelled rows < {settings.min_new_rows}"))
        reasons.append(f"only {new_rows} labelled rows since the last retrain (need {settings.min_new_rows})")
        return finish(Action.ALERT, degraded, drifted, drop)
    rules.append(RuleResult("min_new_rows", "pass", f"{new_rows} labelled rows >= {settings.min_new_rows}"))

    reasons.append("all retraining guards passed")
    return finish(Action.RETRAIN, degraded, drifted, drop)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.4f}"


def prefect_tasks() -> dict[str, Any]:
    """Thin Prefect task wrappers of this module's functions (imported lazily)."""
    from prefect import task

    return {"decide": task(name="policy-decide")(decide)}
