"""A fitted CBPE, applied in numpy: NannyML fits once (bootstrap, retrain, first monitor of a version), every
batch after that is estimated without importing NannyML, pandas or scikit-learn.

What NannyML's binary-classification CBPE (0.13) does with a fitted estimator, for the ROC AUC the monitor
watches, and what :class:`FittedCBPE` keeps of it:

* **Calibration.** When ``needs_calibration`` held on the reference, scores pass through the fitted
  ``IsotonicCalibrator``: sklearn's ``IsotonicRegression(out_of_bounds="clip")``, whose ``predict`` clips to
  ``[X_min_, X_max_]`` and interpolates linearly between ``X_thresholds_`` / ``y_thresholds_`` (scipy's
  ``interp1d``). Kept: those four; applied: ``np.clip`` then ``np.interp`` (the same linear interpolation
  on the same knots; a one-knot fit predicts its only value, as sklearn does).
* **Estimate.** ``estimate_roc_auc(calibrated, uncalibrated)``: sort by the uncalibrated score (``np.argsort``,
  reversed: the very same call, so ties fall in the same order), cumulative expected positives rounded to
  5 decimals, and sklearn's ``auc`` (scipy's trapezoid). Reimplemented operation for operation.
* **Sampling error.** ``std / sqrt(n * fraction)`` with the reference's ``(std, fraction)`` components.
* **Bounds and alert.** ``estimate ± 3 · sampling error`` clipped to [0, 1]; alert when the estimate is
  outside the thresholds NannyML derived from the reference chunks (kept as numbers).
* **Chunks.** The project estimates the whole batch as one chunk and each slice value with at least
  ``MIN_SLICE_ROWS`` rows as one more (:func:`tasks.performance.estimation._slice_chunker`); the same here.

So :func:`estimate_fitted` returns the :class:`PerformanceEstimate` that
:func:`tasks.performance.estimation.estimate_performance` returns with the NannyML estimator it was extracted
from (tested to 1e-9, bounds and alert flags included, on several seeds and two data-generating processes).
Serialized as JSON: floats round-trip exactly through ``repr``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tasks.core.errors import EstimationError
from tasks.core.settings import DEFAULT_DECISION_THRESHOLD
from tasks.core.timeutil import time_span

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

    from tasks.data.contract import ModelContract
    from tasks.performance.estimation import PerformanceEstimate, PerformanceEstimator

FORMAT = 1  # bump when the fields or their meaning change: cached files of another format are rebuilt
FITTED_METRICS = ("roc_auc",)
SAMPLING_ERROR_RANGE = 3  # nannyml.sampling_error.SAMPLING_ERROR_RANGE
ESTIMATE_DECIMALS = 5  # estimate_roc_auc rounds the cumulative expected counts to 5 decimals


class UnsupportedEstimator(EstimationError):
    """The fitted NannyML estimator uses something this module does not reimplement (another metric or calibrator)."""


@dataclass(frozen=True)
class IsotonicMap:
    """sklearn's fitted ``IsotonicRegression(out_of_bounds="clip", increasing=True)``, applied with numpy."""

    x: tuple[float, ...]
    y: tuple[float, ...]
    x_min: float
    x_max: float

    def __post_init__(self) -> None:
        if not self.x or len(self.x) != len(self.y):
            raise ValueError(f"isotonic knots need equal, non-empty x and y (got {len(self.x)} and {len(self.y)})")
        if any(b <= a for a, b in zip(self.x, self.x[1:], strict=False)):
            raise ValueError("isotonic knots must be strictly increasing in x")
        if not self.x_min <= self.x_max:
            raise ValueError(f"isotonic clip range [{self.x_min}, {self.x_max}] is empty")

    def apply(self, scores: np.ndarray) -> np.ndarray:
        import numpy as np

        clipped = np.clip(scores, self.x_min, self.x_max)
        if len(self.y) == 1:
            return np.full(clipped.shape, self.y[0], dtype=np.float64)
        return np.interp(clipped, np.asarray(self.x), np.asarray(self.y))


