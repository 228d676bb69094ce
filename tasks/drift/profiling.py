"""Data quality and drift of a batch (or of each chunk of a lazy source) against a reference profile.

Statistics (unit tests compare each with scipy and with NannyML 0.13's ``UnivariateDriftCalculator``):

- numeric features and the prediction probability, on non-null values:
  ``ks``: two-sample Kolmogorov-Smirnov statistic, sup |ECDF_batch - ECDF_reference|, computed exactly
  on the merged samples (equals ``scipy.stats.ks_2samp(...).statistic``); p-value from Kolmogorov's
  limiting distribution at the effective size nm/(n+m) (within a few percent of ``ks_2samp(...,
  method="asymp")``, which costs milliseconds per call at these sizes);
  ``wasserstein``: earth mover's distance between the raw samples, in the feature's units
  (equals ``scipy.stats.wasserstein_distance``);
  ``jensen_shannon``: Jensen-Shannon *distance* (square root of the divergence, base 2, in [0, 1]) and
  ``hellinger``: Hellinger distance sqrt(sum((sqrt p - sqrt q)^2) / 2), both on NannyML's binning:
  ``numpy.histogram_bin_edges(reference, "doane")``, plus one bin for batch values outside the
  reference's range;
  ``psi``: population stability index sum((a - r) * ln(a / r)) on the reference's decile bins, with
  empty proportions replaced by ``PSI_EPSILON`` (NannyML has no PSI).
- categorical and boolean features and the label, on non-null values over the union of categories:
  ``jensen_shannon`` and ``hellinger`` (as above; NannyML pools categories unseen in the reference into
  one bin, which gives the same value because a bin empty in the reference adds linearly),
  ``chi2``: statistic and p-value of the 2 x k contingency table reference vs batch (equals
  ``scipy.stats.chi2_contingency``, Yates-corrected when dof = 1), ``l_infinity``: max |proportion_batch
  - proportion_reference|.

Where driftgate and NannyML differ (binning choices, documented and tested):
- NannyML computes KS and Wasserstein *exactly* only for references under 10,000 rows (or with
  ``computation_params={"kolmogorov_smirnov": {"calculation_method": "exact"}}``); above that it bins the
  reference into 10,000 equal-width bins. driftgate is exact at every size: its values equal NannyML's
  exact mode and differ from the binned default by less than the bin resolution.
- References above ``MAX_REFERENCE_SAMPLE`` non-null values keep that many evenly spaced order
  statistics for KS and Wasserstein (ECDF within 1/MAX_REFERENCE_SAMPLE of the full one);
  the histograms, deciles, counts and ranges always use every reference value.

The primary (alerting) method is ``ks`` for numeric features and the prediction, ``jensen_shannon``
for categorical and boolean features, ``l_infinity`` for the label. Every method gets its own
calibrated threshold and its own ``alert`` flag; a feature *drifts* when its primary method alerts.
A multivariate row (PCA reconstruction error, :mod:`tasks.drift.multivariate`) is added when the profile
has one; it is reported and recorded but not counted among the drifted features.

Threshold calibration. The spread of a drift statistic under "no drift" depends on both sample
sizes (about sqrt(1/m + 1/n) for a batch of m and a reference of n values), so thresholds are
calibrated at the size of the batch being judged, on the null hypothesis that the batch and the
reference are two samples of the reference's distribution; the threshold is the
``false_alarm_quantile`` of the statistic under that null (floored at a tiny positive value):

- binned and categorical statistics (JS, Hellinger, PSI, chi2, L-infinity): ``replicates`` pairs of a
  bootstrap chunk of m rows and a bootstrap replicate of the reference's n rows, drawn as
  multinomial counts over the bins or categories (conditional binomials; those with a variance of
  ``NORMAL_DRAW_VARIANCE`` or more from their normal approximation, the others exact; cost independent of m);
- KS and Wasserstein: the ECDF gap of such a pair is sqrt(1/m + 1/n) times a Brownian bridge in the
  reference's CDF scale (Donsker), so the fit simulates that bridge on the reference's distinct values
  (ties respected; merged into at most ``CALIBRATION_ATOMS`` equal-mass atoms; columns with the same
  atom masses share one simulation) and scales its quantile to each batch size.

Why not literal reference chunks compared with the full reference: a chunk is part of the
reference, so its distance to it has variance ~(1/m - 1/n) instead of (1/m + 1/n) for a new batch
(at m = n/4 the KS threshold comes out 22% too low: 8% false alarms instead of 1%); the 0.99
quantile of 20 chunks is about their maximum (~5.7% false alarms even with perfect chunks); and a 1M-row batch
cannot be chunked out of a 50k-row reference. ``settings.reference_chunks`` is therefore the
*minimum* number of null replicates; at least ``ceil(20 / (1 - false_alarm_quantile))`` are used
(2000 at 0.99), so the quantile rests on about twenty exceedances. Draws are seeded, so calibration
is reproducible. Sizes are each column's non-null count in the batch, rounded down to two significant
figures so similar batches share a calibration (rounding down errs towards fewer false alarms). The
fit calibrates ``settings.chunk_size`` eagerly; other sizes are calibrated on first use (a few ms per
column) and cached in the profile, which ``to_dict`` keeps. The iid null models sampling noise only:
slow, genuine variation inside the reference period is not treated as normal, so a reference that
itself drifts will make later batches alert.

Data quality (a failing check blocks retraining in the policy): schema against the reference
(extra columns, missing optional columns, dtype changes: a change of dtype family of a feature fails,
a width/precision change warns), missingness (fails above both ``max_missing_rate`` and what the
reference's own missing rate explains at the batch size; warns when only the latter), out-of-range
numerics, unseen categories, duplicate entity ids, too few rows, all-null features, and, in chunked
profiling, NaN/inf values (counted, then treated as missing). Missing required columns and
incompatible dtypes raise typed errors instead.

Chunked profiling (:func:`profile_chunks`) reads a ``pl.LazyFrame`` (``scan_parquet``/``scan_csv``)
one chunk at a time with polars' streaming engine (:mod:`tasks.data.chunking`). Chunks up to
``PARALLEL_CHUNK_BYTES`` are profiled in parallel, one per core (that many in memory); bigger ones one
at a time with their columns in parallel, so peak memory is the reference profile plus one chunk.
:func:`fit_reference_profile` accepts a LazyFrame too: up to ``READ_AT_ONCE_CELLS`` it is read in one
pass, beyond that one column at a time.

Speed. Sorting each numeric column of each chunk and merging it with the reference sample is most of
the work; both run compiled (:mod:`tasks.drift.kernels`: an LSD radix sort on the float bits and a merge
that walks four parts of the merge path at once, releasing the GIL), the reference's columns are
read, profiled and calibrated in one parallel pass, calibration draws its multinomials bin by bin
(see ``multinomial_draws``) and computes the null statistics compiled, and the continuous columns'
Brownian bridge is simulated in a background thread while the reference is still being read.
"""

from __future__ import annotations

import base64
import math
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from tasks.core.errors import (
    ConfigError,
    ContractError,
    DataError,
    DtypeError,
    MissingColumnError,
    NonFiniteError,
    ProbabilityRangeError,
)
from tasks.core.settings import ProfilingSettings
from tasks.core.timeutil import time_span
from tasks.data.contract import FeatureSpec, ModelContract, validate_batch

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

    from tasks.data.chunking import Chunking, ChunkWindow
    from tasks.drift.multivariate import PcaReference

NUMERIC_METHODS = ("ks", "wasserstein", "jensen_shannon", "hellinger", "psi")
CATEGORICAL_METHODS = ("jensen_shannon", "hellinger", "chi2", "l_infinity")
PRIMARY_METHOD = {
    "numeric": "ks",
    "prediction": "ks",
    "categorical": "jensen_shannon",
    "boolean": "jensen_shannon",
    "label": "l_infinity",
}
# driftgate method -> NannyML 0.13 method key (PSI has none).
NANNYML_METHODS = {
    "ks": "kolmogorov_smirnov",
    "wasserstein": "wasserstein",
    "jensen_shannon": "jensen_shannon",
    "hellinger": "hellinger",
    "chi2": "chi2",
    "l_infinity": "l_infinity",
}
N_BINS = 10
HISTOGRAM_BINS = "doane"
PSI_EPSILON = 1e-4
MAX_REFERENCE_SAMPLE = 100_000
CALIBRATION_ATOMS = 1024
TAIL_REPLICATES = 20
THRESHOLD_FLOOR = 1e-6
NORMAL_DRAW_VARIANCE = 1_000.0  # calibration binomials this wide are drawn from their normal approximation
CALIBRATION_SEED = 20_240_601
RANGE_WIDENING = 0.10
OUT_OF_RANGE_SHARE = 0.01
UNSEEN_FAIL_SHARE = 0.05
PROFILE_FORMAT = "driftgate.reference-profile/2"
# A LazyFrame reference up to this many cells (about 256 MB of 8-byte values) is read in one pass;
# a larger one column by column.
READ_AT_ONCE_CELLS = 32_000_000
T = TypeVar("T")
R = TypeVar("R")


# --- results -------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    kind: str  # "numeric" | "categorical" | "boolean" | "prediction" | "label" | "multivariate"
    method: str  # NUMERIC_METHODS | CATEGORICAL_METHODS | "pca_reconstruction"
    statistic: float
    threshold: float
    alert: bool  # statistic > threshold for this method
    p_value: float | None = None
    primary: bool = False  # the method that decides whether the feature drifts
    sample_size: int = 0  # non-null batch values the statistic was computed on


