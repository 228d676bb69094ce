"""What changed between champion and candidate beyond the gate's verdict: calibration, errors at the decision
threshold and feature importance, on the gate's own holdout.

The gate decides on discrimination (AUC, or accuracy/cost) with paired tests; a reviewer also asks whether the
candidate's probabilities can be taken at face value (a better-ranking model can be worse calibrated, which
moves every thresholded decision), how its errors split at the threshold the business uses, and whether it
leans on different features (a model that moved its weight onto one drifting feature is a risk the AUC does
not show). These are descriptive: none of them blocks a promotion.

- Calibration: the Brier score and the expected calibration error (ECE: the row-weighted mean gap between mean
  predicted probability and observed rate over ``CALIBRATION_BINS`` equal-width probability bins), with the
  bins themselves for a reliability diagram.
- Errors: the confusion counts at ``gate.decision_threshold`` (predicted positive when probability >= it).
- Importance: each feature's share of the model's total gain, so models of different sizes compare.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

CALIBRATION_BINS = 10


@dataclass(frozen=True)
class ReliabilityBin:
    low: float
    high: float
    rows: int
    mean_predicted: float
    observed_rate: float


@dataclass(frozen=True)
class ModelCalibration:
    brier: float
    ece: float
    true_positives: int
    false_positives: int
    false_negatives: int
    true_negatives: int
    bins: tuple[ReliabilityBin, ...]

    @property
    def precision(self) -> float | None:
        flagged = self.true_positives + self.false_positives
        return self.true_positives / flagged if flagged else None

    @property
    def recall(self) -> float | None:
        positives = self.true_positives + self.false_negatives
        return self.true_positives / positives if positives else None


@dataclass(frozen=True)
class ImportanceShift:
    feature: str
    champion_share: float | None  # None: no champion, or it recorded no importance
    candidate_share: float

    @property
    def change(self) -> float | None:
        return None if self.champion_share is None else self.candidate_share - self.champion_share


@dataclass(frozen=True)
class ModelComparison:
    threshold: float
    rows: int
    candidate: ModelCalibration
    champion: ModelCalibration | None
    importance: tuple[ImportanceShift, ...]  # largest absolute change first (candidate share without a champion)


def calibration(labels: np.ndarray, scores: np.ndarray, threshold: float) -> ModelCalibration:
    """Brier score, ECE, reliability bins and confusion counts of probabilities ``scores`` for 0/1 ``labels``."""
    import numpy as np

    y = np.asarray(labels, dtype=float)
    p = np.clip(np.asarray(scores, dtype=float), 0.0, 1.0)
    edges = np.linspace(0.0, 1.0, CALIBRATION_BINS + 1)
    index = np.minimum(np.searchsorted(edges, p, side="right") - 1, CALIBRATION_BINS - 1)
    bins = []
    gap = 0.0
    for b in range(CALIBRATION_BINS):
        inside = index == b
        rows = int(inside.sum())
        if not rows:
            continue
        mean_p, rate = float(p[inside].mean()), float(y[inside].mean())
        gap += rows * abs(mean_p - rate)
        bins.append(ReliabilityBin(float(edges[b]), float(edges[b + 1]), rows, mean_p, rate))
    flagged = p >= threshold
    positive = y == 1.0
    return ModelCalibration(
        brier=float(np.mean((p - y) ** 2)) if y.size else math.nan,
        ece=gap / y.size if y.size else math.nan,
        true_positives=int((flagged & positive).sum()),
        false_positives=int((flagged & ~positive).sum()),
        false_negatives=int((~flagged & positive).sum()),
        true_negatives=int((~flagged & ~positive).sum()),
        bins=tuple(bins),
    )


def _shares(importance: Mapping[str, float]) -> dict[str, float]:
    total = sum(max(float(v), 0.0) for v in importance.values())
    return {k: max(float(v), 0.0) / total for k, v in importance.items()} if total > 0 else {}


def compare_models(
    labels: np.ndarray,
    candidate_scores: np.ndarray,
    champion_scores: np.ndarray | None,
    *,
    threshold: float,
    candidate_importance: Mapping[str, float],
    champion_importance: Mapping[str, float] | None,
) -> ModelComparison:
    """Calibration, confusion counts and importance shares of both models on the same holdout rows."""
    candidate_shares = _shares(candidate_importance)
    champion_shares = _shares(champion_importance) if champion_importance else None
    features = sorted(set(candidate_shares) | set(champion_shares or {}))
    shifts = [
        ImportanceShift(
            f,
            None if champion_shares is None else champion_shares.get(f, 0.0),
            candidate_shares.get(f, 0.0),
        )
        for f in features
    ]
    shifts.sort(key=lambda s: (-(abs(s.change) if s.change is not None else s.candidate_share), s.feature))
    return ModelComparison(
        threshold=threshold,
        rows=len(labels),
        candidate=calibration(labels, candidate_scores, threshold),
        champion=None if champion_scores is None else calibration(labels, champion_scores, threshold),
        importance=tuple(shifts),
    )


def _num(value: float | None, digits: int = 4) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def comparison_markdown(comparison: ModelComparison, chart: Path | None = None, *, top: int = 10) -> list[str]:
    """Markdown lines: calibration and errors per model, the reliability diagram, the importance shifts."""
    models = [("candidate", comparison.candidate)]
    if comparison.champion is not None:
        models.insert(0, ("champion", comparison.champion))
    lines = [
        "",
        f"## Calibration and errors at threshold {comparison.threshold:g} ({comparison.rows} holdout rows; "
        "descriptive, not a gate rule)",
        "| model | Brier | ECE | TP | FP | FN | TN | precision | recall |",
        "|---|---|---|---|---|---|---|---|---|",
        *[
            f"| {name} | {_num(c.brier)} | {_num(c.ece)} | {c.true_positives} | {c.false_positives} | "
            f"{c.false_negatives} | {c.true_negatives} | {_num(c.precision, 3)} | {_num(c.recall, 3)} |"
            for name, c in models
        ],
    ]
    if chart is not None:
        lines += ["", f"![reliability diagram]({chart.name})"]
    has_champion = comparison.champion is not None
    lines += [
        "",
        "## Feature importance (share of total gain" + (", champion → candidate)" if has_champion else ")"),
        "| feature | champion | candidate | change |" if has_champion else "| feature | candidate |",
        "|---|---|---|---|" if has_champion else "|---|---|",
    ]
    for shift in comparison.importance[:top]:
        if has_champion:
            change = shift.change if shift.change is not None else 0.0
            lines.append(
                f"| {shift.feature} | {shift.champion_share or 0.0:.1%} | {shift.candidate_share:.1%} | {change:+.1%} |"
            )
        else:
            lines.append(f"| {shift.feature} | {shift.candidate_share:.1%} |")
    return lines


def reliability_chart(comparison: ModelComparison, path: Path, *, title: str) -> Path:
    """Observed positive rate against mean predicted probability per bin, for each model (SVG); the diagonal is
    perfect calibration. Hovering a point shows its bin, rows and both numbers."""
    from tasks.report import svg

    left, top, size = 60.0, 50.0, 300.0
    canvas = svg.Canvas(left + size + 170, top + size + 50)
    canvas.text(left, 22, title, size=13, bold=True)
    axis_x = svg.Axis(0.0, 1.0, left, left + size)
    axis_y = svg.Axis(0.0, 1.0, top + size, top)
    for tick in svg.nice_ticks(0.0, 1.0, 5):
        canvas.line(axis_x(tick), top, axis_x(tick), top + size, stroke=svg.GRID)
        canvas.line(left, axis_y(tick), left + size, axis_y(tick), stroke=svg.GRID)
        canvas.text(axis_x(tick), top + size + 14, svg.label(tick), size=9, anchor="middle")
        canvas.text(left - 6, axis_y(tick) + 3, svg.label(tick), size=9, anchor="end")
    canvas.line(axis_x(0.0), axis_y(0.0), axis_x(1.0), axis_y(1.0), stroke=svg.GREY, dash="4 3")
    canvas.text(left + size / 2, top + size + 34, "mean predicted probability", size=10, anchor="middle")
    canvas.text(left - 40, top + size / 2, "observed positive rate", size=10, anchor="middle", rotate=-90)
    models = [("candidate", comparison.candidate, svg.RED)]
    if comparison.champion is not None:
        models.insert(0, ("champion", comparison.champion, svg.BLUE))
    for row, (name, model, colour) in enumerate(models):
        points = [(axis_x(b.mean_predicted), axis_y(b.observed_rate)) for b in model.bins]
        canvas.polyline(points, stroke=colour, width=1.6)
        for b, (x, y) in zip(model.bins, points, strict=True):
            tip = (
                f"{name}, p in [{b.low:.1f}, {b.high:.1f}): {b.rows} rows, "
                f"predicted {b.mean_predicted:.3f}, observed {b.observed_rate:.3f}"
            )
            canvas.marker(x, y, fill=colour, square=name == "candidate", tip=tip)
        y0 = top + 10 + row * 18
        canvas.line(left + size + 20, y0, left + size + 38, y0, stroke=colour, width=1.6)
        canvas.text(left + size + 42, y0 + 4, f"{name} (ECE {model.ece:.3f})", size=10)
    return canvas.save(path)
