"""Bad input at the boundary fails with a typed error naming the column, and changes nothing."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest

from flows.bootstrap import bootstrap_flow
from flows.monitor import monitor_flow
from flows.retrain import retrain_flow
from tasks.data import load_car_loan
from tasks.errors import DriftgateError, MissingColumnError, NonFiniteError, SingleClassError
from tasks.schema import infer_contract
from tasks.settings import load_settings
from tasks.workspace import open_workspace


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("bad-input")
    reference, _ = load_car_loan()
    reference = reference.head(8000)
    infer_contract(reference, name="car-loan", target="repaid", entity_id="id", timestamp="timestamp").save(
        home / "contract.yaml"
    )
    reference.write_parquet(home / "reference.parquet")
    (home / "driftgate.yaml").write_text(f"home: {home}\ntraining:\n  n_trials: 2\n  num_boost_round: 60\n")
    bootstrap_flow(reference=str(home / "reference.parquet"), home=str(home), config=str(home / "driftgate.yaml"))
    return home


def _state(home: Path) -> tuple[dict[str, str], int, int, int]:
    ws = open_workspace(load_settings(home / "driftgate.yaml"))
    try:
        return (
            ws.registry.aliases(ws.model),
            len(ws.registry.ledger(ws.model)),
            len(ws.store.decisions(ws.model)),
            len(ws.store.signals(ws.model)),
        )
    finally:
        ws.close()


def _batch(home: Path) -> pl.DataFrame:
    _, analysis = load_car_loan()
    return analysis.head(2000).drop("repaid")


@pytest.mark.parametrize(
    ("name", "mutate", "error", "column"),
    [
        ("missing-column", lambda f: f.drop("car_value"), MissingColumnError, "car_value"),
        (
            "nan",
            lambda f: f.with_columns(
                pl.when(pl.int_range(pl.len()) == 5)
                .then(math.nan)
                .otherwise(pl.col("driver_tenure"))
                .alias("driver_tenure")
            ),
            NonFiniteError,
            "driver_tenure",
        ),
    ],
)
def test_bad_batch_is_refused_and_nothing_changes(
    home: Path, name: str, mutate: object, error: type[Exception], column: str
) -> None:
    before = _state(home)
    path = home / f"{name}.parquet"
    mutate(_batch(home)).write_parquet(path)  # type: ignore[operator]
    with pytest.raises(error) as info:
        monitor_flow(batches=[str(path)], home=str(home), config=str(home / "driftgate.yaml"))
    assert column in str(info.value) and name in str(info.value)
    assert _state(home) == before


def test_single_class_window_is_refused(home: Path) -> None:
    frame = _batch(home)
    path = home / "ok.parquet"
    frame.write_parquet(path)
    labels = home / "ones.parquet"
    frame.select("id", pl.lit(1).cast(pl.Int8).alias("repaid")).write_parquet(labels)
    monitor_flow(batches=[str(path)], labels=[str(labels)], home=str(home), config=str(home / "driftgate.yaml"))
    aliases_before = _state(home)[0]
    with pytest.raises(DriftgateError) as info:
        retrain_flow(reason="test", home=str(home), config=str(home / "driftgate.yaml"))
    assert isinstance(info.value, SingleClassError | DriftgateError)
    assert "repaid" in str(info.value) or "rows" in str(info.value)
    assert _state(home)[0] == aliases_before
