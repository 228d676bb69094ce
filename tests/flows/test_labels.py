"""Labels that arrive after monitoring join their batches by entity id and feed realized performance."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from flows.labels import labels_flow
from flows.monitor import monitor_flow
from tasks.data import ScenarioGenerator, load_car_loan, split_labels
from tasks.errors import DataError
from tasks.settings import load_settings
from tasks.workspace import open_workspace


def test_delayed_labels_join_and_record_realized(champion_home: Callable[[], Path]) -> None:
    home = champion_home()
    config = str(home / "driftgate.yaml")
    _, analysis = load_car_loan()
    gen = ScenarioGenerator(analysis.head(20_000), seed=4)
    features, labels = split_labels(gen.batch(2500), entity_id="id", target="repaid")
    features.write_parquet(home / "day.parquet")
    labels.head(2000).write_csv(home / "day-labels.csv")

    [outcome] = monitor_flow(batches=[str(home / "day.parquet")], home=str(home), config=config)
    assert outcome["realized"] is None  # no labels yet: estimated only
    assert outcome["estimated"] is not None

    [joined] = labels_flow(labels=[str(home / "day-labels.csv")], home=str(home), config=config)
    assert joined["batch_id"] == "day"
    assert joined["rows_labelled"] == 2000
    assert 0.85 < joined["realized"] < 1.0

    ws = open_workspace(load_settings(home / "driftgate.yaml"))
    try:
        realized = ws.store.signals(ws.model, batch_id="day", kind="realized")
        assert len(realized) == 1 and realized[0]["value"] == pytest.approx(joined["realized"])
        stored = pl.read_parquet(ws.lake.path("day"))
        assert stored.get_column("repaid").is_not_null().sum() == 2000
        assert ws.lake.window(ws.contract).height == 2000
    finally:
        ws.close()

    pl.DataFrame({"id": [-1, -2], "repaid": [0, 1]}).write_parquet(home / "stray.parquet")
    with pytest.raises(DataError, match="id"):
        labels_flow(labels=[str(home / "stray.parquet")], home=str(home), config=config)
