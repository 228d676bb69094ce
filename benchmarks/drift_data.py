"""Seeded benchmark data for drift_vs_nannyml.py: 20 numeric + 5 categorical features, 3 of them shifted.

The reference and the analysis come from the same generator; in the analysis, ``f00`` (mean + 0.1 sd),
``f01`` (scale x 1.1) and ``c0`` (a category gains 3 points of share) shift from the middle row on.
Numeric shapes cycle through normal, log-normal, uniform, exponential, Student-t and Poisson counts
(ties), and every fifth numeric feature has 1% missing values. Rows are written in pieces of
``PIECE_ROWS``, so a 20M-row file never needs 20M rows in memory.
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
PIECE_ROWS = 500_000
START = datetime(2025, 1, 1)
SECONDS_PER_ROW = 5


def _category_shares(k: int) -> np.ndarray:
    import numpy as np

    shares = 1.0 / np.arange(1, k + 1)
    return shares / shares.sum()


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
    for index, name in enumerate(NUMERIC):
        shape = index % 6
        if shape == 0:
            values = rng.normal(0.0, 1.0, rows)
        elif shape == 1:
            values = rng.lognormal(0.0, 0.75, rows)
        elif shape == 2:
            values = rng.uniform(-2.0, 2.0, rows)
        elif shape == 3:
            values = rng.exponential(1.0, rows)
        elif shape == 4:
            values = rng.standard_t(5, rows)
        else:
            values = rng.poisson(4.0, rows).astype(np.float64)
        if name == "f00":
            values = values + 0.1 * shifted
        elif name == "f01":
            values = np.where(shifted, values * 1.1, values)
        if index % 5 == 4:
            values[rng.random(rows) < 0.01] = np.nan
        columns[name] = values
    for name, k in zip(CATEGORICAL, CATEGORY_COUNTS, strict=True):
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
            for n, k in zip(CATEGORICAL, CATEGORY_COUNTS, strict=True)
        ],
        target="y",
        entity_id="id",
        timestamp="ts",
    )
