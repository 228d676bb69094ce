"""Monitoring in W&B, at publish time: one run per model with one step per batch on a batch-time axis.

A ``wandb.init`` per monitored batch would add seconds to every ``driftgate monitor`` (the command's latency
target is 3 s), so monitoring reaches W&B only when ``driftgate wandb publish`` reads the audit store. What
was published is kept in a cursor (the highest signal and decision row ids per model), so a re-run publishes
only rows recorded since, and a batch whose labels arrived later gains its realized metric at its own batch
time without any earlier step being logged twice.

The metric keys are defined here once (:func:`drift_key` and the ``*_KEY`` helpers): the report builder
(``tasks/report/wandb_report.py``) plots exactly these names.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from tasks.core.atomic import write_text_atomic
from tasks.core.errors import ConfigError

if TYPE_CHECKING:
    from tasks.resources.store import AuditStore
    from tasks.resources.tracking import Tracker

# The x axis of every monitoring panel: the batch's data time (end of its window) as epoch seconds.
BATCH_TIME: Final = "batch_time"
DRIFT_ALERTS: Final = "drift/alerts"  # features (and multivariate checks) alerting in the batch
POLICY_ACTION: Final = "policy/action"  # 0 NONE, 1 ALERT, 2 BLOCK, 3 RETRAIN
POLICY_RETRAIN: Final = "policy/retrain"  # 1 when the policy decided RETRAIN for the batch
ACTION_CODES: Final = {"NONE": 0.0, "ALERT": 1.0, "BLOCK": 2.0, "RETRAIN": 3.0}
JOB_TYPE: Final = "monitoring"
CURSOR_FILE: Final = "published.json"


def drift_key(feature: str, method: str) -> str:
    return f"drift/{feature}/{method}"


def drift_alert_key(feature: str) -> str:
    return f"drift_alert/{feature}"


def estimate_key(metric: str, part: str = "") -> str:
    """CBPE estimate of ``metric``; ``part`` is ``lower``, ``upper`` or ``threshold`` for its band."""
    return f"estimate/{metric}" + (f"/{part}" if part else "")


def realized_key(metric: str) -> str:
    return f"realized/{metric}"


def quality_key(name: str) -> str:
    return f"quality/{name}"


@dataclass(frozen=True)
class MonitoringStep:
    """What one batch adds to the monitoring run: its metrics at its batch time, and its policy decision."""

    batch_id: str
    batch_time: float
    metrics: dict[str, float]
    decision: str | None = None


@dataclass(frozen=True)
class MonitoringCursor:
    """The highest audit-store row ids already published for one model (0: nothing yet)."""

    signal_id: int = 0
    decision_id: int = 0


@dataclass(frozen=True)
class MonitoringBatch:
    """New monitoring rows of one model since the cursor, as steps, and the cursor after publishing them."""

    model: str
    steps: tuple[MonitoringStep, ...]
    cursor: MonitoringCursor
    decisions: tuple[str, ...] = field(default=())

    @property
    def keys(self) -> set[str]:
        return {BATCH_TIME} | {key for step in self.steps for key in step.metrics}


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    stamp = value if value.tzinfo else value.replace(tzinfo=UTC)
    return float(stamp.timestamp())


def _signal_metrics(signal: Mapping[str, Any]) -> dict[str, float]:
    """The keys one audit-store signal row contributes to its batch's step."""
    kind, name, method, value = signal["kind"], signal["name"], signal.get("method") or "value", signal.get("value")
    payload = signal.get("payload") or {}
    out: dict[str, float] = {}
    if kind == "drift":
        if value is not None:
            out[drift_key(name, method)] = float(value)
        out[drift_alert_key(name)] = float(bool(signal["alert"]))
    elif kind == "estimate":
        if value is not None:
            out[estimate_key(name)] = float(value)
        for part in ("lower", "upper"):
            if payload.get(part) is not None:
                out[estimate_key(name, part)] = float(payload[part])
        if signal.get("threshold") is not None:
            out[estimate_key(name, "threshold")] = float(signal["threshold"])
    elif kind == "realized" and value is not None:
        out[realized_key(name)] = float(value)
    elif kind == "quality" and value is not None:
        out[quality_key(name)] = float(value)
    return out


