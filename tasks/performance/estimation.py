"""Performance without labels (NannyML CBPE and DLE) and realized performance once labels land.

This package is the only place that imports NannyML or hands polars frames to pandas. NannyML is imported
lazily (about 5 s, and only after its usage analytics are switched off). Only the columns an estimator
reads (label, probabilities, prediction, and DLE's features) cross into pandas, as plain numpy columns,
so neither pyarrow-backed strings nor the rest of the batch ever reach NannyML.

The monitored loop (binary classification, the contract's ``problem_type``): :func:`fit_estimator`,
:func:`estimate_performance` (overall and per slice of the contract) and :func:`realized_performance`.
Any other scored frame (multiclass, regression): :mod:`tasks.performance.metrics`, built on the same
NannyML plumbing (:func:`_nannyml`, :func:`_quiet`).

CBPE's alert thresholds come from the chunk-to-chunk spread of the realized metric on the reference,
in chunks of ``chunk_size`` rows, while each batch is estimated as one chunk: fit with a ``chunk_size``
close to the typical batch size, or the thresholds will be too wide (bigger batches) or too tight.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tasks.core.errors import (
    DtypeError,
    EmptyBatchError,
    EstimationError,
    ProbabilityRangeError,
    SingleClassError,
)
from tasks.core.settings import DEFAULT_DECISION_THRESHOLD
from tasks.core.timeutil import time_span
from tasks.data.contract import ModelContract

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

# Metrics CBPE estimates for binary classification, with the sklearn function of their realized value.
SUPPORTED_METRICS = ("roc_auc", "accuracy", "f1", "precision", "recall", "specificity")
MIN_SLICE_ROWS = 50  # smaller slices get no estimate at all (CBPE's sampling error model breaks down)
_ALL = "__all__"


@dataclass(frozen=True)
class SliceEstimate:
    """CBPE's estimate on the rows of one slice (a value of a segment column), against that slice's reference."""

    column: str
    value: str
    rows: int
    estimate: float | None
    lower: float | None
    upper: float | None
    sampling_error: float | None
    reference_value: float | None  # realized metric on the reference rows of this slice (None: undefined there)
    reference_estimate: float | None  # CBPE's estimate on those same reference rows

    @property
    def drop(self) -> float | None:
        """Estimate on the reference slice minus estimate on this batch's slice.

        Comparing estimate with estimate cancels the bias CBPE has within a slice where the model is not
        calibrated (the calibrator is fitted on the whole reference): measured up to 0.03 AUC on car-loan.
        """
        if self.estimate is None or self.reference_estimate is None:
            return None
        return self.reference_estimate - self.estimate


@dataclass(frozen=True)
class SliceRealized:
    column: str
    value: str
    rows_labelled: int
    realized: float | None


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
    higher_is_better: bool = True
    slices: tuple[SliceEstimate, ...] = ()

    @property
    def drop(self) -> float:
        """How much worse the estimate is than the realized reference value (negative when better)."""
        change = self.reference_value - self.value
        return change if self.higher_is_better else -change


@dataclass(frozen=True)
class RealizedPerformance:
    """The metric computed on the labelled rows of a batch; ``value`` is None when it cannot be computed."""

    metric: str
    value: float | None
    rows_labelled: int
    rows: int
    slices: tuple[SliceRealized, ...] = ()


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
    # Realized metric on the reference rows of each slice, keyed by (column, value); absent when undefined.
    slice_reference: dict[tuple[str, str], float] = field(default_factory=dict)
    # CBPE's estimate on the same reference rows: the baseline of a slice's estimated drop.
    slice_reference_estimate: dict[tuple[str, str], float] = field(default_factory=dict)
    slice_columns: tuple[str, ...] = ()
    threshold: float = DEFAULT_DECISION_THRESHOLD  # predictions derived as probability >= threshold


def _nannyml() -> Any:
    from tasks.core.telemetry import disable_telemetry

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


def _predictions(frame: pl.DataFrame, contract: ModelContract, probability: pl.Series, threshold: float) -> pl.Series:
    import polars as pl

    if contract.prediction in frame.columns:
        column = frame.get_column(contract.prediction)
        if not (column.dtype.is_numeric() or column.dtype == pl.Boolean):
            raise DtypeError(
                f"expected 0/1 predictions, found {column.dtype}", source="batch", column=contract.prediction
            )
        return column.cast(pl.Int8)
    return (probability >= threshold).cast(pl.Int8).alias(contract.prediction)


def _realized_value(metric: str, y_true: np.ndarray, probability: np.ndarray, prediction: np.ndarray) -> float | None:
    """The realized metric (None with no rows or a single class), in numpy: equal to sklearn's to 1e-12
    (:mod:`tasks.performance.realized`), so the monitor path never imports scikit-learn."""
    from tasks.performance.realized import binary_metric

    return binary_metric(metric, y_true, probability, prediction)


def _optional(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


_KEY_SEPARATOR = "\x1f"
MISSING_SLICE = "(missing)"


def _slice_key(column: str) -> str:
    return f"__slice__{column}"


def _slice_values(frame: pl.DataFrame, columns: tuple[str, ...]) -> list[pl.Expr]:
    """Slice columns as text (missing values as their own slice), under names that cannot clash."""
    import polars as pl

    return [pl.lit(frame.get_column(c)).cast(pl.String).fill_null(MISSING_SLICE).alias(_slice_key(c)) for c in columns]


def _slice_chunker(columns: tuple[str, ...], min_rows: int) -> Any:
    """A NannyML chunker: the whole frame first, then one chunk per value of each slice column."""
    from nannyml.chunk import Chunk, Chunker

    class SliceChunker(Chunker):
        def _split(self, data: Any) -> list[Any]:
            chunks = [Chunk(key=_ALL, data=data)]
            for column in columns:
                key = _slice_key(column)
                if key not in data.columns:
                    continue
                for value, part in data.groupby(key, sort=True):
                    if len(part) >= min_rows:
                        chunks.append(Chunk(key=f"{column}{_KEY_SEPARATOR}{value}", data=part))
            return chunks

    return SliceChunker()


def fit_estimator(
    reference: pl.DataFrame,
    contract: ModelContract,
    *,
    metric: str = "roc_auc",
    chunk_size: int = 5000,
    threshold: float = DEFAULT_DECISION_THRESHOLD,
) -> PerformanceEstimator:
    """Fit CBPE on a scored, labelled reference (rows without a label or a probability are left out).

    The prediction column is derived as probability >= ``threshold`` (gate.decision_threshold) when a frame
    lacks it, here and in every estimate of this estimator.
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
    prediction = _predictions(reference, contract, probability, threshold)
    slice_columns = tuple(c for c in contract.slices if c in reference.columns)
    frame = pl.DataFrame({"y": labels, "p": probability, "yhat": prediction}).with_columns(
        _slice_values(reference, slice_columns)
    )
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
    from nannyml.chunk import SizeBasedChunker

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
    # From now on every batch is estimated as one chunk, followed by one chunk per slice value.
    cbpe.chunker = _slice_chunker(slice_columns, MIN_SLICE_ROWS)
    fitted_metric = cbpe.metrics[0]
    slice_reference: dict[tuple[str, str], float] = {}
    for column in slice_columns:
        for (value,), part in frame.group_by(_slice_key(column), maintain_order=True):
            realized = _realized_value(
                metric,
                part.get_column("y").to_numpy().astype(np.int64),
                part.get_column("p").to_numpy().astype(np.float64),
                part.get_column("yhat").to_numpy().astype(np.int64),
            )
            if realized is not None:
                slice_reference[(column, str(value))] = realized
    estimator = PerformanceEstimator(
        metric=metric,
        reference_value=reference_value,
        reference_rows=frame.height,
        chunk_size=chunk_size,
        lower_threshold=_optional(fitted_metric.lower_threshold_value),
        upper_threshold=_optional(fitted_metric.upper_threshold_value),
        calibrated=bool(cbpe.needs_calibration),
        cbpe=cbpe,
        slice_reference=slice_reference,
        slice_columns=slice_columns,
        threshold=threshold,
    )
    if slice_columns:
        scored = frame.rename({"p": contract.probability, "yhat": contract.prediction}).with_columns(
            [pl.col(_slice_key(c)).alias(c) for c in slice_columns]
        )
        on_reference = estimate_performance(estimator, scored, contract)
        estimator.slice_reference_estimate = {
            (s.column, s.value): s.estimate for s in on_reference.slices if s.estimate is not None
        }
    return estimator


