"""The command line on a user's own files: contract, bootstrap, monitor, labels, history, errors."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from driftgate.cli import main
from tasks.data.files import ScenarioGenerator, load_car_loan, split_labels

pytestmark = pytest.mark.slow  # every flow test runs Prefect flows (and trains)


def test_user_data_path_without_python(tmp_path: Path) -> None:
    reference, analysis = load_car_loan()
    reference.head(6000).write_csv(tmp_path / "reference.csv")
    gen = ScenarioGenerator(analysis.head(10_000), seed=5)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for day in (1, 2):
        features, labels = split_labels(gen.batch(2000), entity_id="id", target="repaid")
        features.write_parquet(inbox / f"2026-11-0{day}.parquet")
        labels.write_parquet(tmp_path / f"labels-0{day}.parquet")
    home = str(tmp_path / "state")
    config = tmp_path / "settings.yaml"
    config.write_text("training:\n  n_trials: 2\n  num_boost_round: 60\nprofiling:\n  chunk_size: 1000\n")
    common = ["--home", home, "--config", str(config)]
    runner = CliRunner()

    result = runner.invoke(
        main,
        [
            "contract",
            str(tmp_path / "reference.csv"),
            "--target",
            "repaid",
            "--entity-id",
            "id",
            "--timestamp",
            "timestamp",
            "--slice",
            "salary_range",
            *common,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "7 features" in result.output

    result = runner.invoke(main, ["bootstrap", str(tmp_path / "reference.csv"), *common])
    assert result.exit_code == 0, result.output
    assert "candidate v0" in result.output and "PASSED" in result.output

    result = runner.invoke(main, ["monitor", str(inbox / "*.parquet"), "--no-retrain", *common])
    assert result.exit_code == 0, result.output
    assert result.output.count("report:") == 2
    assert "realized n/a" in result.output

    result = runner.invoke(main, ["labels", str(tmp_path / "labels-*.parquet"), *common])
    assert result.exit_code == 0, result.output
    assert "2000 labelled rows" in result.output

    result = runner.invoke(main, ["history", *common])
    assert result.exit_code == 0, result.output
    assert "production" in result.output and "v0" in result.output

    # a typed error, named, without a traceback, exit code 2
    pl.DataFrame({"id": [1]}).write_parquet(tmp_path / "bad.parquet")
    result = runner.invoke(main, ["monitor", str(tmp_path / "bad.parquet"), *common])
    assert result.exit_code == 2
    assert "bad.parquet" in result.output and "car_value" in result.output
    assert "Traceback" not in result.output

    result = runner.invoke(main, ["rollback", *common])
    assert result.exit_code == 2
    assert "previous-production" in result.output
