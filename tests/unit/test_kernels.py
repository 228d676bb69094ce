"""Compiled profiling kernels: the radix sort equals numpy's sort, the merge equals scipy and the numpy twin."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ks_2samp, skew, wasserstein_distance

from tasks.kernels import WIDE_DIGIT_MAX, ks_wasserstein, moments, sort_floats
from tasks.profiling import ecdf_statistics


def _samples(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "normal":
        return rng.normal(0.0, 1.0, size)
    if kind == "ties":
        return rng.poisson(3.0, size).astype(np.float64) - 2.0
    if kind == "signed-zeros":
        return rng.choice(np.array([-0.0, 0.0, -1e-300, 1e-300, -5.5, 7.25]), size)
    if kind == "epoch":  # many values share their top 32 bits: long runs finished on the low bits
        return 1.7e9 + rng.uniform(0.0, 1e6, size)
    if kind == "clustered":  # short runs within 1e-6 relative of each other
        return 1.0 + rng.uniform(0.0, 1e-6, size) * rng.choice([1.0, 1e-3], size)
    if kind == "wide":  # magnitudes from 1e-300 to 1e300, both signs, and infinities
        values = rng.choice([-1.0, 1.0], size) * 10.0 ** rng.uniform(-300, 300, size)
        values[: min(size, 2)] = [np.inf, -np.inf][: min(size, 2)]
        return values
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["normal", "ties", "signed-zeros", "epoch", "clustered", "wide"])
@pytest.mark.parametrize("size", [0, 1, 2, 3, 1_000, WIDE_DIGIT_MAX + 1_000])
def test_sort_floats_equals_numpy_sort(kind: str, size: int) -> None:
    values = _samples(kind, size, np.random.default_rng(size))
    before = values.copy()
    result = sort_floats(values)
    assert np.array_equal(result, np.sort(values))
    assert np.array_equal(values, before), "the input is left as it was"
    # -0.0 and 0.0 compare equal; the sort still keeps them in a deterministic (sign-bit) order
    assert not np.any(np.diff(result) < 0)


@pytest.mark.parametrize("kind", ["normal", "ties", "signed-zeros"])
@pytest.mark.parametrize(("n", "m"), [(1, 1), (7, 300), (5_000, 5_000), (20_000, 3_001)])
def test_ks_wasserstein_equals_scipy_and_the_numpy_twin(kind: str, n: int, m: int) -> None:
    rng = np.random.default_rng(n * m)
    reference = np.sort(_samples(kind, n, rng))
    batch = np.sort(_samples(kind, m, rng) + (0.1 if kind == "normal" else 0.0))
    ks, wasserstein = ks_wasserstein(reference, batch)
    assert ks == pytest.approx(ks_2samp(reference, batch).statistic, abs=1e-15)
    assert wasserstein == pytest.approx(wasserstein_distance(reference, batch), rel=1e-12, abs=1e-300)
    twin_ks, twin_wasserstein = ecdf_statistics(reference, batch)
    assert ks == twin_ks
    assert wasserstein == pytest.approx(twin_wasserstein, rel=1e-12, abs=1e-300)


def test_identical_samples_have_zero_distance() -> None:
    values = np.sort(np.random.default_rng(3).normal(size=1_000))
    assert ks_wasserstein(values, values) == (0.0, 0.0)


@pytest.mark.parametrize("kind", ["normal", "ties"])
def test_moments_equal_numpy_and_scipy(kind: str) -> None:
    values = _samples(kind, 10_000, np.random.default_rng(5)) * 3.0 + 1.0
    mean, std, skewness = moments(values)
    assert mean == pytest.approx(values.mean(), rel=1e-12)
    assert std == pytest.approx(values.std(), rel=1e-12)
    assert skewness == pytest.approx(skew(values), rel=1e-9)
    assert moments(np.full(10, 2.5)) == (2.5, 0.0, 0.0)


def test_merge_equals_the_numpy_twin_on_many_small_tie_heavy_samples() -> None:
    # The merge walks two halves split at the median merged position; ties across the split and
    # samples of one or two values are where such a split goes wrong.
    rng = np.random.default_rng(11)
    for _ in range(3_000):
        n, m = rng.integers(1, 25, size=2)
        reference = np.sort(rng.integers(0, 5, n).astype(np.float64))
        batch = np.sort(rng.integers(0, 5, m).astype(np.float64))
        ks, wasserstein = ks_wasserstein(reference, batch)
        twin_ks, twin_wasserstein = ecdf_statistics(reference, batch)
        assert ks == twin_ks
        assert wasserstein == pytest.approx(twin_wasserstein, rel=1e-12, abs=1e-15)
