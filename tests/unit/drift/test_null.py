"""The resampled drift null (tasks/drift/null.py): shape, the bins it reaches, determinism, and the kernel
equal to its numpy twin. Every test runs on both paths, as in test_kernels.py."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import polars as pl
import pytest

from tasks.drift import kernels
from tasks.drift.null import (
    NULL_MAX_SIDE,
    NULL_REFERENCE_RATIO,
    NULL_SMALL_BATCH_RATIO,
    BridgeNulls,
    resampled_null,
    resampled_null_units,
    resampled_thresholds,
    simulated_sizes,
    uses_resampled_null,
)
from tasks.drift.profiling import numeric_drift
from tasks.drift.reference import NumericReference, _numeric_reference, attach_nulls, calibrate_column
from tasks.drift.statistics import (
    _bin_counts,
    _histogram_counts,
    doane_edges,
    ecdf_statistics,
    hellinger,
    jensen_shannon,
    population_stability_index,
)

METHODS = ("ks", "wasserstein", "jensen_shannon", "hellinger", "psi")


@pytest.fixture(autouse=True, params=["compiled", "numpy"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(kernels, "_use_compiled", lambda size: request.param == "compiled")
    return str(request.param)


def _heavy(size: int, seed: int = 1) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).standard_t(3, size))


def _zero_inflated(size: int, seed: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.sort(np.where(rng.random(size) < 0.6, 0.0, rng.lognormal(0.0, 1.0, size)))


def test_kernel_equals_the_numpy_twin() -> None:
    for sample in (_heavy(300), _zero_inflated(300), np.sort(np.random.default_rng(3).poisson(2.0, 300) * 1.0)):
        compiled = kernels._kernels()["resampled_distances"](np.random.default_rng(5), sample, 120, 80, 40, 1e-4, 10)
        twin = kernels._numpy_resampled_distances(np.random.default_rng(5), sample, 120, 80, 40, 1e-4, 10)
        assert compiled.shape == (5, 40)
        assert np.array_equal(compiled[0], twin[0]), "KS counts the same draws in integers"
        np.testing.assert_allclose(compiled, twin, rtol=1e-9, atol=1e-12)


def test_a_replicate_is_a_pair_binned_as_batches_are(monkeypatch: pytest.MonkeyPatch) -> None:
    # One replicate by hand: the same draws, binned by the profiling code's own functions.
    sample = _heavy(400)
    n, m = 150, 90
    statistics = kernels.resampled_distances(np.random.default_rng(8), sample, n, m, 1, 1e-4, 10)[:, 0]
    rng = np.random.default_rng(8)
    reference = kernels._numpy_sorted_draws(rng, sample, n)
    batch = kernels._numpy_sorted_draws(rng, sample, m)
    assert np.all(np.diff(reference) >= 0) and np.all(np.diff(batch) >= 0)
    edges = doane_edges(reference)
    p = np.append(_histogram_counts(reference, edges)[:-1], 0) / n
    q = _histogram_counts(batch, edges) / m
    ranks = np.ceil(n * (np.arange(1, 10) / 10)).astype(np.int64) - 1
    deciles = np.unique(reference[ranks][reference[ranks] > reference[0]])
    expected = (
        *ecdf_statistics(reference, batch),
        float(jensen_shannon(p, q)),
        float(hellinger(p, q)),
        float(population_stability_index(_bin_counts(reference, deciles) / n, _bin_counts(batch, deciles) / m)),
    )
    np.testing.assert_allclose(statistics, expected, rtol=1e-9, atol=1e-12)


def _pairs(
    sample: np.ndarray, seed: int, size: int, trials: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``trials`` simulated (reference, batch) pairs of ``size`` values each, with the reference's doane edges."""
    rng = np.random.default_rng(seed)
    for _ in range(trials):
        reference = kernels._numpy_sorted_draws(rng, sample, size)
        batch = kernels._numpy_sorted_draws(rng, sample, size)
        yield reference, batch, doane_edges(reference)


def test_draws_reach_the_outside_bin_and_keep_atoms_exact() -> None:
    sample = _zero_inflated(500)
    outside = 0
    for reference, batch, edges in _pairs(sample, 11, 100, 200):
        outside += int(_histogram_counts(batch, edges)[-1])
        assert np.count_nonzero(reference == 0.0) > 40, "the zeros stay an exact atom"
        assert reference[0] >= sample[0], "a tied end (the zeros) is the support's end"
    # A chunk value beyond the simulated reference's range: about 2 m / (n + 1) per pair, as under the real null.
    assert 0.5 * 200 < outside < 4 * 200


