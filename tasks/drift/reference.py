"""The reference profile: fitted once on the reference data (in memory or column by column from a lazy
source), with drift thresholds calibrated by simulating the null the way batches are binned."""

from __future__ import annotations

import base64
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

from tasks.core.errors import (
    ContractError,
    DataError,
    DtypeError,
    NonFiniteError,
    ProbabilityRangeError,
)
from tasks.core.parallel import parallel_map
from tasks.core.settings import ProfilingSettings
from tasks.data.contract import FeatureSpec, ModelContract, validate_batch
from tasks.drift.categorical import surprise_threshold, two_sample_null_shares
from tasks.drift.results import (
    CALIBRATION_ATOMS,
    CALIBRATION_SEED,
    MAX_REFERENCE_SAMPLE,
    N_BINS,
    NORMAL_DRAW_VARIANCE,
    PROFILE_FORMAT,
    PSI_EPSILON,
    TAIL_REPLICATES,
    THRESHOLD_FLOOR,
)
from tasks.drift.statistics import (
    _bin_counts,
    _histogram_counts,
    chi2_statistic,
    doane_edges,
    hellinger,
    jensen_shannon,
)

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

    from tasks.drift.multivariate import PcaReference
    from tasks.drift.null import BridgeNulls


# A LazyFrame reference up to this many cells (about 256 MB of 8-byte values) is read in one pass;
# a larger one column by column.
READ_AT_ONCE_CELLS = 32_000_000


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
    # The resampled null's unit quantiles (tasks/drift/null.py), one per RESAMPLED_METHODS; () when not simulated.
    resampled_null_unit: tuple[float, ...] = ()

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
            "resampled_null_unit": list(self.resampled_null_unit),
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
            resampled_null_unit=tuple(float(u) for u in data["resampled_null_unit"]),
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
    from tasks.drift.null import BridgeNulls

    quantile, replicates = settings.false_alarm_quantile, replicates_for(settings)
    bridges, size = BridgeNulls(quantile, replicates), calibration_size(settings.chunk_size)
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
                ref = attach_nulls(_numeric_reference(series, name, "numeric", source=source), bridges, size)
            else:
                ref = _categorical_reference(series, name, spec.kind, spec.categories or [])
        elif nulls == rows:
            return None, 1.0, {}
        elif name == contract.probability:
            ref = attach_nulls(_numeric_reference(series, name, "prediction", source=source), bridges, size)
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


def attach_nulls(ref: NumericReference, bridges: BridgeNulls, size: int) -> NumericReference:
    """``ref`` with its simulated nulls (tasks/drift/null.py): the bridge's KS/Wasserstein unit quantiles and
    the resampled null's at batch ``size`` (the fit's chunk size)."""
    from tasks.drift.null import resampled_null_units

    ks_unit, wasserstein_unit = bridges.unit_quantiles(*ref.atoms)
    units = resampled_null_units(ref.sample, ref.count, ref.name, size, bridges.quantile, bridges.replicates)
    return replace(ref, ks_null_unit=ks_unit, wasserstein_null_unit=wasserstein_unit, resampled_null_unit=units)


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

    from tasks.drift.kernels import compiled_pays, count_short_strings

    if kind == "boolean":
        column = column.cast(pl.Boolean)
    elif kind == "label" and column.dtype.is_float():
        column = column.cast(pl.Int64)
    # Counted in the column's own dtype; only the few distinct values are then turned into text. polars'
    # value_counts is the faster at chunk sizes, a group_by twice as fast at a million rows.
    column = column.drop_nulls().rename("value")
    short = count_short_strings(column) if compiled_pays(column.len()) else None
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
        thresholds = {"head_tail": surprise_threshold(quantile)}  # an exact p-value: no simulation
    for method, values in null.items():
        thresholds[method] = max(float(np.quantile(values, quantile)), THRESHOLD_FLOOR)
    if isinstance(ref, NumericReference):
        from tasks.drift.null import resampled_thresholds

        # Pairs binned as batches are (tasks/drift/null.py): each threshold is the larger of the two nulls'.
        for method, threshold in resampled_thresholds(ref.resampled_null_unit, ref.count, size).items():
            thresholds[method] = max(thresholds[method], threshold)
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
    import numpy as np

    from tasks.drift.kernels import binned_distances

    reference_histogram, reference_deciles = _reference_replicates(ref, replicates)
    # Batches get an extra bin for values beyond the reference's range, which the reference never fills, and
    # can land in bins the reference left empty: the chunk is drawn from shares smoothed for both.
    shares = _smoothed_shares(ref)
    chunk_histogram = multinomial_draws(rng, size, shares, replicates)
    reference_histogram = np.pad(reference_histogram, ((0, 0), (0, 1)))
    chunk_deciles = multinomial_draws(rng, size, ref.bin_proportions, replicates)
    # One compiled pass per table: jensen_shannon, hellinger and population_stability_index, row by row.
    js, hellinger_distance, _ = binned_distances(reference_histogram, chunk_histogram, PSI_EPSILON, stability=False)
    _, _, psi = binned_distances(reference_deciles, chunk_deciles, PSI_EPSILON, shape_distances=False)
    return {"jensen_shannon": js, "hellinger": hellinger_distance, "psi": psi}


def _smoothed_shares(ref: NumericReference) -> np.ndarray:
    """The shares of the reference's histogram bins and of the outside bin that a stationary batch is drawn from.

    The reference's proportions treat it as the population: a bin it left empty, or the range beyond its
    extremes, would never be reached. Beyond each end the reference saw once (a continuous tail) the next
    draw lands with probability 1/(n + 1); a tied end (an atom: a floor of zeros, a count's largest value)
    is taken as the support's end. Empty bins between the extremes share Good-Turing's estimate of unseen
    mass, the bins seen once over n. Without this, on a Student-t(3) column with a 10k reference,
    Jensen-Shannon and Hellinger alerted on about 3 % of stationary 1k chunks at a nominal 1 %."""
    import numpy as np

    proportions = np.asarray(ref.histogram_proportions, dtype=np.float64)
    sample, n = ref.sample, max(ref.count, 1)
    ends = int(sample[0] != sample[1]) + int(sample[-1] != sample[-2]) if sample.size >= 2 else 0
    outside = ends / (n + 1)
    counts = np.rint(proportions * n)
    empty = counts == 0
    unseen = min(float(np.count_nonzero(counts == 1)) / n, 0.5) if empty.any() else 0.0
    shares = proportions * (1.0 - unseen)
    if empty.any():
        shares[empty] = unseen / np.count_nonzero(empty)
    return np.append(shares * (1.0 - outside), outside)


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

    shares = two_sample_null_shares(np.asarray(ref.counts, dtype=np.float64))
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
