"""Estimated vs realized performance over batches: the history read from the audit store, the running error of
the estimate, and a chart per model (estimate with its confidence band and threshold, realized once labels land).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tasks.resources.workspace import Workspace


@dataclass(frozen=True)
class PerformancePoint:
    batch_id: str
    at: datetime | None  # end of the batch's window (None without timestamps)
    metric: str
    estimated: float
    lower: float | None
    upper: float | None
    lower_threshold: float | None
    reference: float | None
    realized: float | None  # newest realized value of the batch, once labels arrived

    @property
    def error(self) -> float | None:
        """Realized minus estimated (positive: the estimate was too pessimistic)."""
        return None if self.realized is None else self.realized - self.estimated

    @property
    def within_band(self) -> bool | None:
        if self.realized is None or self.lower is None or self.upper is None:
            return None
        return self.lower <= self.realized <= self.upper


@dataclass(frozen=True)
class EstimateErrorSummary:
    batches: int  # batches with both an estimate and a realized value
    mean_absolute_error: float | None
    max_absolute_error: float | None
    band_coverage: float | None  # share of realized values inside the estimate's confidence band


def performance_history(signals: list[dict[str, Any]]) -> list[PerformancePoint]:
    """Points per batch from the store's signal rows (kinds ``estimate`` and ``realized``), in recording order.

    A batch's newest estimate and newest realized value win (labels may arrive in several files).
    """
    estimates: dict[str, dict[str, Any]] = {}
    realized: dict[tuple[str, str], float] = {}
    for row in signals:
        if row["kind"] == "estimate" and row["value"] is not None:
            estimates.pop(row["batch_id"], None)  # re-insert: keeps recording order of the newest estimate
            estimates[row["batch_id"]] = row
        elif row["kind"] == "realized" and row["value"] is not None:
            realized[(row["batch_id"], row["name"])] = float(row["value"])
    points = []
    for batch_id, row in estimates.items():
        payload = row.get("payload") or {}
        points.append(
            PerformancePoint(
                batch_id=batch_id,
                at=row.get("window_end"),
                metric=row["name"],
                estimated=float(row["value"]),
                lower=_float(payload.get("lower")),
                upper=_float(payload.get("upper")),
                lower_threshold=_float(row.get("threshold")),
                reference=_float(payload.get("reference")),
                realized=realized.get((batch_id, row["name"])),
            )
        )
    return points


def error_summary(points: list[PerformancePoint]) -> EstimateErrorSummary:
    errors = [abs(p.error) for p in points if p.error is not None]
    inside = [p.within_band for p in points if p.within_band is not None]
    return EstimateErrorSummary(
        batches=len(errors),
        mean_absolute_error=sum(errors) / len(errors) if errors else None,
        max_absolute_error=max(errors) if errors else None,
        band_coverage=sum(inside) / len(inside) if inside else None,
    )


def performance_chart(points: list[PerformancePoint], path: Path, *, title: str) -> Path | None:
    """Estimated metric with its band and the alert threshold per batch, realized values on top; None without points."""
    if not points:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = list(range(len(points)))
    nan = math.nan
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(points) + 3), 4.0))
    try:
        lower = [p.lower if p.lower is not None else nan for p in points]
        upper = [p.upper if p.upper is not None else nan for p in points]
        ax.fill_between(x, lower, upper, color="tab:blue", alpha=0.18, label="estimate band (±3 s.e.)")
        ax.plot(x, [p.estimated for p in points], "o-", color="tab:blue", label="estimated (CBPE)")
        realized = [p.realized if p.realized is not None else nan for p in points]
        if any(not math.isnan(v) for v in realized):
            ax.plot(x, realized, "s--", color="tab:orange", label="realized (labels)")
        thresholds = [p.lower_threshold if p.lower_threshold is not None else nan for p in points]
        if any(not math.isnan(v) for v in thresholds):
            ax.step(x, thresholds, where="mid", color="tab:red", linestyle=":", label="alert threshold")
        reference = next((p.reference for p in reversed(points) if p.reference is not None), None)
        if reference is not None:
            ax.axhline(reference, color="grey", linewidth=0.8, label="reference")
        summary = error_summary(points)
        if summary.mean_absolute_error is not None:
            title += f"\n|estimate − realized| mean {summary.mean_absolute_error:.4f} over {summary.batches} batches"
        ax.set_title(title, fontsize=10)
        ax.set_xticks(x)
        ax.set_xticklabels([p.batch_id for p in points], rotation=45, ha="right", fontsize=7)
        ax.set_ylabel(points[-1].metric)
        ax.legend(fontsize=7, loc="lower left")
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".tmp.png")
        fig.savefig(tmp, dpi=110)
        tmp.replace(path)
    finally:
        plt.close(fig)
    return path


def chart_path(ws: Workspace) -> Path:
    return ws.settings.reports_dir / "performance" / f"{ws.model}.png"


def write_performance_chart(ws: Workspace) -> Path | None:
    """Redraw the model's chart from everything the audit store holds (reports/performance/<model>.png)."""
    signals = ws.store.signals(ws.model, kind="estimate") + ws.store.signals(ws.model, kind="realized")
    signals.sort(key=lambda row: row["id"])
    return performance_chart(performance_history(signals), chart_path(ws), title=f"{ws.model}: estimated vs realized")


def _float(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number
