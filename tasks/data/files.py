"""Loading batches as polars frames, the bundled car-loan and employment data, and a seeded scenario generator."""

from __future__ import annotations

import glob as globlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from tasks.core.errors import DataError, DataFileError

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

CAR_LOAN_FEATURES = [
    "car_value",
    "salary_range",
    "debt_to_income_ratio",
    "loan_length",
    "repaid_loan_on_prev_car",
    "size_of_downpayment",
    "driver_tenure",
]


def expand_paths(patterns: list[str] | str) -> list[Path]:
    """Expand file names and globs, in sorted order; a pattern that matches nothing is an error."""
    if isinstance(patterns, str):
        patterns = [patterns]
    paths: list[Path] = []
    for pattern in patterns:
        matches = sorted(globlib.glob(str(Path(pattern).expanduser())))
        if not matches:
            raise DataFileError(f"no file matches {pattern!r}", source=pattern)
        paths.extend(Path(m) for m in matches)
    return paths


def scan_file(path: Path | str) -> pl.LazyFrame:
    """Scan a Parquet or CSV file lazily."""
    import polars as pl

    path = Path(path)
    if not path.is_file():
        raise DataFileError("file does not exist", source=str(path))
    suffix = path.suffix.lower()
    if suffix in {".parquet", ".pq"}:
        return pl.scan_parquet(path)
    if suffix in {".csv", ".txt"}:
        check_csv_header(path)
        return pl.scan_csv(path, try_parse_dates=True, infer_schema_length=10000)
    raise DataFileError(f"unknown file type {suffix!r}; use .parquet or .csv", source=str(path))


CSV_DELIMITERS = {";": "semicolon", "\t": "tab", "|": "pipe"}


def check_csv_header(path: Path) -> None:
    """driftgate reads comma-separated files: a header that does not split on commas but does on another
    delimiter is refused with the delimiter named (otherwise every column would be "missing")."""
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        header = handle.readline()
    if "," in header:
        return
    for delimiter, name in CSV_DELIMITERS.items():
        if header.count(delimiter) >= 1:
            raise DataFileError(
                f"the header does not split on commas but on {name}s ({header.count(delimiter) + 1} columns); "
                "driftgate reads comma-separated files: export it with commas, or as Parquet",
                source=str(path),
            )


def require_columns(path: Path | str, columns: list[str]) -> None:
    """Refuse a file whose header lacks one of ``columns`` (naming the first), reading only its schema: a
    Parquet footer or a CSV header line. The cheap check the CLI runs before anything heavy starts."""
    import polars as pl

    from tasks.core.errors import MissingColumnError

    try:
        names = set(scan_file(path).collect_schema().names())
    except pl.exceptions.PolarsError as exc:
        raise DataFileError(f"cannot read: {exc}", source=str(path)) from exc
    for column in columns:
        if column not in names:
            raise MissingColumnError("required column is missing", source=str(path), column=column)


def read_file(path: Path | str) -> pl.DataFrame:
    """Read a whole file; polars errors become a DataFileError naming the file."""
    import polars as pl

    try:
        return scan_file(path).collect()
    except pl.exceptions.PolarsError as exc:
        raise DataFileError(f"cannot read: {exc}", source=str(path)) from exc


