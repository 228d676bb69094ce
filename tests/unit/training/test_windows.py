from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

from tasks.core.errors import TrainingError
from tasks.core.settings import TrainingSettings
from tasks.data.contract import FeatureSpec, ModelContract
from tasks.training.train import WEIGHT_COLUMN
from tasks.training.windows import assemble_window, older_rows, row_keys, without_rows

CONTRACT = ModelContract(
    name="synthetic",
    features=[
        FeatureSpec(name="x", kind="numeric"),
        FeatureSpec(name="region", kind="categorical", categories=["a", "b"]),
    ],
    target="label",
    timestamp="ts",
    entity_id="id",
)
START = datetime(2024, 1, 1)


def _rows(n: int, *, first_id: int, start: datetime, seed: int) -> pl.DataFrame:
    """n labelled rows one minute apart from ``start``, given in shuffled order."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    order = rng.permutation(n)
    return pl.DataFrame(
        {
            "id": np.arange(first_id, first_id + n, dtype=np.int64)[order],
            "x": x[order],
            "region": rng.choice(["a", "b"], size=n)[order],
            "label": (rng.random(n) < 1 / (1 + np.exp(-2 * x))).astype(np.int8)[order],
            "ts": [start + timedelta(minutes=int(i)) for i in order],
            "y_pred_proba": rng.random(n),  # a scoring column of the lake: dropped from windows
        }
    )


REFERENCE = _rows(3000, first_id=0, start=START, seed=1)
RECENT = _rows(1000, first_id=10_000, start=START + timedelta(days=30), seed=2)


def test_sliding_window_holds_out_the_newest_recent_rows() -> None:
    settings = TrainingSettings(holdout_fraction=0.3)
    window = assemble_window(RECENT, REFERENCE, CONTRACT, settings)
    assert (window.kind, window.recent_rows, window.reference_rows) == ("sliding", 700, 0)
    assert window.holdout.height == 300 and window.train.height == 700
    assert window.train.get_column("ts").max() < window.holdout.get_column("ts").min()  # type: ignore[operator]
    assert window.train.get_column(WEIGHT_COLUMN).unique().to_list() == [1.0]
    assert window.validation_fraction == pytest.approx(settings.validation_fraction)
    assert window.recent_start == START + timedelta(days=30)
    assert "y_pred_proba" not in window.train.columns
    assert not window.weighted


def test_expanding_window_adds_older_reference_rows_and_validates_on_recent_rows_only() -> None:
    # Reference rows that overlap the recent period (or are recent rows themselves) must not leak in.
    overlapping = pl.concat(
        [REFERENCE, RECENT.head(50).drop("y_pred_proba").with_columns(pl.col("id"))], how="diagonal"
    )
    settings = TrainingSettings(window="expanding", holdout_fraction=0.3, validation_fraction=0.2)
    window = assemble_window(RECENT, overlapping, CONTRACT, settings)
    assert (window.recent_rows, window.reference_rows) == (700, 3000)
    assert window.train.height == 3700 and window.reference_weight is None
    assert window.train.get_column("ts").is_sorted()
    validation_rows = round(window.train.height * window.validation_fraction)
    assert validation_rows == 140  # 20% of the 700 recent training rows
    assert window.train.tail(validation_rows).get_column("id").min() >= 10_000  # type: ignore[operator]
    assert window.train.get_column("id").is_unique().all()


def test_reference_plus_recent_samples_and_weights_the_reference_deterministically() -> None:
    settings = TrainingSettings(window="reference_plus_recent", reference_rows=500, reference_weight=0.25, seed=3)
    window = assemble_window(RECENT, REFERENCE, CONTRACT, settings)
    again = assemble_window(RECENT, REFERENCE, CONTRACT, settings)
    other = assemble_window(RECENT, REFERENCE, CONTRACT, settings.model_copy(update={"seed": 4}))
    assert window.reference_rows == 500 and window.weighted and window.reference_weight == 0.25
    weights = window.train.group_by(pl.col("id") < 10_000).agg(pl.col(WEIGHT_COLUMN).unique()).sort("id")
    assert weights.get_column(WEIGHT_COLUMN).to_list() == [[1.0], [0.25]]
    assert window.train.equals(again.train)
    assert not window.train.equals(other.train)
    assert window.summary()["reference_rows"] == 500
    with pytest.raises(TrainingError, match=r"reference_plus_recent.*needs the labelled reference"):
        assemble_window(RECENT, None, CONTRACT, settings)


def test_unusable_recent_rows_are_rejected() -> None:
    with pytest.raises(TrainingError, match="150 recent labelled rows"):
        assemble_window(RECENT.head(150), None, CONTRACT, TrainingSettings())
    unlabelled = RECENT.with_columns(
        pl.when(pl.col("id") < 10_005).then(None).otherwise(pl.col("label")).alias("label")
    )
    with pytest.raises(TrainingError, match="5 recent rows have no label in column 'label'"):
        assemble_window(unlabelled, None, CONTRACT, TrainingSettings())


def test_older_rows_leave_out_training_rows_and_recent_rows() -> None:
    pool = pl.concat([REFERENCE, RECENT], how="vertical")
    champion_rows = row_keys(REFERENCE.filter(pl.col("id") < 1000), CONTRACT)
    older = older_rows(
        pool,
        CONTRACT,
        before=START + timedelta(days=30),
        trained_on=[champion_rows],
        trained_between=[(START + timedelta(minutes=2000), START + timedelta(minutes=2499))],
        max_rows=800,
        seed=0,
    )
    ids = older.rows.get_column("id")
    assert older.available == 1500 and older.rows.height == 800 and older.pool == 4000
    assert ids.min() >= 1000 and ids.max() < 3000  # type: ignore[operator]
    assert not ids.is_between(2000, 2499).any()
    assert older.rows.get_column("ts").is_sorted()
    assert "1500 of 3000 older rows left out" in older.note
    again = older_rows(pool, CONTRACT, before=START + timedelta(days=30), trained_on=[champion_rows],
                       trained_between=[(START + timedelta(minutes=2000), START + timedelta(minutes=2499))],
                       max_rows=800, seed=0)  # fmt: skip
    assert again.rows.equals(older.rows)
    untimed = older_rows(pool, CONTRACT.model_copy(update={"timestamp": None}), before=START, trained_on=[],
                         max_rows=10, seed=0)  # fmt: skip
    assert untimed.rows.height == 0 and "no timestamp" in untimed.note


def test_row_keys_match_across_integer_widths_and_time_units() -> None:
    narrow = RECENT.head(10).with_columns(pl.col("id").cast(pl.Int32), pl.col("ts").dt.cast_time_unit("ns"))
    remaining = without_rows(RECENT, row_keys(narrow, CONTRACT), CONTRACT)
    assert remaining.height == RECENT.height - 10
    assert remaining.columns == RECENT.columns
