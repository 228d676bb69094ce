"""Performance without labels (NannyML CBPE) and realized performance once labels land.

This is the only module that imports NannyML or hands polars frames to pandas. NannyML is imported
lazily (about 5 s, and only after its usage analytics are switched off). Only the three columns CBPE
reads (label, probability, prediction) cross into pandas, as plain float/int numpy columns, so neither
pyarrow-backed strings nor the rest of the batch ever reach NannyML.

CBPE's alert thresholds come from the chunk-to-chunk spread of the realized metric on the reference,
in chunks of ``chunk_size`` rows, while each batch is estimated as one chunk: fit with a ``chunk_size``
close to the typical batch size, or the thresholds will be too wide (bigger batches) or too tight.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tasks.errors import DtypeError, EmptyBatchError, EstimationError, ProbabilityRangeError, SingleClassError
from tasks.schema import ModelContract

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

# Metrics CBPE estimates for binary classification, with the sklearn function of their realized value.
SUPPORTED_METRICS = ("roc_auc", "accuracy", "f1", "precision", "recall", "specificity")
DECISION_THRESHOLD = 0.5


@dataclass(frozen=True)
class PerformanceEstimate:
    """CBPE's estimate of a metric on one batch (one chunk), with NannyML's band and reference thresholds."""

    metric: str
    value: float
    lower: float | None
    upper: float | None
    sampling_error: float | None
    reference_value: float
    lower_threshold: float | None
    upper_threshold: float | None
    alert: bool
    rows: int
    method: str
    window_start: datetime | None
    window_end: datetime | None

    @property
    def drop(self) -> float:
        """How far the estimate lies below the realized reference value (negative when above)."""
        return self.reference_value - self.value


@dataclass(frozen=True)
class RealizedPerformance:
    """The metric computed on the labelled rows of a batch; ``value`` is None when it cannot be computed."""

    metric: str
    value: float | None
    rows_labelled: int
    rows: int


@dataclass(eq=False)
class PerformanceEstimator:
    """A CBPE estimator fitted once on a scored, labelled reference. Not picklable; refit in each process."""

    metric: str
    reference_value: float
    reference_rows: int
    chunk_size: int
    lower_threshold: float | None
    upper_threshold: float | None
    calibrated: bool
    cbpe: Any = field(repr=False)
    # CBPE.estimate appends to the estimator's own result frame, so concurrent calls must take turns.
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def _nannyml() -> Any:
    from tasks.telemetry import disable_telemetry

    disable_telemetry()
    import nannyml

    return nannyml


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence NannyML's chatter for one call: warnings about few chunks and its own INFO/WARNING logs."""
    import logging

    logger = logging.getLogger("nannyml")
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(previous)


def _configure_pandas() -> None:
    import pandas as pd

    with warnings.catch_warnings():
        # pandas 3 warns that the option is going away; it is still needed for NannyML's DLE with pyarrow.
        warnings.simplefilter("ignore")
        pd.set_option("future.infer_string", False)


def _check_metric(metric: str) -> None:
    if metric not in SUPPORTED_METRICS:
        raise EstimationError(f"metric {metric!r} is not supported; choose one of {SUPPORTED_METRICS}")


def _probabilities(frame: pl.DataFrame, contract: ModelContract, source: str) -> pl.Series:
    import polars as pl

    if contract.probability not in frame.columns:
        raise EstimationError(
            f"{source} has no probability column {contract.probability!r} (contract {contract.name!r}); "
            "score it with the model before estimating performance"
        )
    column = frame.get_column(contract.probability)
    if not column.dtype.is_numeric():
        raise DtypeError(f"expected probabilities, found {column.dtype}", source=source, column=contract.probability)
    column = column.cast(pl.Float64)
    outside = int((~column.is_between(0.0, 1.0) & column.is_not_null()).sum())
    if outside:
        raise ProbabilityRangeError(f"{outside} values outside [0, 1]", source=source, column=contract.probability)
    return column


def _labels(frame: pl.DataFrame, contract: ModelContract, source: str) -> pl.Series:
    import polars as pl

    if contract.target not in frame.columns:
        raise EstimationError(
            f"{source} has no target column {contract.target!r} (contract {contract.name!r}); "
            "CBPE is fitted on labelled reference data"
        )
    column = frame.get_column(contract.target)
    if column.dtype == pl.Boolean:
        return column.cast(pl.Int8)
    if not column.dtype.is_numeric():
        raise DtypeError(f"expected a 0/1 label, found {column.dtype}", source=source, column=contract.target)
    values = set(column.drop_nulls().unique().to_list())
    if not values <= {0, 1}:
        raise DtypeError(
            f"binary labels must be 0/1, found {sorted(values - {0, 1})[:5]}", source=source, column=contract.target
        )
    return column.cast(pl.Int8)


