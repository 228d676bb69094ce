"""The numpy CBPE (tasks/performance/fitted.py) equals NannyML's estimate to 1e-9: value, sampling error,
confidence bounds, thresholds, alert flag and every slice, on several seeds, two data-generating processes
(scores NannyML recalibrates and scores it leaves alone) and the chunk sizes the project fits with."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

from tasks.data.contract import FeatureSpec, ModelContract
from tasks.performance.estimation import PerformanceEstimate, estimate_performance, fit_estimator
from tasks.performance.fitted import FittedCBPE, IsotonicMap, UnsupportedEstimator, estimate_fitted, extract

CONTRACT = ModelContract(
    name="fitted",
    features=[FeatureSpec(name="x", kind="numeric"), FeatureSpec(name="region", kind="categorical")],
    target="y",
    entity_id="id",
    timestamp="ts",
    slices=["region"],
)


def scored(rows: int, seed: int, process: str, *, shift: float = 0.0) -> pl.DataFrame:
    """``calibrated``: y ~ Bernoulli(p) (NannyML usually skips calibration); ``overconfident``: scores are a
    sharpened, rounded version of the true probability (NannyML fits its isotonic calibrator; many ties)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, rows)
    region = rng.choice(np.array(["north", "south", "east", "tiny"]), rows, p=[0.5, 0.3, 0.195, 0.005])
    logit = 1.3 * x + np.where(region == "south", -0.4, 0.2)
    truth = 1.0 / (1.0 + np.exp(-logit))
    y = (rng.random(rows) < truth).astype(np.int64)
    sharpened = np.round(1.0 / (1.0 + np.exp(-2.5 * logit + 0.7)), 3)
    p = truth if process == "calibrated" else sharpened
    return pl.DataFrame(
        {
            "id": np.arange(rows),
            "ts": [datetime(2026, 1, 1) + timedelta(minutes=i) for i in range(rows)],
            "x": x,
            "region": region,
            "y": y,
            "y_pred_proba": p,
        }
    )


def assert_equal(ours: PerformanceEstimate, theirs: PerformanceEstimate) -> None:
    def close(a: float | None, b: float | None) -> bool:
        return (a is None and b is None) or (a is not None and b is not None and abs(a - b) <= 1e-9)

    for name in ("value", "lower", "upper", "sampling_error", "reference_value", "lower_threshold", "upper_threshold"):
        assert close(getattr(ours, name), getattr(theirs, name)), (name, getattr(ours, name), getattr(theirs, name))
    assert (ours.alert, ours.rows, ours.method, ours.metric) == (
        theirs.alert,
        theirs.rows,
        theirs.method,
        theirs.metric,
    )
    assert (ours.window_start, ours.window_end) == (theirs.window_start, theirs.window_end)
    assert [(s.column, s.value, s.rows) for s in ours.slices] == [(s.column, s.value, s.rows) for s in theirs.slices]
    for a, b in zip(ours.slices, theirs.slices, strict=True):
        for name in ("estimate", "lower", "upper", "sampling_error", "reference_value", "reference_estimate"):
            assert close(getattr(a, name), getattr(b, name)), (a.value, name, getattr(a, name), getattr(b, name))


@pytest.mark.parametrize(
    ("process", "seed", "chunk_size"),
    [
        ("calibrated", 0, 1000),
        pytest.param("calibrated", 1, 2500, marks=pytest.mark.slow),
        pytest.param("overconfident", 2, 1000, marks=pytest.mark.slow),
        pytest.param("overconfident", 3, 2500, marks=pytest.mark.slow),
        # chunk_size = reference.height // 3, as prepare_context does for small references
        pytest.param("overconfident", 4, 3333, marks=pytest.mark.slow),
    ],
)
def test_numpy_cbpe_equals_nannyml(process: str, seed: int, chunk_size: int) -> None:
    reference = scored(10_000, seed, process)
    estimator = fit_estimator(reference, CONTRACT, chunk_size=chunk_size)
    fitted = FittedCBPE.from_json(extract(estimator).to_json())  # what the cache holds
    assert fitted.calibrated == estimator.calibrated
    assert (fitted.lower_threshold, fitted.upper_threshold) == (estimator.lower_threshold, estimator.upper_threshold)
    batches = [
        scored(3000, seed + 100, process),  # stationary
        scored(3000, seed + 200, process, shift=1.2),  # shifted: estimate moves, may alert
        scored(120, seed + 300, process),  # tiny: slices below MIN_SLICE_ROWS are left out
        scored(5000, seed + 400, process, shift=-3.0).with_columns(pl.col("y_pred_proba") * 0.2),  # low, clipped
        scored(4000, seed + 500, process).with_columns(  # outside the calibrator's range on both sides
            pl.when(pl.col("x") > 1.5)
            .then(1.0)
            .when(pl.col("x") < -1.5)
            .then(0.0)
            .otherwise(pl.col("y_pred_proba"))
            .alias("y_pred_proba")
        ),
    ]
    for batch in batches:
        theirs = estimate_performance(estimator, batch, CONTRACT)
        ours = estimate_fitted(fitted, batch, CONTRACT)
        assert_equal(ours, theirs)
    assert len(fitted.slice_reference_estimate) >= 3


def test_both_processes_exercised() -> None:
    """The two processes really differ in what NannyML keeps: with and without the isotonic calibrator."""
    calibrated = {
        extract(fit_estimator(scored(10_000, s, "calibrated"), CONTRACT, chunk_size=2500)).calibrated for s in range(2)
    }
    overconfident = extract(fit_estimator(scored(10_000, 2, "overconfident"), CONTRACT, chunk_size=2500))
    assert overconfident.calibrated and overconfident.calibrator is not None
    assert len(overconfident.calibrator.x) > 2
    assert False in calibrated  # seed 0: NannyML found the scores calibrated and skips its calibrator


def test_json_round_trip_and_validation() -> None:
    fitted = extract(fit_estimator(scored(6000, 7, "overconfident"), CONTRACT, chunk_size=2000))
    assert FittedCBPE.from_json(fitted.to_json()) == fitted
    with pytest.raises(ValueError):
        FittedCBPE.from_json('{"format": 0}')
    with pytest.raises(ValueError):
        FittedCBPE.from_json(fitted.to_json()[:-20])
    with pytest.raises(UnsupportedEstimator):
        FittedCBPE(**{**fitted.__dict__, "metric": "accuracy"})
    with pytest.raises(ValueError):
        IsotonicMap(x=(0.5, 0.2), y=(0.1, 0.3), x_min=0.2, x_max=0.5)


def test_extract_refuses_other_metrics() -> None:
    estimator = fit_estimator(scored(6000, 8, "calibrated"), CONTRACT, metric="accuracy", chunk_size=2000)
    with pytest.raises(UnsupportedEstimator):
        extract(estimator)