def monitoring_steps(
    signals: Iterable[Mapping[str, Any]],
    decisions: Iterable[Mapping[str, Any]],
    batch_times: Mapping[str, float],
) -> list[MonitoringStep]:
    """One step per batch from its signal rows and policy decisions, in batch-time order (pure)."""
    metrics: dict[str, dict[str, float]] = {}
    verdict: dict[str, str] = {}
    times = dict(batch_times)
    for signal in signals:
        batch = str(signal["batch_id"])
        step = metrics.setdefault(batch, {})
        step.update(_signal_metrics(signal))
        if batch not in times and (when := _epoch(signal.get("window_end"))) is not None:
            times[batch] = when
    for decision in decisions:
        if decision.get("batch_id") is None:
            continue
        batch = str(decision["batch_id"])
        outcome = str(decision["outcome"])
        verdict[batch] = outcome  # a batch judged again when its labels arrive: the latest verdict counts
        step = metrics.setdefault(batch, {})
        step[POLICY_ACTION] = ACTION_CODES.get(outcome, -1.0)
        step[POLICY_RETRAIN] = float(outcome == "RETRAIN")
    for step in metrics.values():
        alerts = [v for k, v in step.items() if k.startswith("drift_alert/")]
        if alerts:
            step[DRIFT_ALERTS] = float(sum(alerts))
    steps = [
        MonitoringStep(batch, times[batch], step, verdict.get(batch))
        for batch, step in metrics.items()
        if batch in times and step
    ]
    return sorted(steps, key=lambda s: (s.batch_time, s.batch_id))


def pending_monitoring(store: AuditStore, model: str, cursor: MonitoringCursor) -> MonitoringBatch:
    """The monitoring rows of ``model`` recorded after ``cursor``, as steps (reads the store, logs nothing)."""
    signals = [s for s in store.signals(model) if int(s["id"]) > cursor.signal_id]
    decisions = [d for d in store.decisions(model, kind="policy") if int(d["id"]) > cursor.decision_id]
    times = {str(b["batch_id"]): t for b in store.batches(model) if (t := _epoch(b.get("window_end"))) is not None}
    steps = monitoring_steps(signals, decisions, times)
    after = MonitoringCursor(
        signal_id=max((int(s["id"]) for s in signals), default=cursor.signal_id),
        decision_id=max((int(d["id"]) for d in decisions), default=cursor.decision_id),
    )
    outcomes = tuple(sorted({s.decision for s in steps if s.decision}))
    return MonitoringBatch(model=model, steps=tuple(steps), cursor=after, decisions=outcomes)


def log_monitoring(tracker: Tracker, batch: MonitoringBatch) -> str | None:
    """Log one monitoring run for ``batch`` (group = model, tags = decisions); returns its run id (None if empty)."""
    if not batch.steps:
        return None
    first, last = batch.steps[0], batch.steps[-1]
    run = tracker.start_run(
        job_type=JOB_TYPE,
        name=f"monitoring-{batch.model}-{first.batch_id}-{last.batch_id}",
        config={"model": batch.model, "batches": [s.batch_id for s in batch.steps]},
        group=batch.model,
        tags=batch.decisions,
    )
    try:
        for prefix in ("drift/*", "drift_alert/*", "estimate/*", "realized/*", "quality/*", "policy/*"):
            run.define_metric(prefix, step_metric=BATCH_TIME)
        for step in batch.steps:
            run.log({BATCH_TIME: step.batch_time, **step.metrics})
        run.summary({"batches_published": len(batch.steps), "last_batch": last.batch_id})
    finally:
        run.finish()
    return run.id


# --- the cursor -----------------------------------------------------------------------------------


def cursor_path(wandb_dir: Path) -> Path:
    return Path(wandb_dir) / CURSOR_FILE


def read_cursor(path: Path) -> dict[str, Any]:
    """The publish cursor (``{"monitoring": {model: {...}}, "reports": [...], "synced": [...]}``); empty if absent."""
    if not path.is_file():
        return {"monitoring": {}, "reports": [], "synced": []}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"the W&B publish cursor {path} is unreadable ({exc}); move it away to publish all") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"the W&B publish cursor {path} is not a JSON object; move it away to publish again")
    data.setdefault("monitoring", {})
    data.setdefault("reports", [])
    data.setdefault("synced", [])
    return data


def monitoring_cursor(data: Mapping[str, Any], model: str) -> MonitoringCursor:
    held = (data.get("monitoring") or {}).get(model) or {}
    return MonitoringCursor(int(held.get("signal_id", 0)), int(held.get("decision_id", 0)))


def with_monitoring_cursor(data: Mapping[str, Any], model: str, cursor: MonitoringCursor) -> dict[str, Any]:
    out = dict(data)
    out["monitoring"] = {
        **(data.get("monitoring") or {}),
        model: {"signal_id": cursor.signal_id, "decision_id": cursor.decision_id},
    }
    return out


def with_published(data: Mapping[str, Any], section: str, names: Sequence[str]) -> dict[str, Any]:
    out = dict(data)
    out[section] = sorted({*(data.get(section) or []), *names})
    return out


def write_cursor(path: Path, data: Mapping[str, Any]) -> Path:
    """Written atomically after each part is published: a crash re-publishes at most the part under way."""
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
