"""Bad input at the boundary fails with a typed error naming the column, and changes nothing."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from flows.monitor import monitor_flow
from flows.retrain import retrain_flow
from tasks.core.errors import MissingColumnError, NonFiniteError, ProbabilityRangeError, SingleClassError
from tasks.core.settings import load_settings
from tasks.data.files import load_car_loan
from tasks.resources.workspace import open_workspace

pytestmark = pytest.mark.slow  # every flow test runs Prefect flows (and trains)


def _state(home: Path) -> tuple[dict[str, str], int, int, int, list[str]]:
    ws = open_workspace(load_settings(home / "driftgate.yaml"))
    try:
        return (
            ws.registry.aliases(ws.model),
            len(ws.registry.ledger(ws.model)),
            len(ws.store.decisions(ws.model)),
            len(ws.store.signals(ws.model)),
            ws.lake.batch_ids(),
        )
    finally:
        ws.close()


def _batch() -> pl.DataFrame:
    _, analysis = load_car_loan()
    return analysis.head(2000).drop("repaid")


@pytest.mark.parametrize(
    ("name", "mutate", "error", "column"),
    [
        ("missing-column", lambda f: f.drop("car_value"), MissingColumnError, "car_value"),
        (
            "nan-feature",
            lambda f: f.with_columns(
                pl.when(pl.int_range(pl.len()) == 5)
                .then(math.nan)
                .otherwise(pl.col("driver_tenure"))
                .alias("driver_tenure")
            ),
            NonFiniteError,
            "driver_tenure",
        ),
        ("wrong-dtype", lambda f: f.with_columns(pl.col("loan_length").cast(pl.String)), Exception, "loan_length"),
        (
            "bad-proba",
            lambda f: f.with_columns(pl.lit(1.5).alias("y_pred_proba")),
            ProbabilityRangeError,
            "y_pred_proba",
        ),
        ("empty", lambda f: f.head(0), Exception, "empty"),
    ],
)
def test_bad_batch_is_refused_and_nothing_changes(
    champion_home: Callable[[], Path], name: str, mutate: object, error: type[Exception], column: str
) -> None:
    home = champion_home()
    before = _state(home)
    path = home / f"{name}.parquet"
    mutate(_batch()).write_parquet(path)  # type: ignore[operator]
    with pytest.raises(error) as info:
        monitor_flow(batches=[str(path)], home=str(home), config=str(home / "driftgate.yaml"))
    assert column in str(info.value) and name in str(info.value)
    assert type(info.value).__module__ == "tasks.core.errors"
    # Nothing changes but the record of the refusal: one BLOCK decision that carries the error.
    after = _state(home)
    assert (after[0], after[1], after[3], after[4]) == (before[0], before[1], before[3], before[4])
    assert after[2] == before[2] + 1
    ws = open_workspace(load_settings(home / "driftgate.yaml"))
    try:
        refusal = ws.store.decisions(ws.model, kind="policy")[-1]
    finally:
        ws.close()
    assert refusal["outcome"] == "BLOCK" and refusal["batch_id"] == name
    assert refusal["payload"]["refused"] and column in refusal["payload"]["error"]


def test_single_class_window_is_refused_and_production_stays(champion_home: Callable[[], Path]) -> None:
    home = champion_home()
    frame = _batch()
    path = home / "ok.parquet"
    frame.write_parquet(path)
    labels = home / "ones.parquet"
    frame.select("id", pl.lit(1).cast(pl.Int8).alias("repaid")).write_parquet(labels)
    with pytest.raises(SingleClassError, match=r"ones\.parquet"):  # labels of one class are refused on arrival
        monitor_flow(batches=[str(path)], labels=[str(labels)], home=str(home), config=str(home / "driftgate.yaml"))
    # Labels that arrive with the batch itself are the batch's data: the window is then of one class.
    frame.with_columns(pl.lit(1).cast(pl.Int8).alias("repaid")).write_parquet(path)
    monitor_flow(batches=[str(path)], home=str(home), config=str(home / "driftgate.yaml"))
    before = _state(home)
    with pytest.raises(SingleClassError, match="repaid"):
        retrain_flow(reason="test", home=str(home), config=str(home / "driftgate.yaml"))
    after = _state(home)
    assert after[0] == before[0] and after[1] == before[1]
