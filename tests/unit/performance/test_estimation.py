from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import accuracy_score, roc_auc_score

from tasks.core.errors import DtypeError, EmptyBatchError, EstimationError, ProbabilityRangeError, SingleClassError
from tasks.data.contract import ModelContract, infer_contract
from tasks.data.files import CAR_LOAN_FEATURES, load_car_loan
from tasks.performance.estimation import (
    PerformanceEstimator,
    estimate_performance,
    fit_estimator,
    realized_performance,
)

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


@pytest.mark.slow
def test_estimator_is_fitted_on_the_reference(scored: Scored) -> None:
    estimator = scored.estimator
    labels = scored.reference.get_column("repaid").to_numpy()
    proba = scored.reference.get_column("y_pred_proba").to_numpy()
    assert estimator.reference_value == pytest.approx(roc_auc_score(labels, proba))
    assert estimator.reference_rows == 15_000
    assert estimator.lower_threshold is not None and estimator.upper_threshold is not None
    assert estimator.lower_threshold < estimator.reference_value < estimator.upper_threshold


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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
@pytest.mark.slow
def test_missing_probability_column_is_named(scored: Scored) -> None:
    with pytest.raises(EstimationError, match="'y_pred_proba'"):
        fit_estimator(scored.reference.drop("y_pred_proba"), scored.contract)
    with pytest.raises(EstimationError, match="'y_pred_proba'"):
        estimate_performance(scored.estimator, scored.pool.drop("y_pred_proba"), scored.contract)
    with pytest.raises(EstimationError, match="'y_pred_proba'"):
        realized_performance(scored.pool.drop("y_pred_proba"), scored.contract)


@pytest.mark.slow
def test_missing_target_in_reference_is_named(scored: Scored) -> None:
    with pytest.raises(EstimationError, match="'repaid'"):
        fit_estimator(scored.reference.drop("repaid"), scored.contract)


@pytest.mark.slow
def test_probabilities_outside_unit_interval(scored: Scored) -> None:
    bad = scored.reference.with_columns((pl.col("y_pred_proba") * 1.5).alias("y_pred_proba"))
    with pytest.raises(ProbabilityRangeError) as info:
        fit_estimator(bad, scored.contract)
    assert info.value.column == "y_pred_proba"
    with pytest.raises(ProbabilityRangeError):
        estimate_performance(scored.estimator, bad, scored.contract)


@pytest.mark.slow
def test_single_class_reference(scored: Scored) -> None:
    one_class = scored.reference.filter(pl.col("repaid") == 0)
    with pytest.raises(SingleClassError) as info:
        fit_estimator(one_class, scored.contract)
    assert info.value.column == "repaid"


@pytest.mark.slow
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


# --- slices of the contract --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sliced(scored: Scored) -> tuple[ModelContract, PerformanceEstimator]:
    contract = scored.contract.model_copy(update={"slices": ["salary_range", "repaid_loan_on_prev_car"]})
    return contract, fit_estimator(scored.reference, contract, chunk_size=BATCH_ROWS)


@pytest.mark.slow
def test_slice_reference_values_are_the_metric_on_each_slice(
    scored: Scored, sliced: tuple[ModelContract, PerformanceEstimator]
) -> None:
    _, estimator = sliced
    reference = scored.reference
    for value in reference.get_column("salary_range").unique().to_list():
        part = reference.filter(pl.col("salary_range") == value)
        expected = roc_auc_score(part.get_column("repaid").to_numpy(), part.get_column("y_pred_proba").to_numpy())
        assert estimator.slice_reference[("salary_range", value)] == pytest.approx(expected)
    assert ("repaid_loan_on_prev_car", "true") in estimator.slice_reference
    assert estimator.reference_value == pytest.approx(scored.estimator.reference_value)


@pytest.mark.slow
def test_slices_are_estimated_in_the_same_call(scored: Scored, sliced: tuple[ModelContract, PerformanceEstimator]):
    contract, estimator = sliced
    batch = _stationary_batches(scored, 1)[0]
    estimate = estimate_performance(estimator, batch, contract)
    overall = estimate_performance(scored.estimator, batch, scored.contract)
    assert estimate.value == pytest.approx(overall.value)  # slicing leaves the whole-batch estimate alone
    by_column: dict[str, int] = {}
    for item in estimate.slices:
        by_column[item.column] = by_column.get(item.column, 0) + item.rows
        assert item.estimate is not None and item.lower is not None and item.upper is not None
        assert item.reference_value is not None and item.drop is not None
        assert abs(item.drop) < 4 * (item.sampling_error or 0)  # stationary: no slice really dropped
    assert by_column == {"salary_range": BATCH_ROWS, "repaid_loan_on_prev_car": BATCH_ROWS}
    realized = realized_performance(batch, contract)
    assert {(s.column, s.value) for s in realized.slices} == {(s.column, s.value) for s in estimate.slices}
    realized_by_slice = {(r.column, r.value): r.realized for r in realized.slices}
    for item in estimate.slices:
        realized_value = realized_by_slice[(item.column, item.value)]
        assert realized_value is not None and item.reference_value is not None and item.drop is not None
        # CBPE is biased within a slice the model is not calibrated on (here up to 0.03 AUC), so drops compare
        # estimate with estimate; they agree with the realized drops within the sampling noise of both.
        realized_drop = item.reference_value - realized_value
        assert abs(item.drop - realized_drop) < 5 * (item.sampling_error or 0), item


