"""Labels that arrive after monitoring join their batches by entity id, feed realized performance, and judge
those batches again: a degradation visible only through labels retrains when its labels land."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner

from flows.labels import labels_flow
from flows.monitor import monitor_flow
from tasks.core.errors import DataError, SingleClassError
from tasks.core.settings import load_settings
from tasks.data.files import STATIONARY, ScenarioGenerator, Shift, load_car_loan, split_labels, write_frame
from tasks.data.labels import LabelConflictError
from tasks.resources import events
from tasks.resources.workspace import open_workspace

pytestmark = pytest.mark.slow  # every flow test runs Prefect flows (and trains)

# Concept change with unchanged features: applicants with no down payment flip their repayment behaviour.
# CBPE trusts the model's scores, so only labels can reveal it.
CONCEPT = Shift(concept_flip=("size_of_downpayment", "0%", 0.9))
ROWS = 2500


def _days(home: Path, phases: list[tuple[str, Shift]], seed: int = 4) -> list[tuple[str, str]]:
    _, analysis = load_car_loan()
    gen = ScenarioGenerator(analysis.head(20_000), seed=seed)
    files = []
    for day, (phase, shift) in enumerate(phases, start=1):
        features, labels = split_labels(gen.batch(ROWS, shift), entity_id="id", target="repaid")
        batch = write_frame(features, home / "inputs" / f"day-{day:02d}-{phase}.parquet")
        label_file = write_frame(labels, home / "inputs" / f"day-{day:02d}-{phase}-labels.parquet")
        files.append((str(batch), str(label_file)))
    return files


def test_delayed_labels_join_and_record_realized(champion_home: Callable[[], Path]) -> None:
    home = champion_home()
    config = str(home / "driftgate.yaml")
    _, analysis = load_car_loan()
    gen = ScenarioGenerator(analysis.head(20_000), seed=4)
    features, labels = split_labels(gen.batch(2500), entity_id="id", target="repaid")
    features.write_parquet(home / "day.parquet")
    labels.head(1000).write_csv(home / "day-labels-a.csv")
    labels.slice(1000, 1000).write_csv(home / "day-labels-b.csv")

    [outcome] = monitor_flow(batches=[str(home / "day.parquet")], home=str(home), config=config)["batches"]
    assert outcome["realized"] is None  # no labels yet: estimated only
    assert outcome["estimated"] is not None

    # Every file a glob matches is joined (with a glob, only the last file used to be).
    arrival = labels_flow(labels=[str(home / "day-labels-*.csv")], home=str(home), config=config)["labels"]
    [joined] = arrival["batches"]
    assert joined["batch_id"] == "day" and joined["new_rows"] == 2000 and joined["rows_labelled"] == 2000
    assert 0.85 < joined["realized"] < 1.0
    assert joined["action"] in ("NONE", "ALERT")

    # Sent again: nothing is labelled twice, and the ids are counted as already labelled.
    again = labels_flow(labels=[str(home / "day-labels-a.csv")], home=str(home), config=config)["labels"]
    assert again["new_rows"] == 0 and not again["batches"] and "1000 already labelled" in again["summary"]

    ws = open_workspace(load_settings(home / "driftgate.yaml"))
    try:
        realized = ws.store.signals(ws.model, batch_id="day", kind="realized")
        assert len(realized) == 1 and realized[0]["value"] == pytest.approx(joined["realized"])
        stored = ws.lake.read("day")
        assert stored.get_column("repaid").is_not_null().sum() == 2000
        assert ws.lake.window(ws.contract).height == 2000
        assert ws.store.labelled_rows(ws.model) == {"day": 2000}
    finally:
        ws.close()

    pl.DataFrame({"id": [-1, -2], "repaid": [0, 1]}).write_parquet(home / "stray.parquet")
    with pytest.raises(DataError, match="id"):
        labels_flow(labels=[str(home / "stray.parquet")], home=str(home), config=config)


def test_label_files_are_checked_together_before_anything_is_written(champion_home: Callable[[], Path]) -> None:
    home = champion_home()
    config = str(home / "driftgate.yaml")
    _, analysis = load_car_loan()
    features, labels = split_labels(
        ScenarioGenerator(analysis.head(5000), seed=2).batch(800), entity_id="id", target="repaid"
    )
    features.write_parquet(home / "b.parquet")
    monitor_flow(batches=[str(home / "b.parquet")], home=str(home), config=config)
    labels.write_parquet(home / "one.parquet")
    labels.head(10).with_columns((1 - pl.col("repaid")).cast(pl.Int8).alias("repaid")).write_parquet(
        home / "two.parquet"
    )
    with pytest.raises(LabelConflictError, match=r"one\.parquet.*two\.parquet|two\.parquet.*one\.parquet"):
        labels_flow(labels=[str(home / "one.parquet"), str(home / "two.parquet")], home=str(home), config=config)
    labels.filter(pl.col("repaid") == 1).write_parquet(home / "ones.parquet")
    with pytest.raises(SingleClassError, match=r"ones\.parquet"):
        labels_flow(labels=[str(home / "ones.parquet")], home=str(home), config=config)
    ws = open_workspace(load_settings(home / "driftgate.yaml"))
    try:
        assert ws.store.labelled_rows(ws.model) == {}  # nothing was written
        assert "repaid" not in ws.lake.read("b").columns
    finally:
        ws.close()


def _policy_rows(home: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    ws = open_workspace(load_settings(home / "driftgate.yaml"))
    try:
        return ws.store.decisions(ws.model, kind="policy"), ws.store.events(events.resource_id(ws.model))
    finally:
        ws.close()


def test_a_concept_change_retrains_when_its_labels_land_one_batch_late(champion_home: Callable[[], Path]) -> None:
    """monitor batch i with the labels of batch i-1: the concept change of day 3 is invisible to CBPE and caught
    when day 3's labels arrive (while day 4 is monitored): the RETRAIN is decided then, recorded and announced."""
    home = champion_home()
    config = str(home / "driftgate.yaml")
    files = _days(home, [("stationary", STATIONARY)] * 2 + [("concept", CONCEPT)] * 2)
    results = []
    for i, (batch, _) in enumerate(files):
        late = [files[i - 1][1]] if i else None
        results.append(monitor_flow(batches=[batch], labels=late, home=str(home), config=config))
    # Monitoring alone never retrains: the features did not move and no batch had labels when judged.
    assert all(r["batches"][0]["action"] != "RETRAIN" for r in results)
    judged = {r["labels"]["batches"][0]["batch_id"]: r["labels"]["batches"][0] for r in results if r["labels"]}
    assert judged["day-01-stationary"]["action"] != "RETRAIN"
    assert judged["day-02-stationary"]["action"] != "RETRAIN"
    caught = judged["day-03-concept"]
    assert caught["action"] == "RETRAIN", caught["reasons"]
    assert caught["realized"] < caught["reference"] - 0.02 and caught["retrain_key"]

    policy, sent = _policy_rows(home)
    retrains = [row for row in policy if row["outcome"] == "RETRAIN"]
    assert [row["batch_id"] for row in retrains] == ["day-03-concept"]
    assert retrains[0]["payload"]["evidence"]["trigger"] == "labels"
    assert retrains[0]["payload"]["retrain_key"] == caught["retrain_key"]
    requested = [e for e in sent if e["name"] == events.RETRAIN_REQUESTED]
    assert [e["payload"]["batch_id"] for e in requested] == ["day-03-concept"]
    assert requested[0]["payload"]["trigger"] == "labels"


def test_the_delayed_path_from_the_command_line(champion_home: Callable[[], Path]) -> None:
    from driftgate.cli import main

    home = champion_home()
    common = ["--home", str(home), "--config", str(home / "driftgate.yaml")]
    files = _days(home, [("stationary", STATIONARY)] + [("concept", CONCEPT)] * 2, seed=9)
    runner = CliRunner()
    for i, (batch, _) in enumerate(files):
        late = ["--labels", files[i - 1][1]] if i else []
        result = runner.invoke(main, ["monitor", batch, *late, "--no-retrain", *common])
        assert result.exit_code == 0, result.output
        assert "RETRAIN" not in result.output.split("labels:")[0]
    result = runner.invoke(main, ["labels", files[-1][1], "--no-retrain", *common])
    assert result.exit_code == 0, result.output
    assert "day-03-concept: +2500 labelled rows" in result.output
    policy, _ = _policy_rows(home)
    retrains = [row for row in policy if row["outcome"] == "RETRAIN"]
    assert retrains and retrains[0]["batch_id"] == "day-02-concept"
    assert "day-03-concept" in result.output and "judged again: RETRAIN" in result.output