def _predictions(frame: pl.DataFrame, contract: ModelContract, probability: pl.Series) -> pl.Series:
    import polars as pl

    if contract.prediction in frame.columns:
        column = frame.get_column(contract.prediction)
        if not (column.dtype.is_numeric() or column.dtype == pl.Boolean):
            raise DtypeError(
                f"expected 0/1 predictions, found {column.dtype}", source="batch", column=contract.prediction
            )
        return column.cast(pl.Int8)
    return (probability >= DECISION_THRESHOLD).cast(pl.Int8).alias(contract.prediction)


def _realized_value(metric: str, y_true: np.ndarray, probability: np.ndarray, prediction: np.ndarray) -> float | None:
    import numpy as np
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

    if len(y_true) == 0 or np.unique(y_true).size < 2:
        return None
    scorers: dict[str, Callable[[], float]] = {
        "roc_auc": lambda: roc_auc_score(y_true, probability),
        "accuracy": lambda: accuracy_score(y_true, prediction),
        "f1": lambda: f1_score(y_true, prediction, zero_division=0),
        "precision": lambda: precision_score(y_true, prediction, zero_division=0),
        "recall": lambda: recall_score(y_true, prediction, zero_division=0),
        "specificity": lambda: recall_score(y_true, prediction, pos_label=0, zero_division=0),
    }
    return float(scorers[metric]())


