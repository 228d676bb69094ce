"""Performance of any scored frame described by :class:`ModelOutputs`: CBPE for binary and multiclass
classification (roc_auc, f1, precision, recall, specificity, accuracy; multiclass averages are macro, as
NannyML's), DLE for regression (rmse, mae): :func:`fit_metric_estimator`, :func:`estimate_metrics` (one chunk
or many), :func:`realized_metrics`. The monitored loop's binary API is :mod:`tasks.performance.estimation`;
this one serves benchmarks and other problem types, on the same NannyML plumbing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from tasks.core.errors import (
    DtypeError,
    EmptyBatchError,
    EstimationError,
    MissingColumnError,
    NonFiniteError,
    ProbabilityRangeError,
    SingleClassError,
    UnknownClassError,
)
from tasks.core.settings import DEFAULT_DECISION_THRESHOLD
from tasks.core.timeutil import time_span
from tasks.data.contract import ModelContract
from tasks.performance.estimation import (
    SUPPORTED_METRICS,
    PerformanceEstimate,
    RealizedPerformance,
    _configure_pandas,
    _nannyml,
    _optional,
    _quiet,
    _realized_value,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np
    import pandas as pd
    import polars as pl

ProblemType = Literal["classification_binary", "classification_multiclass", "regression"]
METRICS_BY_PROBLEM: dict[str, tuple[str, ...]] = {
    "classification_binary": SUPPORTED_METRICS,
    "classification_multiclass": SUPPORTED_METRICS,
    "regression": ("rmse", "mae"),
}
LOWER_IS_BETTER = frozenset({"rmse", "mae"})


@dataclass(frozen=True)
class ModelOutputs:
    """The columns of a scored frame that estimation reads, for any problem type.

    probabilities: (class, column) pairs; binary takes one pair, for the positive class (labels 0/1);
    multiclass one pair per class (labels are the class names). features: DLE's inputs (regression only).
    """

    problem_type: ProblemType
    target: str
    prediction: str
    probabilities: tuple[tuple[str, str], ...] = ()
    features: tuple[str, ...] = ()
    timestamp: str | None = None
    threshold: float = DEFAULT_DECISION_THRESHOLD  # binary: prediction = probability >= threshold when absent

    @classmethod
    def of_contract(cls, contract: ModelContract) -> ModelOutputs:
        """The monitored model's outputs (binary classification)."""
        return cls(
            problem_type="classification_binary",
            target=contract.target,
            prediction=contract.prediction,
            probabilities=((str(contract.positive_label), contract.probability),),
            timestamp=contract.timestamp,
        )

    @property
    def classes(self) -> list[str]:
        return sorted(label for label, _ in self.probabilities)

    @property
    def probability_columns(self) -> list[str]:
        return [column for _, column in sorted(self.probabilities)]


