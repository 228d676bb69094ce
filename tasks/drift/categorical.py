"""The primary drift test of categorical, boolean and label columns (``head_tail``), and the two-sample null
that calibrates the distance statistics of those columns.

``head_tail``: one exact p-value per column, built to see both kinds of categorical drift.

- Per category ``i``: the 2 x 2 table (category ``i`` or not) x (reference or batch). Under "no drift" the
  reference (``n`` values) and the batch (``m``) are two samples of one distribution, so given the pooled count
  ``t_i`` the batch's count is hypergeometric: ``t_i`` of the ``n + m`` values fall in the category, ``m`` of
  them are the batch's. Its two-sided p-value ``2 min(P(X <= c_i), P(X >= c_i))`` (Fisher's exact test) is
  valid whatever the category's true share, at any reference size: the reference's own sampling error is
  part of the test (it is a two-sample test, not a test against the reference's shares), and a category
  unseen in the reference is simply one with ``r_i = 0``.
- *Head* (a few points' shift of a large category): the L-infinity distance D = max_i |c_i / m - r_i / n|, with
  the union bound ``p_head = min(1, sum_i P(|X_i / m - (t_i - X_i) / n| >= D))`` over the categories'
  hypergeometric laws. Valid under any dependence (P(max >= d) <= sum_i P(dev_i >= d), and G(D) <= u only when
  D >= the d at which G falls to u). A raw share difference of D is only likely for the largest categories,
  so the sum is about the top categories' own p-values: the head pays almost no multiplicity.
- *Tail* (a large relative shift of a rare category, or a new one): the most surprising category,
  ``p_tail = min(1, K min_i p_i)``, Bonferroni over the K categories present in either sample.
- ``p = min(1, 2 min(p_head, p_tail))`` (Bonferroni over the two): one p-value per column into the
  batch-level Holm control. Everything is conditional on the pooled counts, given which the batch's counts are
  multivariate hypergeometric with the margins above, so the p-value is valid for any true distribution.

Why: a shift of a few points in a large category moves Jensen-Shannon, Hellinger and chi2 little, because
they spread their attention over all categories (a +2-point shift of the top level of a 100-level Zipf
categorical: JS alerts on ~10 % of 10k-row batches, L-infinity on ~90 %, but L-infinity had no p-value to
reach the batch-level control). A large relative shift of a rare category is what the distance statistics
see and L-infinity does not; the tail component catches it. Measured in ``benchmarks/calibration.py --only
power`` and pinned in ``tests/statistical/test_categorical_primary.py``.

The row's statistic is the p-value's surprise ``-log10 p`` (larger is more drift, like every other
statistic) and its threshold is ``-log10(1 - false_alarm_quantile)``: the p-value is exact, so no
simulation is needed for a false-alarm rate of at most ``1 - false_alarm_quantile``.

Cost: the hypergeometric probabilities are summed over the support within 10 sqrt(t_i) of the mean (by
Hoeffding's bound for sampling without replacement the mass beyond is below 2 e^-200, about 3e-87: p-values
are exact to that, far below any level Holm asks for), with log k! read from a table, at most
``n + m`` log-gamma evaluations per column, vectorised.

The distance statistics' null (:func:`two_sample_null_shares`): their thresholds are bootstrapped from
pairs of multinomial samples. Drawing both from the reference's observed shares treats the reference as
the truth: categories the reference happened not to see never appear, and its rare categories look more
certain than they are, so at a reference the size of a batch chi2/JS/Hellinger alerted on 9-19 % of
stationary batches at a nominal 1 % (long-tailed categoricals). The null shares are the reference's,
smoothed for being a sample: Good-Turing's estimate of the mass of unseen categories (singletons / n) is
spread over max(Chao1's estimate of their number, the number of singletons), and each seen category keeps
its share of the rest. Chao1 alone undercounts when the tail is short (100 Zipf levels: 3 % false alarms);
the singleton count alone when it is long (1,000 levels: 30 %); the larger of the two measured 0.4-1.5 %
on 100 and 1,000 levels and 1.5-3.5 % on 300 steep (exponent 1.5) levels at reference = batch = 1k
(``benchmarks/calibration.py --only statistics``). It is an estimate, not a guarantee: the primary
``head_tail`` p-value needs none of it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

HOEFFDING_WIDTH = 10.0  # support summed within this many sqrt(t) of the hypergeometric mean (mass beyond < 3e-87)


def head_tail_p_value(reference_counts: np.ndarray, batch_counts: np.ndarray) -> float:
    """The ``head_tail`` p-value of a batch's category counts against the reference's (aligned categories)."""
    import numpy as np

    reference = np.asarray(reference_counts, dtype=np.int64)
    batch = np.asarray(batch_counts, dtype=np.int64)
    n, m = int(reference.sum()), int(batch.sum())
    if n <= 0 or m <= 0:
        return 1.0
    pooled = reference + batch
    present = pooled > 0
    pooled, batch = pooled[present], batch[present]
    owner, k, pmf = _hypergeometric(pooled, n, m)
    scale = 1.0 / m + 1.0 / n
    # The batch's share minus the reference's, at every support point and as observed.
    deviation = np.abs(k * scale - pooled[owner] / n)
    observed = float(np.abs(batch * scale - pooled / n).max())
    # Float rounding must not drop the observed point itself from its tail: include a relative 1e-9 below.
    head = float(pmf[deviation >= observed * (1.0 - 1e-9)].sum())
    tail = pooled.size * float(_fisher(batch, owner, k, pmf).min())
    return float(min(1.0, 2.0 * min(head, tail)))


def surprise(p_value: float) -> float:
    """The ``head_tail`` statistic: -log10 of the p-value (floored at 1e-300)."""
    return -math.log10(max(p_value, 1e-300))


def surprise_threshold(false_alarm_quantile: float) -> float:
    """The ``head_tail`` threshold: exceeded with probability at most ``1 - false_alarm_quantile`` under no drift."""
    return -math.log10(1.0 - false_alarm_quantile)


def fisher_p_values(batch: np.ndarray, pooled: np.ndarray, n: int, m: int) -> np.ndarray:
    """Two-sided exact p-values of each category's 2 x 2 table: the batch's count ``batch[i]`` of ``pooled[i]``,
    hypergeometric with ``m`` of ``n + m`` values in the batch. ``2 min(lower tail, upper tail)``, capped at 1."""
    import numpy as np

    batch, pooled = np.asarray(batch, dtype=np.int64), np.asarray(pooled, dtype=np.int64)
    return _fisher(batch, *_hypergeometric(pooled, n, m))


def _fisher(batch: np.ndarray, owner: np.ndarray, k: np.ndarray, pmf: np.ndarray) -> np.ndarray:
    import numpy as np

    size = batch.size
    observed = batch[owner]
    lower = np.bincount(owner, weights=np.where(k <= observed, pmf, 0.0), minlength=size)
    upper = np.bincount(owner, weights=np.where(k >= observed, pmf, 0.0), minlength=size)
    # Outside the summed window the mass is below 3e-87: an observation there has p = 0 (exact to that).
    return np.asarray(np.minimum(1.0, 2.0 * np.minimum(lower, upper)))


def _hypergeometric(pooled: np.ndarray, n: int, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(category, k, P(X = k)) of every category's batch count X within the summed window, flattened."""
    import numpy as np

    total = n + m
    mean = pooled * (m / total)
    half = np.ceil(HOEFFDING_WIDTH * np.sqrt(pooled)) + 1.0
    low = np.maximum(np.maximum(0, pooled - n), np.floor(mean - half)).astype(np.int64)
    high = np.minimum(np.minimum(pooled, m), np.ceil(mean + half)).astype(np.int64)
    lengths = high - low + 1
    owner = np.repeat(np.arange(pooled.size), lengths)
    starts = np.cumsum(lengths) - lengths
    k = np.arange(lengths.sum()) - np.repeat(starts, lengths) + np.repeat(low, lengths)
    t = pooled[owner]
    # log P(X = k) = log C(m, k) + log C(n, t - k) - log C(n + m, t), from a table of log k!: lookups instead
    # of six log-gamma evaluations per support point (a 100-level column at 1M/100k rows: 23 ms -> 8 ms).
    lf = _log_factorials(total)
    per_category = lf[m] + lf[n] - (lf[total] - lf[pooled] - lf[total - pooled])
    log_pmf = per_category[owner] - lf[k] - lf[m - k] - lf[t - k] - lf[n - t + k]
    return owner, k.astype(np.float64), np.exp(log_pmf)