def test_empty_reference_bins_are_reached_on_heavy_tails() -> None:
    reached = 0
    for reference, batch, edges in _pairs(_heavy(2_000), 12, 300, 50):
        empty = _histogram_counts(reference, edges)[:-1] == 0
        reached += int(np.any(_histogram_counts(batch, edges)[:-1][empty] > 0))
    assert reached > 0


def test_the_null_is_deterministic_and_scaled_beyond_the_simulated_sizes() -> None:
    sample = _heavy(500)
    first = resampled_null(sample, 500, 400, 50, "x")
    again = resampled_null(sample, 500, 400, 50, "x")
    assert set(first) == set(METHODS)
    for method in METHODS:
        assert first[method].shape == (50,)
        assert np.array_equal(first[method], again[method])
    other = resampled_null(sample, 500, 400, 50, "y")
    assert not np.array_equal(first["ks"], other["ks"]), "each column gets its own stream"
    assert simulated_sizes(4 * 10**5, 10**5) == (NULL_MAX_SIDE, NULL_MAX_SIDE)
    # Beyond NULL_REFERENCE_RATIO a small batch keeps the real ratio of the sizes, within the pair budget.
    assert simulated_sizes(10_000, 1_000) == (7_270, 727)
    assert simulated_sizes(2_000, 200) == (2_000, 200), "within the budget: the real sizes"
    assert uses_resampled_null(2_000, 2_000, 2_000)
    assert uses_resampled_null(NULL_SMALL_BATCH_RATIO * 100, 100, 2_000), "a small batch, a reference 64 times it"
    assert not uses_resampled_null(NULL_SMALL_BATCH_RATIO * 100 + 1, 100, 2_000)
    assert not uses_resampled_null(NULL_REFERENCE_RATIO * 3_000 + 1, 3_000, 2_000), "a large batch: the ratio rules"
    assert not uses_resampled_null(2_000, 2_000, 1), "a single value has no spread to resample"


