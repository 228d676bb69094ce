"""Seeded benchmark data for drift_vs_nannyml.py: 20 numeric + 5 categorical features, 3 of them shifted.

The reference and the analysis come from the same generator; in the analysis, ``f00`` (mean + 0.1 sd),
``f01`` (scale x 1.1) and ``c0`` (a category gains 3 points of share) shift from the middle row on.
Rows are written in pieces of ``PIECE_ROWS``, so a 20M-row file never needs 20M rows in memory.

Three shapes (``DRIFT_BENCH_SHAPE`` / ``--shape``), so the speed claim is not tuned to one data set:
- ``mixed`` (the default): numerics cycle through normal, log-normal, uniform, exponential, Student-t and
  Poisson counts (ties); every fifth numeric feature has 1% missing values; categoricals of 4-20 levels;
- ``wide``: gamma and log-normal numerics, no missing values, five string categoricals of 100 levels each
  (Zipf-like shares, so the tail levels are rare);
- ``skewed``: heavy tails and point masses: Pareto, zero-inflated gamma, rounded log-normal (ties), Cauchy
  clipped at ±1e6, 60%-zero counts; no missing values; categoricals of 30-50 levels.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

NUMERIC = [f"f{i:02d}" for i in range(20)]
CATEGORICAL = [f"c{i}" for i in range(5)]
FEATURES = NUMERIC + CATEGORICAL
SHIFTED = ["f00", "f01", "c0"]
CATEGORY_COUNTS = [4, 6, 8, 12, 20]
SHAPE_CATEGORY_COUNTS = {"mixed": CATEGORY_COUNTS, "wide": [100] * 5, "skewed": [30, 35, 40, 45, 50]}
SHAPES = tuple(SHAPE_CATEGORY_COUNTS)
PIECE_ROWS = 500_000
START = datetime(2025, 1, 1)
SECONDS_PER_ROW = 5


def _category_shares(k: int) -> np.ndarray:
    import numpy as np

    shares = 1.0 / np.arange(1, k + 1)
    return shares / shares.sum()


def shape_of() -> str:
    """The data shape of this process (``DRIFT_BENCH_SHAPE``, default ``mixed``)."""
    import os

    shape = os.environ.get("DRIFT_BENCH_SHAPE", "mixed")
    if shape not in SHAPES:
        raise ValueError(f"DRIFT_BENCH_SHAPE={shape!r} is not one of {SHAPES}")
    return shape


def _numeric(rng: np.random.Generator, index: int, rows: int, shape: str) -> np.ndarray:
    import numpy as np

    if shape == "wide":
        kind = index % 2
        return rng.gamma(2.0, 1.5, rows) if kind == 0 else rng.lognormal(1.0, 1.0, rows)
    if shape == "skewed":
        kind = index % 5
        if kind == 0:
            return rng.pareto(1.5, rows) + 1.0
        if kind == 1:
            return np.where(rng.random(rows) < 0.4, 0.0, rng.gamma(0.5, 3.0, rows))
        if kind == 2:
            return np.round(rng.lognormal(2.0, 1.2, rows))
        if kind == 3:
            return np.clip(rng.standard_cauchy(rows), -1e6, 1e6)
        return np.where(rng.random(rows) < 0.6, 0.0, rng.poisson(3.0, rows)).astype(np.float64)
    kind = index % 6
    if kind == 0:
        return rng.normal(0.0, 1.0, rows)
    if kind == 1:
        return rng.lognormal(0.0, 0.75, rows)
    if kind == 2:
        return rng.uniform(-2.0, 2.0, rows)
    if kind == 3:
        return rng.exponential(1.0, rows)
    if kind == 4:
        return rng.standard_t(5, rows)
    return rng.poisson(4.0, rows).astype(np.float64)


def piece(first_row: int, rows: int, seed: int, shifted_from: int | None) -> pl.DataFrame:
    """Rows ``first_row .. first_row + rows - 1``; rows at or after ``shifted_from`` carry the shift."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng([seed, first_row])
    shifted = np.zeros(rows, dtype=bool)
    if shifted_from is not None:
        shifted = np.arange(first_row, first_row + rows) >= shifted_from
    columns: dict[str, object] = {
        "id": np.arange(first_row, first_row + rows, dtype=np.int64),
        "ts": pl.Series(
            "ts", (np.int64(START.timestamp()) + np.arange(first_row, first_row + rows) * SECONDS_PER_ROW) * 1_000_000
        ).cast(pl.Datetime("us")),
    }
    shape = shape_of()
    for index, name in enumerate(NUMERIC):
        values = _numeric(rng, index, rows, shape)
        if name == "f00":
            values = values + 0.1 * shifted
        elif name == "f01":
            values = np.where(shifted, values * 1.1, values)
        if shape == "mixed" and index % 5 == 4:
            values[rng.random(rows) < 0.01] = np.nan
        columns[name] = values
    for name, k in zip(CATEGORICAL, SHAPE_CATEGORY_COUNTS[shape], strict=True):
        shares = _category_shares(k)
        codes = rng.choice(k, rows, p=shares)
        if name == "c0":
            moved = shifted & (rng.random(rows) < 0.03)
            codes = np.where(moved, k - 1, codes)
        columns[name] = np.asarray([f"{name}_{j}" for j in range(k)])[codes]
    frame = pl.DataFrame(columns)
    return frame.with_columns(pl.col(NUMERIC).fill_nan(None))


def frame(rows: int, seed: int, *, shifted: bool) -> pl.DataFrame:
    import polars as pl

    shifted_from = rows // 2 if shifted else None
    pieces = [piece(start, min(PIECE_ROWS, rows - start), seed, shifted_from) for start in range(0, rows, PIECE_ROWS)]
    return pl.concat(pieces)


def write_parquet(path: Path, rows: int, seed: int, *, shifted: bool) -> Path:
    """Write ``rows`` rows piece by piece (bounded memory), skipping the work if the file is already there."""
    import pyarrow.parquet as pq

    if path.is_file() and pq.ParquetFile(path).metadata.num_rows == rows:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    shifted_from = rows // 2 if shifted else None
    writer = None
    try:
        for start in range(0, rows, PIECE_ROWS):
            table = piece(start, min(PIECE_ROWS, rows - start), seed, shifted_from).to_arrow()
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table, row_group_size=100_000)
    finally:
        if writer is not None:
            writer.close()
    tmp.replace(path)
    return path


def contract() -> object:
    """The model contract of the benchmark data (features only; no target or scores)."""
    from tasks.data.contract import FeatureSpec, ModelContract

    return ModelContract(
        name="drift-benchmark",
        features=[FeatureSpec(name=n, kind="numeric") for n in NUMERIC]
        + [
            FeatureSpec(name=n, kind="categorical", categories=[f"{n}_{j}" for j in range(k)])
            for n, k in zip(CATEGORICAL, SHAPE_CATEGORY_COUNTS[shape_of()], strict=True)
        ],
        target="y",
        entity_id="id",
        timestamp="ts",
    )
