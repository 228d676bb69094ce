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
- *Head* categories are those with a pooled share of at least ``HEAD_SHARE`` (at most 1 / HEAD_SHARE of
  them), the *tail* the rest. Each group gets the Bonferroni minimum of its categories' p-values, and the
  column the Bonferroni minimum of the (one or two) non-empty groups: ``p = min(1, g min(H min_head p_i,
  T min_tail p_i))``, a weighted Bonferroni over categories, valid under any dependence. The groups are
  chosen from the pooled counts only, and every category's p-value is exact given all pooled counts (the
  batch's counts are then multivariate hypergeometric, whose margins are the tables above), so the
  selection keeps the p-value valid.

Why: a shift of a few points in a large category (the *head*) moves Jensen-Shannon, Hellinger and chi2
little, because they spread their attention over all categories; the head's per-category test has only
H <= 20 comparisons to pay for. A large relative shift of a rare category (the *tail*) is what the
distance statistics see, and the tail's own Bonferroni family catches it without letting the many rare
categories dilute the head. Measured in ``benchmarks/calibration.py --only power`` and pinned in
``tests/statistical/test_categorical_primary.py``.

The row's statistic is the p-value's surprise ``-log10 p`` (larger is more drift, like every other
statistic) and its threshold is ``-log10(1 - false_alarm_quantile)``: the p-value is exact, so no
simulation is needed for a false-alarm rate of at most ``1 - false_alarm_quantile``.

Cost: the hypergeometric probabilities are summed over the support within 20 sqrt(t_i) of the mean (by
Hoeffding's bound for sampling without replacement the mass beyond is below e^-800), at most
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
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

HEAD_SHARE = 0.05  # pooled share from which a category is in the head
HOEFFDING_WIDTH = 20.0  # support summed within this many sqrt(t) of the hypergeometric mean


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
    p = fisher_p_values(batch, pooled, n, m)
    head = pooled >= HEAD_SHARE * (n + m)
    groups = [p[mask].min() * mask.sum() for mask in (head, ~head) if mask.any()]
    return float(min(1.0, len(groups) * min(groups)))


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
    from scipy.special import gammaln

    total = n + m
    mean = pooled * (m / total)
    half = np.ceil(HOEFFDING_WIDTH * np.sqrt(pooled)) + 1.0
    low = np.maximum(np.maximum(0, pooled - n), np.floor(mean - half)).astype(np.int64)
    high = np.minimum(np.minimum(pooled, m), np.ceil(mean + half)).astype(np.int64)
    lengths = high - low + 1
    owner = np.repeat(np.arange(pooled.size), lengths)
    starts = np.cumsum(lengths) - lengths
    k = (np.arange(lengths.sum()) - np.repeat(starts, lengths) + np.repeat(low, lengths)).astype(np.float64)
    t = pooled[owner].astype(np.float64)
    # log P(X = k) = log C(m, k) + log C(n, t - k) - log C(n + m, t)
    log_pmf = (
        _log_choose(float(m), k, gammaln)
        + _log_choose(float(n), t - k, gammaln)
        - _log_choose(float(total), t, gammaln)
    )
    pmf = np.exp(log_pmf)
    observed = batch[owner]
    lower = np.bincount(owner, weights=np.where(k <= observed, pmf, 0.0), minlength=pooled.size)
    upper = np.bincount(owner, weights=np.where(k >= observed, pmf, 0.0), minlength=pooled.size)
    # Outside the summed window the mass is below e^-800: an observation there has p = 0 either way.
    return np.asarray(np.minimum(1.0, 2.0 * np.minimum(lower, upper)))


def _log_choose(a: float | np.ndarray, b: np.ndarray, gammaln: Callable[..., Any]) -> np.ndarray:
    import numpy as np

    return np.asarray(gammaln(a + 1.0) - gammaln(b + 1.0) - gammaln(a - b + 1.0))


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
