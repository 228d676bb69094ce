"""Drift statistics of a batch against its reference: exact KS and Wasserstein from sorted values, Jensen-Shannon,
Hellinger, PSI, chi-squared and L-infinity on binned counts, with their p-values where one exists. Pure numpy."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from tasks.drift.results import PSI_EPSILON

if TYPE_CHECKING:
    import numpy as np


def doane_edges(
    sorted_values: np.ndarray, mean: float | None = None, std: float | None = None, skewness: float | None = None
) -> np.ndarray:
    """``numpy.histogram_bin_edges(values, "doane")`` for sorted values (NannyML's bins), in fewer passes.

    ``mean``, ``std`` (population) and ``skewness`` (biased, as numpy's) are computed when not given.
    """
    import numpy as np

    size = sorted_values.size
    first, last = float(sorted_values[0]), float(sorted_values[-1])
    width = 0.0
    if size > 2:
        sigma = float(sorted_values.std()) if std is None else std
        if sigma > 0.0:
            if skewness is None:
                centre = float(sorted_values.mean()) if mean is None else mean
                standardised = (sorted_values - centre) / sigma
                skewness = float((standardised * standardised * standardised).mean())
            sg1 = math.sqrt(6.0 * (size - 2) / ((size + 1.0) * (size + 3)))
            width = (last - first) / (1.0 + math.log2(size) + math.log2(1.0 + abs(skewness) / sg1))
    if first == last:
        first, last = first - 0.5, last + 0.5
    bins = math.ceil((last - first) / width) if width else 1
    return np.linspace(first, last, bins + 1)


def _bin_counts(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    import numpy as np

    below = np.searchsorted(sorted_values, edges, side="left")
    return np.diff(np.concatenate(([0], below, [sorted_values.size])))


def _histogram_counts(sorted_values: np.ndarray, edges: np.ndarray | tuple[float, ...]) -> np.ndarray:
    """``numpy.histogram`` counts on ``edges`` (last bin closed), then the count outside them as a last entry."""
    import numpy as np

    edges = np.asarray(edges)
    below = np.searchsorted(sorted_values, edges[:-1], side="left")
    at_most_last = np.searchsorted(sorted_values, edges[-1:], side="right")
    inside = np.diff(np.concatenate((below, at_most_last)))
    return np.append(inside, sorted_values.size - inside.sum())


def ecdf_statistics(reference_sorted: np.ndarray, batch_sorted: np.ndarray) -> tuple[float, float]:
    """(KS statistic, Wasserstein-1 distance) between two sorted samples, exactly as scipy defines them.

    Both ECDFs only change at sample values, so they are evaluated at the end of each run of equal
    values in the merged sample. A stable sort of the two concatenated sorted runs is a single merge;
    the ECDF gap is kept in integers (n * m times its value) so the KS statistic is exact.
    Profiling uses the compiled twin :func:`tasks.drift.kernels.ks_wasserstein`; this one is its reference.
    """
    import numpy as np

    n, m = reference_sorted.size, batch_sorted.size
    both = np.concatenate((reference_sorted, batch_sorted))
    order = np.argsort(both, kind="stable")
    merged = both[order]
    reference_below = np.cumsum(order < n)
    distinct = merged[1:] != merged[:-1]
    if distinct.all():
        seen = np.arange(1, n + m + 1)
        values = merged
    else:
        ends = np.flatnonzero(np.append(distinct, True))
        reference_below = reference_below[ends]
        seen = ends + 1
        values = merged[ends]
    gap = np.abs(reference_below * (n + m) - seen * n)
    scale = float(n) * float(m)
    return float(gap.max() / scale), float((gap[:-1] * np.diff(values)).sum() / scale)


def ks_p_value(statistic: float, n_reference: int, n_batch: int) -> float:
    """Two-sided p-value from Kolmogorov's limiting distribution at the effective size n m / (n + m).

    ``scipy.stats.ks_2samp(method="asymp")`` evaluates the finite-size one-sample distribution at that
    size instead, which costs milliseconds per call at the sizes profiled here; the two agree to within
    a few percent of the p-value (a unit test checks it). Alerts never depend on p-values.
    """
    from scipy.special import kolmogorov

    effective = n_reference * n_batch / (n_reference + n_batch)
    return float(kolmogorov(math.sqrt(effective) * statistic))


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon distance, base 2, along the last axis (rows are normalised), as ``scipy.spatial.distance``."""
    import numpy as np

    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    p = p / p.sum(axis=-1, keepdims=True)
    q = q / q.sum(axis=-1, keepdims=True)
    m = (p + q) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(p > 0, p * np.log(p / m), 0.0)
        right = np.where(q > 0, q * np.log(q / m), 0.0)
    divergence = (left + right).sum(axis=-1) / 2.0
    return np.asarray(np.sqrt(np.maximum(divergence, 0.0) / np.log(2.0)))


def hellinger(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Hellinger distance of proportions along the last axis, as NannyML: sqrt(sum((sqrt p - sqrt q)^2)) / sqrt(2)."""
    import numpy as np

    return np.asarray(np.sqrt(((np.sqrt(p) - np.sqrt(q)) ** 2).sum(axis=-1)) / np.sqrt(2.0))


def population_stability_index(reference: np.ndarray, batch: np.ndarray) -> np.ndarray:
    """PSI along the last axis; both arguments are proportions."""
    import numpy as np

    r = np.maximum(reference, PSI_EPSILON)
    b = np.maximum(batch, PSI_EPSILON)
    return np.asarray(((b - r) * np.log(b / r)).sum(axis=-1))


def chi2_statistic(reference_counts: np.ndarray, batch_counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(statistic, dof) of the 2 x k table per row, as ``scipy.stats.chi2_contingency`` (Yates when dof = 1).

    Categories absent from both samples are left out (scipy would reject the zero expected count).
    """
    import numpy as np

    observed = np.stack((reference_counts, batch_counts), axis=-2).astype(np.float64)
    column_totals = observed.sum(axis=-2, keepdims=True)
    row_totals = observed.sum(axis=-1, keepdims=True)
    expected = row_totals * column_totals / column_totals.sum(axis=-1, keepdims=True)
    present = column_totals > 0
    dof = present.sum(axis=(-2, -1)) - 1
    gap = expected - observed
    yates = (dof == 1)[..., None, None]
    observed = np.where(yates, observed + np.minimum(0.5, np.abs(gap)) * np.sign(gap), observed)
    with np.errstate(divide="ignore", invalid="ignore"):
        cells = np.where(present, (observed - expected) ** 2 / expected, 0.0)
    return cells.sum(axis=(-2, -1)), dof


def chi2_p_value(statistic: float, dof: int) -> float:
    """Upper tail of the chi-squared distribution (``scipy.stats.chi2.sf``, without importing scipy.stats)."""
    from scipy.special import chdtrc

    return float(chdtrc(dof, statistic)) if dof > 0 else 1.0


def jensen_shannon_p_value(distance: float, n_reference: int, n_batch: int, categories: int) -> float:
    """Asymptotic p-value of a base-2 Jensen-Shannon distance between two samples over ``categories`` bins.

    To second order JS^2 ln 2 = sum (p - q)^2 / (8 pi), so 8 ln 2 nm/(n+m) JS^2 is Pearson's quadratic form of
    the two samples' shares: chi-squared with ``categories`` - 1 degrees of freedom under the multinomial null
    (see :mod:`tasks.drift.batch_control`). JS is bounded where Pearson's statistic is not, so sparse
    categories make this conservative.
    """
    if n_reference <= 0 or n_batch <= 0:
        return 1.0
    effective = n_reference * n_batch / (n_reference + n_batch)
    return chi2_p_value(8.0 * math.log(2.0) * effective * distance * distance, categories - 1)
