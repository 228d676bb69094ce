"""Multiclass CBPE on NannyML's synthetic credit-card dataset (read as CSV, without importing nannyml for it)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

from tasks.core.errors import EstimationError, ProbabilityRangeError, SingleClassError, UnknownClassError
from tasks.data.files import _nannyml_data_dir
from tasks.performance.metrics import (
    MetricEstimator,
    ModelOutputs,
    estimate_metrics,
    fit_metric_estimator,
    realized_metrics,
)

CLASSES = ("prepaid_card", "highstreet_card", "upmarket_card")
OUTPUTS = ModelOutputs(
    problem_type="classification_multiclass",
    target="y_true",
    prediction="y_pred",
    probabilities=tuple((c, f"y_pred_proba_{c}") for c in CLASSES),
    timestamp="timestamp",
)
CHUNK = 2500
METRICS = ("roc_auc", "f1", "precision", "recall", "specificity", "accuracy")


@pytest.fixture(scope="module")
def data() -> tuple[pl.DataFrame, pl.DataFrame]:
    folder = _nannyml_data_dir()
    reference = pl.read_csv(folder / "mc_reference.csv", try_parse_dates=True).head(15_000)
    analysis = pl.read_csv(folder / "mc_analysis.csv", try_parse_dates=True).join(
        pl.read_csv(folder / "mc_analysis_gt.csv"), on="id"
    )
    return reference, analysis


@pytest.fixture(scope="module")
def estimator(data: tuple[pl.DataFrame, pl.DataFrame]) -> MetricEstimator:
    return fit_metric_estimator(data[0], OUTPUTS, chunk_size=CHUNK)


@pytest.mark.slow
def test_reference_values_are_the_macro_metrics(data: tuple[pl.DataFrame, pl.DataFrame], estimator: MetricEstimator):
    reference = data[0]
    y, yhat = reference.get_column("y_true").to_numpy(), reference.get_column("y_pred").to_numpy()
    labels = sorted(CLASSES)
    proba = reference.select([f"y_pred_proba_{c}" for c in labels]).to_numpy()
    expected = {
        "roc_auc": roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=labels),
        "f1": f1_score(y, yhat, average="macro"),
        "precision": precision_score(y, yhat, average="macro"),
        "recall": recall_score(y, yhat, average="macro"),
        "accuracy": accuracy_score(y, yhat),
    }
    for metric, value in expected.items():
        assert estimator.reference_values[metric] == pytest.approx(value)
    # specificity = mean over classes of TN / (TN + FP)
    spec = np.mean([np.sum((y != c) & (yhat != c)) / np.sum(y != c) for c in labels])
    assert estimator.reference_values["specificity"] == pytest.approx(spec)
    assert estimator.method == "cbpe" and set(estimator.metrics) == set(METRICS)
    for metric in METRICS:
        low, high = estimator.lower_thresholds[metric], estimator.upper_thresholds[metric]
        assert low is not None and high is not None and low < estimator.reference_values[metric] < high


@pytest.mark.slow
def test_estimates_track_realized_before_the_concept_shift(
    data: tuple[pl.DataFrame, pl.DataFrame], estimator: MetricEstimator
) -> None:
    # The first half of the analysis period keeps P(y | x): CBPE's assumption holds there.
    chunks = estimate_metrics(estimator, data[1].head(30_000), chunk_size=CHUNK)
    assert len(chunks) == 12
    nannyml_realized = estimator.nml.result.filter(period="analysis").to_df()
    for metric in METRICS:
        errors, sigmas = [], []
        for chunk in chunks:
            estimate, realized = chunk.estimates[metric], chunk.realized[metric]
            assert realized is not None
            # sklearn's macro metric equals NannyML's own realized value on the same chunk
            assert realized == pytest.approx(nannyml_realized[(metric, "realized")].iloc[chunk.index])
            assert estimate.lower is not None and estimate.upper is not None and estimate.sampling_error
            assert estimate.lower <= realized <= estimate.upper
            errors.append(abs(estimate.value - realized))
            sigmas.append(estimate.sampling_error)
        # measured: mean |error| ~ 0.6-0.9 sampling errors (|N(0, s)| averages 0.8 s)
        assert np.mean(errors) < 1.5 * np.mean(sigmas), metric
    assert chunks[0].estimates["roc_auc"].method == "cbpe" and chunks[0].estimates["roc_auc"].rows == CHUNK
    assert chunks[0].estimates["roc_auc"].window_start is not None


@pytest.mark.slow
def test_cbpe_cannot_see_the_concept_shift_that_realized_performance_shows(
    data: tuple[pl.DataFrame, pl.DataFrame], estimator: MetricEstimator
) -> None:
    # The second half changes P(y | x): realized AUC falls ~0.15, CBPE (which trusts the scores) falls ~0.09.
    [chunk] = estimate_metrics(estimator, data[1].tail(10_000))
    estimate, realized = chunk.estimates["roc_auc"], chunk.realized["roc_auc"]
    assert realized is not None
    assert estimator.reference_values["roc_auc"] - realized > 0.1
    assert estimate.value - realized > 0.04  # the gap a concept-drift detector on labels has to close
    assert estimate.alert  # still alerts: the covariate part of the shift is visible


def test_realized_metrics_without_and_with_labels(data: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    analysis = data[1].head(3000)
    unlabelled = realized_metrics(analysis.drop("y_true"), OUTPUTS, ["accuracy"])
    assert unlabelled["accuracy"].value is None and unlabelled["accuracy"].rows_labelled == 0
    partly = analysis.with_columns(
        pl.when(pl.int_range(pl.len()) % 2 == 0).then(None).otherwise(pl.col("y_true")).alias("y_true")
    )
    result = realized_metrics(partly, OUTPUTS, ["accuracy", "roc_auc"])
    kept = partly.filter(pl.col("y_true").is_not_null())
    assert result["accuracy"].rows_labelled == kept.height == 1500
    assert result["accuracy"].value == pytest.approx(
        accuracy_score(kept.get_column("y_true").to_numpy(), kept.get_column("y_pred").to_numpy())
    )
    two_classes = kept.filter(pl.col("y_true") != "upmarket_card")
    assert realized_metrics(two_classes, OUTPUTS, ["roc_auc"])["roc_auc"].value is None  # a class has no rows


# --- typed errors --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_bad_multiclass_inputs_are_typed(data: tuple[pl.DataFrame, pl.DataFrame], estimator: MetricEstimator) -> None:
    reference, analysis = data
    with pytest.raises(EstimationError, match="y_pred_proba_upmarket_card"):
        fit_metric_estimator(reference.drop("y_pred_proba_upmarket_card"), OUTPUTS, chunk_size=CHUNK)
    with pytest.raises(ProbabilityRangeError) as info:
        fit_metric_estimator(
            reference.with_columns(pl.col("y_pred_proba_prepaid_card") + 1.0), OUTPUTS, chunk_size=CHUNK
        )
    assert info.value.column == "y_pred_proba_prepaid_card"
    with pytest.raises(SingleClassError):
        fit_metric_estimator(reference.with_columns(pl.lit("prepaid_card").alias("y_true")), OUTPUTS, chunk_size=CHUNK)
    with pytest.raises(UnknownClassError, match="gold_card") as unknown:
        fit_metric_estimator(
            reference.with_columns(
                pl.when(pl.int_range(pl.len()) == 5).then(pl.lit("gold_card")).otherwise("y_true").alias("y_true")
            ),
            OUTPUTS,
            chunk_size=CHUNK,
        )
    assert unknown.value.column == "y_true"
    with pytest.raises(UnknownClassError, match="y_pred"):
        estimate_metrics(estimator, analysis.head(100).with_columns(pl.lit("gold_card").alias("y_pred")))
    two = ModelOutputs("classification_multiclass", "y_true", "y_pred", OUTPUTS.probabilities[:2])
    with pytest.raises(EstimationError, match=">= 3 classes"):
        fit_metric_estimator(reference, two)
    with pytest.raises(EstimationError, match="rmse"):
        fit_metric_estimator(reference, OUTPUTS, metrics=["rmse"])
