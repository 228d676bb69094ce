"""Data quality and drift of a batch against a reference profile, with thresholds calibrated on the reference.

Statistics (standard definitions; unit tests compare each with scipy on the same inputs):

- numeric features and the prediction probability, on non-null values:
  ``ks``: two-sample Kolmogorov-Smirnov statistic, sup |ECDF_batch - ECDF_reference| (equals
  ``scipy.stats.ks_2samp(...).statistic``); p-value from Smirnov's asymptotic distribution
  (equals ``ks_2samp(..., method="asymp").pvalue``);
  ``wasserstein``: earth mover's distance between the raw samples, in the feature's units
  (equals ``scipy.stats.wasserstein_distance``);
  ``jensen_shannon``: Jensen-Shannon *distance* (square root of the divergence), base 2, so in
  [0, 1], on the reference's decile bins (equals ``scipy.spatial.distance.jensenshannon(p, q, base=2)``);
  ``psi``: population stability index sum((a - r) * ln(a / r)) on the same bins, with empty
  proportions replaced by ``PSI_EPSILON``.
- categorical and boolean features and the label, on non-null values over the union of categories:
  ``jensen_shannon`` (as above), ``chi2``: statistic and p-value of the 2 x k contingency table
  reference vs batch (equals ``scipy.stats.chi2_contingency``, Yates-corrected when dof = 1),
  ``l_infinity``: max |proportion_batch - proportion_reference|.

The primary (alerting) method is ``ks`` for numeric features and the prediction, ``jensen_shannon``
for categorical and boolean features, ``l_infinity`` for the label. Every method gets its own
calibrated threshold and its own ``alert`` flag; a feature *drifts* when its primary method alerts.

Threshold calibration. The spread of a drift statistic under "no drift" depends on both sample
sizes (about sqrt(1/m + 1/n) for a batch of m and a reference of n values), so thresholds are
calibrated at the size of the batch being judged, on the null hypothesis that the batch and the
reference are two samples of the reference's distribution; the threshold is the
``false_alarm_quantile`` of the statistic under that null (floored at a tiny positive value):

- binned and categorical statistics (JS, PSI, chi2, L-infinity): ``replicates`` pairs of a
  bootstrap chunk of m rows and a bootstrap replicate of the reference's n rows, drawn as
  multinomial counts over the bins or categories (exact at small counts; cost independent of m);
- KS and Wasserstein: the ECDF gap of such a pair is sqrt(1/m + 1/n) times a Brownian bridge in the
  reference's CDF scale (Donsker), so the fit simulates that bridge once per column on the
  reference's distinct values (ties respected; merged into at most ``CALIBRATION_ATOMS`` equal-mass
  atoms) and scales its quantile to each batch size.

Why not literal reference chunks compared with the full reference: a chunk is part of the
reference, so its distance to it has variance ~(1/m - 1/n) instead of (1/m + 1/n) for a new batch
(at m = n/4 the KS threshold comes out 22% too low: 8% false alarms instead of 1%); the 0.99
quantile of 20 chunks is about their maximum (~5.7% false alarms even with perfect chunks); and a 1M-row batch
cannot be chunked out of a 50k-row reference. ``settings.reference_chunks`` is therefore the
*minimum* number of null replicates; at least ``ceil(20 / (1 - false_alarm_quantile))`` are used
(2000 at 0.99), so the quantile rests on about twenty exceedances. Draws are seeded per column (and
size), so calibration is reproducible. Sizes are each column's non-null count in the batch, rounded
down to two significant figures so similar batches share a calibration (rounding down errs towards
fewer false alarms). The fit calibrates ``settings.chunk_size`` eagerly; other sizes are calibrated
on first use (a few ms per column) and cached in the profile, which ``to_dict`` keeps. The iid null
models sampling noise only: slow, genuine variation inside the reference period is not treated as
normal, so a reference that itself drifts will make later batches alert.
"""

from __future__ import annotations

