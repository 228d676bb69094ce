"""Loading batches as polars frames, the bundled car-loan data, and a seeded scenario generator."""

from __future__ import annotations

import glob as globlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from tasks.errors import DataError, DataFileError

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
        return pl.scan_csv(path, try_parse_dates=True, infer_schema_length=10000)
    raise DataFileError(f"unknown file type {suffix!r}; use .parquet or .csv", source=str(path))


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
            from tasks.errors import MissingColumnError

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


@dataclass(frozen=True)
class Shift:
    """A controlled change applied to a batch.

    covariate: feature -> tilt strength (rows are resampled with weight exp(strength * z-score),
    which moves the feature's distribution but keeps P(label | features), i.e. pure covariate shift).
    concept_flip: (feature, category, probability): labels in that segment are flipped with the
    given probability (concept drift the champion cannot know about).
    """

    covariate: dict[str, float] = field(default_factory=dict)
    concept_flip: tuple[str, str, float] | None = None

    @property
    def is_stationary(self) -> bool:
        return not self.covariate and self.concept_flip is None


STATIONARY = Shift()


class ScenarioGenerator:
    """Seeded batches drawn from a labelled population with controlled covariate shift and concept drift."""

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

    def batch(self, n_rows: int, shift: Shift = STATIONARY) -> pl.DataFrame:
        import numpy as np
        import polars as pl

        weights = np.ones(self.population.height)
        for feature, strength in shift.covariate.items():
            weights *= self._tilt(feature, strength)
        weights /= weights.sum()
        rows = self.rng.choice(self.population.height, size=n_rows, replace=True, p=weights)
        batch = self.population[rows]
        if shift.concept_flip is not None:
            feature, category, probability = shift.concept_flip
            in_segment = (batch.get_column(feature).cast(pl.String) == category).to_numpy()
            flip = in_segment & (self.rng.random(n_rows) < probability)
            flipped = np.where(
                flip, 1 - batch.get_column(self.target).to_numpy(), batch.get_column(self.target).to_numpy()
            )
            batch = batch.with_columns(pl.Series(self.target, flipped).cast(pl.Int8))
        seconds = np.sort(self.rng.uniform(0, self.batch_period.total_seconds(), n_rows))
        stamps = [self.clock + timedelta(seconds=float(s)) for s in seconds]
        batch = batch.with_columns(
            pl.Series(self.entity_id, np.arange(self.next_id, self.next_id + n_rows, dtype=np.int64)),
            pl.Series(self.timestamp, stamps, dtype=pl.Datetime("us")),
        )
        self.next_id += n_rows
        self.clock += self.batch_period
        return batch

    def _tilt(self, feature: str, strength: float) -> np.ndarray:
        import numpy as np
        import polars as pl

        if feature not in self.population.columns:
            raise DataError("shifted feature is not in the population", source="scenario", column=feature)
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
