from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tasks.core.errors import DataError, DataFileError
from tasks.data.files import STATIONARY, ScenarioGenerator, Shift, expand_paths, join_labels, load_car_loan, read_file


@pytest.fixture(scope="module")
def population() -> pl.DataFrame:
    return load_car_loan()[1].head(10_000)


def test_car_loan_data_ships_with_nannyml() -> None:
    reference, analysis = load_car_loan()
    assert reference.height == 50_000 and analysis.height == 50_000
    assert reference.get_column("repaid").n_unique() == 2
    assert analysis.get_column("repaid").null_count() == 0


def test_generator_is_seeded(population: pl.DataFrame) -> None:
    a = ScenarioGenerator(population, seed=3).batch(500)
    b = ScenarioGenerator(population, seed=3).batch(500)
    assert a.equals(b)


def test_stationary_batches_match_the_population(population: pl.DataFrame) -> None:
    batch = ScenarioGenerator(population, seed=1).batch(5000, STATIONARY)
    mean, std = population.get_column("car_value").mean(), population.get_column("car_value").std()
    assert abs(batch.get_column("car_value").mean() - mean) < 0.1 * std  # type: ignore[operator]


def test_covariate_shift_moves_the_feature_not_the_labels_relation(population: pl.DataFrame) -> None:
    gen = ScenarioGenerator(population, seed=1)
    base = gen.batch(5000)
    shifted = gen.batch(5000, Shift(covariate={"car_value": 1.0}))
    std = population.get_column("car_value").std()
    assert shifted.get_column("car_value").mean() - base.get_column("car_value").mean() > 0.5 * std  # type: ignore[operator]
    assert shifted.get_column("timestamp").min() > base.get_column("timestamp").max()  # type: ignore[operator]
    assert not set(shifted.get_column("id")) & set(base.get_column("id"))


def test_concept_flip_changes_labels_only_in_the_segment(population: pl.DataFrame) -> None:
    gen = ScenarioGenerator(population, seed=2)
    flipped = gen.batch(4000, Shift(concept_flip=("size_of_downpayment", "0%", 1.0)))
    rows = population.with_row_index("row")
    # each sampled row is a copy of a population row: match on features to compare labels
    features = ["car_value", "debt_to_income_ratio", "driver_tenure"]
    joined = flipped.join(rows.select([*features, pl.col("repaid").alias("orig")]), on=features, how="left")
    seg = joined.filter(pl.col("size_of_downpayment") == "0%")
    rest = joined.filter(pl.col("size_of_downpayment") != "0%")
    assert (seg.get_column("repaid") != seg.get_column("orig")).mean() > 0.95
    assert (rest.get_column("repaid") == rest.get_column("orig")).mean() > 0.95


def test_unknown_shift_feature_is_named(population: pl.DataFrame) -> None:
    with pytest.raises(DataError, match="nope"):
        ScenarioGenerator(population, seed=0).batch(10, Shift(covariate={"nope": 1.0}))


def test_files_and_globs(tmp_path: Path) -> None:
    frame = pl.DataFrame({"id": [1, 2], "y": [0, 1]})
    frame.write_parquet(tmp_path / "a.parquet")
    frame.write_csv(tmp_path / "b.csv")
    assert [p.name for p in expand_paths(str(tmp_path / "*"))] == ["a.parquet", "b.csv"]
    assert read_file(tmp_path / "b.csv").equals(frame)
    with pytest.raises(DataFileError, match="no file matches"):
        expand_paths(str(tmp_path / "*.json"))
    (tmp_path / "c.json").write_text("{}")
    with pytest.raises(DataFileError, match=r"c\.json"):
        read_file(tmp_path / "c.json")


def test_join_labels_by_entity_id() -> None:
    batch = pl.DataFrame({"id": [1, 2, 3], "x": [0.1, 0.2, 0.3]})
    labels = pl.DataFrame({"id": [3, 1], "y": [1, 0]})
    joined = join_labels(batch, labels, entity_id="id", target="y", source="labels.csv")
    assert joined.get_column("y").to_list() == [0, None, 1]
    with pytest.raises(DataError, match="duplicate"):
        join_labels(batch, pl.DataFrame({"id": [1, 1], "y": [0, 1]}), entity_id="id", target="y", source="l.csv")
    assert np.isfinite(joined.get_column("x").to_numpy()).all()


@pytest.mark.parametrize(("delimiter", "name"), [(";", "semicolon"), ("\t", "tab"), ("|", "pipe")])
def test_a_csv_that_does_not_split_on_commas_names_its_delimiter(tmp_path: Path, delimiter: str, name: str) -> None:
    path = tmp_path / "batch.csv"
    path.write_text(delimiter.join(["id", "x", "y"]) + "\n" + delimiter.join(["1", "0.5", "1"]) + "\n")
    with pytest.raises(DataFileError, match=f"on {name}s.*batch.csv"):
        read_file(path)
    path.write_text("id,x,y\n1,0.5,1\n")
    assert read_file(path).columns == ["id", "x", "y"]
