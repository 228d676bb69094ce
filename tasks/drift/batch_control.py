"""Batch-level error control of drift alerts: the features that drift once multiplicity is accounted for.

Each (feature, primary statistic) threshold is calibrated so that a stationary batch alerts on it about
``1 - false_alarm_quantile`` (1 %) of the time. What the policy acts on is "some feature drifts", which a
stationary batch with k features shows about 1 - 0.99^k of the time (10 % at 10 features, 22 % at 25).
Here the family of drift tests that reach the policy (each contract feature's primary statistic and the
multivariate PCA test) is corrected together with Holm's step-down procedure, so that the probability of a
stationary batch giving *any* drift evidence is at most ``profiling.batch_alpha``, whatever k is.

p-values (one per test in the family; ``FeatureDrift.p_value``):

- KS (numeric features): Kolmogorov's limiting distribution of sqrt(nm/(n+m)) D, the supremum of a
  Brownian bridge. The thresholds are simulated from the same bridge, observed at the reference's atoms
  (Donsker); a supremum over fewer points is smaller, so with ties (zero-inflated or discrete columns)
  the p-value is conservative, and for continuous columns it equals the simulated null's tail. The
  finite-size tail of the two-sample KS statistic lies below the limit (Stephens' correction goes the
  other way), which again errs on the safe side.
- head_tail (categorical and boolean features, the label): exact given the pooled counts whatever the true
  shares and the reference's size: the L-infinity distance's union-bound p-value over the categories'
  hypergeometric laws (head) and the most surprising category's Fisher test, Bonferroni over categories
  (tail), twice the smaller (:mod:`tasks.drift.categorical`); valid, conservative by the discreteness and
  the union bounds. (The
  asymptotic Jensen-Shannon p-value it replaced passed Holm's first step on 10-19 % of stationary
  long-tailed categoricals at 1k-row batches.)
- PCA reconstruction error: the one-sided normal p-value of the chunk mean (``tasks/drift/multivariate.py``).

These are tail formulas rather than Monte-Carlo ranks on purpose: Holm's first step tests at alpha / k
(5e-4 at 100 features), beyond what the 2,000 calibration replicates resolve. The statistical tests in
``tests/statistical/test_batch_control.py`` and ``benchmarks/calibration.py`` measure the resulting rate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tasks.drift.results import FeatureDrift

# Kinds whose primary test is drift evidence for the policy (the prediction and the label are reported only).
FAMILY_KINDS = frozenset({"numeric", "categorical", "boolean", "multivariate"})


def holm(p_values: Sequence[float], alpha: float) -> list[bool]:
    """Holm's step-down rejections at family-wise error ``alpha``, in the order of ``p_values``.

    Sort the m p-values; reject the i-th smallest (i = 0, 1, ...) while it is at most alpha / (m - i), and
    stop at the first that is not. Guarantee: when every p-value of a true null hypothesis is valid
    (P(p <= u) <= u), the probability of rejecting *any* true null is at most ``alpha``. Valid under any
    dependence between the tests: the proof uses only Bonferroni's union bound over the m0 true nulls
    (the first true null reached is rejected only if some true null has p <= alpha / m0), never their
    independence. Drift statistics of one batch are dependent (correlated features, one shared reference,
    the PCA test built from the same columns), so this is the property needed; it is uniformly at least
    as powerful as Bonferroni. Missing or non-finite p-values count as 1 (never rejected).
    """
    m = len(p_values)
    cleaned = [p if p is not None and math.isfinite(p) else 1.0 for p in p_values]
    order = sorted(range(m), key=lambda i: cleaned[i])
    rejected = [False] * m
    for rank, index in enumerate(order):
        if cleaned[index] > alpha / (m - rank):
            break
        rejected[index] = True
    return rejected


def control_batch(
    drift: Sequence[FeatureDrift], features: Sequence[str], alpha: float, method: str
) -> list[FeatureDrift]:
    """``drift`` with ``batch_alert`` set on the tests of the family: the one multiplicity correction.

    The family is each contract feature's primary row and the multivariate row. A test survives when its
    own calibrated threshold alerts *and* Holm rejects it at ``alpha`` (a subset of Holm's rejections, so
    the guarantee of :func:`holm` holds). ``method`` "none" leaves the per-test alerts uncorrected. Rows
    outside the family keep ``batch_alert`` None.
    """
    contract = set(features)
    family = [
        i
        for i, d in enumerate(drift)
        if d.primary and d.kind in FAMILY_KINDS and (d.kind == "multivariate" or d.feature in contract)
    ]
    if method == "none":
        survives = [drift[i].alert for i in family]
    elif method == "holm":
        rejected = holm([_p(drift[i]) for i in family], alpha)
        survives = [drift[i].alert and r for i, r in zip(family, rejected, strict=True)]
    else:
        raise ValueError(f"unknown batch correction {method!r}; expected 'holm' or 'none'")
    out = list(drift)
    for i, keep in zip(family, survives, strict=True):
        out[i] = replace(out[i], batch_alert=bool(keep))
    return out


def _p(row: FeatureDrift) -> float:
    return 1.0 if row.p_value is None else float(row.p_value)