import base64
import math
import zlib
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from tasks.errors import ConfigError, ContractError, DataError, DtypeError, MissingColumnError
from tasks.schema import ModelContract, validate_batch
from tasks.settings import ProfilingSettings

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

NUMERIC_METHODS = ("ks", "wasserstein", "jensen_shannon", "psi")
CATEGORICAL_METHODS = ("jensen_shannon", "chi2", "l_infinity")
PRIMARY_METHOD = {
    "numeric": "ks",
    "prediction": "ks",
    "categorical": "jensen_shannon",
    "boolean": "jensen_shannon",
    "label": "l_infinity",
}
N_BINS = 10
PSI_EPSILON = 1e-4
MAX_REFERENCE_SAMPLE = 100_000
CALIBRATION_ATOMS = 1024
TAIL_REPLICATES = 20
THRESHOLD_FLOOR = 1e-6
CALIBRATION_SEED = 20_240_601
RANGE_WIDENING = 0.10
OUT_OF_RANGE_SHARE = 0.01
UNSEEN_FAIL_SHARE = 0.05
PROFILE_FORMAT = "driftgate.reference-profile/1"


# --- results -------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    kind: str  # "numeric" | "categorical" | "boolean" | "prediction" | "label"
    method: str  # "ks" | "wasserstein" | "jensen_shannon" | "psi" | "chi2" | "l_infinity"
    statistic: float
    threshold: float
    alert: bool  # statistic > threshold for this method
    p_value: float | None = None
    primary: bool = False  # the method that decides whether the feature drifts
    sample_size: int = 0  # non-null batch values the statistic was computed on


@dataclass(frozen=True)
class QualityIssue:
    check: str  # "missing_rate" | "out_of_range" | "unseen_category" | "duplicate_id" | "too_few_rows" | "all_null"
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
class BatchProfile:
    rows: int
    window_start: datetime | None
    window_end: datetime | None
    quality: DataQualityReport
    drift: tuple[FeatureDrift, ...]
    features: tuple[str, ...] = ()  # the contract's features, the denominator of drift_share

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

    def to_frame(self) -> pl.DataFrame:
        """One row per (feature, method)."""
        import polars as pl

        return pl.DataFrame(
            [asdict(d) for d in self.drift],
            schema={
                "feature": pl.String,
                "kind": pl.String,
                "method": pl.String,
                "statistic": pl.Float64,
                "threshold": pl.Float64,
                "alert": pl.Boolean,
                "p_value": pl.Float64,
                "primary": pl.Boolean,
                "sample_size": pl.Int64,
            },
        )

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
        }


# --- reference profile ---------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class NumericReference:
    """A numeric column of the reference: sorted sample for exact KS/Wasserstein, decile bins for JS/PSI."""

    name: str
    kind: str  # "numeric" | "prediction"
    count: int  # non-null reference values
    minimum: float
    maximum: float
    mean: float
    std: float
    sample: np.ndarray  # sorted non-null values; all of them up to MAX_REFERENCE_SAMPLE, else evenly spaced ranks
    bin_edges: tuple[float, ...]  # interior edges; bin j holds edges[j-1] <= x < edges[j]
    bin_proportions: tuple[float, ...]
    # Null quantiles of KS and Wasserstein for unit sizes: thresholds are these times sqrt(1/m + 1/n).
    ks_null_unit: float = 0.0
    wasserstein_null_unit: float = 0.0

    @cached_property
    def atoms(self) -> tuple[np.ndarray, np.ndarray]:
        """(values, masses) of the reference sample merged into at most CALIBRATION_ATOMS equal-mass atoms."""
        import numpy as np

        values, counts = np.unique(self.sample, return_counts=True)
        if values.size <= CALIBRATION_ATOMS:
            return values, counts / counts.sum()
        starts = np.linspace(0, self.sample.size, CALIBRATION_ATOMS + 1).astype(np.int64)[:-1]
        sizes = np.diff(np.append(starts, self.sample.size))
        return np.add.reduceat(self.sample, starts) / sizes, sizes / sizes.sum()

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
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReferenceProfile:
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