def test_calibration_takes_the_larger_null_and_scales_it_to_other_sizes() -> None:
    values = np.random.default_rng(13).standard_t(3, 600)
    bridges = BridgeNulls(0.99, 200)
    ref = attach_nulls(_numeric_reference(pl.Series(values), "t3", "numeric"), bridges, 600)
    plain = attach_nulls(ref, bridges, 600 // (NULL_SMALL_BATCH_RATIO + 1))  # a reference far larger: not simulated
    assert len(ref.resampled_null_unit) == len(METHODS) and plain.resampled_null_unit == ()
    assert resampled_null_units(ref.sample, 600, "t3", 600, 0.99, 200) == ref.resampled_null_unit
    thresholds = calibrate_column(ref, 600, 0.99, 200)
    assert thresholds == calibrate_column(ref, 600, 0.99, 200)
    null = resampled_null(ref.sample, ref.count, 600, 200, "t3")
    for method in METHODS:
        assert thresholds[method] >= float(np.quantile(null[method], 0.99)) * (1 - 1e-12)
        assert thresholds[method] >= calibrate_column(plain, 600, 0.99, 200)[method]
    units = ref.resampled_null_unit
    at_half = resampled_thresholds(units, 600, 300)
    ratio = np.sqrt((1 / 600 + 1 / 300) / (1 / 600 + 1 / 600))
    assert at_half["hellinger"] == pytest.approx(resampled_thresholds(units, 600, 600)["hellinger"] * ratio)
    assert at_half["psi"] == pytest.approx(resampled_thresholds(units, 600, 600)["psi"] * ratio**2)
    assert resampled_thresholds(units, 600, 600 // (NULL_SMALL_BATCH_RATIO + 1)) == {}, "a reference far larger"
    assert resampled_thresholds((), 600, 600) == {}, "never simulated: nothing to add"
    assert NumericReference.from_dict(ref.to_dict()).resampled_null_unit == units, "the profile keeps them"
    # The reference against itself is far below every threshold.
    drift = numeric_drift(ref, ref.sample)
    assert all(drift[method][0] < thresholds[method] for method in METHODS)


def test_tied_values_are_drawn_exactly() -> None:
    sample = np.sort(np.random.default_rng(14).poisson(3.0, 500).astype(np.float64))
    draws = kernels._numpy_sorted_draws(np.random.default_rng(15), sample, 5_000)
    values, counts = np.unique(sample, return_counts=True)
    # Up to the last tied value every draw is a sample value; the tail's single values are smoothed.
    within = draws[draws <= values[counts > 1].max()]
    assert set(np.unique(within)) <= set(values), "no draw falls between two tied integers"
    continuous = _heavy(500)
    smooth = kernels._numpy_sorted_draws(np.random.default_rng(16), continuous, 2_000)
    assert np.unique(smooth).size == smooth.size, "values seen once are smoothed, not repeated"


def test_the_binned_null_draws_batches_into_the_outside_and_empty_bins() -> None:
    from tasks.drift.reference import _smoothed_shares

    heavy = _numeric_reference(pl.Series(_heavy(5_000)), "t3", "numeric")
    shares = _smoothed_shares(heavy)
    assert shares.size == len(heavy.histogram_proportions) + 1
    assert shares.sum() == pytest.approx(1.0)
    assert shares[-1] == pytest.approx(2 / 5_001), "both continuous ends: 1/(n + 1) each"
    cauchy = _numeric_reference(pl.Series(np.random.default_rng(6).standard_cauchy(5_000)), "cauchy", "numeric")
    empty = np.asarray(cauchy.histogram_proportions) == 0
    assert empty.any() and np.all(_smoothed_shares(cauchy)[:-1][empty] > 0), "sparse tails leave bins empty"
    counts = np.sort(np.random.default_rng(4).binomial(4, 0.5, 5_000) * 1.0)  # 0 and 4 seen ~300 times each
    tied = _smoothed_shares(_numeric_reference(pl.Series(counts), "binomial", "numeric"))
    assert tied[-1] == 0.0, "tied ends (atoms) are the support's ends"
    assert tied.sum() == pytest.approx(1.0)


def test_a_large_fit_chunk_still_simulates_the_null_small_batches_use() -> None:
    sample = _heavy(3_000)
    # Reference 40k values, fit chunk 5,000 (ratio 8): simulated at the chunk size as before.
    assert resampled_null_units(sample, 40_000, "t3", 5_000, 0.99, 50) != ()
    # Reference 50k, fit chunk 5,000 (ratio 10): too large a chunk, so simulated at NULL_MAX_SIDE, where the
    # ratio (25) is within NULL_SMALL_BATCH_RATIO; 1k batches then get the resampled thresholds.
    units = resampled_null_units(sample, 50_000, "t3", 5_000, 0.99, 50)
    assert units == resampled_null_units(sample, 50_000, "t3", NULL_MAX_SIDE, 0.99, 50) != ()
    assert set(resampled_thresholds(units, 50_000, 1_000)) == set(METHODS)
    assert resampled_thresholds(units, 50_000, 5_000) == {}, "a large batch: the bridge and multinomial nulls"
    # A reference over 64 times NULL_MAX_SIDE: nothing to simulate.
    assert resampled_null_units(sample, 64 * NULL_MAX_SIDE + 1, "t3", 5_000, 0.99, 50) == ()


def test_draws_extend_beyond_continuous_ends_by_exponential_tails() -> None:
    sample = _heavy(2_000)
    lower, upper = kernels._numpy_tail_scales(sample)
    assert lower > 0 and upper > 0
    assert kernels._kernels()["tail_scales"](sample) == (lower, upper)
    draws = kernels._numpy_sorted_draws(np.random.default_rng(21), sample, 200_000)
    assert np.all(np.diff(draws) >= 0)
    beyond = np.count_nonzero(draws > sample[-1]) + np.count_nonzero(draws < sample[0])
    assert beyond == pytest.approx(2 * 200_000 / 2_001, rel=0.15), "1 / (n + 1) beyond each end"
    assert draws[-1] > sample[-1] + upper, "the tail reaches beyond the sample's largest value"
    tied = np.sort(np.random.default_rng(4).binomial(4, 0.5, 2_000) * 1.0)
    assert kernels._numpy_tail_scales(tied) == (0.0, 0.0)
