from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import accuracy_score, roc_auc_score

from tasks.data import CAR_LOAN_FEATURES, load_car_loan
from tasks.errors import DtypeError, EmptyBatchError, EstimationError, ProbabilityRangeError, SingleClassError
from tasks.estimation import (
    PerformanceEstimator,
    estimate_performance,
    fit_estimator,
    realized_performance,
)
from tasks.schema import ModelContract, infer_contract

BATCH_ROWS = 2500  # thresholds are calibrated on reference chunks of the batch size


@dataclass(frozen=True)
class Scored:
    contract: ModelContract
    reference: pl.DataFrame  # scored, labelled monitoring reference (never seen by the model)
    pool: pl.DataFrame  # later rows of the reference period (same distribution), for stationary batches
    analysis: pl.DataFrame  # NannyML's later analysis period, scored
    estimator: PerformanceEstimator


def _design(frame: pl.DataFrame) -> np.ndarray:
    categorical = ["salary_range", "size_of_downpayment"]
    return frame.select(CAR_LOAN_FEATURES).to_dummies(categorical).cast(pl.Float64).to_numpy()


@pytest.fixture(scope="session")
def scored() -> Scored:
    from sklearn.linear_model import LogisticRegression

    reference, analysis = load_car_loan()
    contract = infer_contract(reference, name="car-loan", target="repaid", entity_id="id", timestamp="timestamp")
    train = reference[:10_000]
    x_train = _design(train)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0) + 1e-9
    model = LogisticRegression(max_iter=500).fit((x_train - mean) / std, train.get_column("repaid").to_numpy())

    def score(frame: pl.DataFrame) -> pl.DataFrame:
        proba = model.predict_proba((_design(frame) - mean) / std)[:, 1]
        return frame.with_columns(pl.Series(contract.probability, proba))

    monitoring_reference = score(reference[10_000:25_000])
    estimator = fit_estimator(monitoring_reference, contract, chunk_size=BATCH_ROWS)
    return Scored(contract, monitoring_reference, score(reference[25_000:]), score(analysis), estimator)


def _stationary_batches(scored: Scored, n: int) -> list[pl.DataFrame]:
    # Disjoint slices: resampling one finite pool would share its sampling noise across batches.
    return [scored.pool[i * BATCH_ROWS : (i + 1) * BATCH_ROWS] for i in range(n)]


def test_estimator_is_fitted_on_the_reference(scored: Scored) -> None:
    estimator = scored.estimator
    labels = scored.reference.get_column("repaid").to_numpy()
    proba = scored.reference.get_column("y_pred_proba").to_numpy()
    assert estimator.reference_value == pytest.approx(roc_auc_score(labels, proba))
    assert estimator.reference_rows == 15_000
    assert estimator.lower_threshold is not None and estimator.upper_threshold is not None
    assert estimator.lower_threshold < estimator.reference_value < estimator.upper_threshold


def test_estimate_on_stationary_batches_tracks_realized_auc(scored: Scored) -> None:
    errors, sampling_errors = [], []
    for batch in _stationary_batches(scored, 10):
        estimate = estimate_performance(scored.estimator, batch, scored.contract)
        realized = realized_performance(batch, scored.contract)
        assert realized.value is not None and realized.rows_labelled == BATCH_ROWS
        assert estimate.lower is not None and estimate.upper is not None and estimate.sampling_error is not None
        # The band is NannyML's +-3 sampling errors around the estimate: realized AUC must fall inside.
        assert estimate.lower <= realized.value <= estimate.upper
        assert not estimate.alert
        assert estimate.rows == BATCH_ROWS and estimate.method == "cbpe"
        errors.append(abs(estimate.value - realized.value))
        sampling_errors.append(estimate.sampling_error)
    # |estimate - realized| ~ |N(0, sigma)| has mean 0.8 sigma; 1.5 sigma leaves room for 10 batches' noise.
    assert np.mean(errors) < 1.5 * np.mean(sampling_errors)
    assert np.mean(errors) < 0.01


def test_estimate_drops_and_alerts_when_predictions_lose_confidence(scored: Scored) -> None:
    proba = scored.analysis.get_column("y_pred_proba").to_numpy()
    weights = np.exp(-12 * np.abs(proba - 0.5))
    rng = np.random.default_rng(3)
    rows = rng.choice(scored.analysis.height, size=BATCH_ROWS, replace=True, p=weights / weights.sum())
    shifted = scored.analysis[rows]

    estimate = estimate_performance(scored.estimator, shifted, scored.contract)
    realized = realized_performance(shifted, scored.contract)
    assert realized.value is not None
    assert realized.value < scored.estimator.reference_value - 0.05  # the shift really hurts the model
    assert estimate.value < scored.estimator.reference_value - 0.05
    assert estimate.drop > 0.05
    assert estimate.alert
    assert estimate.lower_threshold is not None and estimate.value < estimate.lower_threshold
    assert abs(estimate.value - realized.value) < 0.05  # CBPE still tracks the realized value