_LOG_FACTORIALS: list[np.ndarray] = []  # one growing table per process; replaced whole, so threads may share it


def _log_factorials(upto: int) -> np.ndarray:
    """log k! for k = 0 .. at least ``upto`` (log-gamma of k + 1, exact to float precision per entry)."""
    import numpy as np
    from scipy.special import gammaln

    table = _LOG_FACTORIALS[-1] if _LOG_FACTORIALS else None
    if table is None or table.size <= upto:
        size = 1 << max(16, int(upto).bit_length())  # doubling: a process computes a few tables at most
        table = gammaln(np.arange(size, dtype=np.float64) + 1.0)
        _LOG_FACTORIALS[:] = [table]
    return table


def two_sample_null_shares(counts: np.ndarray) -> np.ndarray:
    """The shares both samples of the distance statistics' null are drawn from (see the module docstring).

    The reference's shares scaled by 1 - f1/n, followed by max(f1, Chao1's bias-corrected estimate
    ``f1 (f1 - 1) / (2 (f2 + 1))``) unseen categories (rounded up) sharing Good-Turing's unseen mass f1/n;
    f1, f2 are the numbers of categories seen once and twice. Without singletons the shares are the
    reference's.
    """
    import numpy as np

    counts = np.asarray(counts, dtype=np.float64)
    n = counts.sum()
    singletons = int(np.count_nonzero(counts == 1))
    doubletons = int(np.count_nonzero(counts == 2))
    unseen = max(singletons, math.ceil(singletons * (singletons - 1) / (2.0 * (doubletons + 1))))
    if singletons == 0 or singletons >= n:
        return counts / n
    unseen_mass = singletons / n
    return np.concatenate((counts / n * (1.0 - unseen_mass), np.full(unseen, unseen_mass / unseen)))