@dataclass(eq=False)
class MetricEstimator:
    """CBPE or DLE fitted once on a labelled reference, for several metrics. Not picklable; refit per process."""

    outputs: ModelOutputs
    method: str  # "cbpe" | "dle"
    metrics: tuple[str, ...]
    reference_values: dict[str, float]
    lower_thresholds: dict[str, float | None]
    upper_thresholds: dict[str, float | None]
    reference_rows: int
    chunk_size: int
    nml: Any = field(repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


@dataclass(frozen=True)
class ChunkEstimate:
    """Every metric's estimate on one chunk of a frame, and the realized value when the chunk holds labels."""

    index: int
    start_row: int  # position in the frame (after sorting by timestamp, when the outputs name one)
    end_row: int  # inclusive
    estimates: dict[str, PerformanceEstimate]
    realized: dict[str, float | None]


def _check_outputs(outputs: ModelOutputs, metrics: Sequence[str]) -> tuple[str, ...]:
    allowed = METRICS_BY_PROBLEM.get(outputs.problem_type)
    if allowed is None:
        raise EstimationError(
            f"unknown problem type {outputs.problem_type!r}; choose one of {list(METRICS_BY_PROBLEM)}"
        )
    unknown = [m for m in metrics if m not in allowed]
    if unknown or not metrics:
        raise EstimationError(
            f"metrics {unknown or '[]'} are not supported for {outputs.problem_type}; choose from {allowed}"
        )
    if outputs.problem_type == "regression":
        if not outputs.features:
            raise EstimationError("DLE needs the model's feature columns (ModelOutputs.features)")
    elif outputs.problem_type == "classification_binary" and len(outputs.probabilities) != 1:
        raise EstimationError("binary classification takes one probability column (of the positive class)")
    elif outputs.problem_type == "classification_multiclass" and len(outputs.probabilities) < 3:
        raise EstimationError("multiclass classification needs a probability column for each of >= 3 classes")
    return tuple(dict.fromkeys(metrics))


def _numeric(frame: pl.DataFrame, column: str, source: str, *, what: str) -> np.ndarray:
    import numpy as np
    import polars as pl

    if column not in frame.columns:
        raise MissingColumnError(f"{what} column is missing", source=source, column=column)
    series = frame.get_column(column)
    if series.dtype == pl.Boolean:
        series = series.cast(pl.Int8)
    if not series.dtype.is_numeric():
        raise DtypeError(f"expected numbers for the {what}, found {series.dtype}", source=source, column=column)
    values = series.cast(pl.Float64).to_numpy()
    bad = int(np.sum(~np.isfinite(values) & ~np.isnan(values)))
    if bad:
        raise NonFiniteError(f"{bad} infinite values in the {what}", source=source, column=column)
    return np.asarray(values)


def _class_labels(frame: pl.DataFrame, column: str, outputs: ModelOutputs, source: str, *, what: str) -> np.ndarray:
    """Class names as text; binary ones as 0/1 (NannyML's binary metrics need numbers)."""
    import numpy as np
    import polars as pl

    if column not in frame.columns:
        raise MissingColumnError(f"{what} column is missing", source=source, column=column)
    series = frame.get_column(column)
    if outputs.problem_type == "classification_binary":
        if series.dtype == pl.Boolean:
            series = series.cast(pl.Int8)
        if not series.dtype.is_numeric():
            raise DtypeError(f"expected 0/1 for the {what}, found {series.dtype}", source=source, column=column)
        seen = set(series.drop_nulls().unique().to_list())
        if not seen <= {0, 1}:
            raise UnknownClassError(
                f"binary {what} must be 0/1, found {sorted(seen - {0, 1})[:5]}", source=source, column=column
            )
        return np.asarray(series.cast(pl.Float64).to_numpy())
    text = series.cast(pl.String)
    unknown = sorted(set(text.drop_nulls().unique().to_list()) - set(outputs.classes))
    if unknown:
        raise UnknownClassError(
            f"{what} holds classes {unknown[:5]} that have no probability column (known: {outputs.classes})",
            source=source,
            column=column,
        )
    return np.asarray(text.to_numpy(), dtype=object)


def _outputs_frame(
    frame: pl.DataFrame, outputs: ModelOutputs, source: str, *, with_target: bool
) -> tuple[pd.DataFrame, pl.DataFrame]:
    """The columns NannyML reads, validated, as a pandas frame (rows in time order) plus the sorted polars frame."""
    import numpy as np
    import pandas as pd
    import polars as pl

    if outputs.timestamp and outputs.timestamp in frame.columns:
        frame = frame.sort(outputs.timestamp, maintain_order=True)
    columns: dict[str, Any] = {}
    if outputs.problem_type == "regression":
        columns[outputs.prediction] = _numeric(frame, outputs.prediction, source, what="prediction")
        if with_target:
            columns[outputs.target] = _numeric(frame, outputs.target, source, what="target")
        for feature in outputs.features:
            if feature not in frame.columns:
                raise MissingColumnError("DLE feature column is missing", source=source, column=feature)
            series = frame.get_column(feature)
            if series.dtype in (pl.String, pl.Categorical, pl.Enum, pl.Boolean):
                # NannyML treats object columns as categorical and ordinal-encodes them itself.
                columns[feature] = np.asarray(series.cast(pl.String).to_numpy(), dtype=object)
            elif series.dtype.is_numeric():
                columns[feature] = series.cast(pl.Float64).to_numpy()
            else:
                raise DtypeError(f"DLE cannot use a {series.dtype} feature", source=source, column=feature)
    else:
        for _, column in outputs.probabilities:
            if column not in frame.columns:
                raise EstimationError(
                    f"{source} has no probability column {column!r}; score it before estimating performance"
                )
            values = _numeric(frame, column, source, what="probability")
            outside = int(np.sum((values < 0) | (values > 1)))
            if outside:
                raise ProbabilityRangeError(f"{outside} values outside [0, 1]", source=source, column=column)
            columns[column] = values
        if outputs.problem_type == "classification_binary" and outputs.prediction not in frame.columns:
            columns[outputs.prediction] = (columns[outputs.probabilities[0][1]] >= outputs.threshold).astype(np.float64)
        else:
            columns[outputs.prediction] = _class_labels(frame, outputs.prediction, outputs, source, what="prediction")
        if with_target:
            if outputs.target not in frame.columns:
                raise EstimationError(f"{source} has no target column {outputs.target!r}; estimators fit on labels")
            columns[outputs.target] = _class_labels(frame, outputs.target, outputs, source, what="target")
    _configure_pandas()
    return pd.DataFrame(columns), frame


def _metric_value(metric: str, outputs: ModelOutputs, data: pd.DataFrame) -> float | None:
    """The realized metric on labelled rows, by sklearn (macro averages for multiclass, like NannyML)."""
    import numpy as np
    from sklearn.metrics import (
        accuracy_score,
        f1_score,
        mean_absolute_error,
        mean_squared_error,
        multilabel_confusion_matrix,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    if data.empty:
        return None
    y_true = data[outputs.target].to_numpy()
    y_pred = data[outputs.prediction].to_numpy()
    if outputs.problem_type == "regression":
        if metric == "rmse":
            return float(np.sqrt(mean_squared_error(y_true, y_pred)))
        return float(mean_absolute_error(y_true, y_pred))
    if outputs.problem_type == "classification_binary":
        column = outputs.probabilities[0][1]
        return _realized_value(
            metric, y_true.astype(np.int64), data[column].to_numpy(np.float64), y_pred.astype(np.int64)
        )
    labels = outputs.classes
    if len(set(y_true.tolist())) < 2:
        return None
    if metric == "roc_auc":
        if len(set(y_true.tolist())) < len(labels):
            return None  # one-vs-rest AUC is undefined for a class absent from the labels
        return float(
            roc_auc_score(
                y_true, data[outputs.probability_columns].to_numpy(), multi_class="ovr", average="macro", labels=labels
            )
        )
    if metric == "accuracy":
        return float(accuracy_score(y_true, y_pred))
    if metric == "specificity":
        confusion = multilabel_confusion_matrix(y_true, y_pred, labels=labels)
        negatives = confusion[:, 0, 0] + confusion[:, 0, 1]
        return float(np.mean(confusion[:, 0, 0] / np.maximum(negatives, 1)))
    scorer = {"f1": f1_score, "precision": precision_score, "recall": recall_score}[metric]
    return float(scorer(y_true, y_pred, average="macro", labels=labels, zero_division=0))


def fit_metric_estimator(
    reference: pl.DataFrame,
    outputs: ModelOutputs,
    *,
    metrics: Sequence[str] | None = None,
    chunk_size: int = 5000,
    num_threads: int = 1,
    seed: int = 0,
) -> MetricEstimator:
    """Fit CBPE (classification) or DLE (regression) on a labelled reference; thresholds come from the spread of
    the realized metric across reference chunks of ``chunk_size`` rows (NannyML's mean +- 3 std)."""
    source = f"reference ({outputs.problem_type})"
    chosen = _check_outputs(outputs, list(metrics) if metrics is not None else METRICS_BY_PROBLEM[outputs.problem_type])
    if chunk_size < 2:
        raise EstimationError(f"chunk_size must be at least 2, got {chunk_size}")
    data, _ = _outputs_frame(reference, outputs, source, with_target=True)
    label_columns = [outputs.target, outputs.prediction, *outputs.probability_columns]
    data = data.dropna(subset=label_columns).reset_index(drop=True)
    if len(data) < 2 * chunk_size:
        raise EstimationError(
            f"{source} has {len(data)} labelled rows; thresholds need at least 2 chunks of chunk_size={chunk_size}"
        )
    if outputs.problem_type != "regression":
        present = set(data[outputs.target].tolist())
        if len(present) < 2:
            raise SingleClassError(
                f"labels hold a single class {sorted(map(str, present))}; estimation needs at least two",
                source=source,
                column=outputs.target,
            )
    reference_values: dict[str, float] = {}
    for metric in chosen:
        value = _metric_value(metric, outputs, data)
        if value is None:
            raise EstimationError(f"{source}: realized {metric} is undefined on the reference (a class has no rows)")
        reference_values[metric] = value

    nml = _nannyml()
    from nannyml.chunk import SizeBasedChunker

    chunker = SizeBasedChunker(chunk_size=chunk_size, incomplete="drop")
    if outputs.problem_type == "regression":
        estimator = nml.DLE(
            feature_column_names=list(outputs.features),
            y_pred=outputs.prediction,
            y_true=outputs.target,
            metrics=list(chosen),
            chunker=chunker,
            # LightGBM's default takes every core; on a shared machine that oversubscribes and runs 30x slower.
            hyperparameters={"n_jobs": num_threads, "random_state": seed, "verbosity": -1},
        )
        method = "dle"
    else:
        binary = outputs.problem_type == "classification_binary"
        estimator = nml.CBPE(
            metrics=list(chosen),
            y_pred_proba=outputs.probabilities[0][1] if binary else dict(outputs.probabilities),
            y_pred=outputs.prediction,
            y_true=outputs.target,
            problem_type=outputs.problem_type,
            chunker=chunker,
        )
        method = "cbpe"
    try:
        with _quiet():
            estimator.fit(data)
    except Exception as exc:  # NannyML's own (and pandas/sklearn/LightGBM) errors: name the stage and input
        raise EstimationError(f"{method.upper()} fit on {source} ({len(data)} rows) failed: {exc}") from exc
    fitted = {m.column_name: m for m in estimator.metrics}
    return MetricEstimator(
        outputs=outputs,
        method=method,
        metrics=chosen,
        reference_values=reference_values,
        lower_thresholds={m: _optional(fitted[m].lower_threshold_value) for m in chosen},
        upper_thresholds={m: _optional(fitted[m].upper_threshold_value) for m in chosen},
        reference_rows=len(data),
        chunk_size=chunk_size,
        nml=estimator,
    )


def estimate_metrics(
    estimator: MetricEstimator, frame: pl.DataFrame, *, chunk_size: int | None = None
) -> list[ChunkEstimate]:
    """Estimate every metric on a scored frame: as one chunk (default) or in chunks of ``chunk_size`` rows (a
    smaller last chunk is kept). Labels are not needed; when present, each chunk also carries realized values."""
    outputs = estimator.outputs
    source = f"frame ({outputs.problem_type})"
    with_target = outputs.target in frame.columns
    data, ordered = _outputs_frame(frame, outputs, source, with_target=with_target)
    if data.empty:
        raise EmptyBatchError("no rows to estimate performance on", source=source)
    _nannyml()  # telemetry off before any nannyml module loads
    from nannyml.chunk import CountBasedChunker, SizeBasedChunker

    chunker = (
        CountBasedChunker(chunk_number=1)
        if chunk_size is None
        else SizeBasedChunker(chunk_size=chunk_size, incomplete="keep")
    )
    try:
        with estimator.lock, _quiet():
            estimator.nml.chunker = chunker
            result = estimator.nml.estimate(data).filter(period="analysis").to_df()
    except Exception as exc:  # NannyML's own errors: name the frame and the method
        raise EstimationError(
            f"{estimator.method.upper()} estimate on {source} ({len(data)} rows) failed: {exc}"
        ) from exc
    window_column = outputs.timestamp if outputs.timestamp in ordered.columns else None
    chunks: list[ChunkEstimate] = []
    for index in range(len(result)):
        row = result.iloc[index]
        start, end = int(row[("chunk", "start_index")]), int(row[("chunk", "end_index")])
        part = data.iloc[start : end + 1]
        window_start = window_end = None
        if window_column:
            stamps = ordered.get_column(window_column).slice(start, end - start + 1)
            window_start, window_end = time_span(stamps.to_frame(), stamps.name)
        estimates = {}
        for metric in estimator.metrics:
            value = _optional(row[(metric, "value")])
            if value is None:
                raise EstimationError(
                    f"{estimator.method.upper()} returned no {metric} estimate for chunk {index} of {source}"
                )
            estimates[metric] = PerformanceEstimate(
                metric=metric,
                value=value,
                lower=_optional(row[(metric, "lower_confidence_boundary")]),
                upper=_optional(row[(metric, "upper_confidence_boundary")]),
                sampling_error=_optional(row[(metric, "sampling_error")]),
                reference_value=estimator.reference_values[metric],
                lower_threshold=estimator.lower_thresholds[metric],
                upper_threshold=estimator.upper_thresholds[metric],
                alert=bool(row[(metric, "alert")]),
                rows=len(part),
                method=estimator.method,
                window_start=window_start,
                window_end=window_end,
                higher_is_better=metric not in LOWER_IS_BETTER,
            )
        realized: dict[str, float | None] = {}
        if with_target:
            labelled = part.dropna(subset=[outputs.target])
            realized = {m: _metric_value(m, outputs, labelled) for m in estimator.metrics}
        chunks.append(ChunkEstimate(index, start, end, estimates, realized))
    return chunks


def realized_metrics(
    frame: pl.DataFrame, outputs: ModelOutputs, metrics: Sequence[str] | None = None
) -> dict[str, RealizedPerformance]:
    """Realized metrics on the labelled rows of a scored frame (sklearn); a value is None when undefined."""
    source = f"frame ({outputs.problem_type})"
    chosen = _check_outputs(outputs, list(metrics) if metrics is not None else METRICS_BY_PROBLEM[outputs.problem_type])
    if outputs.target not in frame.columns:
        return {m: RealizedPerformance(metric=m, value=None, rows_labelled=0, rows=frame.height) for m in chosen}
    data, _ = _outputs_frame(frame, outputs, source, with_target=True)
    labelled = data.dropna(subset=[outputs.target, outputs.prediction, *outputs.probability_columns])
    return {
        m: RealizedPerformance(
            metric=m, value=_metric_value(m, outputs, labelled), rows_labelled=len(labelled), rows=frame.height
        )
        for m in chosen
    }