@dataclass(frozen=True)
class QualityIssue:
    # "schema" | "missing_rate" | "out_of_range" | "unseen_category" | "duplicate_id" | "too_few_rows"
    # | "all_null" | "non_finite"
    check: str
    column: str | None
    detail: str
    severity: str  # "fail" | "warn"


@dataclass(frozen=True)
class DataQualityReport:
    passed: bool
    rows: int
    issues: tuple[QualityIssue, ...]
    missing_rate: dict[str, float]


@dataclass(frozen=True)
class Histogram:
    """Reference and batch proportions of one column on the reference's bins, for overlay plots."""

    feature: str
    kind: str
    edges: tuple[float, ...]  # numeric: the reference's histogram edges; the last bin is "outside them"
    labels: tuple[str, ...]  # categorical: the categories of the bins
    reference: tuple[float, ...]
    batch: tuple[float, ...]


@dataclass(frozen=True)
class BatchProfile:
    rows: int
    window_start: datetime | None
    window_end: datetime | None
    quality: DataQualityReport
    drift: tuple[FeatureDrift, ...]
    features: tuple[str, ...] = ()  # the contract's features, the denominator of drift_share
    histograms: tuple[Histogram, ...] = ()  # per profiled column, for plots (not in to_dict)

    @property
    def drifted_features(self) -> list[str]:
        """Contract features whose primary statistic exceeds its calibrated threshold."""
        contract_features = set(self.features)
        return [
            d.feature
            for d in self.drift
            if d.primary and d.alert and d.kind not in ("prediction", "label") and d.feature in contract_features
        ]

    @property
    def drift_share(self) -> float:
        return len(self.drifted_features) / len(self.features) if self.features else 0.0

    @property
    def prediction_drift(self) -> FeatureDrift | None:
        return next((d for d in self.drift if d.kind == "prediction" and d.primary), None)

    @property
    def label_drift(self) -> FeatureDrift | None:
        return next((d for d in self.drift if d.kind == "label" and d.primary), None)

    @property
    def multivariate_drift(self) -> FeatureDrift | None:
        return next((d for d in self.drift if d.kind == "multivariate"), None)

    def to_frame(self) -> pl.DataFrame:
        """One row per (feature, method)."""
        import polars as pl

        return pl.DataFrame([asdict(d) for d in self.drift], schema=_drift_schema())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary for the audit store."""
        return {
            "rows": self.rows,
            "window_start": self.window_start.isoformat() if self.window_start else None,
            "window_end": self.window_end.isoformat() if self.window_end else None,
            "quality": {
                "passed": self.quality.passed,
                "rows": self.quality.rows,
                "issues": [asdict(i) for i in self.quality.issues],
                "missing_rate": dict(self.quality.missing_rate),
            },
            "features": list(self.features),
            "drift": [asdict(d) for d in self.drift],
            "drifted_features": self.drifted_features,
            "drift_share": self.drift_share,
            "prediction_drift": asdict(self.prediction_drift) if self.prediction_drift else None,
            "label_drift": asdict(self.label_drift) if self.label_drift else None,
            "multivariate_drift": asdict(self.multivariate_drift) if self.multivariate_drift else None,
        }


def _drift_schema() -> dict[str, Any]:
    import polars as pl

    return {
        "feature": pl.String,
        "kind": pl.String,
        "method": pl.String,
        "statistic": pl.Float64,
        "threshold": pl.Float64,
        "alert": pl.Boolean,
        "p_value": pl.Float64,
        "primary": pl.Boolean,
        "sample_size": pl.Int64,
    }


# --- reference profile ---------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class NumericReference:
    """A numeric column of the reference: sorted sample for exact KS/Wasserstein, bins for JS/Hellinger/PSI."""

    name: str
    kind: str  # "numeric" | "prediction"
    count: int  # non-null reference values
    minimum: float
    maximum: float
    mean: float
    std: float
    sample: np.ndarray  # sorted non-null values; all of them up to MAX_REFERENCE_SAMPLE, else evenly spaced ranks
    bin_edges: tuple[float, ...]  # PSI: interior decile edges; bin j holds edges[j-1] <= x < edges[j]
    bin_proportions: tuple[float, ...]
    # JS and Hellinger: all edges of numpy's "doane" histogram (NannyML's binning); values outside them
    # fall in an extra bin that is empty in the reference.
    histogram_edges: tuple[float, ...] = ()
    histogram_proportions: tuple[float, ...] = ()
    # Null quantiles of KS and Wasserstein for unit sizes: thresholds are these times sqrt(1/m + 1/n).
    ks_null_unit: float = 0.0
    wasserstein_null_unit: float = 0.0

    @cached_property
    def atoms(self) -> tuple[np.ndarray, np.ndarray]:
        """(values, masses) of the reference sample merged into at most CALIBRATION_ATOMS equal-mass atoms.

        Merged atoms get exactly equal masses (they differ by at most one value in ~100), so every
        continuous column shares one bridge simulation.
        """
        import numpy as np

        sample = self.sample
        if sample.size == 0:
            return sample, sample
        starts = np.flatnonzero(np.concatenate(([True], sample[1:] != sample[:-1])))
        if starts.size <= CALIBRATION_ATOMS:
            counts = np.diff(np.append(starts, sample.size))
            return sample[starts], counts / sample.size
        starts = np.linspace(0, sample.size, CALIBRATION_ATOMS + 1).astype(np.int64)[:-1]
        sizes = np.diff(np.append(starts, sample.size))
        return np.add.reduceat(sample, starts) / sizes, np.full(CALIBRATION_ATOMS, 1.0 / CALIBRATION_ATOMS)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "numeric",
            "name": self.name,
            "kind": self.kind,
            "count": self.count,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "mean": self.mean,
            "std": self.std,
            # Little-endian float64 bytes in base64: exact, and a third of the size of decimal text.
            "sample": base64.b64encode(self.sample.astype("<f8").tobytes()).decode("ascii"),
            "bin_edges": list(self.bin_edges),
            "bin_proportions": list(self.bin_proportions),
            "histogram_edges": list(self.histogram_edges),
            "histogram_proportions": list(self.histogram_proportions),
            "ks_null_unit": self.ks_null_unit,
            "wasserstein_null_unit": self.wasserstein_null_unit,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NumericReference:
        import numpy as np

        return cls(
            name=str(data["name"]),
            kind=str(data["kind"]),
            count=int(data["count"]),
            minimum=float(data["minimum"]),
            maximum=float(data["maximum"]),
            mean=float(data["mean"]),
            std=float(data["std"]),
            sample=np.frombuffer(base64.b64decode(data["sample"]), dtype="<f8").astype(np.float64),
            bin_edges=tuple(float(e) for e in data["bin_edges"]),
            bin_proportions=tuple(float(p) for p in data["bin_proportions"]),
            histogram_edges=tuple(float(e) for e in data["histogram_edges"]),
            histogram_proportions=tuple(float(p) for p in data["histogram_proportions"]),
            ks_null_unit=float(data["ks_null_unit"]),
            wasserstein_null_unit=float(data["wasserstein_null_unit"]),
        )


@dataclass(frozen=True, eq=False)
class CategoricalReference:
    """A categorical, boolean or label column of the reference: category counts."""

    name: str
    kind: str  # "categorical" | "boolean" | "label"
    count: int
    categories: tuple[str, ...]  # observed in the reference, sorted
    counts: tuple[int, ...]
    known: tuple[str, ...]  # not "unseen": the observed categories plus those the contract lists

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "categorical",
            "name": self.name,
            "kind": self.kind,
            "count": self.count,
            "categories": list(self.categories),
            "counts": list(self.counts),
            "known": list(self.known),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CategoricalReference:
        return cls(
            name=str(data["name"]),
            kind=str(data["kind"]),
            count=int(data["count"]),
            categories=tuple(str(c) for c in data["categories"]),
            counts=tuple(int(c) for c in data["counts"]),
            known=tuple(str(c) for c in data["known"]),
        )


ColumnReference = NumericReference | CategoricalReference


@dataclass(frozen=True, eq=False)
class ReferenceProfile:
    """Everything needed to profile a batch without re-reading the reference."""

    contract_name: str
    rows: int
    chunk_size: int
    false_alarm_quantile: float
    replicates: int
    features: tuple[ColumnReference, ...]  # in contract order
    prediction: NumericReference | None
    label: CategoricalReference | None
    missing_rate: dict[str, float]
    # column -> calibration size -> method -> threshold; filled for chunk_size at fit, other sizes on use
    thresholds: dict[str, dict[int, dict[str, float]]] = field(default_factory=dict)
    schema: dict[str, str] = field(default_factory=dict)  # the reference's columns and dtypes as read
    multivariate: PcaReference | None = None

    @property
    def columns(self) -> tuple[ColumnReference, ...]:
        extra = tuple(c for c in (self.prediction, self.label) if c is not None)
        return self.features + extra

    def column(self, name: str) -> ColumnReference:
        for ref in self.columns:
            if ref.name == name:
                return ref
        raise ContractError(f"column {name!r} is not in the reference profile of contract {self.contract_name!r}")

    def thresholds_at(self, name: str, size: int) -> dict[str, float]:
        """Calibrated thresholds of one column for a batch of ``size`` non-null values (cached)."""
        size = calibration_size(size)
        per_size = self.thresholds.setdefault(name, {})
        if size not in per_size:
            per_size[size] = calibrate_column(self.column(name), size, self.false_alarm_quantile, self.replicates)
        return per_size[size]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": PROFILE_FORMAT,
            "contract_name": self.contract_name,
            "rows": self.rows,
            "chunk_size": self.chunk_size,
            "false_alarm_quantile": self.false_alarm_quantile,
            "replicates": self.replicates,
            "features": [f.to_dict() for f in self.features],
            "prediction": self.prediction.to_dict() if self.prediction else None,
            "label": self.label.to_dict() if self.label else None,
            "missing_rate": dict(self.missing_rate),
            "thresholds": {
                name: {str(size): dict(methods) for size, methods in per_size.items()}
                for name, per_size in self.thresholds.items()
            },
            "schema": dict(self.schema),
            "multivariate": self.multivariate.to_dict() if self.multivariate else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReferenceProfile:
        from tasks.drift.multivariate import PcaReference

        try:
            if data.get("format") != PROFILE_FORMAT:
                raise ValueError(f"format {data.get('format')!r}, expected {PROFILE_FORMAT!r}")
            features = tuple(_column_from_dict(f) for f in data["features"])
            prediction = NumericReference.from_dict(data["prediction"]) if data.get("prediction") else None
            label = CategoricalReference.from_dict(data["label"]) if data.get("label") else None
            return cls(
                contract_name=str(data["contract_name"]),
                rows=int(data["rows"]),
                chunk_size=int(data["chunk_size"]),
                false_alarm_quantile=float(data["false_alarm_quantile"]),
                replicates=int(data["replicates"]),
                features=features,
                prediction=prediction,
                label=label,
                missing_rate={str(k): float(v) for k, v in data["missing_rate"].items()},
                thresholds={
                    str(name): {
                        int(size): {str(m): float(t) for m, t in methods.items()} for size, methods in sizes.items()
                    }
                    for name, sizes in data["thresholds"].items()
                },
                schema={str(k): str(v) for k, v in data["schema"].items()},
                multivariate=PcaReference.from_dict(data["multivariate"]) if data.get("multivariate") else None,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(f"reference profile is malformed: {exc!r}; refit it", source="reference profile") from exc


def _column_from_dict(data: dict[str, Any]) -> ColumnReference:
    if data["type"] == "numeric":
        return NumericReference.from_dict(data)
    if data["type"] == "categorical":
        return CategoricalReference.from_dict(data)
    raise ValueError(f"unknown column type {data['type']!r}")


def replicates_for(settings: ProfilingSettings) -> int:
    """Null replicates per calibration: at least TAIL_REPLICATES expected beyond the quantile."""
    return max(settings.reference_chunks, math.ceil(TAIL_REPLICATES / (1.0 - settings.false_alarm_quantile)))


def calibration_size(size: int) -> int:
    """Round a sample size down to two significant figures (at least 1)."""
    if size < 100:
        return max(size, 1)
    scale = 10 ** (len(str(size)) - 2)
    return (size // scale) * scale


# --- fitting the reference -----------------------------------------------------------


class _ReferenceColumns:
    """Validated reference columns, from an in-memory frame (validated once) or a LazyFrame (column by column)."""

    def __init__(self, reference: pl.DataFrame | pl.LazyFrame, contract: ModelContract, source: str) -> None:
        import polars as pl

        self.contract = contract
        self.source = source
        # NaN/inf in numeric features are found after each column's sort (_numeric_reference), in parallel.
        if isinstance(reference, pl.DataFrame):
            self.schema = dict(reference.schema)
            self.frame: pl.DataFrame | None = validate_batch(
                reference, contract, source=source, min_rows=2, check_finite=False
            )
            self.lazy: pl.LazyFrame | None = None
            self.rows = self.frame.height
        else:
            self.schema = dict(reference.collect_schema())
            # Column presence and dtypes come from the schema, without reading a row (a head() would decode
            # a whole row group); values are checked as the columns are read.
            validate_batch(pl.DataFrame(schema=self.schema), contract, source=source, min_rows=0)
            self.frame = None
            self.lazy = reference
            self.rows = int(reference.select(pl.len()).collect().item())
            if self.rows < 2:
                from tasks.core.errors import EmptyBatchError

                raise EmptyBatchError(f"batch has {self.rows} rows, needs at least 2", source=source)
            profiled = [*contract.feature_names, contract.probability, contract.target]
            profiled = [name for name in dict.fromkeys(profiled) if name in self.schema]
            # The entity id and timestamps are not profiled, so they are not read (it saves a fifth of the
            # read): typed null columns stand in for them when the frame is validated. Text timestamps are
            # read, to be checked.
            text_time = contract.timestamp if self.schema.get(contract.timestamp or "") == pl.String else None
            unread = [c for c in (contract.entity_id, contract.timestamp) if c and c not in profiled and c != text_time]
            if self.rows * len(profiled) <= READ_AT_ONCE_CELLS:
                # Small enough to read in one pass (one scan instead of one per column), then validate once.
                wanted = [*profiled, *([text_time] if text_time and text_time not in profiled else [])]
                frame = reference.select(wanted).collect(engine="streaming")
                frame = frame.with_columns(pl.lit(None, dtype=self.schema[c]).alias(c) for c in unread)
                self.frame = validate_batch(frame, contract, source=source, min_rows=2, check_finite=False)
                self.lazy = None
            elif contract.timestamp and self.schema.get(contract.timestamp) == pl.String:
                # Not profiled, so not read in full: text timestamps are checked on their first rows.
                head = reference.select(contract.timestamp).head(1000).collect()
                parsed = head.select(pl.col(contract.timestamp).str.to_datetime(strict=False))  # as validate_batch
                if parsed.to_series().null_count() > head.to_series().null_count():
                    raise DtypeError("timestamps could not be parsed", source=source, column=contract.timestamp)

    def has(self, name: str) -> bool:
        return name in self.schema

    def get(self, name: str) -> pl.Series:
        import polars as pl

        if self.frame is not None:
            return self.frame.get_column(name)
        assert self.lazy is not None
        contract = self.contract
        kinds = {spec.name: spec.kind for spec in contract.features}
        kind = kinds.get(name)
        column = pl.col(name)
        if kind == "numeric" or name == contract.probability:
            expression = column.cast(pl.Float64)
        elif kind == "boolean":
            expression = column.cast(pl.Boolean)
        elif kind == "categorical":
            expression = column.cast(pl.String)
        else:
            expression = column
        series = self.lazy.select(expression).collect(engine="streaming").to_series()
        if name == contract.probability:
            outside = int((~series.is_between(0.0, 1.0) & series.is_not_null()).sum())
            if outside:
                raise ProbabilityRangeError(f"{outside} values outside [0, 1]", source=self.source, column=name)
        if name == contract.target:
            values = set(series.drop_nulls().cast(pl.Int64, strict=False).unique().to_list())
            if not values <= {0, 1}:
                raise DtypeError(
                    f"binary labels must be 0/1, found {sorted(values - {0, 1})[:5]}", source=self.source, column=name
                )
            series = series.cast(pl.Int8)
        return series

    def null_count(self, name: str) -> int:
        import polars as pl

        if self.frame is not None:
            return int(self.frame.get_column(name).null_count())
        assert self.lazy is not None
        return int(self.lazy.select(pl.col(name).null_count()).collect(engine="streaming").item())


def fit_reference_profile(
    reference: pl.DataFrame | pl.LazyFrame,
    contract: ModelContract,
    settings: ProfilingSettings,
    *,
    source: str = "reference",
    multivariate: bool = True,
) -> ReferenceProfile:
    """Profile the reference once: samples, bins, category counts, missing rates, PCA, thresholds at chunk_size.

    A LazyFrame is read one column at a time (peak memory: one column), a DataFrame is validated once.
    """
    from tasks.drift.multivariate import fit_pca_reference

    quantile, replicates = settings.false_alarm_quantile, replicates_for(settings)
    bridges = _BridgeNulls(quantile, replicates)
    if any(spec.kind == "numeric" for spec in contract.features):
        bridges.start_continuous()
    try:
        columns = _ReferenceColumns(reference, contract, source)
    except BaseException:
        bridges.join()  # a bad reference: the simulation does not outlive the error
        raise
    rows = columns.rows
    has_prediction, has_label = columns.has(contract.probability), columns.has(contract.target)

    def fit_column(spec: FeatureSpec | str) -> tuple[ColumnReference | None, float, dict[str, float]]:
        """Read, profile and calibrate one column; None for an all-null prediction or label column."""
        name = spec.name if isinstance(spec, FeatureSpec) else spec
        series = columns.get(name)
        nulls = series.null_count()
        ref: ColumnReference
        if isinstance(spec, FeatureSpec):
            if nulls == rows:
                raise DataError(
                    "feature is entirely null in the reference; it cannot be profiled", source=source, column=name
                )
            if spec.kind == "numeric":
                ref = bridges.attach(_numeric_reference(series, name, "numeric", source=source))
            else:
                ref = _categorical_reference(series, name, spec.kind, spec.categories or [])
        elif nulls == rows:
            return None, 1.0, {}
        elif name == contract.probability:
            ref = bridges.attach(_numeric_reference(series, name, "prediction", source=source))
        else:
            ref = _categorical_reference(series, name, "label", [])
        thresholds = calibrate_column(ref, calibration_size(settings.chunk_size), quantile, replicates)
        return ref, nulls / rows, thresholds

    # Every column is read, profiled and calibrated in one pass, a column per thread: a LazyFrame source
    # then holds one column per core in memory, and no step waits for the slowest column.
    optional = ((contract.probability, has_prediction), (contract.target, has_label))
    extra = [name for name, present in optional if present]
    columns_to_fit: list[FeatureSpec | str] = [*contract.features, *extra]
    fitted = parallel_map(fit_column, columns_to_fit)
    features = [ref for ref, _, _ in fitted[: len(contract.features)] if ref is not None]
    found = {ref.name: ref for ref, _, _ in fitted[len(contract.features) :] if ref is not None}
    prediction = found.get(contract.probability)
    label = found.get(contract.target)
    profile = ReferenceProfile(
        contract_name=contract.name,
        rows=rows,
        chunk_size=settings.chunk_size,
        false_alarm_quantile=quantile,
        replicates=replicates,
        features=tuple(features),
        prediction=prediction if isinstance(prediction, NumericReference) else None,
        label=label if isinstance(label, CategoricalReference) else None,
        missing_rate={ref.name: rate for ref, rate, _ in fitted[: len(contract.features)] if ref is not None},
        thresholds={
            ref.name: {calibration_size(settings.chunk_size): thresholds} for ref, _, thresholds in fitted if ref
        },
        schema={name: str(dtype) for name, dtype in columns.schema.items()},
        multivariate=(
            fit_pca_reference(
                columns.frame if columns.frame is not None else _validated_features(columns),
                contract,
                quantile=quantile,
                source=source,
            )
            if multivariate and len(contract.features) > 1
            else None
        ),
    )
    return profile


def _validated_features(columns: _ReferenceColumns) -> pl.LazyFrame:
    import polars as pl

    assert columns.lazy is not None
    casts = {"numeric": pl.Float64, "boolean": pl.Boolean, "categorical": pl.String}
    return columns.lazy.select(pl.col(spec.name).cast(casts[spec.kind]) for spec in columns.contract.features)


def _numeric_reference(column: pl.Series, name: str, kind: str, *, source: str = "reference") -> NumericReference:
    """Sorted sample, bins, moments and range of one numeric reference column; NaN/inf raise NonFiniteError."""
    import numpy as np

    from tasks.drift.kernels import sort_column

    values, mean, std, skewness = sort_column(column, with_moments=True)
    # The sort puts NaN and infinities at the two ends: finite ends mean a finite column, at no cost.
    if values.size and not (math.isfinite(values[0]) and math.isfinite(values[-1])):
        bad = int(np.count_nonzero(~np.isfinite(values)))
        raise NonFiniteError(f"{bad} NaN/inf values", source=source, column=name)
    if values.size > MAX_REFERENCE_SAMPLE:
        # Evenly spaced order statistics keep the ECDF within 1/MAX_REFERENCE_SAMPLE of the full one.
        sample = values[np.linspace(0, values.size - 1, MAX_REFERENCE_SAMPLE).round().astype(np.int64)]
    else:
        sample = values
    # numpy's "inverted_cdf" quantile of sorted values: the value at rank ceil(n q).
    ranks = np.ceil(values.size * (np.arange(1, N_BINS) / N_BINS)).astype(np.int64) - 1
    quantiles = values[np.clip(ranks, 0, values.size - 1)]
    # Edges are data values above the minimum, so every reference bin holds at least one value.
    edges = np.unique(quantiles[quantiles > values[0]])
    counts = _bin_counts(values, edges)
    histogram_edges = doane_edges(values, mean, std, skewness)
    histogram = _histogram_counts(values, histogram_edges)[:-1]
    return NumericReference(
        name=name,
        kind=kind,
        count=int(values.size),
        minimum=float(values[0]),
        maximum=float(values[-1]),
        mean=mean,
        std=std,
        sample=np.ascontiguousarray(sample),
        bin_edges=tuple(float(e) for e in edges),
        bin_proportions=tuple(float(c) for c in counts / values.size),
        histogram_edges=tuple(float(e) for e in histogram_edges),
        histogram_proportions=tuple(float(c) for c in histogram / values.size),
    )


def doane_edges(
    sorted_values: np.ndarray, mean: float | None = None, std: float | None = None, skewness: float | None = None
) -> np.ndarray:
    """``numpy.histogram_bin_edges(values, "doane")`` for sorted values (NannyML's bins), in fewer passes.

    ``mean``, ``std`` (population) and ``skewness`` (biased, as numpy's) are computed when not given.
    """
    import numpy as np

    size = sorted_values.size
    first, last = float(sorted_values[0]), float(sorted_values[-1])
    width = 0.0
    if size > 2:
        sigma = float(sorted_values.std()) if std is None else std
        if sigma > 0.0:
            if skewness is None:
                centre = float(sorted_values.mean()) if mean is None else mean
                standardised = (sorted_values - centre) / sigma
                skewness = float((standardised * standardised * standardised).mean())
            sg1 = math.sqrt(6.0 * (size - 2) / ((size + 1.0) * (size + 3)))
            width = (last - first) / (1.0 + math.log2(size) + math.log2(1.0 + abs(skewness) / sg1))
    if first == last:
        first, last = first - 0.5, last + 0.5
    bins = math.ceil((last - first) / width) if width else 1
    return np.linspace(first, last, bins + 1)


class _BridgeNulls:
    """KS/Wasserstein unit null quantiles; columns with the same atom masses share one bridge simulation.

    By Donsker's theorem the ECDF of m draws from the reference's distribution deviates from it by
    B(F(x)) / sqrt(m) for a Brownian bridge B; the gap between a batch's and the reference's ECDF is then
    sqrt(1/m + 1/n) B. Ties are respected because B is only evaluated at the atoms. Columns are fitted
    in parallel threads, so a simulation is made once under a lock and then shared.
    """

    def __init__(self, quantile: float, replicates: int) -> None:
        import threading

        self.quantile = quantile
        self.replicates = replicates
        self._lock = threading.Lock()
        self._bridges: dict[bytes, tuple[np.ndarray, float]] = {}
        self._early: threading.Thread | None = None

    def start_continuous(self) -> None:
        """Simulate the bridge of continuous columns (CALIBRATION_ATOMS equal atoms) in a background thread.

        It depends on no data, so it runs while the reference is still being read.
        """
        import threading

        import numpy as np

        uniform = np.full(CALIBRATION_ATOMS, 1.0 / CALIBRATION_ATOMS)
        self._early = threading.Thread(target=self._bridge, args=(uniform,), name=f"{WORKER_THREAD_PREFIX}-bridge")
        self._early.start()

    def join(self) -> None:
        if self._early is not None:
            self._early.join()

    def _bridge(self, masses: np.ndarray) -> tuple[np.ndarray, float]:
        import numpy as np

        from tasks.drift.kernels import brownian_bridges

        key = masses.tobytes()
        with self._lock:
            if key not in self._bridges:
                rng = np.random.default_rng([CALIBRATION_SEED, zlib.crc32(key), masses.size])
                # float32 halves the cost; the quantiles need three digits, not fifteen.
                bridge = rng.standard_normal((self.replicates, masses.size), dtype=np.float32)
                largest = brownian_bridges(bridge, masses)  # in place: the steps become |B| at the atoms
                self._bridges[key] = (bridge, float(np.quantile(largest, self.quantile)))
            return self._bridges[key]

    def attach(self, ref: NumericReference) -> NumericReference:
        import numpy as np

        values, masses = ref.atoms
        bridge, ks_unit = self._bridge(masses)
        gaps = np.append(np.diff(values), 0.0).astype(np.float32)
        # Not `bridge @ gaps`: BLAS threads spin against the column threads this runs in.
        wasserstein = np.einsum("ij,j->i", bridge, gaps) if values.size else np.zeros(self.replicates)
        return replace(ref, ks_null_unit=ks_unit, wasserstein_null_unit=float(np.quantile(wasserstein, self.quantile)))


def _categorical_reference(column: pl.Series, name: str, kind: str, known: list[str]) -> CategoricalReference:
    categories, counts = _category_counts(column, kind)
    return CategoricalReference(
        name=name,
        kind=kind,
        count=int(sum(counts)),
        categories=tuple(categories),
        counts=tuple(counts),
        known=tuple(sorted(set(categories) | set(known))),
    )


def _category_counts(column: pl.Series, kind: str) -> tuple[list[str], list[int]]:
    """Sorted categories and their counts; booleans become "false"/"true", labels and integers their digits."""
    import polars as pl

    from tasks.drift.kernels import count_short_strings

    if kind == "boolean":
        column = column.cast(pl.Boolean)
    elif kind == "label" and column.dtype.is_float():
        column = column.cast(pl.Int64)
    # Counted in the column's own dtype; only the few distinct values are then turned into text. polars'
    # value_counts is the faster at chunk sizes, a group_by twice as fast at a million rows.
    column = column.drop_nulls().rename("value")
    short = count_short_strings(column)
    if short is not None:
        pairs = sorted(short.items())
        return [category for category, _ in pairs], [n for _, n in pairs]
    if column.len() > 500_000:
        counts = column.to_frame().group_by("value").len(name="n")
    else:
        counts = column.value_counts(name="n")
    categories = counts.get_column("value").cast(pl.String).to_list()
    pairs = sorted(zip(categories, counts.get_column("n").to_list(), strict=True))
    return [str(category) for category, _ in pairs], [int(n) for _, n in pairs]


def _bin_counts(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    import numpy as np

    below = np.searchsorted(sorted_values, edges, side="left")
    return np.diff(np.concatenate(([0], below, [sorted_values.size])))


def _histogram_counts(sorted_values: np.ndarray, edges: np.ndarray | tuple[float, ...]) -> np.ndarray:
    """``numpy.histogram`` counts on ``edges`` (last bin closed), then the count outside them as a last entry."""
    import numpy as np

    edges = np.asarray(edges)
    below = np.searchsorted(sorted_values, edges[:-1], side="left")
    at_most_last = np.searchsorted(sorted_values, edges[-1:], side="right")
    inside = np.diff(np.concatenate((below, at_most_last)))
    return np.append(inside, sorted_values.size - inside.sum())


# --- statistics ----------------------------------------------------------------------


def ecdf_statistics(reference_sorted: np.ndarray, batch_sorted: np.ndarray) -> tuple[float, float]:
    """(KS statistic, Wasserstein-1 distance) between two sorted samples, exactly as scipy defines them.

    Both ECDFs only change at sample values, so they are evaluated at the end of each run of equal
    values in the merged sample. A stable sort of the two concatenated sorted runs is a single merge;
    the ECDF gap is kept in integers (n * m times its value) so the KS statistic is exact.
    Profiling uses the compiled twin :func:`tasks.drift.kernels.ks_wasserstein`; this one is its reference.
    """
    import numpy as np

    n, m = reference_sorted.size, batch_sorted.size
    both = np.concatenate((reference_sorted, batch_sorted))
    order = np.argsort(both, kind="stable")
    merged = both[order]
    reference_below = np.cumsum(order < n)
    distinct = merged[1:] != merged[:-1]
    if distinct.all():
        seen = np.arange(1, n + m + 1)
        values = merged
    else:
        ends = np.flatnonzero(np.append(distinct, True))
        reference_below = reference_below[ends]
        seen = ends + 1
        values = merged[ends]
    gap = np.abs(reference_below * (n + m) - seen * n)
    scale = float(n) * float(m)
    return float(gap.max() / scale), float((gap[:-1] * np.diff(values)).sum() / scale)


def ks_p_value(statistic: float, n_reference: int, n_batch: int) -> float:
    """Two-sided p-value from Kolmogorov's limiting distribution at the effective size n m / (n + m).

    ``scipy.stats.ks_2samp(method="asymp")`` evaluates the finite-size one-sample distribution at that
    size instead, which costs milliseconds per call at the sizes profiled here; the two agree to within
    a few percent of the p-value (a unit test checks it). Alerts never depend on p-values.
    """
    from scipy.special import kolmogorov

    effective = n_reference * n_batch / (n_reference + n_batch)
    return float(kolmogorov(math.sqrt(effective) * statistic))


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon distance, base 2, along the last axis (rows are normalised), as ``scipy.spatial.distance``."""
    import numpy as np

    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    p = p / p.sum(axis=-1, keepdims=True)
    q = q / q.sum(axis=-1, keepdims=True)
    m = (p + q) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(p > 0, p * np.log(p / m), 0.0)
        right = np.where(q > 0, q * np.log(q / m), 0.0)
    divergence = (left + right).sum(axis=-1) / 2.0
    return np.asarray(np.sqrt(np.maximum(divergence, 0.0) / np.log(2.0)))


def hellinger(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Hellinger distance of proportions along the last axis, as NannyML: sqrt(sum((sqrt p - sqrt q)^2)) / sqrt(2)."""
    import numpy as np

    return np.asarray(np.sqrt(((np.sqrt(p) - np.sqrt(q)) ** 2).sum(axis=-1)) / np.sqrt(2.0))


def population_stability_index(reference: np.ndarray, batch: np.ndarray) -> np.ndarray:
    """PSI along the last axis; both arguments are proportions."""
    import numpy as np

    r = np.maximum(reference, PSI_EPSILON)
    b = np.maximum(batch, PSI_EPSILON)
    return np.asarray(((b - r) * np.log(b / r)).sum(axis=-1))


def chi2_statistic(reference_counts: np.ndarray, batch_counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(statistic, dof) of the 2 x k table per row, as ``scipy.stats.chi2_contingency`` (Yates when dof = 1).

    Categories absent from both samples are left out (scipy would reject the zero expected count).
    """
    import numpy as np

    observed = np.stack((reference_counts, batch_counts), axis=-2).astype(np.float64)
    column_totals = observed.sum(axis=-2, keepdims=True)
    row_totals = observed.sum(axis=-1, keepdims=True)
    expected = row_totals * column_totals / column_totals.sum(axis=-1, keepdims=True)
    present = column_totals > 0
    dof = present.sum(axis=(-2, -1)) - 1
    gap = expected - observed
    yates = (dof == 1)[..., None, None]
    observed = np.where(yates, observed + np.minimum(0.5, np.abs(gap)) * np.sign(gap), observed)
    with np.errstate(divide="ignore", invalid="ignore"):
        cells = np.where(present, (observed - expected) ** 2 / expected, 0.0)
    return cells.sum(axis=(-2, -1)), dof


def chi2_p_value(statistic: float, dof: int) -> float:
    """Upper tail of the chi-squared distribution (``scipy.stats.chi2.sf``, without importing scipy.stats)."""
    from scipy.special import chdtrc

    return float(chdtrc(dof, statistic)) if dof > 0 else 1.0


def numeric_drift(ref: NumericReference, batch_sorted: np.ndarray) -> dict[str, tuple[float, float | None]]:
    """Statistic and p-value of every numeric method; ``batch_sorted`` holds the sorted non-null values."""
    import numpy as np

    from tasks.drift.kernels import ks_wasserstein

    ks, wasserstein = ks_wasserstein(ref.sample, batch_sorted)
    size = batch_sorted.size
    deciles = _bin_counts(batch_sorted, np.asarray(ref.bin_edges)) / size
    reference_histogram, histogram = _histograms(ref, batch_sorted)
    return {
        "ks": (ks, ks_p_value(ks, ref.sample.size, size)),
        "wasserstein": (wasserstein, None),
        "jensen_shannon": (float(jensen_shannon(reference_histogram, histogram)), None),
        "hellinger": (float(hellinger(reference_histogram, histogram)), None),
        "psi": (float(population_stability_index(np.asarray(ref.bin_proportions), deciles)), None),
    }


def _histograms(ref: NumericReference, batch_sorted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(reference, batch) proportions on the reference's histogram, plus the outside bin when the batch uses it."""
    import numpy as np

    counts = _histogram_counts(batch_sorted, ref.histogram_edges)
    reference = np.asarray(ref.histogram_proportions)
    if counts[-1] == 0:
        return reference, counts[:-1] / batch_sorted.size
    return np.append(reference, 0.0), counts / batch_sorted.size


def categorical_drift(
    ref: CategoricalReference, categories: list[str], counts: list[int]
) -> dict[str, tuple[float, float | None]]:
    """Statistic and p-value of every categorical method, over the union of reference and batch categories."""
    import numpy as np

    union = sorted(set(ref.categories) | set(categories))
    position = {c: i for i, c in enumerate(union)}
    reference_counts = np.zeros(len(union))
    batch_counts = np.zeros(len(union))
    reference_counts[[position[c] for c in ref.categories]] = ref.counts
    batch_counts[[position[c] for c in categories]] = counts
    reference_share = reference_counts / reference_counts.sum()
    batch_share = batch_counts / batch_counts.sum()
    statistic, dof = chi2_statistic(reference_counts, batch_counts)
    return {
        "jensen_shannon": (float(jensen_shannon(reference_share, batch_share)), None),
        "hellinger": (float(hellinger(reference_share, batch_share)), None),
        "chi2": (float(statistic), chi2_p_value(float(statistic), int(dof))),
        "l_infinity": (float(np.abs(batch_share - reference_share).max()), None),
    }


# --- calibration ---------------------------------------------------------------------


def calibrate_column(ref: ColumnReference, size: int, quantile: float, replicates: int) -> dict[str, float]:
    """Thresholds of every method of one column for batches of ``size`` non-null values (see module doc)."""
    import numpy as np

    rng = np.random.default_rng([CALIBRATION_SEED, zlib.crc32(ref.name.encode()), size])
    if isinstance(ref, NumericReference):
        null = _binned_null(ref, size, replicates, rng)
        scale = math.sqrt(1.0 / size + 1.0 / ref.sample.size)
        thresholds = {
            "ks": max(ref.ks_null_unit * scale, THRESHOLD_FLOOR),
            # In the feature's units, so its floor is too.
            "wasserstein": max(ref.wasserstein_null_unit * scale, THRESHOLD_FLOOR * (ref.std or 1.0)),
        }
    else:
        null = _categorical_null(ref, size, replicates, rng)
        thresholds = {}
    for method, values in null.items():
        thresholds[method] = max(float(np.quantile(values, quantile)), THRESHOLD_FLOOR)
    return thresholds


def multinomial_draws(
    rng: np.random.Generator, total: int, proportions: Sequence[float] | np.ndarray, replicates: int
) -> np.ndarray:
    """``replicates`` multinomial count vectors of ``total`` draws over ``proportions``, shape (replicates, k).

    Drawn bin by bin as conditional binomials, vectorised over the replicates. A binomial whose
    variance is at least ``NORMAL_DRAW_VARIANCE`` in every replicate is drawn from its normal
    approximation (rounded, clipped; skewness under 0.03), the others exactly: five times cheaper than
    ``Generator.multinomial`` at the reference's and a chunk's sizes, exact where counts are small.
    """
    import numpy as np

    from tasks.drift.kernels import multinomial_counts

    shares = np.asarray(proportions, dtype=np.float64)
    return multinomial_counts(rng, total, shares / shares.sum(), replicates, NORMAL_DRAW_VARIANCE)


def _binned_null(ref: NumericReference, size: int, replicates: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    from tasks.drift.kernels import binned_distances

    reference_histogram, reference_deciles = _reference_replicates(ref, replicates)
    chunk_histogram = multinomial_draws(rng, size, ref.histogram_proportions, replicates)
    chunk_deciles = multinomial_draws(rng, size, ref.bin_proportions, replicates)
    # One compiled pass per table: jensen_shannon, hellinger and population_stability_index, row by row.
    js, hellinger_distance, _ = binned_distances(reference_histogram, chunk_histogram, PSI_EPSILON, stability=False)
    _, _, psi = binned_distances(reference_deciles, chunk_deciles, PSI_EPSILON, shape_distances=False)
    return {"jensen_shannon": js, "hellinger": hellinger_distance, "psi": psi}


def _reference_replicates(ref: NumericReference, replicates: int) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap replicates of the reference's histogram and decile counts: the same at every batch size,
    so drawn once per column (seeded by its name) and kept on the column."""
    import numpy as np

    cached = ref.__dict__.get("_reference_replicates")
    if cached is None or cached[0].shape[0] != replicates:
        rng = np.random.default_rng([CALIBRATION_SEED, zlib.crc32(ref.name.encode())])
        cached = (
            multinomial_draws(rng, ref.count, ref.histogram_proportions, replicates),
            multinomial_draws(rng, ref.count, ref.bin_proportions, replicates),
        )
        # A frozen dataclass: the cache bypasses __setattr__ like functools.cached_property does.
        ref.__dict__["_reference_replicates"] = cached
    return cached[0], cached[1]


def _categorical_null(
    ref: CategoricalReference, size: int, replicates: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    import numpy as np

    shares = np.asarray(ref.counts, dtype=np.float64) / ref.count
    chunk_counts = multinomial_draws(rng, size, shares, replicates)
    reference_counts = multinomial_draws(rng, ref.count, shares, replicates)
    chunk_share = chunk_counts / size
    reference_share = reference_counts / ref.count
    return {
        "jensen_shannon": jensen_shannon(reference_share, chunk_share),
        "hellinger": hellinger(reference_share, chunk_share),
        "chi2": chi2_statistic(reference_counts, chunk_counts)[0],
        "l_infinity": np.abs(chunk_share - reference_share).max(axis=1),
    }


# --- batch profiling -----------------------------------------------------------------


def profile_batch(
    profile: ReferenceProfile,
    batch: pl.DataFrame,
    contract: ModelContract,
    settings: ProfilingSettings,
    *,
    source: str = "batch",
    raw_schema: Mapping[str, Any] | None = None,
    extra_issues: tuple[QualityIssue, ...] = (),
) -> BatchProfile:
    """Data quality and drift of one batch (the contract-validated frame) against the reference profile.

    ``raw_schema`` is the batch's schema as read, before validation cast it (dtype changes are only
    visible there); without it only extra and missing columns are compared with the reference.
    """
    from tasks.drift.multivariate import (
        MULTIVARIATE_FEATURE,
        MULTIVARIATE_KIND,
        MULTIVARIATE_METHOD,
        multivariate_drift,
    )

    _check_compatible(profile, contract, settings)
    _check_columns(batch, contract, source)
    schema_issues = check_schema(
        profile, raw_schema if raw_schema is not None else batch.schema, contract, compare_dtypes=raw_schema is not None
    )
    references = [profile.column(name) for name in contract.feature_names]
    # Counted once: the unseen-category check and the categorical drift statistics both use these.
    category_counts = {
        ref.name: _category_counts(batch.get_column(ref.name), ref.kind)
        for ref in references
        if isinstance(ref, CategoricalReference) and batch.height > 0
    }
    drift: list[FeatureDrift] = []
    histograms: list[Histogram] = []
    # Out-of-range counts come from the drift step's sorted columns: the quality check needs no scan for them.
    out_of_range: dict[str, int] = {}
    if batch.height > 0:
        drifting = list(references)
        if profile.prediction is not None and contract.probability in batch.columns:
            drifting.append(profile.prediction)
        if profile.label is not None and contract.target in batch.columns:
            drifting.append(profile.label)
        rows, found = _drift_rows(profile, drifting, batch, category_counts, out_of_range)
        drift.extend(rows)
        histograms.extend(found)
        if profile.multivariate is not None:
            joint = multivariate_drift(profile.multivariate, batch)
            if joint is not None:
                drift.append(
                    FeatureDrift(
                        feature=MULTIVARIATE_FEATURE,
                        kind=MULTIVARIATE_KIND,
                        method=MULTIVARIATE_METHOD,
                        statistic=joint.statistic,
                        threshold=joint.threshold,
                        alert=joint.alert,
                        p_value=joint.p_value,
                        primary=True,
                        sample_size=joint.rows,
                    )
                )
    quality = check_quality(
        profile,
        batch,
        contract,
        settings,
        extra_issues=schema_issues + extra_issues,
        category_counts=category_counts,
        out_of_range=out_of_range,
    )
    window_start, window_end = time_span(batch, contract.timestamp)
    return BatchProfile(
        rows=batch.height,
        window_start=window_start,
        window_end=window_end,
        quality=quality,
        drift=tuple(drift),
        features=tuple(contract.feature_names),
        histograms=tuple(histograms),
    )


def _drift_rows(
    profile: ReferenceProfile,
    references: list[ColumnReference],
    frame: pl.DataFrame,
    category_counts: Mapping[str, tuple[list[str], list[int]]] | None = None,
    out_of_range: dict[str, int] | None = None,
) -> tuple[list[FeatureDrift], list[Histogram]]:
    """Drift rows and histograms of every column, in the order of ``references``; columns run in parallel threads.

    ``category_counts`` holds the categories already counted (column -> sorted categories, counts).
    ``out_of_range``, when given, receives each numeric feature's count of values outside its widened
    reference range (check_quality's rule), read off the sorted values.
    """
    counted = category_counts or {}

    def column_rows(ref: ColumnReference) -> tuple[list[FeatureDrift], Histogram | None]:
        import numpy as np

        from tasks.drift.kernels import sort_column

        if isinstance(ref, NumericReference):
            # Validated frames hold no NaN (validate_batch rejects them; chunks turn them into nulls first).
            values = sort_column(frame.get_column(ref.name))[0]
            size = int(values.size)
            if out_of_range is not None and ref.kind == "numeric":
                low, high = _widened_range(ref)
                inside = np.searchsorted(values, high, side="right") - np.searchsorted(values, low, side="left")
                out_of_range[ref.name] = size - int(inside)
            if not size:
                return [], None
            stats = numeric_drift(ref, values)
            histogram = Histogram(
                feature=ref.name,
                kind=ref.kind,
                edges=ref.histogram_edges,
                labels=(),
                reference=(*ref.histogram_proportions, 0.0),
                batch=tuple(float(c) for c in _histogram_counts(values, ref.histogram_edges) / size),
            )
        else:
            categories, counts = counted.get(ref.name) or _category_counts(frame.get_column(ref.name), ref.kind)
            size = int(sum(counts))
            if not size:
                return [], None
            stats = categorical_drift(ref, categories, counts)
            union = sorted(set(ref.categories) | set(categories))
            reference_counts = dict(zip(ref.categories, ref.counts, strict=True))
            batch_counts = dict(zip(categories, counts, strict=True))
            histogram = Histogram(
                feature=ref.name,
                kind=ref.kind,
                edges=(),
                labels=tuple(union),
                reference=tuple(float(reference_counts.get(c, 0) / ref.count) for c in union),
                batch=tuple(float(np.float64(batch_counts.get(c, 0)) / size) for c in union),
            )
        thresholds = profile.thresholds_at(ref.name, size)
        primary = PRIMARY_METHOD[ref.kind]
        rows = [
            FeatureDrift(
                feature=ref.name,
                kind=ref.kind,
                method=method,
                statistic=statistic,
                threshold=thresholds[method],
                alert=statistic > thresholds[method],
                p_value=p_value,
                primary=method == primary,
                sample_size=size,
            )
            for method, (statistic, p_value) in stats.items()
        ]
        return rows, histogram

    results = parallel_map(column_rows, references)
    return [row for rows, _ in results for row in rows], [h for _, h in results if h is not None]


WORKER_THREAD_PREFIX = "driftgate-profiling"
# Chunks up to this size (polars' estimate) are profiled in parallel, one per core; larger ones one at a
# time with their columns in parallel, so a bounded-memory run still holds a single big chunk.
PARALLEL_CHUNK_BYTES = 64 * 2**20


def _in_worker_thread() -> bool:
    import threading

    return threading.current_thread().name.startswith(WORKER_THREAD_PREFIX)


def parallel_map(function: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``list(map(function, items))`` on a thread per core: polars sorts and numpy's array loops release the GIL.

    Called from inside another parallel map (a chunk's columns while chunks run in parallel) it runs
    serially: the outer level already keeps every core busy.
    """
    import os
    from concurrent.futures import ThreadPoolExecutor

    workers = min(len(items), os.cpu_count() or 1)
    if workers <= 1 or _in_worker_thread():
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=WORKER_THREAD_PREFIX) as pool:
        return list(pool.map(function, items))


def ordered_parallel_map(function: Callable[[T], R], items: Iterator[T], in_flight: int) -> Iterator[R]:
    """``map(function, items)`` in order, with at most ``in_flight`` items taken from ``items`` and not yet done.

    ``items`` is read lazily in the calling thread: the next item is only read once fewer than
    ``in_flight`` are being worked on, so at most ``in_flight`` items are alive at a time.
    """
    from collections import deque
    from concurrent.futures import Future, ThreadPoolExecutor

    if in_flight <= 1 or _in_worker_thread():
        yield from map(function, items)
        return
    pending: deque[Future[R]] = deque()
    with ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix=WORKER_THREAD_PREFIX) as pool:
        try:
            while True:
                while len(pending) >= in_flight:
                    yield pending.popleft().result()
                item = next(items, None)
                if item is None:
                    break
                pending.append(pool.submit(function, item))
                del item  # the worker holds it now; dropped as soon as it is done
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def _check_compatible(profile: ReferenceProfile, contract: ModelContract, settings: ProfilingSettings) -> None:
    if settings.false_alarm_quantile != profile.false_alarm_quantile or replicates_for(settings) != profile.replicates:
        raise ConfigError(
            f"reference profile was calibrated with false_alarm_quantile={profile.false_alarm_quantile} and "
            f"{profile.replicates} replicates, but DRIFTGATE_PROFILING__FALSE_ALARM_QUANTILE="
            f"{settings.false_alarm_quantile} / DRIFTGATE_PROFILING__REFERENCE_CHUNKS={settings.reference_chunks}"
            " ask for another calibration; refit the reference profile"
        )
    kinds = {ref.name: ref.kind for ref in profile.features}
    for spec in contract.features:
        if kinds.get(spec.name) != spec.kind:
            raise ContractError(
                f"feature {spec.name!r} ({spec.kind}) of contract {contract.name!r} is not profiled as such in the "
                f"reference profile of {profile.contract_name!r} (found {kinds.get(spec.name)}); refit the profile"
            )


def _check_columns(batch: pl.DataFrame, contract: ModelContract, source: str) -> None:
    import polars as pl

    schema = batch.schema  # built anew on every access: once per batch, not once per column
    for column in [*contract.feature_names, contract.entity_id]:
        if column not in schema:
            raise MissingColumnError("required column is missing", source=source, column=column)
    for spec in contract.features:
        dtype = schema[spec.name]
        allowed = {
            "numeric": dtype.is_numeric() or dtype in (pl.Boolean, pl.Null),
            "boolean": dtype.is_integer() or dtype in (pl.Boolean, pl.Null),
            "categorical": dtype.is_integer() or dtype in (pl.String, pl.Categorical, pl.Enum, pl.Null),
        }[spec.kind]
        if not allowed:
            raise DtypeError(
                f"{spec.kind} feature has dtype {dtype}; pass the batch through tasks.data.contract.validate_batch",
                source=source,
                column=spec.name,
            )
    for column in (contract.probability, contract.target):
        if column in schema and not (schema[column].is_numeric() or schema[column] in (pl.Boolean, pl.Null)):
            raise DtypeError(f"expected a numeric column, found {schema[column]}", source=source, column=column)


# --- data quality --------------------------------------------------------------------


def dtype_family(dtype: str) -> str:
    """Coarse family of a polars dtype name: a change *within* a family is harmless for profiling."""
    name = dtype.split("(")[0].split("[")[0]
    if name in {"Int8", "Int16", "Int32", "Int64", "Int128", "UInt8", "UInt16", "UInt32", "UInt64"}:
        return "integer"
    if name in {"Float32", "Float64", "Decimal"}:
        return "float"
    if name in {"String", "Utf8", "Categorical", "Enum"}:
        return "text"
    if name in {"Datetime", "Date", "Time", "Duration"}:
        return "temporal"
    return name.lower()


def check_schema(
    profile: ReferenceProfile, schema: Mapping[str, Any], contract: ModelContract, *, compare_dtypes: bool = True
) -> tuple[QualityIssue, ...]:
    """Schema of a batch against the reference's: extra columns and dtype changes.

    A feature whose dtype moves to another family (text <-> number <-> boolean; integer <-> float is the
    same for a numeric feature) fails; any other dtype change warns. Null-typed columns (all values
    missing) are left to the missingness checks; columns the contract names (labels, scores) are never
    "extra". Columns of the reference that a batch lacks are not reported here: features, the entity id
    and the timestamp are required (validation refuses a batch without them), while labels and the
    model's scores (probability, prediction) are optional, since labels arrive later and production
    scores a batch that comes without scores. ``compare_dtypes=False`` for a batch that validation has
    already cast.
    """
    if not profile.schema:
        return ()
    issues: list[QualityIssue] = []
    reference = profile.schema
    kinds = {spec.name: spec.kind for spec in contract.features}
    from tasks.training.scoring import VERSION_COLUMN

    # Columns the pipeline itself adds when it scores a batch are expected, not "extra".
    known = {*reference, contract.target, contract.probability, contract.prediction, VERSION_COLUMN}
    for name, dtype in schema.items():
        if name not in known:
            issues.append(QualityIssue("schema", name, f"extra column ({dtype}) not in the reference", "warn"))
            continue
        if not compare_dtypes or name not in reference:
            continue
        was, now = reference[name], str(dtype)
        if was == now or "Null" in (was, now):
            continue
        families = {dtype_family(was), dtype_family(now)}
        if kinds.get(name) == "numeric":
            families = {"number" if f in ("integer", "float") else f for f in families}
        severity = "fail" if name in kinds and len(families) > 1 else "warn"
        issues.append(QualityIssue("schema", name, f"dtype changed from {was} to {now}", severity))
    return tuple(issues)


def check_quality(
    profile: ReferenceProfile,
    batch: pl.DataFrame,
    contract: ModelContract,
    settings: ProfilingSettings,
    *,
    extra_issues: tuple[QualityIssue, ...] = (),
    category_counts: Mapping[str, tuple[list[str], list[int]]] | None = None,
    out_of_range: Mapping[str, int] | None = None,
) -> DataQualityReport:
    """Data-quality checks of a batch against the reference; ``passed`` means no "fail" issue.

    ``category_counts`` (column -> sorted categories and counts, as the drift step counts them) spares
    a scan for unseen categories of the columns it holds; ``out_of_range`` (column -> values outside the
    widened reference range) a scan for out-of-range values.
    """
    import polars as pl

    rows = batch.height
    issues: list[QualityIssue] = list(extra_issues)
    if rows < settings.min_rows:
        issues.append(
            QualityIssue("too_few_rows", None, f"{rows} rows; at least {settings.min_rows} required (min_rows)", "fail")
        )
    if rows == 0:
        return DataQualityReport(False, 0, tuple(issues), dict.fromkeys(contract.feature_names, 0.0))

    features = [profile.column(name) for name in contract.feature_names]
    ranges = {ref.name: _widened_range(ref) for ref in features if isinstance(ref, NumericReference)}
    known = {
        ref.name: list(ref.known)
        for ref in features
        if isinstance(ref, CategoricalReference) and ref.kind == "categorical"
    }
    counted = category_counts or {}
    counted_ranges = {name: count for name, count in (out_of_range or {}).items() if name in ranges}
    unseen_examples: dict[str, list[str]] = {}
    unseen_counts: dict[str, int] = {}
    for name, (categories, category_sizes) in counted.items():
        if name in known:
            allowed = set(known[name])
            new = [(c, n) for c, n in zip(categories, category_sizes, strict=True) if c not in allowed]
            unseen_counts[name] = sum(n for _, n in new)
            unseen_examples[name] = [c for c, _ in new[:5]]
    # One pass over the batch: polars evaluates these expressions in parallel.
    counts = batch.select(
        *[pl.col(name).null_count().alias(f"null:{name}") for name in contract.feature_names],
        *[
            (~pl.col(name).cast(pl.Float64).is_between(low, high)).sum().alias(f"range:{name}")
            for name, (low, high) in ranges.items()
            if name not in counted_ranges
        ],
        *[
            (~pl.col(name).cast(pl.String).is_in(categories)).sum().alias(f"unseen:{name}")
            for name, categories in known.items()
            if name not in unseen_counts
        ],
        pl.col(contract.entity_id).n_unique().alias("ids"),
    ).row(0, named=True)
    counts.update({f"unseen:{name}": count for name, count in unseen_counts.items()})
    counts.update({f"range:{name}": count for name, count in counted_ranges.items()})
    missing_rate = {name: counts[f"null:{name}"] / rows for name in contract.feature_names}

    for name in contract.feature_names:
        if counts[f"null:{name}"] == rows:
            issues.append(QualityIssue("all_null", name, f"all {rows} values are null", "fail"))
            continue
        # Nulls under the reference's own rate are binomial: only a rate above its false_alarm_quantile
        # is new missingness; it fails when it also exceeds the absolute limit.
        reference_rate = profile.missing_rate.get(name, 0.0)
        if missing_rate[name] > reference_rate:
            expected_limit = binomial_quantile(settings.false_alarm_quantile, rows, reference_rate) / rows
            if missing_rate[name] > expected_limit:
                fails = missing_rate[name] > settings.max_missing_rate
                issues.append(
                    QualityIssue(
                        "missing_rate",
                        name,
                        f"{missing_rate[name]:.1%} missing; the reference's {reference_rate:.1%} explains up to "
                        f"{expected_limit:.1%} at {rows} rows"
                        + (f"; above max_missing_rate {settings.max_missing_rate:.1%}" if fails else ""),
                        "fail" if fails else "warn",
                    )
                )
        if name in ranges and counts[f"range:{name}"] / rows > OUT_OF_RANGE_SHARE:
            low, high = ranges[name]
            issues.append(
                QualityIssue(
                    "out_of_range",
                    name,
                    f"{counts[f'range:{name}'] / rows:.1%} of rows outside the reference range widened by "
                    f"{RANGE_WIDENING:.0%} [{low:.6g}, {high:.6g}]",
                    "warn",
                )
            )
        if name in known and counts[f"unseen:{name}"]:
            share = counts[f"unseen:{name}"] / rows
            examples = unseen_examples.get(name)
            if examples is None:
                values = batch.get_column(name).cast(pl.String)
                examples = values.filter(~values.is_in(known[name])).unique().sort().head(5).to_list()
            issues.append(
                QualityIssue(
                    "unseen_category",
                    name,
                    f"{share:.1%} of rows hold categories unseen in the reference, e.g. {examples}",
                    "fail" if share > UNSEEN_FAIL_SHARE else "warn",
                )
            )

    repeated = rows - counts["ids"]
    if repeated:
        issues.append(
            QualityIssue(
                "duplicate_id", contract.entity_id, f"{repeated} rows repeat an entity id already in the batch", "fail"
            )
        )
    return DataQualityReport(
        passed=not any(i.severity == "fail" for i in issues),
        rows=rows,
        issues=tuple(issues),
        missing_rate=missing_rate,
    )


def binomial_quantile(quantile: float, trials: int, probability: float) -> int:
    """``scipy.stats.binom.ppf``: the smallest k with P(X <= k) >= quantile (scipy.special only: no 3 s import)."""
    from scipy.special import bdtr, bdtrik

    if probability <= 0.0:
        return 0
    if probability >= 1.0:
        return trials
    k = min(max(math.ceil(float(bdtrik(quantile, trials, probability))), 0), trials)
    while k > 0 and bdtr(k - 1, trials, probability) >= quantile:
        k -= 1
    while k < trials and bdtr(k, trials, probability) < quantile:
        k += 1
    return k


def _widened_range(ref: NumericReference) -> tuple[float, float]:
    widen = RANGE_WIDENING * (ref.maximum - ref.minimum)
    return ref.minimum - widen, ref.maximum + widen


# --- chunked profiling ----------------------------------------------------------------


def _non_finite_as_missing(
    frame: pl.DataFrame, contract: ModelContract
) -> tuple[pl.DataFrame, tuple[QualityIssue, ...]]:
    """NaN/inf in numeric features become quality failures and are then treated as missing values."""
    import polars as pl

    schema = frame.schema
    numeric = [
        spec.name
        for spec in contract.features
        if spec.kind == "numeric" and spec.name in schema and schema[spec.name].is_float()
    ]
    if not numeric or frame.height == 0:
        return frame, ()
    # A sum is finite unless the column holds NaN or inf (or overflows): a cheap gate before counting.
    sums = frame.select(pl.col(numeric).sum()).row(0)
    suspects = [name for name, total in zip(numeric, sums, strict=True) if not math.isfinite(total)]
    if not suspects:
        return frame, ()
    bad = frame.select((~pl.col(name).is_finite() & pl.col(name).is_not_null()).sum() for name in suspects).row(0)
    issues = tuple(
        QualityIssue("non_finite", name, f"{count} NaN/inf values, treated as missing", "fail")
        for name, count in zip(suspects, bad, strict=True)
        if count
    )
    if not issues:
        return frame, ()
    fixed = [pl.when(pl.col(i.column).is_finite()).then(pl.col(i.column)).alias(i.column) for i in issues if i.column]
    return frame.with_columns(fixed), issues


def iter_chunk_profiles(
    profile: ReferenceProfile,
    source: pl.LazyFrame | pl.DataFrame,
    contract: ModelContract,
    settings: ProfilingSettings,
    chunking: Chunking,
    *,
    source_name: str = "analysis",
) -> Iterator[tuple[ChunkWindow, BatchProfile]]:
    """Profile each chunk of ``source`` as it is read, in order.

    Small chunks are profiled in parallel, one per core (at most that many in memory); chunks over
    ``PARALLEL_CHUNK_BYTES`` one at a time, their columns in parallel (one chunk in memory).
    """
    import os

    from tasks.data.chunking import iter_chunks

    raw_schema = dict(source.collect_schema()) if hasattr(source, "collect_schema") else dict(source.schema)

    def profile_one(item: tuple[ChunkWindow, pl.DataFrame]) -> tuple[ChunkWindow, BatchProfile]:
        window, chunk = item
        del item
        where = f"{source_name} chunk {window.key}"
        chunk, issues = _non_finite_as_missing(chunk, contract)
        # _non_finite_as_missing has turned NaN/inf into nulls (and reported them): no second scan.
        batch = validate_batch(chunk, contract, source=where, min_rows=0, check_finite=False)
        del chunk
        result = profile_batch(
            profile, batch, contract, settings, source=where, raw_schema=raw_schema, extra_issues=issues
        )
        return window, result

    chunks = iter_chunks(source, chunking, timestamp=contract.timestamp)
    first = next(chunks, None)
    if first is None:
        return
    in_flight = (os.cpu_count() or 1) if first[1].estimated_size() <= PARALLEL_CHUNK_BYTES else 1
    pieces = _prepend(first, chunks)
    del first  # only the generator holds the first chunk now, until it is profiled
    yield from ordered_parallel_map(profile_one, pieces, in_flight)


def _prepend(first: T, rest: Iterator[T]) -> Iterator[T]:
    yield first
    del first  # not kept alive while the rest are read
    yield from rest


def profile_chunks(
    profile: ReferenceProfile,
    source: pl.LazyFrame | pl.DataFrame,
    contract: ModelContract,
    settings: ProfilingSettings,
    chunking: Chunking,
    *,
    source_name: str = "analysis",
) -> pl.DataFrame:
    """Drift and quality of every chunk: one row per (chunk, feature, method), with the chunk window on each row."""
    import polars as pl

    frames = [
        chunk_frame(window, result)
        for window, result in iter_chunk_profiles(
            profile, source, contract, settings, chunking, source_name=source_name
        )
    ]
    if not frames:
        return chunk_frame(None, None)
    return pl.concat(frames, how="vertical")


def chunk_frame(window: ChunkWindow | None, result: BatchProfile | None) -> pl.DataFrame:
    """The rows of one chunk, its window on each; a chunk without drift rows keeps one row with a null feature."""
    import polars as pl

    schema: dict[str, Any] = {
        "chunk_index": pl.Int64,
        "chunk_key": pl.String,
        "start_index": pl.Int64,
        "end_index": pl.Int64,
        "start_date": pl.Datetime("us"),
        "end_date": pl.Datetime("us"),
        "rows": pl.Int64,
        "quality_passed": pl.Boolean,
        "quality_failures": pl.List(pl.String),
        **_drift_schema(),
    }
    if window is None or result is None:
        return pl.DataFrame(schema=schema)
    names = list(_drift_schema())
    drift = [dict(zip(names, astuple_drift(d), strict=True)) for d in result.drift] or [dict.fromkeys(names)]
    failures = [f"{i.check}:{i.column or ''}" for i in result.quality.issues if i.severity == "fail"]
    chunk = {
        "chunk_index": window.index,
        "chunk_key": window.key,
        "start_index": window.start_index,
        "end_index": window.end_index,
        "start_date": window.start_date,
        "end_date": window.end_date,
        "rows": result.rows,
        "quality_passed": result.quality.passed,
        "quality_failures": failures,
    }
    return pl.DataFrame([{**chunk, **row} for row in drift], schema=schema)


def astuple_drift(d: FeatureDrift) -> tuple[Any, ...]:
    """The fields of a drift row in schema order (dataclasses.astuple deep-copies, which is slow in bulk)."""
    return (d.feature, d.kind, d.method, d.statistic, d.threshold, d.alert, d.p_value, d.primary, d.sample_size)


def drift_statistics(
    reference: pl.DataFrame, analysis: pl.DataFrame, contract: ModelContract, settings: ProfilingSettings | None = None
) -> list[FeatureDrift]:
    """One-shot helper: fit the reference profile and return the drift rows of ``analysis``."""
    settings = settings or ProfilingSettings()
    profile = fit_reference_profile(reference, contract, settings)
    batch = validate_batch(analysis, contract, source="analysis")
    return list(profile_batch(profile, batch, contract, settings, source="analysis").drift)