def fit_reference_profile(
    reference: pl.DataFrame, contract: ModelContract, settings: ProfilingSettings, *, source: str = "reference"
) -> ReferenceProfile:
    """Profile the reference once: samples, bins, category counts, missing rates, thresholds at chunk_size."""
    import polars as pl

    frame = validate_batch(reference, contract, source=source, min_rows=2)
    rows = frame.height
    null_counts = frame.select(pl.col(contract.feature_names).null_count()).row(0, named=True)
    missing_rate = {name: null_counts[name] / rows for name in contract.feature_names}

    quantile, replicates = settings.false_alarm_quantile, replicates_for(settings)
    features: list[ColumnReference] = []
    for spec in contract.features:
        if null_counts[spec.name] == rows:
            raise DataError(
                "feature is entirely null in the reference; it cannot be profiled", source=source, column=spec.name
            )
        if spec.kind == "numeric":
            features.append(_numeric_reference(frame.get_column(spec.name), spec.name, "numeric", quantile, replicates))
        else:
            known = spec.categories or []
            features.append(_categorical_reference(frame.get_column(spec.name), spec.name, spec.kind, known))

    prediction = None
    if contract.probability in frame.columns and frame.get_column(contract.probability).drop_nulls().len() > 0:
        prediction = _numeric_reference(
            frame.get_column(contract.probability), contract.probability, "prediction", quantile, replicates
        )
    label = None
    if contract.target in frame.columns and frame.get_column(contract.target).drop_nulls().len() > 0:
        label = _categorical_reference(frame.get_column(contract.target), contract.target, "label", [])

    profile = ReferenceProfile(
        contract_name=contract.name,
        rows=rows,
        chunk_size=settings.chunk_size,
        false_alarm_quantile=quantile,
        replicates=replicates,
        features=tuple(features),
        prediction=prediction,
        label=label,
        missing_rate=missing_rate,
    )
    for ref in profile.columns:
        profile.thresholds_at(ref.name, settings.chunk_size)
    return profile


def _numeric_reference(column: pl.Series, name: str, kind: str, quantile: float, replicates: int) -> NumericReference:
    import numpy as np
    import polars as pl

    values = column.cast(pl.Float64).fill_nan(None).drop_nulls().sort().to_numpy()
    if values.size > MAX_REFERENCE_SAMPLE:
        # Evenly spaced order statistics keep the ECDF within 1/MAX_REFERENCE_SAMPLE of the full one.
        sample = values[np.linspace(0, values.size - 1, MAX_REFERENCE_SAMPLE).round().astype(np.int64)]
    else:
        sample = values
    quantiles = np.quantile(values, np.arange(1, N_BINS) / N_BINS, method="inverted_cdf")
    # Edges are data values above the minimum, so every reference bin holds at least one value.
    edges = np.unique(quantiles[quantiles > values[0]])
    counts = _bin_counts(values, edges)
    ref = NumericReference(
        name=name,
        kind=kind,
        count=int(values.size),
        minimum=float(values[0]),
        maximum=float(values[-1]),
        mean=float(values.mean()),
        std=float(values.std()),
        sample=np.ascontiguousarray(sample),
        bin_edges=tuple(float(e) for e in edges),
        bin_proportions=tuple(float(c) for c in counts / values.size),
    )
    ks_unit, wasserstein_unit = _bridge_null_quantiles(ref, quantile, replicates)
    return replace(ref, ks_null_unit=ks_unit, wasserstein_null_unit=wasserstein_unit)


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

    if kind == "boolean":
        column = column.cast(pl.Boolean)
    elif kind == "label" and column.dtype.is_float():
        column = column.cast(pl.Int64)
    counts = column.drop_nulls().cast(pl.String).value_counts(name="n").sort(column.name)
    return counts.get_column(column.name).to_list(), counts.get_column("n").to_list()


