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

    def row(self) -> tuple[str, float, float | None, float | None]:
        """(feature, candidate share, champion share, change): the W&B table's and report's row."""
        return (self.feature, self.candidate_share, self.champion_share, self.change)


@dataclass(frozen=True)
class ModelComparison:
    threshold: float
    rows: int
    candidate: ModelCalibration
    champion: ModelCalibration | None
    importance: tuple[ImportanceShift, ...]  # largest absolute change first (candidate share without a champion)

    def models(self) -> list[tuple[str, ModelCalibration]]:
        """("champion", …) first when there is one, then ("candidate", …)."""
        pairs = [("candidate", self.candidate)]
        if self.champion is not None:
            pairs.insert(0, ("champion", self.champion))
        return pairs

    def calibration_rows(self) -> list[tuple[str, float, float, int, int, int, int]]:
        """(model, Brier, ECE, TP, FP, FN, TN) per model."""
        return [
            (n, c.brier, c.ece, c.true_positives, c.false_positives, c.false_negatives, c.true_negatives)
            for n, c in self.models()
        ]

    def summary(self) -> dict[str, object]:
        """The audit payload: each model's Brier, ECE and confusion counts, and the three largest importance
        shifts."""
        return {
            "threshold": self.threshold,
            "rows": self.rows,
            "models": {
                n: {"brier": b, "ece": e, "tp": tp, "fp": fp, "fn": fn, "tn": tn}
                for n, b, e, tp, fp, fn, tn in self.calibration_rows()
            },
            "importance_shifts": [list(s.row()) for s in self.importance[:3]],
        }


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


def importance_change(
    candidate: Mapping[str, float], champion: Mapping[str, float] | None
) -> tuple[ImportanceShift, ...]:
    """Each feature's share of total gain in both models, the largest absolute change first (without a
    champion: the largest candidate share first). Shares, so two models trained on different row counts or
    with different numbers of trees compare."""

    def shares(importance: Mapping[str, float]) -> dict[str, float]:
        total = sum(max(float(v), 0.0) for v in importance.values())
        return {k: max(float(v), 0.0) / total for k, v in importance.items()} if total > 0 else {}

    new = shares(candidate)
    old = shares(champion) if champion else None
    shifts = [
        ImportanceShift(f, None if old is None else old.get(f, 0.0), new.get(f, 0.0))
        for f in sorted(set(new) | set(old or {}))
    ]
    shifts.sort(key=lambda s: (-(abs(s.change) if s.change is not None else s.candidate_share), s.feature))
    return tuple(shifts)


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
    return ModelComparison(
        threshold=threshold,
        rows=len(labels),
        candidate=calibration(labels, candidate_scores, threshold),
        champion=None if champion_scores is None else calibration(labels, champion_scores, threshold),
        importance=importance_change(candidate_importance, champion_importance),
    )
