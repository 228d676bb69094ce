"""The categorical primary test (tasks/drift/categorical.py): exact p-values, head and tail detection, booleans,
labels and unseen categories, and the smoothed two-sample null of the distance statistics."""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl
import pytest
from scipy.stats import hypergeom

from devkit.processes import head_shift, long_tailed_shares, tail_shift
from tasks.drift.categorical import (
    fisher_p_values,
    head_tail_p_value,
    surprise,
    surprise_threshold,
    two_sample_null_shares,
)
from tasks.drift.profiling import categorical_drift
from tasks.drift.reference import CategoricalReference, _categorical_reference, calibrate_column


def _scipy_fisher(batch: np.ndarray, pooled: np.ndarray, n: int, m: int) -> np.ndarray:
    lower = hypergeom.cdf(batch, n + m, m, pooled)
    upper = hypergeom.sf(batch - 1, n + m, m, pooled)
    return np.asarray(np.minimum(1.0, 2.0 * np.minimum(lower, upper)))


@pytest.mark.parametrize(("n", "m"), [(7, 5), (60, 40), (1_000, 1_000), (50_000, 10_000)])
def test_per_category_p_values_are_fishers_exact_test(n: int, m: int) -> None:
    rng = np.random.default_rng(n)
    pooled = rng.integers(0, min(n, m) + 1, 30)
    batch = np.array([rng.integers(max(0, t - n), min(t, m) + 1) for t in pooled])
    # Exact to 3e-87: the mass beyond the summed window (see HOEFFDING_WIDTH) is left out.
    np.testing.assert_allclose(
        fisher_p_values(batch, pooled, n, m), _scipy_fisher(batch, pooled, n, m), rtol=1e-9, atol=1e-86
    )


def _exact_size(reference: int, batch: int, shares: list[float], level: float) -> float:
    """P(head_tail p <= level) under "no drift", enumerated over every pair of count vectors."""
    from scipy.stats import multinomial

    total = 0.0
    vectors = {
        size: [v for v in itertools.product(range(size + 1), repeat=len(shares)) if sum(v) == size]
        for size in (reference, batch)
    }
    for r in vectors[reference]:
        pr = multinomial.pmf(r, reference, shares)
        for c in vectors[batch]:
            if head_tail_p_value(np.array(r), np.array(c)) <= level:
                total += pr * multinomial.pmf(c, batch, shares)
    return float(total)


@pytest.mark.parametrize(
    ("shares", "sizes"),
    [([0.5, 0.5], (12, 12)), ([0.5, 0.5], (20, 8)), ([0.7, 0.25, 0.05], (8, 8)), ([0.9, 0.06, 0.03, 0.01], (5, 5))],
)
def test_p_value_is_valid_on_small_cases_enumerated_exactly(shares: list[float], sizes: tuple[int, int]) -> None:
    # References as small as the batch: the reference's own sampling error must be in the test.
    for level in (0.01, 0.05, 0.2):
        assert _exact_size(*sizes, shares, level) <= level


def test_identical_samples_and_empty_ones_give_p_one() -> None:
    counts = np.array([50, 30, 15, 5])
    assert head_tail_p_value(counts, counts) == 1.0
    assert head_tail_p_value(counts, np.zeros(4)) == 1.0
    assert head_tail_p_value(np.zeros(4), counts) == 1.0


def test_head_and_tail_shifts_are_detected_and_calm_batches_are_not() -> None:
    rng = np.random.default_rng(3)
    shares = long_tailed_shares()
    reference = rng.multinomial(50_000, shares)
    calm = [head_tail_p_value(reference, rng.multinomial(10_000, shares)) for _ in range(20)]
    head = [head_tail_p_value(reference, rng.multinomial(10_000, head_shift(0.04))) for _ in range(20)]
    tail = [head_tail_p_value(reference, rng.multinomial(10_000, tail_shift(0.01))) for _ in range(20)]
    assert min(calm) > 1e-3
    assert np.median(head) < 1e-6
    assert max(tail) < 1e-6


def _reference(values: pl.Series, kind: str) -> CategoricalReference:
    return _categorical_reference(values, "x", kind, [])


def test_booleans_labels_and_unseen_categories_work_end_to_end() -> None:
    rng = np.random.default_rng(5)
    flags = _reference(pl.Series(rng.random(5_000) < 0.3), "boolean")
    assert flags.categories == ("false", "true")
    stats = categorical_drift(flags, ["false", "true"], [600, 400])
    statistic, p_value = stats["head_tail"]
    assert p_value is not None and p_value < 1e-6 and statistic == pytest.approx(surprise(p_value))

    labels = _reference(pl.Series(rng.integers(0, 2, 4_000)), "label")
    calm = categorical_drift(labels, list(labels.categories), [int(c) // 4 for c in labels.counts])
    assert calm["head_tail"][1] == pytest.approx(1.0, abs=0.1)

    segments = _reference(pl.Series(rng.choice(["a", "b", "c"], 3_000)), "categorical")
    # A category never seen in the reference, at 3 % of the batch: the tail test alone catches it.
    unseen = categorical_drift(segments, ["a", "b", "c", "new"], [323, 323, 324, 30])
    assert unseen["head_tail"][1] is not None and unseen["head_tail"][1] < 1e-6
    one_new = categorical_drift(segments, ["a", "b", "c", "new"], [333, 333, 333, 1])
    assert one_new["head_tail"][1] is not None and one_new["head_tail"][1] > 0.05


def test_head_tail_threshold_needs_no_simulation() -> None:
    segments = _reference(pl.Series(np.repeat(["a", "b", "c"], [500, 300, 200])), "categorical")
    thresholds = calibrate_column(segments, 1_000, 0.99, 2_000)
    assert thresholds["head_tail"] == pytest.approx(surprise_threshold(0.99)) == pytest.approx(2.0)
    assert set(thresholds) == {"jensen_shannon", "hellinger", "chi2", "l_infinity", "head_tail"}


def test_two_sample_null_shares_add_the_unseen_mass() -> None:
    plain = np.array([500.0, 300.0, 200.0])
    np.testing.assert_allclose(two_sample_null_shares(plain), plain / 1_000)
    # Ten singletons, two doubletons: Good-Turing's unseen mass 10/n over max(10, Chao1 = 15) categories.
    counts = np.array([900.0, 86.0, 2.0, 2.0, *([1.0] * 10)])
    shares = two_sample_null_shares(counts)
    assert shares.sum() == pytest.approx(1.0)
    assert shares.size == counts.size + 15
    np.testing.assert_allclose(shares[counts.size :], 10 / 1_000 / 15)
    np.testing.assert_allclose(shares[: counts.size], counts / 1_000 * (1 - 10 / 1_000))