def test_estimate_reports_window_and_skips_unscored_rows(scored: Scored) -> None:
    batch = _stationary_batches(scored, 1)[0]
    batch = batch.with_columns(
        pl.when(pl.int_range(pl.len()) < 100).then(None).otherwise(pl.col("y_pred_proba")).alias("y_pred_proba")
    ).drop("repaid")
    estimate = estimate_performance(scored.estimator, batch, scored.contract)
    assert estimate.rows == BATCH_ROWS - 100
    assert estimate.window_start == batch.get_column("timestamp").min().replace(tzinfo=UTC)
    assert estimate.window_end == batch.get_column("timestamp").max().replace(tzinfo=UTC)
    assert realized_performance(batch, scored.contract).value is None  # no labels yet


def test_realized_performance_uses_labelled_rows_only(scored: Scored) -> None:
    batch = scored.analysis[:3000].with_columns(
        pl.when(pl.int_range(pl.len()) % 3 == 0).then(None).otherwise(pl.col("repaid")).alias("repaid")
    )
    labelled = batch.filter(pl.col("repaid").is_not_null())
    realized = realized_performance(batch, scored.contract)
    assert realized.rows == 3000 and realized.rows_labelled == labelled.height == 2000
    assert realized.value == pytest.approx(
        roc_auc_score(labelled.get_column("repaid").to_numpy(), labelled.get_column("y_pred_proba").to_numpy())
    )
    accuracy = realized_performance(batch, scored.contract, metric="accuracy")
    expected = accuracy_score(
        labelled.get_column("repaid").to_numpy(), labelled.get_column("y_pred_proba").to_numpy() >= 0.5
    )
    assert accuracy.value == pytest.approx(expected)

    one_class = labelled.filter(pl.col("repaid") == 1)
    assert realized_performance(one_class, scored.contract).value is None
    unlabelled = batch.with_columns(pl.lit(None, dtype=pl.Int8).alias("repaid"))
    nothing = realized_performance(unlabelled, scored.contract)
    assert nothing.value is None and nothing.rows_labelled == 0 and nothing.rows == 3000


def test_estimator_with_an_explicit_prediction_column(scored: Scored) -> None:
    reference = scored.reference.with_columns((pl.col("y_pred_proba") >= 0.5).cast(pl.Int8).alias("y_pred"))
    estimator = fit_estimator(reference, scored.contract, metric="accuracy", chunk_size=BATCH_ROWS)
    expected = accuracy_score(reference.get_column("repaid").to_numpy(), reference.get_column("y_pred").to_numpy())
    assert estimator.reference_value == pytest.approx(expected)
    batch = _stationary_batches(scored, 1)[0]
    estimate = estimate_performance(estimator, batch, scored.contract)
    realized = realized_performance(batch, scored.contract, metric="accuracy")
    assert estimate.metric == "accuracy"
    assert estimate.lower is not None and estimate.upper is not None and realized.value is not None
    assert estimate.lower <= realized.value <= estimate.upper


# --- typed errors (raised before NannyML is touched) --------------------------------------------
def test_missing_probability_column_is_named(scored: Scored) -> None:
    with pytest.raises(EstimationError, match="'y_pred_proba'"):
        fit_estimator(scored.reference.drop("y_pred_proba"), scored.contract)
    with pytest.raises(EstimationError, match="'y_pred_proba'"):
        estimate_performance(scored.estimator, scored.pool.drop("y_pred_proba"), scored.contract)
    with pytest.raises(EstimationError, match="'y_pred_proba'"):
        realized_performance(scored.pool.drop("y_pred_proba"), scored.contract)


def test_missing_target_in_reference_is_named(scored: Scored) -> None:
    with pytest.raises(EstimationError, match="'repaid'"):
        fit_estimator(scored.reference.drop("repaid"), scored.contract)


def test_probabilities_outside_unit_interval(scored: Scored) -> None:
    bad = scored.reference.with_columns((pl.col("y_pred_proba") * 1.5).alias("y_pred_proba"))
    with pytest.raises(ProbabilityRangeError) as info:
        fit_estimator(bad, scored.contract)
    assert info.value.column == "y_pred_proba"
    with pytest.raises(ProbabilityRangeError):
        estimate_performance(scored.estimator, bad, scored.contract)


def test_single_class_reference(scored: Scored) -> None:
    one_class = scored.reference.filter(pl.col("repaid") == 0)
    with pytest.raises(SingleClassError) as info:
        fit_estimator(one_class, scored.contract)
    assert info.value.column == "repaid"


def test_bad_inputs_are_typed(scored: Scored) -> None:
    with pytest.raises(EstimationError, match="'mae'"):
        fit_estimator(scored.reference, scored.contract, metric="mae")
    with pytest.raises(EstimationError, match="at least 2 chunks"):
        fit_estimator(scored.reference[:4000], scored.contract, chunk_size=BATCH_ROWS)
    with pytest.raises(DtypeError):
        fit_estimator(scored.reference.with_columns(pl.col("repaid") * 2), scored.contract)
    unscored = scored.pool[:10].with_columns(pl.lit(None, dtype=pl.Float64).alias("y_pred_proba"))
    with pytest.raises(EmptyBatchError):
        estimate_performance(scored.estimator, unscored, scored.contract)
