"""The numpy realized metrics equal sklearn's to 1e-12 (ties, imbalance, rounded scores, degenerate counts)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

from tasks.performance.realized import BINARY_METRICS, binary_metric, roc_auc


def _sklearn(metric: str, y: np.ndarray, p: np.ndarray, yhat: np.ndarray) -> float:
    return float(
        {
            "roc_auc": lambda: roc_auc_score(y, p),
            "accuracy": lambda: accuracy_score(y, yhat),
            "f1": lambda: f1_score(y, yhat, zero_division=0),
            "precision": lambda: precision_score(y, yhat, zero_division=0),
            "recall": lambda: recall_score(y, yhat, zero_division=0),
            "specificity": lambda: recall_score(y, yhat, pos_label=0, zero_division=0),
        }[metric]()
    )


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("decimals", [None, 2, 1])  # rounded scores: many ties
def test_equal_to_sklearn(seed: int, decimals: int | None) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 30_000))
    y = (rng.random(n) < rng.uniform(0.02, 0.6)).astype(np.int64)
    p = np.clip(rng.normal(0.3 + 0.3 * y, 0.25), 0, 1)
    if decimals is not None:
        p = np.round(p, decimals)
    yhat = (p >= rng.uniform(0.2, 0.8)).astype(np.int64)
    for metric in BINARY_METRICS:
        ours = binary_metric(metric, y, p, yhat)
        assert ours is not None
        assert abs(ours - _sklearn(metric, y, p, yhat)) <= 1e-12, metric


def test_degenerate_inputs() -> None:
    y = np.array([0, 1, 0, 1])
    assert binary_metric("roc_auc", np.array([1, 1]), np.array([0.2, 0.3]), np.array([1, 1])) is None
    assert binary_metric("f1", np.array([], dtype=np.int64), np.array([]), np.array([])) is None
    zeros = np.zeros(4, dtype=np.int64)
    for metric in ("precision", "f1", "recall"):
        assert binary_metric(metric, y, np.full(4, 0.1), zeros) == _sklearn(metric, y, np.full(4, 0.1), zeros) == 0.0
    assert roc_auc(y, np.full(4, 0.5)) == roc_auc_score(y, np.full(4, 0.5)) == 0.5
    with pytest.raises(ValueError):
        binary_metric("log_loss", y, y, y)