def _optional(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def _aware(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _window(frame: pl.DataFrame, contract: ModelContract) -> tuple[datetime | None, datetime | None]:
    if not contract.timestamp or contract.timestamp not in frame.columns or frame.height == 0:
        return None, None
    stamps = frame.get_column(contract.timestamp)
    if not stamps.dtype.is_temporal():
        return None, None
    return _aware(stamps.min()), _aware(stamps.max())


def fit_estimator(
    reference: pl.DataFrame, contract: ModelContract, *, metric: str = "roc_auc", chunk_size: int = 5000
) -> PerformanceEstimator:
    """Fit CBPE on a scored, labelled reference (rows without a label or a probability are left out).

    The prediction column is derived as probability >= 0.5 when the reference lacks it.
    """
    import numpy as np
    import pandas as pd
    import polars as pl

    source = f"reference of {contract.name!r}"
    _check_metric(metric)
    if chunk_size < 2:
        raise EstimationError(f"chunk_size must be at least 2, got {chunk_size}")
    probability = _probabilities(reference, contract, source)
    labels = _labels(reference, contract, source)
    prediction = _predictions(reference, contract, probability)
    frame = pl.DataFrame({"y": labels, "p": probability, "yhat": prediction})
    if contract.timestamp and contract.timestamp in reference.columns:
        # Reference chunks follow time, so the thresholds reflect how the metric varies over time.
        frame = frame.with_columns(reference.get_column(contract.timestamp).alias("t")).sort("t", maintain_order=True)
    frame = frame.filter(pl.col("y").is_not_null() & pl.col("p").is_not_null() & pl.col("yhat").is_not_null())
    if frame.height == 0:
        raise EstimationError(f"{source} has no row with both a label and a probability")
    if frame.get_column("y").n_unique() < 2:
        only = frame.get_column("y").unique().to_list()
        raise SingleClassError(
            f"labels hold a single class {only}; CBPE needs both 0 and 1", source=source, column=contract.target
        )
    if frame.height < 2 * chunk_size:
        raise EstimationError(
            f"{source} has {frame.height} labelled rows; CBPE thresholds need at least 2 chunks of "
            f"chunk_size={chunk_size} rows: lower chunk_size or use a bigger reference"
        )

    y_true = frame.get_column("y").to_numpy().astype(np.int64)
    y_proba = frame.get_column("p").to_numpy().astype(np.float64)
    y_pred = frame.get_column("yhat").to_numpy().astype(np.int64)
    reference_value = _realized_value(metric, y_true, y_proba, y_pred)
    if reference_value is None:  # two classes were checked above; keeps the type checker honest
        raise EstimationError(f"{source}: realized {metric} is undefined")

    _configure_pandas()
    data = pd.DataFrame({contract.target: y_true, contract.probability: y_proba, contract.prediction: y_pred})
    nml = _nannyml()
    from nannyml.chunk import CountBasedChunker, SizeBasedChunker

    cbpe = nml.CBPE(
        metrics=[metric],
        y_pred_proba=contract.probability,
        y_pred=contract.prediction,
        y_true=contract.target,
        problem_type="classification_binary",
        # Equal chunks: a small leftover chunk would inflate the spread the thresholds are built from.
        chunker=SizeBasedChunker(chunk_size=chunk_size, incomplete="drop"),
    )
    try:
        with _quiet():
            cbpe.fit(data)
    except Exception as exc:  # NannyML raises its own (and pandas/sklearn) errors: name the stage and input
        raise EstimationError(f"CBPE fit on {source} ({frame.height} rows) failed: {exc}") from exc
    # From now on every batch is estimated as a single chunk.
    cbpe.chunker = CountBasedChunker(chunk_number=1)
    fitted_metric = cbpe.metrics[0]
    return PerformanceEstimator(
        metric=metric,
        reference_value=reference_value,
        reference_rows=frame.height,
        chunk_size=chunk_size,
        lower_threshold=_optional(fitted_metric.lower_threshold_value),
        upper_threshold=_optional(fitted_metric.upper_threshold_value),
        calibrated=bool(cbpe.needs_calibration),
        cbpe=cbpe,
    )


def estimate_performance(
    estimator: PerformanceEstimator, batch: pl.DataFrame, contract: ModelContract
) -> PerformanceEstimate:
    """Estimate the metric on a scored batch (labels not needed); the whole batch is one CBPE chunk."""
    import numpy as np
    import pandas as pd
    import polars as pl

    source = f"batch of {contract.name!r}"
    probability = _probabilities(batch, contract, source)
    prediction = _predictions(batch, contract, probability)
    frame = pl.DataFrame({"p": probability, "yhat": prediction}).filter(
        pl.col("p").is_not_null() & pl.col("yhat").is_not_null()
    )
    if frame.height == 0:
        raise EmptyBatchError(
            f"no scored rows to estimate {estimator.metric} on ({batch.height} rows in the batch)",
            source=source,
            column=contract.probability,
        )
    _configure_pandas()
    data = pd.DataFrame(
        {
            contract.probability: frame.get_column("p").to_numpy().astype(np.float64),
            contract.prediction: frame.get_column("yhat").to_numpy().astype(np.int64),
        }
    )
    try:
        with estimator.lock, _quiet():
            result = estimator.cbpe.estimate(data).filter(period="analysis").to_df()
    except Exception as exc:  # NannyML's own errors: name the batch and the metric
        raise EstimationError(
            f"CBPE estimate of {estimator.metric} on {source} ({frame.height} rows) failed: {exc}"
        ) from exc
    row = result.iloc[-1]
    column = estimator.cbpe.metrics[0].column_name
    value = _optional(row[(column, "value")])
    if value is None:
        raise EstimationError(
            f"CBPE returned no {estimator.metric} estimate for {source} ({frame.height} rows); see NannyML's log"
        )
    window_start, window_end = _window(batch, contract)
    return PerformanceEstimate(
        metric=estimator.metric,
        value=value,
        lower=_optional(row[(column, "lower_confidence_boundary")]),
        upper=_optional(row[(column, "upper_confidence_boundary")]),
        sampling_error=_optional(row[(column, "sampling_error")]),
        reference_value=estimator.reference_value,
        lower_threshold=_optional(row[(column, "lower_threshold")]),
        upper_threshold=_optional(row[(column, "upper_threshold")]),
        alert=bool(row[(column, "alert")]),
        rows=frame.height,
        method="cbpe",
        window_start=window_start,
        window_end=window_end,
    )


def realized_performance(batch: pl.DataFrame, contract: ModelContract, metric: str = "roc_auc") -> RealizedPerformance:
    """The metric on the labelled rows of a scored batch (sklearn); None with no labels or a single class."""
    import numpy as np
    import polars as pl

    _check_metric(metric)
    source = f"batch of {contract.name!r}"
    probability = _probabilities(batch, contract, source)
    if contract.target not in batch.columns:
        return RealizedPerformance(metric=metric, value=None, rows_labelled=0, rows=batch.height)
    labels = _labels(batch, contract, source)
    prediction = _predictions(batch, contract, probability)
    frame = pl.DataFrame({"y": labels, "p": probability, "yhat": prediction}).filter(
        pl.col("y").is_not_null() & pl.col("p").is_not_null() & pl.col("yhat").is_not_null()
    )
    value = _realized_value(
        metric,
        frame.get_column("y").to_numpy().astype(np.int64),
        frame.get_column("p").to_numpy().astype(np.float64),
        frame.get_column("yhat").to_numpy().astype(np.int64),
    )
    return RealizedPerformance(metric=metric, value=value, rows_labelled=frame.height, rows=batch.height)


def prefect_tasks() -> dict[str, Any]:
    """Thin Prefect task wrappers of this module's functions (imported lazily)."""
    from prefect import task
    from prefect.cache_policies import NO_CACHE

    # Frames and a fitted CBPE make poor cache keys (hashing them costs more than the work).
    return {
        "fit_estimator": task(name="fit-estimator", cache_policy=NO_CACHE)(fit_estimator),
        "estimate_performance": task(name="estimate-performance", cache_policy=NO_CACHE)(estimate_performance),
        "realized_performance": task(name="realized-performance", cache_policy=NO_CACHE)(realized_performance),
    }
