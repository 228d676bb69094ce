"""How much a holdout can tell: the gate's power against the smallest improvement worth having.

The superiority test is one-sided at level alpha on the observed improvement, with standard error ``s``
(DeLong's for ROC AUC; for accuracy or cost, read off the bootstrap interval the gate reports). Under a true
improvement ``d`` above the test's bound ``b`` it rejects with probability

    power(d) = Phi((d - b) / s - z(1 - alpha))

(normal approximation, the standard error under the alternative taken to be the observed one). The smallest
improvement found with probability ``P`` is ``b + (z(1 - alpha) + z(P)) s``. The standard error of a paired
difference shrinks as 1/sqrt(n) at a fixed class balance, and DeLong's variance is V10/positives + V01/negatives,
so at low prevalence the positives govern it: reaching ``P`` takes ``n (s / s*)^2`` rows with
``s* = (d - b) / (z(1 - alpha) + z(P))``, about that share of them positive. A gate that fails with power below
``P`` did not show the candidate is no better; it could not tell, and says how many labelled rows would.

Pure standard library (statistics.NormalDist): no scipy import on this path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

_NORMAL = NormalDist()


@dataclass(frozen=True)
class PowerCheck:
    """The holdout's power against ``effect`` and what a conclusive verdict would need."""

    metric: str
    effect: float  # the improvement the power is stated against (gate.target_effect)
    bound: float  # the test's H0 bound (gate.min_effect for the primary metric)
    alpha: float
    min_power: float
    standard_error: float
    power: float
    detectable: float  # smallest improvement found with probability min_power on this holdout
    rows: int
    positives: int
    rows_needed: int | None  # holdout rows for min_power at ``effect``; None when effect <= bound

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 0.5 or not 0.5 <= self.min_power < 1.0:
            raise ValueError(f"alpha {self.alpha} must be in (0, 0.5) and min_power {self.min_power} in [0.5, 1)")
        if self.standard_error < 0 or self.rows <= 0 or not 0 <= self.positives <= self.rows:
            raise ValueError(f"bad holdout summary: se {self.standard_error}, {self.positives}/{self.rows} positive")

    @property
    def underpowered(self) -> bool:
        return self.power < self.min_power

    @property
    def more_rows(self) -> int:
        return max(0, (self.rows_needed or self.rows) - self.rows)

    @property
    def more_positives(self) -> int:
        return math.ceil(self.more_rows * self.positives / self.rows)

    def labelled_rows_for(self, holdout_fraction: float) -> int:
        """New labelled rows a retrain needs for ``more_rows`` more holdout rows: the gate's holdout is the newest
        ``holdout_fraction`` of a window's labelled rows (``training.holdout_fraction``)."""
        if not 0.0 < holdout_fraction <= 1.0:
            raise ValueError(f"holdout_fraction {holdout_fraction} must be in (0, 1]")
        return math.ceil(self.more_rows / holdout_fraction)

    def describe(self) -> str:
        """One line for humans: the power, the detectable improvement and, when short, what is missing."""
        text = (
            f"power {self.power:.2f} to find a {self.metric} gain of {self.effect:+g} (gate.target_effect) at alpha "
            f"{self.alpha:g} with {self.positives} positive / {self.rows - self.positives} negative rows; "
            f"detectable with power {self.min_power:g}: {self.detectable:+.4f}"
        )
        if self.underpowered and self.rows_needed is not None:
            text += f"; about {self.more_rows} more labelled rows (~{self.more_positives} more positives) for it"
        return text

    def need(self) -> str:
        """Why a failed verdict is inconclusive, and what would settle it."""
        return (
            f"inconclusive, not 'no better': power {self.power:.2f} < {self.min_power:g} for a gain of "
            f"{self.effect:+g}; need about {self.more_rows} more labelled rows (~{self.more_positives} more positives)"
        )


def power_check(
    *,
    metric: str,
    standard_error: float,
    effect: float,
    bound: float,
    alpha: float,
    min_power: float,
    rows: int,
    positives: int,
) -> PowerCheck:
    """The power of the one-sided superiority test with this standard error (see the module docstring)."""
    if not 0.5 <= min_power < 1.0 or not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha {alpha} must be in (0, 0.5) and min_power {min_power} in [0.5, 1)")
    z_alpha = _NORMAL.inv_cdf(1.0 - alpha)
    z_power = _NORMAL.inv_cdf(min_power)
    gap = effect - bound
    if standard_error <= 0.0:
        power = 1.0 if gap > 0 else 0.0
        needed: int | None = rows if gap > 0 else None
    else:
        power = _NORMAL.cdf(gap / standard_error - z_alpha)
        needed = math.ceil(rows * (standard_error * (z_alpha + z_power) / gap) ** 2) if gap > 0 else None
    return PowerCheck(
        metric=metric,
        effect=effect,
        bound=bound,
        alpha=alpha,
        min_power=min_power,
        standard_error=standard_error,
        power=power,
        detectable=bound + (z_alpha + z_power) * standard_error,
        rows=rows,
        positives=positives,
        rows_needed=needed,
    )


def standard_error_from_interval(low: float | None, high: float | None, alpha: float) -> float | None:
    """The standard error behind a two-sided (1 - 2 alpha) normal-shaped interval, or None without one."""
    if low is None or high is None or not math.isfinite(low) or not math.isfinite(high):
        return None
    return max(0.0, (high - low) / (2.0 * _NORMAL.inv_cdf(1.0 - alpha)))
