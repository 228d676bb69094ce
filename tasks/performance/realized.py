"""Realized binary-classification metrics in numpy: what sklearn computes, without importing sklearn.

The monitor path computes a realized metric for every labelled batch; importing scikit-learn for it costs
seconds per fresh process. Each function here returns the value sklearn's scorer of the same name returns
(``roc_auc_score``, ``accuracy_score``, ``f1_score``/``precision_score``/``recall_score`` with
``zero_division=0``, specificity as ``recall_score(pos_label=0)``), tested equal to 1e-12:

* ROC AUC is the Mann-Whitney statistic with mid-ranks for ties, which is exactly the area under the ROC
  curve sklearn integrates with the trapezoid rule (ties in the score are one diagonal step of the curve,
  which the trapezoid and the half-counted tie agree on). The rank sum is a sum of half-integers, exact in
  float64 far beyond any batch size, so the only rounding is the final division.
* The confusion-matrix metrics are ratios of integer counts: one division, as in sklearn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

BINARY_METRICS = ("roc_auc", "accuracy", "f1", "precision", "recall", "specificity")


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve of ``score`` for 0/1 labels ``y_true`` (both classes must be present)."""
    import numpy as np

    y = np.asarray(y_true) == 1
    score = np.asarray(score, dtype=np.float64)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("ROC AUC needs both classes")
    order = np.argsort(score, kind="stable")
    ordered = score[order]
    # Mid-rank of each tie group: ranks start at 1; a group spanning [start, end) gets (start + end + 1) / 2.
    new_group = np.empty(ordered.size, dtype=bool)
    new_group[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new_group[1:])
    starts = np.flatnonzero(new_group)
    ends = np.append(starts[1:], ordered.size)
    group_of = np.cumsum(new_group) - 1
    mid_rank = (starts + ends + 1) / 2.0
    rank_sum = float(mid_rank[group_of][y[order]].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def _confusion(y_true: np.ndarray, prediction: np.ndarray) -> tuple[int, int, int, int]:
    import numpy as np

    y = np.asarray(y_true) == 1
    p = np.asarray(prediction) == 1
    tp = int(np.count_nonzero(y & p))
    fp = int(np.count_nonzero(~y & p))
    fn = int(np.count_nonzero(y & ~p))
    tn = y.size - tp - fp - fn
    return tp, fp, fn, tn


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0  # sklearn's zero_division=0


def binary_metric(metric: str, y_true: np.ndarray, probability: np.ndarray, prediction: np.ndarray) -> float | None:
    """``metric`` on labelled rows; None with no rows or a single class (as the sklearn-based code returned)."""
    import numpy as np

    if metric not in BINARY_METRICS:
        raise ValueError(f"metric {metric!r} is not one of {BINARY_METRICS}")
    y_true = np.asarray(y_true)
    if y_true.size == 0 or np.unique(y_true).size < 2:
        return None
    if metric == "roc_auc":
        return roc_auc(y_true, probability)
    tp, fp, fn, tn = _confusion(y_true, prediction)
    if metric == "accuracy":
        return (tp + tn) / y_true.size
    if metric == "f1":
        return _ratio(2 * tp, 2 * tp + fp + fn)
    if metric == "precision":
        return _ratio(tp, tp + fp)
    if metric == "recall":
        return _ratio(tp, tp + fn)
    return _ratio(tn, tn + fp)  # specificity
