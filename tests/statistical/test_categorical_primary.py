"""What the categorical primary test (``head_tail``, tasks/drift/categorical.py) claims, on seeded simulations of
the long-tailed categorical of ``devkit.processes`` (100 Zipf levels, the top one ~28 %).

* Size: under "no drift" its p-value is at most alpha + 3 Monte-Carlo standard errors below alpha, at a reference
  the size of the batch (1k / 1k) and at a 10k reference; a fresh reference per draw, so the reference's own
  sampling error is part of what is measured.
* Power: a +2-point shift of the top level in 10k-row batches against a 50k reference drifts alone (p at most
  0.005, Holm's first step at 10 features, and above its threshold) in at least 70 % of batches (measured
  ~0.8), far more often than Jensen-Shannon, the primary it replaced (~0.1); a +1-point rise of the 30th level
  (0.5 % -> 1.5 %) in at least 95 %.
* The smoothed two-sample null of the distance statistics: at reference = batch = 1k, chi2/JS/Hellinger alert
  on at most 3.5 % of stationary batches at a nominal 1 % (the plug-in null gave 9-12 % on this process).

    uv run --frozen pytest tests/statistical/test_categorical_primary.py -m slow -s -q
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from devkit.processes import head_shift, long_tailed_shares, tail_shift
from tasks.drift.categorical import head_tail_p_value
from tasks.drift.reference import CategoricalReference, calibrate_column
from tasks.drift.statistics import chi2_statistic, hellinger, jensen_shannon, jensen_shannon_p_value

HOLM_FIRST_STEP = 0.05 / 10
SHARES = long_tailed_shares()


def _bound(level: float, draws: int) -> float:
    return level + 3.0 * math.sqrt(level * (1.0 - level) / draws)


@pytest.mark.parametrize("reference_rows", [1_000, 10_000])
def test_null_size_is_at_most_alpha(reference_rows: int) -> None:
    rng = np.random.default_rng([20_261_206, reference_rows])
    draws = 2_000
    p = np.array(
        [
            head_tail_p_value(rng.multinomial(reference_rows, SHARES), rng.multinomial(1_000, SHARES))
            for _ in range(draws)
        ]
    )
    for level in (0.01, 0.05):
        size = float((p <= level).mean())
        print(f"reference {reference_rows}: P(p <= {level}) = {size:.4f} (bound {_bound(level, draws):.4f})")
        assert size <= _bound(level, draws)


def _drifts_alone(reference: np.ndarray, batch: np.ndarray) -> tuple[bool, bool]:
    """(head_tail, Jensen-Shannon) each passing Holm's first step at 10 features."""
    n, m = int(reference.sum()), int(batch.sum())
    js = float(jensen_shannon(reference / n, batch / m))
    js_p = jensen_shannon_p_value(js, n, m, int(np.count_nonzero(reference + batch)))
    return head_tail_p_value(reference, batch) <= HOLM_FIRST_STEP, js_p <= HOLM_FIRST_STEP


def test_power_on_head_and_tail_shifts_at_10k_rows() -> None:
    rng = np.random.default_rng(20_261_207)
    batches = 300
    head = np.array(
        [
            _drifts_alone(rng.multinomial(50_000, SHARES), rng.multinomial(10_000, head_shift(0.02)))
            for _ in range(batches)
        ]
    )
    tail = np.array(
        [
            _drifts_alone(rng.multinomial(50_000, SHARES), rng.multinomial(10_000, tail_shift(0.01)))
            for _ in range(batches)
        ]
    )
    head_rate, js_head_rate = head.mean(axis=0)
    tail_rate = tail.mean(axis=0)[0]
    print(f"head +2 pt: head_tail {head_rate:.3f}, jensen_shannon {js_head_rate:.3f}; tail +1 pt: {tail_rate:.3f}")
    assert head_rate >= 0.70
    assert head_rate > js_head_rate + 0.3
    assert tail_rate >= 0.95


def test_distance_thresholds_hold_at_a_reference_the_size_of_the_batch() -> None:
    rng = np.random.default_rng(20_261_208)
    references, batches, rows = 30, 50, 1_000
    alerts = np.zeros(3)
    for index in range(references):
        counts = rng.multinomial(rows, SHARES)
        seen = np.flatnonzero(counts)
        ref = CategoricalReference(
            name=f"c{index}",
            kind="categorical",
            count=rows,
            categories=tuple(f"c{i:03d}" for i in seen),
            counts=tuple(int(counts[i]) for i in seen),
            known=tuple(f"c{i:03d}" for i in seen),
        )
        thresholds = calibrate_column(ref, rows, 0.99, 2_000)
        batch = rng.multinomial(rows, SHARES, size=batches)
        reference = np.broadcast_to(counts, batch.shape)
        statistics = (
            jensen_shannon(reference / rows, batch / rows),
            hellinger(reference / rows, batch / rows),
            chi2_statistic(reference, batch)[0],
        )
        for j, (method, values) in enumerate(zip(("jensen_shannon", "hellinger", "chi2"), statistics, strict=True)):
            alerts[j] += int((values > thresholds[method]).sum())
    rates = alerts / (references * batches)
    print(f"reference = batch = 1k: jensen_shannon, hellinger, chi2 alert on {np.round(rates, 4)} (nominal 0.01)")
    assert rates.max() <= 0.035
