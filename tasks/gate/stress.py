"""Sandbox stress scenarios: plausible covariate shifts of the most important features, as row weights.

A scenario re-weights real, labelled rows; it never edits a feature value. Re-weighting by a
function of the features changes P(features) and leaves P(label | features) as it was, so the
labels stay right and both models can be scored on the shifted population exactly (a weighted ROC
AUC on the same rows, no resampling noise):

- a numeric feature is tilted exponentially, weight ``exp(+-shift * z)`` with ``z`` its clipped
  z-score: for a normal feature this moves the mean by ``shift`` standard deviations;
- a categorical or boolean feature has one category made ``factor`` times as frequent (one scenario
  per frequent category).

Scenarios are generated from the rows the gate judges on (the newest labelled rows, which the
candidate carries as its monitoring reference): covariate shift can only be simulated soundly
under the current relation between features and label, and the back-test already covers the older
period. The gate (:func:`tasks.gate.evaluate.evaluate_gate`) compares how much each model loses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tasks.core.errors import ConfigError, ContractError, MissingColumnError
from tasks.data.contract import ModelContract

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

# z-scores are clipped here so that a few extreme rows cannot carry a whole scenario.
Z_CLIP = 3.0
# Per categorical feature, only its most frequent categories get a scenario.
MAX_CATEGORY_SCENARIOS = 5


@dataclass(frozen=True)
class StressScenario:
    name: str  # e.g. "car_value +0.5 sd" or "size_of_downpayment = 0% x3"
    feature: str
    weights: np.ndarray  # one non-negative weight per row, mean 1

    @property
    def effective_rows(self) -> float:
        """Kish's effective sample size of the weighted rows."""
        total = float(self.weights.sum())
        return total * total / float((self.weights * self.weights).sum())


def top_features(importances: Sequence[Mapping[str, float]], k: int) -> list[str]:
    """The ``k`` most important features of each model (by gain), merged in order of first appearance."""
    chosen: list[str] = []
    for importance in importances:
        ranked = sorted(importance, key=lambda name: (-importance[name], name))
        for name in ranked[:k]:
            if importance[name] > 0 and name not in chosen:
                chosen.append(name)
    return chosen


def stress_scenarios(
    frame: pl.DataFrame,
    contract: ModelContract,
    features: Sequence[str],
    *,
    shift: float,
    category_factor: float,
) -> list[StressScenario]:
    """Scenarios for each named feature of ``frame``: two tilts for a numeric one, one boost per frequent
    category for a categorical or boolean one."""
    import numpy as np
    import polars as pl

    if shift <= 0 or category_factor <= 1:
        raise ConfigError(
            f"stress shift ({shift}, gate.stress_shift) must be > 0 and category factor "
            f"({category_factor}, gate.stress_category_factor) > 1"
        )
    scenarios: list[StressScenario] = []
    for feature in features:
        spec = contract.feature(feature)
        if feature not in frame.columns:
            raise MissingColumnError("stress scenarios need the feature", source="stress scenarios", column=feature)
        column = frame.get_column(feature)
        if spec.kind == "numeric":
            values = column.cast(pl.Float64).to_numpy()
            finite = np.isfinite(values)
            if finite.sum() < 2 or float(np.std(values[finite])) == 0.0:
                continue
            z = np.zeros(values.size)
            z[finite] = (values[finite] - values[finite].mean()) / values[finite].std()
            z = np.clip(z, -Z_CLIP, Z_CLIP)
            for sign in (1.0, -1.0):
                weights = np.exp(sign * shift * z)
                scenarios.append(
                    StressScenario(
                        f"{feature} {'+' if sign > 0 else '-'}{shift:g} sd", feature, weights / weights.mean()
                    )
                )
        elif spec.kind in ("categorical", "boolean"):
            text = column.cast(pl.String)
            counts = text.drop_nulls().value_counts(sort=True).head(MAX_CATEGORY_SCENARIOS)
            labels = text.to_numpy()
            for category in counts.get_column(feature).to_list():
                weights = np.where(labels == category, category_factor, 1.0)
                if weights.min() == weights.max():
                    continue  # every row is in this category: re-weighting changes nothing
                scenarios.append(
                    StressScenario(f"{feature} = {category} x{category_factor:g}", feature, weights / weights.mean())
                )
        else:
            raise ContractError(f"feature {feature!r} has kind {spec.kind!r}, which no stress scenario handles")
    return scenarios
