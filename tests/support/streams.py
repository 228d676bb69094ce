"""A small contract and a stream of rows for it, optionally shifted from some row on."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl

from tasks.data.contract import FeatureSpec, ModelContract

CONTRACT = ModelContract(
    name="chunked",
    features=[FeatureSpec(name=f"x{i}", kind="numeric") for i in range(4)]
    + [FeatureSpec(name="tier", kind="categorical", categories=["a", "b", "c"])],
    target="y",
    entity_id="id",
    timestamp="ts",
)


def stream(
    rows: int, seed: int, *, first_id: int = 0, shift_from: int | None = None, shift: float = 0.0
) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    index = np.arange(rows)
    moved = (index >= shift_from) if shift_from is not None else np.zeros(rows, dtype=bool)
    return pl.DataFrame(
        {
            "id": first_id + index,
            "ts": pl.Series([datetime(2025, 1, 1) + timedelta(minutes=20 * i) for i in range(rows)]),
            **{f"x{i}": rng.normal(size=rows) + shift * moved * (i == 0) for i in range(4)},
            "tier": rng.choice(["a", "b", "c"], rows, p=[0.5, 0.3, 0.2]),
        }
    )
