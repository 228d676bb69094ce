"""Business metrics: what each prediction costs, per row, so that the gate can compare models in money.

Classification: a configured cost matrix (:class:`tasks.core.settings.CostMatrix`) applied to the decision
taken at a probability threshold. Regression: a cost per unit of absolute error. Both return one
cost per row, so that two models scored on the same rows give paired per-row differences.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tasks.core.errors import GateError
from tasks.core.settings import CostMatrix

if TYPE_CHECKING:
    import numpy as np


def finite_vector(values: Any, name: str) -> np.ndarray:
    """A one-dimensional float array without NaN/inf, or a GateError naming what is wrong with ``name``."""
    import numpy as np

    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise GateError(f"{name} are not numeric") from exc
    if array.ndim != 1:
        raise GateError(f"{name} must be one-dimensional, got shape {array.shape}")
    bad = int((~np.isfinite(array)).sum())
    if bad:
        raise GateError(f"{name} hold {bad} NaN/inf values")
    return array


def classification_costs(labels: Any, scores: Any, threshold: float, matrix: CostMatrix) -> np.ndarray:
    """Cost of each row's decision: positive when ``score >= threshold``, priced by ``matrix``."""
    import numpy as np

    y = finite_vector(labels, "labels")
    s = finite_vector(scores, "scores")
    if y.size != s.size:
        raise GateError(f"mismatched rows: labels {y.size} vs scores {s.size}")
    if not 0.0 < threshold < 1.0:
        raise GateError(f"decision threshold must lie in (0, 1), got {threshold} (gate.decision_threshold)")
    positive = y == 1
    predicted = s >= threshold
    return np.where(
        positive,
        np.where(predicted, matrix.true_positive, matrix.false_negative),
        np.where(predicted, matrix.false_positive, matrix.true_negative),
    ).astype(np.float64)


def constant_decision_cost(labels: Any, matrix: CostMatrix) -> tuple[float, str]:
    """Mean cost per row of the cheaper constant decision (everyone positive or everyone negative).

    This is the no-skill baseline a first model must beat when the primary criterion is cost.
    """
    y = finite_vector(labels, "labels")
    share = float((y == 1).mean())
    all_positive = share * matrix.true_positive + (1.0 - share) * matrix.false_positive
    all_negative = share * matrix.false_negative + (1.0 - share) * matrix.true_negative
    if all_positive <= all_negative:
        return all_positive, "everyone positive"
    return all_negative, "everyone negative"


def regression_costs(y_true: Any, predictions: Any, cost_per_unit_error: float) -> np.ndarray:
    """Cost of each row's error: ``cost_per_unit_error * |y - prediction|``."""
    import numpy as np

    y = finite_vector(y_true, "targets")
    p = finite_vector(predictions, "predictions")
    if y.size != p.size:
        raise GateError(f"mismatched rows: targets {y.size} vs predictions {p.size}")
    if not cost_per_unit_error > 0.0:
        raise GateError(
            f"cost per unit of error must be positive, got {cost_per_unit_error} (gate.cost_per_unit_error)"
        )
    return np.asarray(cost_per_unit_error * np.abs(y - p), dtype=np.float64)
