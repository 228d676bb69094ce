"""Profiling: statistics agree with scipy, thresholds hold the false-alarm rate, shifts and bad data are caught."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.special import kolmogorov
from scipy.stats import chi2_contingency, ks_2samp, wasserstein_distance

from tasks.core.errors import ConfigError, DataError, DtypeError, MissingColumnError, NonFiniteError
from tasks.core.settings import ProfilingSettings
from tasks.core.timeutil import utc
from tasks.data.contract import ModelContract, infer_contract, validate_batch
from tasks.data.files import STATIONARY, ScenarioGenerator, Shift, load_car_loan
from tasks.drift.chunked import drift_statistics
from tasks.drift.profiling import profile_batch
from tasks.drift.quality import check_schema, dtype_family
from tasks.drift.reference import ReferenceProfile, fit_reference_profile
from tasks.drift.results import BatchProfile, FeatureDrift, QualityIssue
from tasks.drift.statistics import chi2_statistic, doane_edges, ecdf_statistics, ks_p_value

SETTINGS = ProfilingSettings(chunk_size=2000)
CATEGORY_SHARES = [0.4, 0.3, 0.2, 0.1]
START = datetime(2024, 1, 1)


def synthetic(
    n: int,
    rng: np.random.Generator,
    *,
    first_id: int = 0,
    normal_mean: float = 0.0,
    category_shares: list[float] = CATEGORY_SHARES,
    positive_rate: float = 0.4,
    score_alpha: float = 2.0,
) -> pl.DataFrame:
    """Five features of different shapes (continuous, skewed, discrete, categorical, boolean) plus scores."""
    return pl.DataFrame(
        {
            "id": np.arange(first_id, first_id + n),
            "ts": [START + timedelta(seconds=int(s)) for s in np.sort(rng.integers(0, 86_400, n))],
            "x_normal": rng.normal(normal_mean, 1.0, n),
            "x_skewed": rng.lognormal(0.0, 1.0, n),
            "x_count": rng.poisson(3.0, n).astype(np.int64),
            "segment": rng.choice(["a", "b", "c", "d"], n, p=category_shares),
            "flag": rng.random(n) < 0.3,
            "y": (rng.random(n) < positive_rate).astype(np.int8),
            "y_pred_proba": rng.beta(score_alpha, 3.0, n),
        }
    )


@pytest.fixture(scope="module")
def reference() -> pl.DataFrame:
    return synthetic(20_000, np.random.default_rng(7))


@pytest.fixture(scope="module")
def contract(reference: pl.DataFrame) -> ModelContract:
    return infer_contract(reference, name="synthetic", target="y", entity_id="id", timestamp="ts")


@pytest.fixture(scope="module")
def profile(reference: pl.DataFrame, contract: ModelContract) -> ReferenceProfile:
    return fit_reference_profile(reference, contract, SETTINGS)


def _batch(contract: ModelContract, frame: pl.DataFrame) -> pl.DataFrame:
    return validate_batch(frame, contract, source="test batch")


def _row(result: BatchProfile, feature: str, method: str) -> FeatureDrift:
    return next(d for d in result.drift if d.feature == feature and d.method == method)


# --- statistics against scipy ----------------------------------------------------------


@pytest.mark.parametrize(
    ("n_reference", "n_batch", "discrete"),
    [(20_000, 3_000, False), (800, 20_000, False), (5_000, 5_000, True), (50, 70, True)],
)
def test_ks_wasserstein_and_ks_p_value_equal_scipy(n_reference: int, n_batch: int, discrete: bool) -> None:
    rng = np.random.default_rng(n_reference + n_batch)
    reference = rng.normal(0.0, 1.0, n_reference)
    batch = rng.normal(0.1, 1.2, n_batch)
    if discrete:  # many ties: the ECDFs must be evaluated after each run of equal values
        reference, batch = np.round(reference * 2), np.round(batch * 2)
    ks, wasserstein = ecdf_statistics(np.sort(reference), np.sort(batch))
    expected = ks_2samp(reference, batch)
    assert ks == pytest.approx(expected.statistic, abs=1e-15)
    assert wasserstein == pytest.approx(wasserstein_distance(reference, batch), rel=1e-12)
    # p-value: Kolmogorov's limiting distribution at n m / (n + m); scipy's "asymp" uses the finite-size
    # one-sample law at that size, a few percent away once the effective size is in the hundreds.
    effective = n_reference * n_batch / (n_reference + n_batch)
    p_value = ks_p_value(ks, n_reference, n_batch)
    assert p_value == pytest.approx(kolmogorov(np.sqrt(effective) * ks), rel=1e-12)
    if effective > 500:
        assert p_value == pytest.approx(ks_2samp(reference, batch, method="asymp").pvalue, rel=0.06)


def test_numeric_rows_of_a_batch_equal_scipy_on_raw_samples_and_shared_bins(
    reference: pl.DataFrame, contract: ModelContract, profile: ReferenceProfile
) -> None:
    batch = _batch(contract, synthetic(3_000, np.random.default_rng(1), first_id=10**6, normal_mean=0.2))
    result = profile_batch(profile, batch, contract, SETTINGS)
    ref_values = reference.get_column("x_normal").to_numpy()
    batch_values = batch.get_column("x_normal").to_numpy()

    assert _row(result, "x_normal", "ks").statistic == pytest.approx(ks_2samp(ref_values, batch_values).statistic)
    assert _row(result, "x_normal", "wasserstein").statistic == pytest.approx(
        wasserstein_distance(ref_values, batch_values), rel=1e-12
    )
    # PSI bins: reference deciles; a value equal to an edge belongs to the bin above it.
    edges = np.asarray(profile.column("x_normal").bin_edges)  # type: ignore[union-attr]
    assert edges.size == 9
    ref_share = np.bincount(np.searchsorted(edges, ref_values, side="right"), minlength=10) / ref_values.size
    batch_share = np.bincount(np.searchsorted(edges, batch_values, side="right"), minlength=10) / batch_values.size
    np.testing.assert_allclose(ref_share, 0.1, atol=1e-4)
    psi = float(np.sum((batch_share - ref_share) * np.log(batch_share / ref_share)))
    assert _row(result, "x_normal", "psi").statistic == pytest.approx(psi, rel=1e-12)

    # JS and Hellinger: numpy's Doane histogram of the reference, plus a bin for batch values outside it.
    doane = np.histogram_bin_edges(ref_values, bins="doane")
    np.testing.assert_allclose(profile.column("x_normal").histogram_edges, doane, rtol=0, atol=1e-12)  # type: ignore[union-attr]
    ref_hist = np.histogram(ref_values, doane)[0] / ref_values.size
    batch_hist = np.histogram(batch_values, doane)[0] / batch_values.size
    outside = 1.0 - batch_hist.sum()
    if outside > 1e-12:
        ref_hist, batch_hist = np.append(ref_hist, 0.0), np.append(batch_hist, outside)
    assert _row(result, "x_normal", "jensen_shannon").statistic == pytest.approx(
        jensenshannon(ref_hist, batch_hist, base=2), rel=1e-9
    )
    hellinger = np.sqrt(np.sum((np.sqrt(ref_hist) - np.sqrt(batch_hist)) ** 2)) / np.sqrt(2)
    assert _row(result, "x_normal", "hellinger").statistic == pytest.approx(hellinger, rel=1e-9)


def test_doane_edges_equal_numpy() -> None:
    for seed in range(5):
        rng = np.random.default_rng(seed)
        for values in (rng.normal(size=1000), rng.lognormal(size=3000), rng.poisson(3, 300) * 1.0, np.ones(7)):
            np.testing.assert_array_equal(doane_edges(np.sort(values)), np.histogram_bin_edges(values, "doane"))


def test_categorical_rows_equal_scipy_over_the_union_of_categories(
    reference: pl.DataFrame, contract: ModelContract, profile: ReferenceProfile
) -> None:
    frame = synthetic(2_000, np.random.default_rng(2), first_id=10**6, category_shares=[0.3, 0.3, 0.2, 0.2])
    frame = frame.with_columns(
        pl.when(pl.col("id") % 50 == 0).then(pl.lit("new")).otherwise("segment").alias("segment")
    )
    result = profile_batch(profile, _batch(contract, frame), contract, SETTINGS)

    categories = ["a", "b", "c", "d", "new"]
    table = np.array(
        [
            [int((reference.get_column("segment") == c).sum()) for c in categories],
            [int((frame.get_column("segment") == c).sum()) for c in categories],
        ]
    )
    expected = chi2_contingency(table)
    chi2_row = _row(result, "segment", "chi2")
    assert chi2_row.statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert chi2_row.p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
    shares = table / table.sum(axis=1, keepdims=True)
    assert _row(result, "segment", "jensen_shannon").statistic == pytest.approx(
        jensenshannon(shares[0], shares[1], base=2), rel=1e-12
    )
    assert _row(result, "segment", "l_infinity").statistic == pytest.approx(np.abs(shares[0] - shares[1]).max())
    assert _row(result, "segment", "hellinger").statistic == pytest.approx(
        np.sqrt(np.sum((np.sqrt(shares[0]) - np.sqrt(shares[1])) ** 2)) / np.sqrt(2), rel=1e-12
    )

    # A boolean is a 2 x 2 table: scipy applies Yates' correction, and so must we.
    flag_table = np.array(
        [
            [int((~reference.get_column("flag")).sum()), int(reference.get_column("flag").sum())],
            [int((~frame.get_column("flag")).sum()), int(frame.get_column("flag").sum())],
        ]
    )
    flag_expected = chi2_contingency(flag_table)
    assert _row(result, "flag", "chi2").statistic == pytest.approx(flag_expected.statistic, rel=1e-12)
    assert _row(result, "flag", "chi2").p_value == pytest.approx(flag_expected.pvalue, rel=1e-9)


def test_vectorised_chi2_equals_scipy_row_by_row() -> None:
    rng = np.random.default_rng(3)
    for columns in (2, 3, 6):
        reference_counts = rng.integers(1, 400, size=(25, columns))
        batch_counts = rng.integers(0, 400, size=(25, columns))
        statistics, dof = chi2_statistic(reference_counts, batch_counts)
        for row in range(25):
            expected = chi2_contingency(np.stack((reference_counts[row], batch_counts[row])))
            assert statistics[row] == pytest.approx(expected.statistic, rel=1e-12)
            assert dof[row] == expected.dof


# --- calibrated thresholds -------------------------------------------------------------


@pytest.mark.slow
def test_stationary_stream_false_alarm_rate_stays_below_five_percent(
    contract: ModelContract, profile: ReferenceProfile
) -> None:
    rng = np.random.default_rng(11)
    alerts: dict[tuple[str, str], int] = {}
    primary_alerts: dict[str, int] = {}
    batches = 100
    for index in range(batches):
        batch = _batch(contract, synthetic(2_000, rng, first_id=10**6 + index * 2_000))
        result = profile_batch(profile, batch, contract, SETTINGS)
        assert result.quality.passed, result.quality.issues
        for row in result.drift:
            alerts[(row.feature, row.method)] = alerts.get((row.feature, row.method), 0) + row.alert
            if row.primary:
                primary_alerts[row.feature] = primary_alerts.get(row.feature, 0) + row.alert

    rates = {feature: count / batches for feature, count in primary_alerts.items()}
    pooled_primary = sum(primary_alerts.values()) / (batches * len(primary_alerts))
    pooled_all = sum(alerts.values()) / (batches * len(alerts))
    print(f"\nfalse-alarm rate per feature (primary method, {batches} batches): {rates}")
    print(f"pooled: primary {pooled_primary:.2%}, all {len(alerts)} (feature, method) pairs {pooled_all:.2%}")
    assert set(rates) == {*contract.feature_names, "y_pred_proba", "y", "__multivariate__"}
    assert all(rate < 0.05 for rate in rates.values()), rates
    assert all(count / batches < 0.05 for count in alerts.values()), alerts
    assert pooled_primary < 0.03
    assert pooled_all < 0.03


def test_thresholds_are_calibrated_at_the_batch_size_cached_and_reproducible(
    reference: pl.DataFrame, contract: ModelContract, profile: ReferenceProfile
) -> None:
    # Under no drift KS scales like sqrt(1/m + 1/n); the Kolmogorov distribution's 0.99 quantile is 1.6276.
    at_chunk = profile.thresholds["x_normal"][2000]
    assert at_chunk["ks"] == pytest.approx(1.6276 * np.sqrt(1 / 2000 + 1 / 20_000), rel=0.03)

    small = _batch(contract, synthetic(500, np.random.default_rng(4), first_id=10**6))
    result = profile_batch(profile, small, contract, SETTINGS)
    at_small = profile.thresholds["x_normal"][500]
    assert _row(result, "x_normal", "ks").threshold == at_small["ks"]
    assert _row(result, "x_normal", "ks").sample_size == 500
    assert at_small["ks"] == pytest.approx(1.6276 * np.sqrt(1 / 500 + 1 / 20_000), rel=0.03)
    # JS distance of binned proportions scales the same way; chi2 of a 2 x k table does not scale.
    ratio = np.sqrt((1 / 500 + 1 / 20_000) / (1 / 2000 + 1 / 20_000))
    assert at_small["jensen_shannon"] / at_chunk["jensen_shannon"] == pytest.approx(ratio, rel=0.1)
    segment_chi2 = profile.thresholds["segment"]
    assert segment_chi2[500]["chi2"] == pytest.approx(segment_chi2[2000]["chi2"], rel=0.1)
    assert segment_chi2[2000]["chi2"] == pytest.approx(11.34, rel=0.1)  # chi-squared(3) 0.99 quantile

    again = fit_reference_profile(reference, contract, SETTINGS)
    assert again.thresholds["x_normal"][2000] == at_chunk
    assert again.thresholds["segment"][2000] == profile.thresholds["segment"][2000]


# --- detection -------------------------------------------------------------------------


def test_half_std_mean_shift_is_caught_in_the_first_shifted_batch(
    contract: ModelContract, profile: ReferenceProfile
) -> None:
    rng = np.random.default_rng(5)
    flagged = []
    for index in range(6):
        shifted = index >= 3
        batch = _batch(contract, synthetic(2_000, rng, first_id=10**6 + index * 2_000, normal_mean=0.5 * shifted))
        result = profile_batch(profile, batch, contract, SETTINGS)
        flagged.append("x_normal" in result.drifted_features)
    assert flagged == [False, False, False, True, True, True]


def test_categorical_frequency_shift_is_caught(contract: ModelContract, profile: ReferenceProfile) -> None:
    batch = _batch(
        contract,
        synthetic(2_000, np.random.default_rng(6), first_id=10**6, category_shares=[0.32, 0.3, 0.2, 0.18]),
    )
    result = profile_batch(profile, batch, contract, SETTINGS)
    assert result.drifted_features == ["segment"]
    assert result.drift_share == pytest.approx(1 / 5)
    primary = _row(result, "segment", "head_tail")
    assert primary.primary and primary.alert and primary.statistic > primary.threshold
    assert primary.p_value is not None and primary.statistic == pytest.approx(-np.log10(primary.p_value))


def test_prediction_and_label_drift(contract: ModelContract, profile: ReferenceProfile) -> None:
    rng = np.random.default_rng(8)
    calm = [
        profile_batch(profile, _batch(contract, synthetic(2_000, rng, first_id=i * 10**5)), contract, SETTINGS)
        for i in range(10, 15)
    ]
    prediction_rows = [result.prediction_drift for result in calm]
    label_rows = [result.label_drift for result in calm]
    assert all(row is not None and row.method == "ks" for row in prediction_rows)
    assert all(row is not None and row.method == "head_tail" for row in label_rows)
    # A 1% false-alarm rate: at most one calm batch of five may alert.
    assert sum(row.alert for row in prediction_rows + label_rows if row is not None) <= 1

    moved = synthetic(2_000, rng, first_id=2 * 10**6, positive_rate=0.5, score_alpha=2.6)
    result = profile_batch(profile, _batch(contract, moved), contract, SETTINGS)
    assert result.prediction_drift is not None and result.prediction_drift.alert
    assert result.label_drift is not None and result.label_drift.alert
    positive_rate = float(moved.get_column("y").cast(pl.Float64).to_numpy().mean())
    assert _row(result, "y", "l_infinity").statistic == pytest.approx(abs(positive_rate - 0.4), abs=0.01)
    assert result.label_drift.p_value is not None and result.label_drift.p_value < 1e-10
    # Prediction and label drift never count as drifted features.
    assert result.drifted_features == []

    unlabelled = moved.with_columns(pl.lit(None, dtype=pl.Int8).alias("y"))
    assert profile_batch(profile, _batch(contract, unlabelled), contract, SETTINGS).label_drift is None


# --- data quality ----------------------------------------------------------------------


def test_clean_batch_passes_with_no_issues_and_reports_its_window(
    contract: ModelContract, profile: ReferenceProfile
) -> None:
    batch = _batch(contract, synthetic(2_000, np.random.default_rng(9), first_id=10**6))
    result = profile_batch(profile, batch, contract, SETTINGS)
    assert result.quality.passed and result.quality.issues == ()
    assert result.quality.missing_rate == dict.fromkeys(contract.feature_names, 0.0)
    assert result.window_start == utc(batch.get_column("ts").min())
    assert result.window_end == utc(batch.get_column("ts").max())


def test_quality_issues_are_detected(contract: ModelContract, profile: ReferenceProfile) -> None:
    frame = synthetic(2_000, np.random.default_rng(10), first_id=10**6)
    frame = frame.with_columns(
        # 10 rows reuse an id, 30% of x_skewed is missing, 3% of segment is unseen, 2% of x_normal far out.
        pl.when(pl.col("id") < 10**6 + 10).then(pl.col("id") + 1000).otherwise("id").alias("id"),
        pl.when(pl.col("id") % 10 < 3).then(None).otherwise("x_skewed").alias("x_skewed"),
        pl.when(pl.col("id") % 100 < 3).then(pl.lit("zz")).otherwise("segment").alias("segment"),
        pl.when(pl.col("id") % 50 == 0).then(20.0).otherwise("x_normal").alias("x_normal"),
    )
    result = profile_batch(profile, _batch(contract, frame), contract, SETTINGS)
    found = {(i.check, i.column): i.severity for i in result.quality.issues}
    assert found == {
        ("duplicate_id", "id"): "fail",
        ("missing_rate", "x_skewed"): "fail",
        ("unseen_category", "segment"): "warn",
        ("out_of_range", "x_normal"): "warn",
    }
    assert not result.quality.passed
    assert result.quality.missing_rate["x_skewed"] == pytest.approx(0.3)

    mostly_new = frame.with_columns(
        pl.when(pl.col("id") % 10 == 0).then(pl.lit("zz")).otherwise("segment").alias("segment")
    )
    issues = profile_batch(profile, _batch(contract, mostly_new), contract, SETTINGS).quality.issues
    assert next(i for i in issues if i.check == "unseen_category").severity == "fail"


def test_out_of_range_counts_from_the_sorted_columns_equal_the_polars_scan(
    contract: ModelContract, profile: ReferenceProfile
) -> None:
    from tasks.drift.quality import _widened_range, check_quality
    from tasks.drift.reference import NumericReference

    ref = profile.column("x_normal")
    assert isinstance(ref, NumericReference)
    low, high = _widened_range(ref)
    frame = synthetic(2_000, np.random.default_rng(13), first_id=10**6).with_columns(
        # both bounds themselves (inside), just beyond them, far beyond, and nulls (not counted)
        pl.when(pl.col("id") % 40 == 0)
        .then(low)
        .when(pl.col("id") % 40 == 1)
        .then(high)
        .when(pl.col("id") % 40 == 2)
        .then(np.nextafter(low, -np.inf))
        .when(pl.col("id") % 40 == 3)
        .then(high * 10)
        .when(pl.col("id") % 40 == 4)
        .then(None)
        .otherwise("x_normal")
        .alias("x_normal")
    )
    batch = _batch(contract, frame)
    from_sorts = profile_batch(profile, batch, contract, SETTINGS).quality
    scanned = check_quality(profile, batch, contract, SETTINGS)  # no counts given: polars scans
    assert from_sorts == scanned
    issue = next(i for i in from_sorts.issues if i.check == "out_of_range")
    assert issue.column == "x_normal" and issue.detail.startswith("5.0% of rows")  # 2 of every 40


def test_values_far_beyond_the_reference_range_are_broken_data_not_drift(
    contract: ModelContract, profile: ReferenceProfile
) -> None:
    """A unit change (x1000) on a share of rows fails data quality (the batch is BLOCKed, never trained on);
    the count read off the sorted columns equals the polars scan."""
    from tasks.drift.quality import check_quality

    frame = synthetic(2_000, np.random.default_rng(14), first_id=10**6)
    units = frame.with_columns(
        pl.when(pl.col("id") % 20 == 0).then(pl.col("x_normal") * 1000 + 5000).otherwise("x_normal").alias("x_normal")
    )
    batch = _batch(contract, units)
    from_sorts = profile_batch(profile, batch, contract, SETTINGS).quality
    assert from_sorts == check_quality(profile, batch, contract, SETTINGS)
    issue = next(i for i in from_sorts.issues if i.column == "x_normal")
    assert (issue.check, issue.severity) == ("far_out_of_range", "fail") and issue.detail.startswith("5.0% of rows")
    assert not from_sorts.passed
    lenient = SETTINGS.model_copy(update={"block_range_share": 0.10})
    relaxed = {i.check for i in profile_batch(profile, batch, contract, lenient).quality.issues}
    assert "far_out_of_range" not in relaxed and "out_of_range" in relaxed  # a share under the setting: a warning


def test_a_non_finite_statistic_is_a_quality_failure_never_no_alert() -> None:
    from tasks.drift.quality import non_finite_statistics
    from tasks.drift.results import FeatureDrift

    rows = [
        FeatureDrift(feature="__multivariate__", kind="multivariate", method="pca", statistic=float("nan"),
                     threshold=1.0, alert=False),
        FeatureDrift(feature="x", kind="numeric", method="ks", statistic=0.1, threshold=0.2, alert=False),
    ]  # fmt: skip
    (issue,) = non_finite_statistics(rows)
    assert (issue.check, issue.column, issue.severity) == ("non_finite_statistic", "__multivariate__", "fail")


def test_too_few_rows_and_all_null_columns_fail(contract: ModelContract, profile: ReferenceProfile) -> None:
    tiny = synthetic(40, np.random.default_rng(12), first_id=10**6).with_columns(
        pl.lit(None, dtype=pl.Float64).alias("x_count")
    )
    result = profile_batch(profile, _batch(contract, tiny), contract, SETTINGS)
    found = {(i.check, i.column): i.severity for i in result.quality.issues}
    assert found == {("too_few_rows", None): "fail", ("all_null", "x_count"): "fail"}
    assert not result.quality.passed
    assert all(row.feature != "x_count" for row in result.drift)

    empty = profile_batch(profile, tiny.head(0), contract, SETTINGS)
    assert empty.rows == 0 and empty.drift == () and not empty.quality.passed
    assert (empty.window_start, empty.drift_share) == (None, 0.0)


# --- realistic data --------------------------------------------------------------------


@pytest.mark.slow
def test_car_loan_reference_calm_on_its_own_rows_and_flags_nannyml_drifted_features() -> None:
    reference, analysis = load_car_loan()
    contract = infer_contract(reference, name="car-loan", target="repaid", entity_id="id", timestamp="timestamp")
    settings = ProfilingSettings(chunk_size=5_000)
    car_profile = fit_reference_profile(reference, contract, settings)

    generator = ScenarioGenerator(reference, seed=3)
    calm = [
        profile_batch(car_profile, _batch(contract, generator.batch(5_000, STATIONARY)), contract, settings)
        for _ in range(10)
    ]
    assert sum(len(result.drifted_features) for result in calm) <= 2

    tilted = generator.batch(5_000, Shift(covariate={"driver_tenure": 0.15}))
    assert "driver_tenure" in profile_batch(car_profile, _batch(contract, tilted), contract, settings).drifted_features

    # NannyML's analysis set drifts in its second half, in these four features (its own docs agree).
    first_half = profile_batch(car_profile, _batch(contract, analysis[:5_000]), contract, settings)
    second_half = profile_batch(car_profile, _batch(contract, analysis[-5_000:]), contract, settings)
    assert first_half.drifted_features == []
    assert second_half.drifted_features == ["car_value", "salary_range", "loan_length", "repaid_loan_on_prev_car"]
    assert second_half.quality.passed


# --- outputs and persistence ------------------------------------------------------------


def test_frame_dict_and_profile_round_trip(contract: ModelContract, profile: ReferenceProfile) -> None:
    batch = _batch(contract, synthetic(2_000, np.random.default_rng(13), first_id=10**6))
    result = profile_batch(profile, batch, contract, SETTINGS)

    frame = result.to_frame()
    # 3 numeric x 5 methods, 2 categorical x 5, the prediction (5), the label (5), the multivariate row.
    assert frame.height == len(result.drift) == 3 * 5 + 2 * 5 + 5 + 5 + 1
    assert frame.filter(pl.col("primary")).height == 8
    assert frame.select(pl.struct("feature", "method").is_unique().all()).item()

    summary = json.loads(json.dumps(result.to_dict()))
    assert summary["rows"] == 2_000 and summary["quality"]["passed"]
    assert summary["window_start"] == result.window_start.isoformat()  # type: ignore[union-attr]
    assert len(summary["drift"]) == frame.height

    restored = ReferenceProfile.from_dict(json.loads(json.dumps(profile.to_dict())))
    assert restored.thresholds == profile.thresholds
    again = profile_batch(restored, batch, contract, SETTINGS)
    assert again.drift == result.drift
    np.testing.assert_array_equal(restored.column("x_skewed").sample, profile.column("x_skewed").sample)  # type: ignore[union-attr]


# --- errors ------------------------------------------------------------------------------


def test_errors_name_what_is_at_fault(
    reference: pl.DataFrame, contract: ModelContract, profile: ReferenceProfile
) -> None:
    batch = synthetic(500, np.random.default_rng(14), first_id=10**6)
    with pytest.raises(MissingColumnError, match="x_skewed"):
        profile_batch(profile, batch.drop("x_skewed"), contract, SETTINGS)
    with pytest.raises(DtypeError, match="x_normal"):
        profile_batch(profile, batch.with_columns(pl.col("x_normal").cast(pl.String)), contract, SETTINGS)
    with pytest.raises(ConfigError, match="FALSE_ALARM_QUANTILE"):
        profile_batch(profile, batch, contract, ProfilingSettings(chunk_size=2000, false_alarm_quantile=0.95))
    with pytest.raises(DataError, match="reference profile is malformed"):
        ReferenceProfile.from_dict({**profile.to_dict(), "features": [{"type": "numeric"}]})
    with pytest.raises(DataError, match="x_count"):
        fit_reference_profile(
            reference.with_columns(pl.lit(None, dtype=pl.Float64).alias("x_count")), contract, SETTINGS
        )


def test_import_is_light() -> None:
    code = (
        "import sys, tasks.drift.profiling; print(sorted(m for m in ('polars', 'numpy', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_one_shot_helper_equals_profile_batch(
    reference: pl.DataFrame, contract: ModelContract, profile: ReferenceProfile
) -> None:
    frame = synthetic(2_000, np.random.default_rng(15), first_id=10**6)
    expected = profile_batch(profile, _batch(contract, frame), contract, SETTINGS).drift
    assert tuple(drift_statistics(reference, frame, contract, SETTINGS)) == expected


# --- missingness against the reference, schema, lazy reference ---------------------------


def test_missing_rate_is_judged_against_the_reference_own_rate(contract: ModelContract) -> None:
    rng = np.random.default_rng(21)
    # A reference whose x_skewed is 30% missing: above max_missing_rate (20%), and normal for this feature.
    gappy = synthetic(20_000, rng).with_columns(
        pl.when(pl.col("id") % 10 < 3).then(None).otherwise("x_skewed").alias("x_skewed")
    )
    gappy_profile = fit_reference_profile(gappy, contract, SETTINGS)
    assert gappy_profile.missing_rate["x_skewed"] == pytest.approx(0.3)

    def missing(share: float, seed: int) -> pl.DataFrame:
        frame = synthetic(2_000, np.random.default_rng(seed), first_id=10**6)
        holes = np.random.default_rng(seed + 1).random(2_000) < share
        return _batch(
            contract, frame.with_columns(pl.when(pl.Series(holes)).then(None).otherwise("x_skewed").alias("x_skewed"))
        )

    def issue(result: BatchProfile) -> QualityIssue | None:
        return next((i for i in result.quality.issues if i.check == "missing_rate"), None)

    as_usual = profile_batch(gappy_profile, missing(0.3, 1), contract, SETTINGS)
    assert issue(as_usual) is None and as_usual.quality.passed
    worse = profile_batch(gappy_profile, missing(0.45, 2), contract, SETTINGS)
    assert issue(worse) is not None and issue(worse).severity == "fail"  # type: ignore[union-attr]
    # New missingness below the absolute limit warns; the reference had none.
    some = profile_batch(
        fit_reference_profile(synthetic(20_000, rng), contract, SETTINGS), missing(0.05, 3), contract, SETTINGS
    )
    assert issue(some) is not None and issue(some).severity == "warn" and some.quality.passed  # type: ignore[union-attr]


def test_schema_changes_are_quality_issues(contract: ModelContract, profile: ReferenceProfile) -> None:
    frame = synthetic(2_000, np.random.default_rng(22), first_id=10**6).with_columns(pl.lit("x").alias("note"))
    result = profile_batch(profile, _batch(contract, frame), contract, SETTINGS)
    found = {(i.check, i.column): i.severity for i in result.quality.issues}
    assert found == {("schema", "note"): "warn"}
    assert result.quality.passed

    # As read, before validation cast it: a numeric feature now integer (same family) warns, a
    # categorical feature now integer codes fails; the probability column, optional (production scores
    # a batch without it), may be left out without a word.
    raw = {**dict(frame.schema), "x_normal": pl.Int64, "segment": pl.Int32}
    raw.pop("y_pred_proba")
    issues = check_schema(profile, raw, contract)
    severity = {i.column: i.severity for i in issues}
    assert severity == {"note": "warn", "x_normal": "warn", "segment": "fail"}
    assert "dtype changed from Float64 to Int64" in next(i.detail for i in issues if i.column == "x_normal")
    assert dtype_family("Datetime(time_unit='us', time_zone=None)") == "temporal"


def test_lazy_reference_equals_the_in_memory_one(
    tmp_path: Path, reference: pl.DataFrame, contract: ModelContract, profile: ReferenceProfile
) -> None:
    path = tmp_path / "reference.parquet"
    reference.write_parquet(path)
    lazy = fit_reference_profile(pl.scan_parquet(path), contract, SETTINGS)
    eager = fit_reference_profile(reference, contract, SETTINGS)  # the fixture's has cached other sizes since
    assert json.dumps(lazy.to_dict(), sort_keys=True) == json.dumps(eager.to_dict(), sort_keys=True)

    broken = reference.with_columns(
        pl.when(pl.col("id") == 5).then(float("nan")).otherwise("x_normal").alias("x_normal")
    )
    broken.write_parquet(path)
    with pytest.raises(NonFiniteError, match="x_normal"):
        fit_reference_profile(pl.scan_parquet(path), contract, SETTINGS)
    with pytest.raises(NonFiniteError, match=r"1 NaN/inf values.*x_normal"):
        fit_reference_profile(broken, contract, SETTINGS)
    infinite = reference.with_columns(
        pl.when(pl.col("id") < 3).then(float("-inf")).otherwise("x_skewed").alias("x_skewed")
    )
    with pytest.raises(NonFiniteError, match=r"3 NaN/inf values.*x_skewed"):
        fit_reference_profile(infinite, contract, SETTINGS)
    reference.drop("x_count").write_parquet(path)
    with pytest.raises(MissingColumnError, match="x_count"):
        fit_reference_profile(pl.scan_parquet(path), contract, SETTINGS)


@pytest.mark.parametrize("total", [40, 5_000, 1_000_000])
def test_multinomial_draws_have_multinomial_moments(total: int) -> None:
    from tasks.drift.reference import multinomial_draws

    shares = np.array([0.5, 0.2, 0.15, 0.1, 0.04, 0.01, 0.0])
    counts = multinomial_draws(np.random.default_rng(total), total, shares, 20_000)
    assert counts.shape == (20_000, shares.size)
    assert (counts.sum(axis=1) == total).all() and (counts >= 0).all()
    assert (counts[:, -1] == 0).all()
    # mean total p and covariance total (diag p - p p^T), within Monte Carlo error
    np.testing.assert_allclose(counts.mean(axis=0), total * shares, rtol=0.02, atol=0.05 * np.sqrt(total))
    expected = total * (np.diag(shares) - np.outer(shares, shares))
    spread = np.sqrt(np.outer(np.diag(expected), np.diag(expected)) / counts.shape[0])  # sampling error of a cov
    assert (np.abs(np.cov(counts.T) - expected) <= 5 * spread + 1e-9).all()


def test_a_big_lazy_reference_is_read_column_by_column_with_the_same_profile(
    tmp_path: Path, reference: pl.DataFrame, contract: ModelContract, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tasks.drift.reference

    path = tmp_path / "reference.parquet"
    reference.write_parquet(path)
    at_once = fit_reference_profile(pl.scan_parquet(path), contract, SETTINGS)
    monkeypatch.setattr(tasks.drift.reference, "READ_AT_ONCE_CELLS", 0)  # every reference "too big" for one pass
    by_column = fit_reference_profile(pl.scan_parquet(path), contract, SETTINGS)
    assert json.dumps(by_column.to_dict(), sort_keys=True) == json.dumps(at_once.to_dict(), sort_keys=True)
    reference.with_columns(
        pl.when(pl.col("id") == 7).then(float("inf")).otherwise("x_normal").alias("x_normal")
    ).write_parquet(path)
    with pytest.raises(NonFiniteError, match="x_normal"):
        fit_reference_profile(pl.scan_parquet(path), contract, SETTINGS)


@pytest.mark.parametrize("cells", [None, 0])  # read in one pass, and column by column
def test_a_lazy_reference_is_checked_from_its_schema_and_its_values(
    tmp_path: Path, reference: pl.DataFrame, contract: ModelContract, monkeypatch: pytest.MonkeyPatch, cells: int | None
) -> None:
    import tasks.drift.reference

    if cells is not None:
        monkeypatch.setattr(tasks.drift.reference, "READ_AT_ONCE_CELLS", cells)
    path = tmp_path / "reference.parquet"
    reference.with_columns(pl.col("x_normal").cast(pl.String)).write_parquet(path)
    with pytest.raises(DtypeError, match=r"expected a numeric dtype.*x_normal"):  # from the schema alone
        fit_reference_profile(pl.scan_parquet(path), contract, SETTINGS)
    assert contract.timestamp is not None
    text_times = reference.with_columns(pl.col(contract.timestamp).dt.to_string())
    text_times.write_parquet(path)
    fit_reference_profile(pl.scan_parquet(path), contract, SETTINGS)  # text timestamps that parse are fine
    text_times.with_columns(pl.lit("not a time").alias(contract.timestamp)).write_parquet(path)
    with pytest.raises(DtypeError, match="timestamps could not be parsed"):
        fit_reference_profile(pl.scan_parquet(path), contract, SETTINGS)