def scored_rows(
    batch: pl.DataFrame, contract: ModelContract, threshold: float, slices: tuple[str, ...], metric: str
) -> tuple[pl.DataFrame, tuple[str, ...]]:
    """The batch's scored rows as ``p`` (probability), ``yhat`` (prediction at ``threshold``) and the slice columns
    it has, rows without a score left out; shared by NannyML's CBPE and the numpy one (tasks/performance/fitted.py).
    No scored row at all is an EmptyBatchError naming the probability column."""
    import polars as pl

    source = f"batch of {contract.name!r}"
    probability = _probabilities(batch, contract, source)
    prediction = _predictions(batch, contract, probability, threshold)
    slice_columns = tuple(c for c in slices if c in batch.columns)
    frame = (
        pl.DataFrame({"p": probability, "yhat": prediction})
        .with_columns(_slice_values(batch, slice_columns))
        .filter(pl.col("p").is_not_null() & pl.col("yhat").is_not_null())
    )
    if frame.height == 0:
        raise EmptyBatchError(
            f"no scored rows to estimate {metric} on ({batch.height} rows in the batch)",
            source=source,
            column=contract.probability,
        )
    return frame, slice_columns


def estimate_performance(
    estimator: PerformanceEstimator, batch: pl.DataFrame, contract: ModelContract
) -> PerformanceEstimate:
    """Estimate the metric on a scored batch (labels not needed): the whole batch as one CBPE chunk, and each
    slice of the contract (values with at least ``MIN_SLICE_ROWS`` rows) as a chunk of its own, in one call.

    :func:`tasks.performance.fitted.estimate_fitted` gives the same result from the estimator extracted to
    numpy, without importing NannyML or pandas."""
    import numpy as np
    import pandas as pd

    source = f"batch of {contract.name!r}"
    frame, slice_columns = scored_rows(batch, contract, estimator.threshold, estimator.slice_columns, estimator.metric)
    _configure_pandas()
    data = pd.DataFrame(
        {
            contract.probability: frame.get_column("p").to_numpy().astype(np.float64),
            contract.prediction: frame.get_column("yhat").to_numpy().astype(np.int64),
            **{_slice_key(c): frame.get_column(_slice_key(c)).to_numpy() for c in slice_columns},
        }
    )
    try:
        with estimator.lock, _quiet():
            result = estimator.cbpe.estimate(data).filter(period="analysis").to_df()
    except Exception as exc:  # NannyML's own errors: name the batch and the metric
        raise EstimationError(
            f"CBPE estimate of {estimator.metric} on {source} ({frame.height} rows) failed: {exc}"
        ) from exc
    column = estimator.cbpe.metrics[0].column_name
    keys = result[("chunk", "key")].tolist()
    if _ALL not in keys:
        raise EstimationError(f"CBPE returned no whole-batch chunk for {source}; see NannyML's log")
    row = result.iloc[keys.index(_ALL)]
    value = _optional(row[(column, "value")])
    if value is None:
        raise EstimationError(
            f"CBPE returned no {estimator.metric} estimate for {source} ({frame.height} rows); see NannyML's log"
        )
    sizes = {
        (column_name, str(value)): int(count)
        for column_name in slice_columns
        for value, count in frame.get_column(_slice_key(column_name)).value_counts().iter_rows()
    }
    slices = []
    for position, key in enumerate(keys):
        if key == _ALL:
            continue
        slice_column, _, slice_value = str(key).partition(_KEY_SEPARATOR)
        part = result.iloc[position]
        slices.append(
            SliceEstimate(
                column=slice_column,
                value=slice_value,
                rows=sizes[(slice_column, slice_value)],
                estimate=_optional(part[(column, "value")]),
                lower=_optional(part[(column, "lower_confidence_boundary")]),
                upper=_optional(part[(column, "upper_confidence_boundary")]),
                sampling_error=_optional(part[(column, "sampling_error")]),
                reference_value=estimator.slice_reference.get((slice_column, slice_value)),
                reference_estimate=estimator.slice_reference_estimate.get((slice_column, slice_value)),
            )
        )
    window_start, window_end = time_span(batch, contract.timestamp)
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
        slices=tuple(slices),
    )