def _bin_counts(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    import numpy as np

    below = np.searchsorted(sorted_values, edges, side="left")
    return np.diff(np.concatenate(([0], below, [sorted_values.size])))


# --- statistics ----------------------------------------------------------------------


def ecdf_statistics(reference_sorted: np.ndarray, batch_sorted: np.ndarray) -> tuple[float, float]:
    """(KS statistic, Wasserstein-1 distance) between two sorted samples, exactly as scipy defines them.

    Both ECDFs only change at sample values, so they are evaluated at the end of each run of equal
    values in the merged sample; the merge places the smaller sample into the larger by binary search.
    """
    import numpy as np

    n, m = reference_sorted.size, batch_sorted.size
    from_reference = np.zeros(n + m, dtype=bool)
    if n <= m:
        from_reference[np.arange(n) + np.searchsorted(batch_sorted, reference_sorted, side="left")] = True
    else:
        from_reference[np.arange(m) + np.searchsorted(reference_sorted, batch_sorted, side="right")] = True
        from_reference = ~from_reference
    merged = np.empty(n + m)
    merged[from_reference] = reference_sorted
    merged[~from_reference] = batch_sorted
    run_ends = np.flatnonzero(np.append(merged[1:] != merged[:-1], True))
    reference_below = np.cumsum(from_reference)[run_ends]
    cdf_gap = np.abs(reference_below / n - (run_ends + 1 - reference_below) / m)
    return float(cdf_gap.max()), float((cdf_gap[:-1] * np.diff(merged[run_ends])).sum())


def ks_p_value(statistic: float, n_reference: int, n_batch: int) -> float:
    """Smirnov's asymptotic two-sided p-value, as ``scipy.stats.ks_2samp(method="asymp")``."""
    from scipy.stats import kstwo

    larger, smaller = max(n_reference, n_batch), min(n_reference, n_batch)
    return float(kstwo.sf(statistic, round(larger * smaller / (larger + smaller))))


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon distance, base 2, along the last axis (rows are normalised)."""
    import numpy as np
    from scipy.spatial.distance import jensenshannon

    return np.nan_to_num(np.asarray(jensenshannon(p, q, base=2, axis=-1), dtype=np.float64))


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
    from scipy.stats import chi2

    return float(chi2.sf(statistic, dof)) if dof > 0 else 1.0


def numeric_drift(ref: NumericReference, batch_sorted: np.ndarray) -> dict[str, tuple[float, float | None]]:
    """Statistic and p-value of every numeric method; ``batch_sorted`` holds the sorted non-null values."""
    import numpy as np

    ks, wasserstein = ecdf_statistics(ref.sample, batch_sorted)
    bins = _bin_counts(batch_sorted, np.asarray(ref.bin_edges)) / batch_sorted.size
    reference_bins = np.asarray(ref.bin_proportions)
    return {
        "ks": (ks, ks_p_value(ks, ref.sample.size, batch_sorted.size)),
        "wasserstein": (wasserstein, None),
        "jensen_shannon": (float(jensen_shannon(reference_bins, bins)), None),
        "psi": (float(population_stability_index(reference_bins, bins)), None),
    }


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


def _bridge_null_quantiles(ref: NumericReference, quantile: float, replicates: int) -> tuple[float, float]:
    """Quantiles of sup|B| and sum|B| dx for a Brownian bridge B on the reference's atoms.

    By Donsker's theorem the ECDF of m draws from the reference's distribution deviates from it by
    B(F(x)) / sqrt(m); the gap between a batch's and the reference's ECDF is then sqrt(1/m + 1/n) B.
    Ties are respected because B is only evaluated at the atoms.
    """
    import numpy as np

    values, masses = ref.atoms
    rng = np.random.default_rng([CALIBRATION_SEED, zlib.crc32(ref.name.encode())])
    walk = (rng.standard_normal((replicates, masses.size)) * np.sqrt(masses)).cumsum(axis=1)
    bridge = np.abs(walk - np.cumsum(masses) * walk[:, -1:])
    wasserstein = (bridge[:, :-1] * np.diff(values)).sum(axis=1)
    return float(np.quantile(bridge.max(axis=1), quantile)), float(np.quantile(wasserstein, quantile))


def _binned_null(ref: NumericReference, size: int, replicates: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    bins = ref.bin_proportions
    chunk_bins = rng.multinomial(size, bins, size=replicates) / size
    reference_bins = rng.multinomial(ref.count, bins, size=replicates) / ref.count
    return {
        "jensen_shannon": jensen_shannon(reference_bins, chunk_bins),
        "psi": population_stability_index(reference_bins, chunk_bins),
    }


def _categorical_null(
    ref: CategoricalReference, size: int, replicates: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    import numpy as np

    shares = np.asarray(ref.counts, dtype=np.float64) / ref.count
    chunk_counts = rng.multinomial(size, shares, size=replicates)
    reference_counts = rng.multinomial(ref.count, shares, size=replicates)
    chunk_share = chunk_counts / size
    reference_share = reference_counts / ref.count
    return {
        "jensen_shannon": jensen_shannon(reference_share, chunk_share),
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
) -> BatchProfile:
    """Data quality and drift of one batch (the contract-validated frame) against the reference profile."""
    _check_compatible(profile, contract, settings)
    _check_columns(batch, contract, source)
    quality = check_quality(profile, batch, contract, settings)
    drift: list[FeatureDrift] = []
    if batch.height > 0:
        for name in contract.feature_names:
            drift.extend(_column_drift(profile, profile.column(name), batch.get_column(name)))
        if profile.prediction is not None and contract.probability in batch.columns:
            drift.extend(_column_drift(profile, profile.prediction, batch.get_column(contract.probability)))
        if profile.label is not None and contract.target in batch.columns:
            drift.extend(_column_drift(profile, profile.label, batch.get_column(contract.target)))
    window_start, window_end = _window(batch, contract)
    return BatchProfile(
        rows=batch.height,
        window_start=window_start,
        window_end=window_end,
        quality=quality,
        drift=tuple(drift),
        features=tuple(contract.feature_names),
    )


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

    needed = [*contract.feature_names, contract.entity_id]
    for column in needed:
        if column not in batch.columns:
            raise MissingColumnError("required column is missing", source=source, column=column)
    for spec in contract.features:
        dtype = batch.schema[spec.name]
        allowed = {
            "numeric": dtype.is_numeric() or dtype in (pl.Boolean, pl.Null),
            "boolean": dtype.is_integer() or dtype in (pl.Boolean, pl.Null),
            "categorical": dtype.is_integer() or dtype in (pl.String, pl.Categorical, pl.Enum, pl.Null),
        }[spec.kind]
        if not allowed:
            raise DtypeError(
                f"{spec.kind} feature has dtype {dtype}; pass the batch through tasks.schema.validate_batch",
                source=source,
                column=spec.name,
            )
    for column in (contract.probability, contract.target):
        if column in batch.columns and not (
            batch.schema[column].is_numeric() or batch.schema[column] in (pl.Boolean, pl.Null)
        ):
            raise DtypeError(f"expected a numeric column, found {batch.schema[column]}", source=source, column=column)


def _column_drift(profile: ReferenceProfile, ref: ColumnReference, column: pl.Series) -> list[FeatureDrift]:
    import polars as pl

    if isinstance(ref, NumericReference):
        values = column.cast(pl.Float64).fill_nan(None).drop_nulls().sort().to_numpy()
        size = int(values.size)
        stats = numeric_drift(ref, values) if size else {}
    else:
        categories, counts = _category_counts(column, ref.kind)
        size = int(sum(counts))
        stats = categorical_drift(ref, categories, counts) if size else {}
    if not size:
        return []
    thresholds = profile.thresholds_at(ref.name, size)
    primary = PRIMARY_METHOD[ref.kind]
    return [
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


def _window(batch: pl.DataFrame, contract: ModelContract) -> tuple[datetime | None, datetime | None]:
    if not contract.timestamp or contract.timestamp not in batch.columns or batch.height == 0:
        return None, None
    stamps = batch.get_column(contract.timestamp)
    if not stamps.dtype.is_temporal():
        return None, None
    start, end = stamps.min(), stamps.max()
    return (start if isinstance(start, datetime) else None, end if isinstance(end, datetime) else None)


# --- data quality --------------------------------------------------------------------


def check_quality(
    profile: ReferenceProfile, batch: pl.DataFrame, contract: ModelContract, settings: ProfilingSettings
) -> DataQualityReport:
    """Data-quality checks of a batch against the reference; ``passed`` means no "fail" issue."""
    import polars as pl

    rows = batch.height
    issues: list[QualityIssue] = []
    if rows < settings.min_rows:
        issues.append(
            QualityIssue("too_few_rows", None, f"{rows} rows; at least {settings.min_rows} required (min_rows)", "fail")
        )
    if rows == 0:
        return DataQualityReport(False, 0, tuple(issues), {name: 0.0 for name in contract.feature_names})

    features = [profile.column(name) for name in contract.feature_names]
    ranges = {ref.name: _widened_range(ref) for ref in features if isinstance(ref, NumericReference)}
    known = {
        ref.name: list(ref.known)
        for ref in features
        if isinstance(ref, CategoricalReference) and ref.kind == "categorical"
    }
    # One pass over the batch: polars evaluates these expressions in parallel.
    counts = batch.select(
        *[pl.col(name).null_count().alias(f"null:{name}") for name in contract.feature_names],
        *[
            (~pl.col(name).cast(pl.Float64).is_between(low, high)).sum().alias(f"range:{name}")
            for name, (low, high) in ranges.items()
        ],
        *[
            (~pl.col(name).cast(pl.String).is_in(categories)).sum().alias(f"unseen:{name}")
            for name, categories in known.items()
        ],
        pl.col(contract.entity_id).n_unique().alias("ids"),
    ).row(0, named=True)
    missing_rate = {name: counts[f"null:{name}"] / rows for name in contract.feature_names}

    for name in contract.feature_names:
        if counts[f"null:{name}"] == rows:
            issues.append(QualityIssue("all_null", name, f"all {rows} values are null", "fail"))
            continue
        if missing_rate[name] > settings.max_missing_rate:
            issues.append(
                QualityIssue(
                    "missing_rate",
                    name,
                    f"{missing_rate[name]:.1%} missing > max_missing_rate {settings.max_missing_rate:.1%}"
                    f" (reference {profile.missing_rate.get(name, 0.0):.1%})",
                    "fail",
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


def _widened_range(ref: NumericReference) -> tuple[float, float]:
    widen = RANGE_WIDENING * (ref.maximum - ref.minimum)
    return ref.minimum - widen, ref.maximum + widen


def drift_statistics(
    reference: pl.DataFrame, analysis: pl.DataFrame, contract: ModelContract, settings: ProfilingSettings | None = None
) -> list[FeatureDrift]:
    """One-shot helper: fit the reference profile and return the drift rows of ``analysis``."""
    settings = settings or ProfilingSettings()
    profile = fit_reference_profile(reference, contract, settings)
    batch = validate_batch(analysis, contract, source="analysis")
    return list(profile_batch(profile, batch, contract, settings, source="analysis").drift)


def prefect_tasks() -> dict[str, Any]:
    """Thin Prefect task wrappers of this module's functions (imported lazily)."""
    from prefect import task
    from prefect.cache_policies import NO_CACHE

    # Inputs are whole frames: hashing them for Prefect's input cache would cost more than profiling.
    return {
        "fit_reference_profile": task(name="fit-reference-profile", cache_policy=NO_CACHE)(fit_reference_profile),
        "profile_batch": task(name="profile-batch", cache_policy=NO_CACHE)(profile_batch),
    }