def write_frame(frame: pl.DataFrame, path: Path) -> Path:
    """Write atomically (temp file, then rename) so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if path.suffix.lower() == ".csv":
        frame.write_csv(tmp)
    else:
        frame.write_parquet(tmp)
    tmp.replace(path)
    return path


def join_labels(batch: pl.DataFrame, labels: pl.DataFrame, *, entity_id: str, target: str, source: str) -> pl.DataFrame:
    """Attach delayed labels (keyed by entity id); rows without a label keep a null target."""
    for column in (entity_id, target):
        if column not in labels.columns:
            from tasks.core.errors import MissingColumnError

            raise MissingColumnError("label file lacks a column", source=source, column=column)
    if labels.get_column(entity_id).is_duplicated().any():
        raise DataError("label file has duplicate entity ids", source=source, column=entity_id)
    keep = batch.drop(target) if target in batch.columns else batch
    return keep.join(labels.select(entity_id, target), on=entity_id, how="left")


def _nannyml_data_dir() -> Path:
    # Locate the CSVs without importing nannyml (a 5 s import that also reads .env files).
    import importlib.util

    spec = importlib.util.find_spec("nannyml")
    if spec is None or not spec.submodule_search_locations:
        raise DataFileError("nannyml is not installed; it ships the demo's car-loan data", source="nannyml")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


def load_car_loan() -> tuple[pl.DataFrame, pl.DataFrame]:
    """NannyML's synthetic car-loan data: (reference with labels, analysis with labels joined).

    NannyML's own predictions are dropped: driftgate scores with its own models.
    """
    import polars as pl

    data_dir = _nannyml_data_dir()
    ref = pl.read_csv(data_dir / "synthetic_car_loan_reference.csv")
    ana = pl.read_csv(data_dir / "synthetic_car_loan_analysis.csv")
    tgt = pl.read_csv(data_dir / "synthetic_car_loan_analysis_target.csv")
    ana = ana.join(tgt, on="id", how="left")

    def tidy(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.select(
            pl.col("id").cast(pl.Int64),
            *[pl.col(c) for c in CAR_LOAN_FEATURES],
            pl.col("repaid").cast(pl.Int8),
            pl.col("timestamp").str.to_datetime(),
        )

    return tidy(ref), tidy(ana)


EMPLOYMENT_FEATURES = [
    "AGEP",
    "SCHL",
    "MAR",
    "RELP",
    "DIS",
    "ESP",
    "CIT",
    "MIG",
    "MIL",
    "ANC",
    "NATIVITY",
    "DEAR",
    "DEYE",
    "DREM",
    "SEX",
    "RAC1P",
]


def load_employment() -> tuple[pl.DataFrame, pl.DataFrame]:
    """NannyML's US-census (ACS) employment data for Massachusetts: (reference 2015, analysis 2016-2018), both
    labelled (``employed``), with ``id`` and ``year``, in the files' own order (year by year).

    Real, not synthetic. NannyML's ``prediction``/``predicted_probability`` are dropped (driftgate scores with
    its own models) and the categorical codes become strings. There is no timestamp column.
    """
    import polars as pl

    data_dir = _nannyml_data_dir()
    try:
        ref = pl.read_parquet(data_dir / "employment_MA_reference.pq")
        ana = pl.read_parquet(data_dir / "employment_MA_analysis.pq")
        tgt = pl.read_parquet(data_dir / "employment_MA_analysis_target.pq")
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise DataFileError(f"cannot read NannyML's employment data: {exc}", source=str(data_dir)) from exc
    ana = ana.join(tgt.select("id", "employed"), on="id", how="left", maintain_order="left")

    def tidy(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.select(
            pl.col("id").cast(pl.Int64),
            *[pl.col(c).cast(pl.String) if c != "AGEP" else pl.col(c).cast(pl.Float64) for c in EMPLOYMENT_FEATURES],
            pl.col("employed").cast(pl.Int8),
            pl.col("year").cast(pl.Int32),
        )

    return tidy(ref), tidy(ana)


@dataclass(frozen=True)
class Shift:
    """A controlled change applied to a batch.

    covariate: feature -> tilt strength (rows are resampled with weight exp(strength * z-score),
    which moves the feature's distribution but keeps P(label | features), i.e. pure covariate shift).
    concept_flip: (feature, category, probability): labels in that segment are flipped with the
    given probability (concept drift the champion cannot know about).
    label_noise: every label is flipped with this probability (noise no model can learn away).
    scale: feature -> factor its values are multiplied by (a unit change: 1000 turns kEUR into EUR).
    offset: feature -> amount added to its values (a location shift of a numeric feature).
    null_rate: feature -> share of its values replaced by nulls (a broken upstream field).

    Labels change first (the concept segment is read from the clean features), then the features.
    """

    covariate: dict[str, float] = field(default_factory=dict)
    concept_flip: tuple[str, str, float] | None = None
    label_noise: float = 0.0
    scale: dict[str, float] = field(default_factory=dict)
    offset: dict[str, float] = field(default_factory=dict)
    null_rate: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        import math

        def probability(value: float, what: str) -> None:
            if not 0.0 <= value <= 1.0:
                raise DataError(f"{what} must lie in [0, 1], got {value}", source="scenario")

        if self.concept_flip is not None:
            probability(self.concept_flip[2], "concept flip probability")
        probability(self.label_noise, "label noise rate")
        for column, rate in self.null_rate.items():
            probability(rate, f"null rate of {column!r}")
        for column, value in {**self.covariate, **self.scale, **self.offset}.items():
            if not math.isfinite(value):
                raise DataError(f"shift of {column!r} must be finite, got {value}", source="scenario")

    @property
    def is_stationary(self) -> bool:
        return not (
            self.covariate
            or self.concept_flip is not None
            or self.label_noise
            or any(v != 1.0 for v in self.scale.values())
            or any(self.offset.values())
            or any(self.null_rate.values())
        )

    @property
    def resamples(self) -> bool:
        """True when the shift reweights rows (covariate tilt), which needs a population to resample."""
        return bool(self.covariate)

    def describe(self) -> str:
        """One line for humans: what this shift does."""
        parts: list[str] = []
        if self.covariate:
            parts.append("covariate tilt " + ", ".join(f"{c} {s:+g}σ" for c, s in self.covariate.items()))
        if self.concept_flip is not None:
            feature, category, p = self.concept_flip
            parts.append(f"labels flipped with p={p:g} where {feature} = {category!r}")
        if self.label_noise:
            parts.append(f"every label flipped with p={self.label_noise:g}")
        parts += [f"{c} ×{f:g}" for c, f in self.scale.items() if f != 1.0]
        parts += [f"{c} {v:+g}" for c, v in self.offset.items() if v]
        parts += [f"{c} {r:.0%} null" for c, r in self.null_rate.items() if r]
        return "; ".join(parts) if parts else "stationary"


STATIONARY = Shift()


class ScenarioGenerator:
    """Seeded batches drawn from a labelled population with controlled covariate shift and concept drift.

    :meth:`batch` resamples the population (rows get fresh entity ids); :meth:`take` walks through it in
    its own order without resampling (real rows, their own ids), for data whose order is meaningful.
    """

    def __init__(
        self,
        population: pl.DataFrame,
        *,
        target: str = "repaid",
        entity_id: str = "id",
        timestamp: str = "timestamp",
        seed: int = 0,
        start: datetime | None = None,
        batch_period: timedelta = timedelta(days=1),
    ) -> None:
        import numpy as np

        if population.height == 0:
            raise DataError("scenario population is empty", source="scenario")
        self.population = population
        self.target = target
        self.entity_id = entity_id
        self.timestamp = timestamp
        self.rng = np.random.default_rng(seed)
        if start is None:
            last = population.get_column(timestamp).max() if timestamp in population.columns else None
            start = (last if isinstance(last, datetime) else datetime(2020, 1, 1)) + timedelta(days=1)
        self.clock = start
        self.batch_period = batch_period
        self.next_id = int(np.max(population.get_column(entity_id).to_numpy())) + 1_000_000
        self.cursor = 0  # next row :meth:`take` hands out

    @property
    def remaining(self) -> int:
        """Rows :meth:`take` has not handed out yet."""
        return self.population.height - self.cursor

    def batch(self, n_rows: int, shift: Shift = STATIONARY) -> pl.DataFrame:
        """``n_rows`` rows resampled (with replacement, tilted by the covariate shift), fresh ids, next period."""
        import numpy as np
        import polars as pl

        weights = np.ones(self.population.height)
        for feature, strength in shift.covariate.items():
            weights *= self._tilt(feature, strength)
        weights /= weights.sum()
        rows = self.rng.choice(self.population.height, size=n_rows, replace=True, p=weights)
        batch = self._apply(self.population[rows], shift)
        batch = batch.with_columns(
            pl.Series(self.entity_id, np.arange(self.next_id, self.next_id + n_rows, dtype=np.int64)),
            self._stamps(n_rows),
        )
        self.next_id += n_rows
        return batch

    def take(self, n_rows: int, shift: Shift = STATIONARY) -> pl.DataFrame:
        """The next ``n_rows`` rows of the population in its own order (no resampling: real rows, their own
        entity ids), stamped within the next period. A covariate tilt needs resampling and is refused."""
        if shift.resamples:
            raise DataError("a covariate tilt resamples rows; use batch(), not take()", source="scenario")
        if n_rows < 1 or n_rows > self.remaining:
            raise DataError(
                f"asked for {n_rows} rows; the population has {self.remaining} of {self.population.height} left",
                source="scenario",
            )
        batch = self._apply(self.population.slice(self.cursor, n_rows), shift)
        self.cursor += n_rows
        return batch.with_columns(self._stamps(n_rows))

    def skip_to(self, row: int) -> None:
        """Move :meth:`take` forward to ``row`` of the population (rows in between are never handed out)."""
        if not self.cursor <= row <= self.population.height:
            raise DataError(
                f"cannot skip to row {row}: the next row is {self.cursor} of {self.population.height}",
                source="scenario",
            )
        self.cursor = row

    def _stamps(self, n_rows: int) -> pl.Series:
        import numpy as np
        import polars as pl

        seconds = np.sort(self.rng.uniform(0, self.batch_period.total_seconds(), n_rows))
        stamps = [self.clock + timedelta(seconds=float(s)) for s in seconds]
        self.clock += self.batch_period
        return pl.Series(self.timestamp, stamps, dtype=pl.Datetime("us"))

    def _apply(self, batch: pl.DataFrame, shift: Shift) -> pl.DataFrame:
        """Labels first (concept flip, label noise), then the features (unit scale, offset, nulls)."""
        import numpy as np
        import polars as pl

        n_rows = batch.height
        labels = batch.get_column(self.target).to_numpy()
        flip = np.zeros(n_rows, dtype=bool)
        if shift.concept_flip is not None:
            feature, category, probability = shift.concept_flip
            self._require(feature)
            in_segment = (batch.get_column(feature).cast(pl.String) == category).to_numpy()
            flip |= in_segment & (self.rng.random(n_rows) < probability)
        if shift.label_noise:
            flip ^= self.rng.random(n_rows) < shift.label_noise
        if shift.concept_flip is not None or shift.label_noise:
            batch = batch.with_columns(pl.Series(self.target, np.where(flip, 1 - labels, labels)).cast(pl.Int8))
        changes: list[pl.Expr] = []
        for feature in {**shift.scale, **shift.offset}:
            self._require(feature, numeric=True)
            changes.append(
                (pl.col(feature) * shift.scale.get(feature, 1.0) + shift.offset.get(feature, 0.0)).alias(feature)
            )
        if changes:
            batch = batch.with_columns(changes)
        for feature, rate in shift.null_rate.items():
            self._require(feature)
            if rate:
                hide = pl.Series(self.rng.random(n_rows) < rate)
                batch = batch.with_columns(pl.when(hide).then(None).otherwise(pl.col(feature)).alias(feature))
        return batch

    def _require(self, feature: str, *, numeric: bool = False) -> None:
        if feature not in self.population.columns:
            raise DataError("shifted feature is not in the population", source="scenario", column=feature)
        if numeric and not self.population.schema[feature].is_numeric():
            raise DataError("only a numeric feature can be scaled or offset", source="scenario", column=feature)

    def _tilt(self, feature: str, strength: float) -> np.ndarray:
        import numpy as np
        import polars as pl

        self._require(feature)
        column = self.population.get_column(feature)
        if column.dtype.is_numeric():
            values = column.cast(pl.Float64).to_numpy()
        else:
            # Tilt a categorical by the rank of its categories: moves mass towards the last ones.
            codes = column.cast(pl.String).rank("dense").cast(pl.Float64)
            values = codes.to_numpy()
        std = float(np.nanstd(values)) or 1.0
        z = (values - float(np.nanmean(values))) / std
        return np.asarray(np.exp(strength * np.nan_to_num(z)))


def split_labels(batch: pl.DataFrame, *, entity_id: str, target: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split a labelled batch into (features, labels keyed by entity id), as they arrive in production."""
    return batch.drop(target), batch.select(entity_id, target)