def realized_performance(
    batch: pl.DataFrame,
    contract: ModelContract,
    metric: str = "roc_auc",
    *,
    threshold: float = DEFAULT_DECISION_THRESHOLD,
) -> RealizedPerformance:
    """The metric on the labelled rows of a scored batch (sklearn); None with no labels or a single class.
    Predictions missing from the batch are probability >= ``threshold`` (gate.decision_threshold)."""
    import numpy as np
    import polars as pl

    _check_metric(metric)
    source = f"batch of {contract.name!r}"
    probability = _probabilities(batch, contract, source)
    if contract.target not in batch.columns:
        return RealizedPerformance(metric=metric, value=None, rows_labelled=0, rows=batch.height)
    labels = _labels(batch, contract, source)
    prediction = _predictions(batch, contract, probability, threshold)
    slice_columns = tuple(c for c in contract.slices if c in batch.columns)
    frame = (
        pl.DataFrame({"y": labels, "p": probability, "yhat": prediction})
        .with_columns(_slice_values(batch, slice_columns))
        .filter(pl.col("y").is_not_null() & pl.col("p").is_not_null() & pl.col("yhat").is_not_null())
    )

    def value_of(part: pl.DataFrame) -> float | None:
        return _realized_value(
            metric,
            part.get_column("y").to_numpy().astype(np.int64),
            part.get_column("p").to_numpy().astype(np.float64),
            part.get_column("yhat").to_numpy().astype(np.int64),
        )

    slices = [
        SliceRealized(column=column, value=str(value), rows_labelled=part.height, realized=value_of(part))
        for column in slice_columns
        for (value,), part in frame.group_by(_slice_key(column), maintain_order=True)
    ]
    return RealizedPerformance(
        metric=metric,
        value=value_of(frame),
        rows_labelled=frame.height,
        rows=batch.height,
        slices=tuple(sorted(slices, key=lambda s: (s.column, s.value))),
    )
