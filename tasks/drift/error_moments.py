"""The per-row error of a binary classifier as the concept-drift detectors see it: its kinds, the check that a
stream is finite, and its moments (rows, mean, variance, skewness) per score stratum.

These are the building blocks below both detector families: :class:`tasks.drift.concept.ErrorBaseline` keeps
the model's reference error as :class:`ErrorMoments` in score strata cut by :func:`score_edges`, and the
sequential detectors (:mod:`tasks.drift.sequential`) only need :func:`finite_stream`. They sit apart from
``concept.py`` so the detectors can share them without importing the interface that dispatches to them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from tasks.core.errors import DataError

if TYPE_CHECKING:
    import numpy as np

ErrorKind = Literal["brier", "zero_one", "log_loss"]
ERROR_KINDS: tuple[ErrorKind, ...] = ("brier", "zero_one", "log_loss")
ERROR_NAMES = {"brier": "Brier", "zero_one": "0/1 error", "log_loss": "log loss"}


def finite_stream(values: np.ndarray, what: str = "the error stream") -> np.ndarray:
    import numpy as np

    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or not np.all(np.isfinite(x)):
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise DataError(
            f"{what} must be a one-dimensional array of finite values "
            f"(got {x.ndim} dimension(s), {bad} non-finite value(s))"
        )
    return x


def is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


@dataclass(frozen=True)
class ErrorMoments:
    """Rows, mean, sample variance (ddof=1) and skewness of per-row errors: one score stratum of a baseline."""

    rows: int
    mean: float
    variance: float
    skewness: float = 0.0

    def __post_init__(self) -> None:
        check_moments("error baseline stratum", self.rows, self.mean, self.variance, self.skewness)
        for name in ("mean", "variance", "skewness"):
            object.__setattr__(self, name, float(getattr(self, name)))

    @property
    def third(self) -> float:
        """Third central moment."""
        return self.skewness * self.variance**1.5

    @classmethod
    def of(cls, values: np.ndarray) -> ErrorMoments:
        mean, variance = float(values.mean()), float(values.var(ddof=1))
        return cls(rows=int(values.size), mean=mean, variance=variance, skewness=skewness_of(values, mean, variance))

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "mean": self.mean, "variance": self.variance, "skewness": self.skewness}


def check_moments(what: str, rows: Any, mean: Any, variance: Any, skewness: Any) -> None:
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 2:
        raise DataError(f"{what} needs at least 2 labelled reference rows, got rows={rows!r}")
    for name, value in (("mean", mean), ("variance", variance)):
        if not is_number(value) or value < 0:
            raise DataError(f"{what} {name} must be a finite number >= 0, got {value!r}")
    if not is_number(skewness):
        raise DataError(f"{what} skewness must be a finite number, got {skewness!r}")


def skewness_of(x: np.ndarray, mean: float, variance: float) -> float:
    """Standardised third moment of a sample (0 for a constant one)."""
    import numpy as np

    if not variance > 0:
        return 0.0
    centred = x - mean
    return float(np.dot(centred * centred, centred)) / x.size / variance**1.5


def score_edges(probability: np.ndarray, strata: int, min_rows: int) -> tuple[float, ...]:
    """Cut points at quantiles of the scores, each stratum (p in [edge_(k-1), edge_k)) holding min_rows rows."""
    import numpy as np

    ordered = np.sort(probability)
    n = ordered.size
    edges: list[float] = []
    below_last = 0  # rows below the last accepted edge
    for j in range(1, strata):
        edge = float(ordered[min(n - 1, (j * n) // strata)])
        below = int(np.searchsorted(ordered, edge, side="left"))
        if below - below_last >= min_rows and n - below >= min_rows:
            edges.append(edge)
            below_last = below
    return tuple(edges)