@pytest.mark.slow
def test_a_slice_that_loses_confidence_shows_its_own_drop(
    scored: Scored, sliced: tuple[ModelContract, PerformanceEstimator]
) -> None:
    contract, estimator = sliced
    batch = _stationary_batches(scored, 2)[1]
    target = "20K - 40K €"
    # The model's scores for one salary band collapse towards 0.5: CBPE expects worse ranking there only.
    hurt = batch.with_columns(
        pl.when(pl.col("salary_range") == target)
        .then(0.5 + (pl.col("y_pred_proba") - 0.5) * 0.05)
        .otherwise(pl.col("y_pred_proba"))
        .alias("y_pred_proba")
    )
    estimate = estimate_performance(estimator, hurt, contract)
    drops = {(s.column, s.value): s.drop for s in estimate.slices}
    assert drops[("salary_range", target)] is not None and drops[("salary_range", target)] > 0.1
    others = [d for key, d in drops.items() if key[0] == "salary_range" and key[1] != target]
    assert all(d is not None and abs(d) < 0.05 for d in others)


# --- the generic API on the binary problem: every metric, chunk by chunk ---------------------------------
@pytest.mark.slow
def test_binary_metrics_chunk_by_chunk_track_realized(scored: Scored) -> None:
    from tasks.performance.metrics import ModelOutputs, estimate_metrics, fit_metric_estimator

    outputs = ModelOutputs.of_contract(scored.contract)
    metrics = ["roc_auc", "f1", "precision", "recall", "accuracy"]
    estimator = fit_metric_estimator(scored.reference, outputs, metrics=metrics, chunk_size=BATCH_ROWS)
    assert estimator.reference_values["roc_auc"] == pytest.approx(scored.estimator.reference_value)
    chunks = estimate_metrics(estimator, scored.pool[: 8 * BATCH_ROWS], chunk_size=BATCH_ROWS)
    assert len(chunks) == 8
    for metric in metrics:
        errors = [abs(c.estimates[metric].value - c.realized[metric]) for c in chunks]  # type: ignore[operator]
        sigma = np.mean([c.estimates[metric].sampling_error for c in chunks])
        assert np.mean(errors) < 1.5 * sigma, metric


# --- estimated vs realized over batches (tasks/report/performance_plots.py) ------------------------------------
def test_performance_history_pairs_estimates_with_the_newest_realized_value(tmp_path: Path) -> None:
    from datetime import datetime
    from xml.etree import ElementTree

    from tasks.report.performance_plots import error_summary, performance_chart, performance_history

    def row(i: int, kind: str, batch: str, value: float, **payload: float) -> dict[str, object]:
        return {
            "id": i,
            "kind": kind,
            "batch_id": batch,
            "name": "roc_auc",
            "value": value,
            "threshold": 0.88 if kind == "estimate" else None,
            "window_end": datetime(2026, 1, i + 1, tzinfo=UTC),
            "payload": payload,
        }

    signals = [
        row(1, "estimate", "a", 0.90, lower=0.88, upper=0.92, reference=0.91),
        row(2, "estimate", "b", 0.85, lower=0.83, upper=0.87, reference=0.91),
        row(3, "realized", "a", 0.95),  # an earlier, partial label file
        row(4, "realized", "a", 0.91),
        row(5, "realized", "b", 0.80),
        row(6, "estimate", "c", 0.86, lower=0.84, upper=0.88, reference=0.91),
    ]
    points = performance_history(signals)
    assert [p.batch_id for p in points] == ["a", "b", "c"]
    assert points[0].realized == 0.91 and points[0].error == pytest.approx(0.01) and points[0].within_band
    assert points[1].within_band is False and points[2].realized is None and points[2].error is None
    summary = error_summary(points)
    assert summary.batches == 2
    assert summary.mean_absolute_error == pytest.approx(0.03)
    assert summary.max_absolute_error == pytest.approx(0.05)
    assert summary.band_coverage == 0.5
    chart = performance_chart(points, tmp_path / "perf" / "m.svg", title="m")
    assert chart is not None
    tips = [t.text for t in ElementTree.parse(chart).getroot().iter("{http://www.w3.org/2000/svg}title")]
    assert sum(str(t).split(": ")[1].startswith("realized") for t in tips) == 2  # the batches with labels
    assert performance_chart([], tmp_path / "none.svg", title="m") is None
