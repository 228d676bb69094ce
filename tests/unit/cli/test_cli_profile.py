"""`driftgate profile`: a file profiled chunk by chunk from the command line, read-only, with typed errors."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from driftgate.cli import main
from tests.support.streams import CONTRACT, stream


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    CONTRACT.save(home / "contract.yaml")
    stream(6_000, 40).write_parquet(home / "reference.parquet")
    # Calm for the first 4,000 rows, then x0 moves by half a standard deviation.
    stream(8_000, 41, first_id=10**6, shift_from=4_000, shift=0.5).write_csv(tmp_path / "analysis.csv")
    return home


@pytest.mark.slow
def test_profile_writes_results_and_a_heat_map_and_names_the_drifted_feature(home: Path) -> None:
    analysis = home.parent / "analysis.csv"
    result = CliRunner().invoke(main, ["profile", str(analysis), "--home", str(home), "--chunk-rows", "2000"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if " rows  quality" in line]
    assert len(lines) == 4
    assert all("x0" not in line for line in lines[:2]) and all("x0" in line for line in lines[2:])
    folder = home / "reports" / "profile" / "analysis"
    results = pl.read_parquet(folder / "results.parquet")
    assert results.get_column("chunk_index").unique().sort().to_list() == [0, 1, 2, 3]
    assert (folder / "heatmap.svg").read_text().count("<rect") > 4 * 3  # a cell per chunk and feature
    assert not (home / "audit.db").exists(), "profiling a file is read-only"

    by_day = CliRunner().invoke(main, ["profile", str(analysis), "--home", str(home), "--chunk-by", "day"])
    assert by_day.exit_code == 0, by_day.output
    assert "one chunk per day" in by_day.output


def test_profile_reports_bad_input_and_bad_options_clearly(home: Path) -> None:
    analysis = home.parent / "analysis.csv"
    pl.read_csv(analysis).drop("x2").write_csv(analysis)
    missing = CliRunner().invoke(main, ["profile", str(analysis), "--home", str(home)])
    assert missing.exit_code == 2 and "x2" in missing.output, missing.output
    both = CliRunner().invoke(
        main, ["profile", str(analysis), "--home", str(home), "--chunks", "3", "--chunk-by", "day"]
    )
    assert both.exit_code == 2 and "choose one of" in both.output
    absent = CliRunner().invoke(main, ["profile", str(home / "nope.parquet"), "--home", str(home)])
    assert absent.exit_code == 2 and "nope.parquet" in absent.output