@dataclass(frozen=True)
class ChunkEstimate:
    """One CBPE chunk: estimate (None when NannyML's would be NaN), sampling error and the 3-sigma band."""

    value: float | None
    sampling_error: float | None
    lower: float | None
    upper: float | None


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else value


@dataclass(frozen=True)
class FittedCBPE:
    """Everything a fitted NannyML CBPE (binary, ROC AUC) needs to estimate a batch, plus the project's
    per-slice reference values. Build with :func:`extract`; apply with :func:`estimate_fitted`."""

    metric: str
    reference_value: float
    reference_rows: int
    chunk_size: int
    lower_threshold: float | None
    upper_threshold: float | None
    calibrator: IsotonicMap | None  # None: NannyML found the scores calibrated and left them alone
    sampling_std: float
    sampling_fraction: float
    threshold: float = DEFAULT_DECISION_THRESHOLD
    slice_columns: tuple[str, ...] = ()
    min_slice_rows: int = 50
    slice_reference: dict[tuple[str, str], float] = field(default_factory=dict)
    slice_reference_estimate: dict[tuple[str, str], float] = field(default_factory=dict)
    lower_limit: float = 0.0
    upper_limit: float = 1.0

    def __post_init__(self) -> None:
        if self.metric not in FITTED_METRICS:
            raise UnsupportedEstimator(f"metric {self.metric!r} has no numpy CBPE; supported: {FITTED_METRICS}")
        if self.reference_rows < 1 or self.chunk_size < 2 or self.min_slice_rows < 1:
            raise ValueError("reference_rows, chunk_size and min_slice_rows must be positive (chunk_size >= 2)")
        if not (0.0 < self.sampling_fraction <= 1.0) or not self.sampling_std >= 0.0:
            raise ValueError(
                f"sampling components out of range: std={self.sampling_std}, fraction={self.sampling_fraction}"
            )
        if (
            self.lower_threshold is not None
            and self.upper_threshold is not None
            and self.lower_threshold > self.upper_threshold
        ):
            raise ValueError(f"lower threshold {self.lower_threshold} above upper {self.upper_threshold}")

    @property
    def calibrated(self) -> bool:
        return self.calibrator is not None

    # --- one chunk ------------------------------------------------------------------------------------

    def estimate_chunk(self, scores: np.ndarray) -> ChunkEstimate:
        """CBPE's record of one chunk of uncalibrated scores (no NaN: the caller filtered them)."""
        import numpy as np

        uncalibrated = np.asarray(scores, dtype=np.float64)
        calibrated = self.calibrator.apply(uncalibrated) if self.calibrator is not None else uncalibrated
        value = _estimate_roc_auc(calibrated, uncalibrated)
        sampling_error = float(self.sampling_std / np.sqrt(uncalibrated.size * self.sampling_fraction))
        if value is None:
            return ChunkEstimate(None, _finite(sampling_error), None, None)
        upper = min(self.upper_limit, value + SAMPLING_ERROR_RANGE * sampling_error)
        lower = max(self.lower_limit, value - SAMPLING_ERROR_RANGE * sampling_error)
        return ChunkEstimate(value, _finite(sampling_error), _finite(lower), _finite(upper))

    def alert(self, value: float) -> bool:
        return (self.lower_threshold is not None and value < self.lower_threshold) or (
            self.upper_threshold is not None and value > self.upper_threshold
        )

    # --- JSON -----------------------------------------------------------------------------------------

    def to_json(self) -> str:
        body: dict[str, Any] = {
            "format": FORMAT,
            "metric": self.metric,
            "reference_value": self.reference_value,
            "reference_rows": self.reference_rows,
            "chunk_size": self.chunk_size,
            "lower_threshold": self.lower_threshold,
            "upper_threshold": self.upper_threshold,
            "calibrator": None
            if self.calibrator is None
            else {
                "x": list(self.calibrator.x),
                "y": list(self.calibrator.y),
                "x_min": self.calibrator.x_min,
                "x_max": self.calibrator.x_max,
            },
            "sampling_std": self.sampling_std,
            "sampling_fraction": self.sampling_fraction,
            "threshold": self.threshold,
            "slice_columns": list(self.slice_columns),
            "min_slice_rows": self.min_slice_rows,
            "slice_reference": [[c, v, x] for (c, v), x in sorted(self.slice_reference.items())],
            "slice_reference_estimate": [[c, v, x] for (c, v), x in sorted(self.slice_reference_estimate.items())],
            "lower_limit": self.lower_limit,
            "upper_limit": self.upper_limit,
        }
        return json.dumps(body, sort_keys=True, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> FittedCBPE:
        """Parse :meth:`to_json`'s output; any other text (another format, a torn file) raises ValueError."""
        try:
            body = json.loads(text)
            if body.get("format") != FORMAT:
                raise ValueError(f"format {body.get('format')!r}, expected {FORMAT}")
            cal = body["calibrator"]
            return cls(
                metric=str(body["metric"]),
                reference_value=float(body["reference_value"]),
                reference_rows=int(body["reference_rows"]),
                chunk_size=int(body["chunk_size"]),
                lower_threshold=_opt_float(body["lower_threshold"]),
                upper_threshold=_opt_float(body["upper_threshold"]),
                calibrator=None
                if cal is None
                else IsotonicMap(
                    x=tuple(float(v) for v in cal["x"]),
                    y=tuple(float(v) for v in cal["y"]),
                    x_min=float(cal["x_min"]),
                    x_max=float(cal["x_max"]),
                ),
                sampling_std=float(body["sampling_std"]),
                sampling_fraction=float(body["sampling_fraction"]),
                threshold=float(body["threshold"]),
                slice_columns=tuple(str(c) for c in body["slice_columns"]),
                min_slice_rows=int(body["min_slice_rows"]),
                slice_reference={(str(c), str(v)): float(x) for c, v, x in body["slice_reference"]},
                slice_reference_estimate={(str(c), str(v)): float(x) for c, v, x in body["slice_reference_estimate"]},
                lower_limit=float(body["lower_limit"]),
                upper_limit=float(body["upper_limit"]),
            )
        except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not a fitted CBPE: {exc}") from exc


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _estimate_roc_auc(calibrated: np.ndarray, uncalibrated: np.ndarray) -> float | None:
    """NannyML's ``estimate_roc_auc`` followed by sklearn's ``auc``, operation for operation; None for NaN
    (and where ``auc`` would raise, which ``get_chunk_record`` turns into NaN)."""
    import numpy as np

    order = np.argsort(uncalibrated)[::-1]
    expected = calibrated[order]
    with np.errstate(divide="ignore", invalid="ignore"):
        tps = np.cumsum(expected)
        fps = 1 + np.arange(len(expected)) - tps
        tps_rounded = np.round(np.concatenate((np.zeros(1), tps)), ESTIMATE_DECIMALS)  # np.r_[0, tps]
        fps_rounded = np.round(np.concatenate((np.zeros(1), fps)), ESTIMATE_DECIMALS)
        tpr = tps_rounded / tps_rounded[-1]
        fpr = fps_rounded / fps_rounded[-1]
        if fpr.shape[0] < 2:
            return None
        dx = np.diff(fpr)
        direction = 1.0
        if np.any(dx < 0):
            if not np.all(dx <= 0):
                return None
            direction = -1.0
        area = direction * float(np.add.reduce(dx * (tpr[1:] + tpr[:-1]) / 2.0))
    return _finite(area)


def extract(estimator: PerformanceEstimator) -> FittedCBPE:
    """The numpy CBPE of a fitted NannyML-backed :class:`PerformanceEstimator` (imports nothing new: the
    estimator's objects are read as they are). Raises :class:`UnsupportedEstimator` for what is not mirrored."""
    from tasks.performance.estimation import MIN_SLICE_ROWS

    cbpe = estimator.cbpe
    if estimator.metric not in FITTED_METRICS or len(cbpe.metrics) != 1:
        raise UnsupportedEstimator(f"metric {estimator.metric!r} has no numpy CBPE; supported: {FITTED_METRICS}")
    metric = cbpe.metrics[0]
    calibrator: IsotonicMap | None = None
    if cbpe.needs_calibration:
        regressor = getattr(cbpe.calibrator, "_regressor", None)
        if type(cbpe.calibrator).__name__ != "IsotonicCalibrator" or regressor is None:
            raise UnsupportedEstimator(f"calibrator {type(cbpe.calibrator).__name__} is not mirrored in numpy")
        if regressor.out_of_bounds != "clip":
            raise UnsupportedEstimator(f"isotonic out_of_bounds={regressor.out_of_bounds!r} is not mirrored")
        calibrator = IsotonicMap(
            x=tuple(float(v) for v in regressor.X_thresholds_),
            y=tuple(float(v) for v in regressor.y_thresholds_),
            x_min=float(regressor.X_min_),
            x_max=float(regressor.X_max_),
        )
    std, fraction = metric._sampling_error_components
    return FittedCBPE(
        metric=estimator.metric,
        reference_value=float(estimator.reference_value),
        reference_rows=estimator.reference_rows,
        chunk_size=estimator.chunk_size,
        lower_threshold=_none_if_nan(metric.lower_threshold_value),
        upper_threshold=_none_if_nan(metric.upper_threshold_value),
        calibrator=calibrator,
        sampling_std=float(std),
        sampling_fraction=float(fraction),
        threshold=estimator.threshold,
        slice_columns=estimator.slice_columns,
        min_slice_rows=MIN_SLICE_ROWS,
        slice_reference=dict(estimator.slice_reference),
        slice_reference_estimate=dict(estimator.slice_reference_estimate),
        lower_limit=float(metric.lower_threshold_value_limit),
        upper_limit=float(metric.upper_threshold_value_limit),
    )


def _none_if_nan(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def estimate_fitted(fitted: FittedCBPE, batch: pl.DataFrame, contract: ModelContract) -> PerformanceEstimate:
    """:func:`tasks.performance.estimation.estimate_performance` with a :class:`FittedCBPE`: the same checks,
    chunks, slices and result, computed in numpy."""
    import numpy as np

    from tasks.performance.estimation import PerformanceEstimate, SliceEstimate, _slice_key, scored_rows

    source = f"batch of {contract.name!r}"
    frame, slice_columns = scored_rows(batch, contract, fitted.threshold, fitted.slice_columns, fitted.metric)
    scores = frame.get_column("p").to_numpy().astype(np.float64)
    whole = fitted.estimate_chunk(scores)
    if whole.value is None:
        raise EstimationError(
            f"CBPE returned no {fitted.metric} estimate for {source} ({frame.height} rows); see NannyML's log"
        )
    slices = []
    for column in slice_columns:
        keys = frame.get_column(_slice_key(column)).to_numpy()
        for value in sorted(set(keys.tolist())):
            mask = keys == value
            rows = int(mask.sum())
            if rows < fitted.min_slice_rows:
                continue
            part = fitted.estimate_chunk(scores[mask])
            slices.append(
                SliceEstimate(
                    column=column,
                    value=str(value),
                    rows=rows,
                    estimate=part.value,
                    lower=part.lower,
                    upper=part.upper,
                    sampling_error=part.sampling_error,
                    reference_value=fitted.slice_reference.get((column, str(value))),
                    reference_estimate=fitted.slice_reference_estimate.get((column, str(value))),
                )
            )
    window_start, window_end = time_span(batch, contract.timestamp)
    return PerformanceEstimate(
        metric=fitted.metric,
        value=whole.value,
        lower=whole.lower,
        upper=whole.upper,
        sampling_error=whole.sampling_error,
        reference_value=fitted.reference_value,
        lower_threshold=fitted.lower_threshold,
        upper_threshold=fitted.upper_threshold,
        alert=fitted.alert(whole.value),
        rows=frame.height,
        method="cbpe",
        window_start=window_start,
        window_end=window_end,
        slices=tuple(slices),
    )
