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
    """Estimated metric with its band and the alert threshold per batch, realized values on top, as SVG
    (:mod:`tasks.report.svg`; hovering a point shows its numbers); None without points."""
    if not points:
        return None
    from tasks.report import svg

    def value(v: float | None) -> float:
        return math.nan if v is None else float(v)

    legend = [("estimated (CBPE)", svg.BLUE, None), ("estimate band (±3 s.e.)", svg.BLUE, "band")]
    legend += [
        ("realized (labels)", svg.ORANGE, "6 4"),
        ("alert threshold", svg.RED, "2 3"),
        ("reference", svg.GREY, None),
    ]
    legend_w = sum(30 + svg.text_width(name, 9) for name, _, _ in legend)
    left, top, plot_h = 70.0, 70.0, 250.0
    plot_w = max(420.0, 34.0 * len(points), legend_w)
    below = max(svg.text_width(p.batch_id, 9) for p in points) * 0.71 + 20
    canvas = svg.Canvas(left + plot_w + 30, top + plot_h + below)
    summary = error_summary(points)
    canvas.text(left, 20, title, size=13, bold=True)
    if summary.mean_absolute_error is not None:
        note = f"|estimate − realized| mean {summary.mean_absolute_error:.4f} over {summary.batches} batches"
        canvas.text(left, 37, note, size=10)
    estimated = [value(p.estimated) for p in points]
    lower, upper = [value(p.lower) for p in points], [value(p.upper) for p in points]
    realized = [value(p.realized) for p in points]
    thresholds = [value(p.lower_threshold) for p in points]
    reference = next((p.reference for p in reversed(points) if p.reference is not None), None)
    x = svg.Axis(-0.5, len(points) - 0.5, left, left + plot_w)
    y = svg.Axis.covering([*estimated, *lower, *upper, *realized, *thresholds, value(reference)], top + plot_h, top)
    for tick in svg.nice_ticks(y.low, y.high, 5):
        canvas.line(left, y(tick), left + plot_w, y(tick), stroke=svg.GRID)
        canvas.text(left - 6, y(tick) + 3, svg.label(tick), size=9, anchor="end")
    canvas.text(left - 52, top + plot_h / 2, points[-1].metric, size=10, anchor="middle", rotate=-90)
    band = [(x(i), y(u)) for i, u in enumerate(upper)] + [(x(i), y(lo)) for i, lo in reversed(list(enumerate(lower)))]
    canvas.polygon(band, fill=svg.BLUE, opacity=0.18)
    if reference is not None:
        canvas.line(left, y(reference), left + plot_w, y(reference), stroke=svg.GREY, width=0.8)
    if any(math.isfinite(t) for t in thresholds):
        # A step per batch (centred on it), as matplotlib's step(where="mid").
        steps = [pt for i, t in enumerate(thresholds) for pt in ((x(i - 0.5), y(t)), (x(i + 0.5), y(t)))]
        canvas.polyline(steps, stroke=svg.RED, width=1.2, dash="2 3")
    canvas.polyline([(x(i), y(e)) for i, e in enumerate(estimated)], stroke=svg.BLUE)
    canvas.polyline([(x(i), y(r)) for i, r in enumerate(realized)], stroke=svg.ORANGE, dash="6 4")
    for i, p in enumerate(points):
        band_text = f" [{p.lower:.4f}, {p.upper:.4f}]" if p.lower is not None and p.upper is not None else ""
        canvas.marker(x(i), y(estimated[i]), fill=svg.BLUE, tip=f"{p.batch_id}: estimated {p.estimated:.4f}{band_text}")
        if p.realized is not None:
            canvas.marker(
                x(i), y(realized[i]), fill=svg.ORANGE, square=True, tip=f"{p.batch_id}: realized {p.realized:.4f}"
            )
        canvas.text(x(i), top + plot_h + 12, p.batch_id, size=9, anchor="end", rotate=-45)
    canvas.line(left, top + plot_h, left + plot_w, top + plot_h, stroke=svg.INK, width=0.8)
    at = left
    for name, colour, style in legend:
        if style == "band":
            canvas.rect(at, 48, 18, 9, fill=colour, opacity=0.18)
        else:
            canvas.line(at, 53, at + 18, 53, stroke=colour, width=1.6, dash=style)
        canvas.text(at + 22, 57, name, size=9)
        at += 30 + svg.text_width(name, 9)
    return canvas.save(path)


def chart_path(ws: Workspace) -> Path:
    return ws.settings.reports_dir / "performance" / f"{ws.model}.svg"


def write_performance_chart(ws: Workspace) -> Path | None:
    """Redraw the model's chart from everything the audit store holds (reports/performance/<model>.svg)."""
    signals = ws.store.signals(ws.model, kind="estimate") + ws.store.signals(ws.model, kind="realized")
    signals.sort(key=lambda row: row["id"])
    return performance_chart(performance_history(signals), chart_path(ws), title=f"{ws.model}: estimated vs realized")


def _float(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number
