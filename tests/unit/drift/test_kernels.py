"""Compiled profiling kernels: the radix sort equals numpy's sort, the merge equals scipy and the numpy twin,
the calibration kernels equal the numpy code they replaced. Every test runs on both paths: the kernels, and
the numpy twins that small inputs take in a process that has not loaded them."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy.stats import ks_2samp, skew, wasserstein_distance

from tasks.drift import kernels
from tasks.drift.kernels import (
    WIDE_DIGIT_MIN,
    binned_distances,
    brownian_bridges,
    count_short_strings,
    ks_wasserstein,
    moments,
    multinomial_counts,
    sort_column,
    sort_floats,
    sort_with_moments,
)
from tasks.drift.statistics import ecdf_statistics, hellinger, jensen_shannon, population_stability_index


@pytest.fixture(autouse=True, params=["compiled", "numpy"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which implementation the size-switched functions take in this test."""
    monkeypatch.setattr(kernels, "_use_compiled", lambda size: request.param == "compiled")
    return str(request.param)


def test_small_inputs_take_numpy_until_the_kernels_are_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()  # the real switch, not the fixture's
    monkeypatch.setattr(kernels, "_compiled", {})
    assert not kernels._use_compiled(kernels.COMPILED_MIN_VALUES - 1)
    assert kernels._use_compiled(kernels.COMPILED_MIN_VALUES)
    monkeypatch.setattr(kernels, "_compiled", {"merge": object()})
    assert kernels._use_compiled(10), "once loaded, the kernels serve every size"


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
@pytest.mark.parametrize("size", [0, 1, 2, 3, 1_000, WIDE_DIGIT_MIN + 1_000])
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


@pytest.mark.slow
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


@pytest.mark.parametrize("kind", ["normal", "ties", "epoch", "wide"])
def test_sorting_chunks_equals_sorting_them_joined(kind: str) -> None:
    values = _samples(kind, 30_001, np.random.default_rng(8))
    pieces = np.array_split(values, 7)
    assert np.array_equal(sort_floats(pieces), np.sort(values))
    assert np.array_equal(sort_floats([values[:1], values[1:0]]), values[:1])
    column = pl.concat([pl.Series("x", [3.0, None, -1.0]), pl.Series("x", [None, 2.0])], rechunk=False)
    assert column.n_chunks() == 2
    assert sort_column(column)[0].tolist() == [-1.0, 2.0, 3.0]


@pytest.mark.parametrize("kind", ["normal", "ties", "epoch"])
@pytest.mark.parametrize("size", [1, 2, 1_000, WIDE_DIGIT_MIN + 1_000])
def test_sort_with_moments_equals_sort_and_moments(kind: str, size: int) -> None:
    values = _samples(kind, size, np.random.default_rng(size)) * 3.0 + 1.0
    ordered, mean, std, skewness = sort_with_moments(np.array_split(values, 3))
    assert np.array_equal(ordered, np.sort(values))
    expected = moments(np.sort(values))
    assert mean == pytest.approx(expected[0], rel=1e-12, abs=1e-12)
    assert std == pytest.approx(expected[1], rel=1e-9, abs=1e-12)
    assert skewness == pytest.approx(expected[2], rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("total", [30, 100_000, 1_000_000])
def test_multinomial_kernel_draws_what_the_numpy_code_drew(total: int) -> None:
    # numba runs numpy's Generator algorithms on the same bit stream: the same seed gives the same counts
    shares = np.array([0.3, 0.0, 0.25, 0.2, 0.15, 0.06, 0.03, 0.01])
    drawn = multinomial_counts(np.random.default_rng(total), total, shares, 500, 1_000.0)
    twin = kernels._numpy_multinomial(np.random.default_rng(total), total, shares, 500, 1_000.0)
    assert np.array_equal(drawn, twin)


def test_binned_distances_equal_the_numpy_statistics() -> None:
    rng = np.random.default_rng(4)
    shares = np.array([0.4, 0.3, 0.2, 0.09, 0.01, 0.0])
    reference = rng.multinomial(100_000, shares, size=300)
    batch = rng.multinomial(2_000, shares, size=300)
    js, distance, psi = binned_distances(reference, batch, 1e-4)
    p, q = reference / 100_000, batch / 2_000
    np.testing.assert_allclose(js, jensen_shannon(p, q), rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(distance, hellinger(p, q), rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(psi, population_stability_index(p, q), rtol=1e-9, atol=1e-15)
    only_psi = binned_distances(reference, batch, 1e-4, shape_distances=False)
    assert not only_psi[0].any() and np.array_equal(only_psi[2], psi)


def test_brownian_bridges_equal_the_numpy_construction() -> None:
    masses = np.random.default_rng(6).dirichlet(np.ones(50))
    steps = np.random.default_rng(7).standard_normal((200, masses.size), dtype=np.float32)
    walk = (steps * np.sqrt(masses).astype(np.float32)).cumsum(axis=1)
    expected = np.abs(walk - np.cumsum(masses).astype(np.float32) * walk[:, -1:])
    largest = brownian_bridges(steps, masses)  # in place
    np.testing.assert_allclose(steps, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(largest, expected.max(axis=1), rtol=1e-4, atol=1e-5)


def _polars_counts(column: pl.Series) -> dict[str, int]:
    return {str(value): int(n) for value, n in column.value_counts(name="n").iter_rows()}


def test_short_strings_are_counted_as_polars_counts_them() -> None:
    rng = np.random.default_rng(9)
    alphabet = ["", "a", "b", "héllo", "twelve_bytes", "ünïcødé", "x" * 11, "0", "00"]
    values = [alphabet[i] for i in rng.integers(0, len(alphabet), 50_000)]
    column = pl.Series("c", values)
    assert count_short_strings(column) == _polars_counts(column)
    # several chunks, one of them a slice (an offset into its views)
    pieces = pl.concat([column.slice(0, 1_000), column.slice(1_234, 20_000)], rechunk=False)
    assert pieces.n_chunks() == 2
    assert count_short_strings(pieces) == _polars_counts(pieces)
    assert count_short_strings(pl.Series("c", [], dtype=pl.String)) == {}


@pytest.mark.parametrize(
    "column",
    [
        pl.Series("c", ["short", "a string of thirteen+ bytes"]),  # its view points into a data buffer
        pl.Series("c", ["a", None]),  # nulls are the caller's to drop
        pl.Series("c", [str(i) for i in range(5_000)]),  # more distinct values than the table holds
        pl.Series("c", [1, 2, 2]),  # not text
    ],
)
def test_strings_the_view_counter_cannot_count_are_left_to_polars(column: pl.Series) -> None:
    assert count_short_strings(column) is None
