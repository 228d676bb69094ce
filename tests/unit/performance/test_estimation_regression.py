"""DLE for regression (RMSE, MAE) on NannyML's synthetic car-price dataset, kept small (DLE trains LightGBM)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import mean_absolute_error, mean_squared_error

from tasks.core.errors import DtypeError, EstimationError, MissingColumnError, NonFiniteError
from tasks.data.files import _nannyml_data_dir
from tasks.performance.metrics import (
    MetricEstimator,
    ModelOutputs,
    estimate_metrics,
    fit_metric_estimator,
    realized_metrics,
)

FEATURES = ("car_age", "km_driven", "price_new", "accident_count", "door_count", "fuel", "transmission")
OUTPUTS = ModelOutputs("regression", "y_true", "y_pred", features=FEATURES, timestamp="timestamp")
CHUNK = 1000


@pytest.fixture(scope="module")
def data() -> tuple[pl.DataFrame, pl.DataFrame]:
    folder = _nannyml_data_dir()
    reference = pl.read_csv(folder / "regression_synthetic_reference.csv", try_parse_dates=True).head(6000)
    analysis = pl.read_csv(folder / "regression_synthetic_analysis.csv", try_parse_dates=True).join(
        pl.read_csv(folder / "regression_synthetic_analysis_targets.csv"), on="id"
    )
    return reference, analysis


@pytest.fixture(scope="module")
def estimator(data: tuple[pl.DataFrame, pl.DataFrame]) -> MetricEstimator:
    return fit_metric_estimator(data[0], OUTPUTS, chunk_size=CHUNK, num_threads=1)


def test_reference_values_and_thresholds(data: tuple[pl.DataFrame, pl.DataFrame], estimator: MetricEstimator) -> None:
    y, yhat = data[0].get_column("y_true").to_numpy(), data[0].get_column("y_pred").to_numpy()
    assert estimator.method == "dle" and estimator.metrics == ("rmse", "mae")
    assert estimator.reference_values["rmse"] == pytest.approx(np.sqrt(mean_squared_error(y, yhat)))
    assert estimator.reference_values["mae"] == pytest.approx(mean_absolute_error(y, yhat))
    for metric in ("rmse", "mae"):
        low, high = estimator.lower_thresholds[metric], estimator.upper_thresholds[metric]
        assert low is not None and high is not None and low < estimator.reference_values[metric] < high


def test_estimates_track_realized_on_the_stationary_period(
    data: tuple[pl.DataFrame, pl.DataFrame], estimator: MetricEstimator
) -> None:
    chunks = estimate_metrics(estimator, data[1].head(30_000), chunk_size=5000)
    assert [c.start_row for c in chunks] == [0, 5000, 10_000, 15_000, 20_000, 25_000]
    for metric in ("rmse", "mae"):
        errors, sigmas = [], []
        for chunk in chunks:
            estimate, realized = chunk.estimates[metric], chunk.realized[metric]
            assert realized is not None and estimate.sampling_error is not None
            assert estimate.lower is not None and estimate.upper is not None
            assert estimate.lower <= realized <= estimate.upper
            assert not estimate.alert and not estimate.higher_is_better
            errors.append(abs(estimate.value - realized))
            sigmas.append(estimate.sampling_error)
        # measured on this data: mean |error| ~ 1.2 sampling errors for RMSE, ~0.8 for MAE (DLE, 6000-row reference)
        assert np.mean(errors) < 2.0 * np.mean(sigmas), metric
        assert np.mean(errors) / estimator.reference_values[metric] < 0.02  # within 2 % of the metric


def test_shifted_period_alerts_and_drop_points_the_right_way(
    data: tuple[pl.DataFrame, pl.DataFrame], estimator: MetricEstimator
) -> None:
    # NannyML's second half moves towards easier cars: errors fall, and DLE sees it without labels.
    [chunk] = estimate_metrics(estimator, data[1].tail(10_000).drop("y_true"))
    estimate = chunk.estimates["rmse"]
    assert chunk.realized == {}
    assert estimate.alert and estimate.value < estimate.reference_value
    assert estimate.drop < 0  # lower RMSE is better: a negative drop is an improvement
    worse = estimate_metrics(
        estimator, data[1].head(5000).with_columns((pl.col("y_pred") * 1.3).alias("y_pred")).drop("y_true")
    )[0].estimates["mae"]
    assert worse.drop > 0 and worse.alert


def test_realized_regression_metrics(data: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    batch = data[1].head(2000)
    result = realized_metrics(batch, OUTPUTS)
    y, yhat = batch.get_column("y_true").to_numpy(), batch.get_column("y_pred").to_numpy()
    assert result["rmse"].value == pytest.approx(np.sqrt(np.mean((y - yhat) ** 2)))
    assert result["mae"].value == pytest.approx(np.mean(np.abs(y - yhat)))
    assert result["mae"].rows_labelled == 2000


def test_bad_regression_inputs_are_typed(data: tuple[pl.DataFrame, pl.DataFrame], estimator: MetricEstimator) -> None:
    reference = data[0]
    with pytest.raises(MissingColumnError) as missing:
        fit_metric_estimator(reference.drop("fuel"), OUTPUTS, chunk_size=CHUNK)
    assert missing.value.column == "fuel"
    with pytest.raises(DtypeError) as dtype:
        fit_metric_estimator(reference.with_columns(pl.col("y_true").cast(pl.String)), OUTPUTS, chunk_size=CHUNK)
    assert dtype.value.column == "y_true"
    with pytest.raises(NonFiniteError):
        estimate_metrics(estimator, data[1].head(100).with_columns(pl.lit(float("inf")).alias("y_pred")))
    with pytest.raises(EstimationError, match="roc_auc"):
        fit_metric_estimator(reference, OUTPUTS, metrics=["roc_auc"])
    with pytest.raises(EstimationError, match="feature"):
        fit_metric_estimator(reference, ModelOutputs("regression", "y_true", "y_pred"))
    with pytest.raises(EstimationError, match="2 chunks"):
        fit_metric_estimator(reference.head(1500), OUTPUTS, chunk_size=CHUNK)
