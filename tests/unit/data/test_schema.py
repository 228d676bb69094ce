from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest

from tasks.core.errors import (
    ContractError,
    DtypeError,
    EmptyBatchError,
    MissingColumnError,
    NonFiniteError,
    ProbabilityRangeError,
    SingleClassError,
)
from tasks.data.contract import ModelContract, feature_matrix, infer_contract, require_two_classes, validate_batch


@pytest.fixture()
def frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": [1, 2, 3, 4],
            "x": [0.1, 0.2, 0.3, 0.4],
            "color": ["red", "blue", "red", "green"],
            "flag": [True, False, True, False],
            "y": [0, 1, 0, 1],
            "ts": ["2024-01-01 00:00:00", "2024-01-02 00:00:00", "2024-01-03 00:00:00", "2024-01-04 00:00:00"],
        }
    )


@pytest.fixture()
def contract(frame: pl.DataFrame) -> ModelContract:
    return infer_contract(frame, name="m", target="y", entity_id="id", timestamp="ts", slices=["color"])


def test_infer_contract_types_and_categories(contract: ModelContract) -> None:
    kinds = {f.name: f.kind for f in contract.features}
    assert kinds == {"x": "numeric", "color": "categorical", "flag": "boolean"}
    assert contract.feature("color").categories == ["blue", "green", "red"]


def test_contract_round_trip(tmp_path: Path, contract: ModelContract) -> None:
    path = contract.save(tmp_path / "c.yaml")
    assert ModelContract.load(path) == contract


def test_invalid_contract_file_names_path(tmp_path: Path) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text("name: m\nfeatures: []\ntarget: y\nentity_id: id\n")
    with pytest.raises(ContractError, match=r"c\.yaml"):
        ModelContract.load(bad)
    with pytest.raises(ContractError, match="does not exist"):
        ModelContract.load(tmp_path / "missing.yaml")


def test_validate_casts_and_parses_timestamps(frame: pl.DataFrame, contract: ModelContract) -> None:
    out = validate_batch(frame, contract, source="b.parquet", require_target=True)
    assert out.schema["x"] == pl.Float64
    assert out.schema["ts"].is_temporal()
    assert out.schema["y"] == pl.Int8


@pytest.mark.parametrize(
    ("mutate", "error", "column"),
    [
        (lambda f: f.drop("x"), MissingColumnError, "x"),
        (lambda f: f.with_columns(pl.col("x").cast(pl.String)), DtypeError, "x"),
        (lambda f: f.with_columns(pl.Series("x", [0.1, math.nan, 0.3, 0.4])), NonFiniteError, "x"),
        (lambda f: f.with_columns(pl.Series("x", [0.1, math.inf, 0.3, 0.4])), NonFiniteError, "x"),
        (lambda f: f.with_columns(pl.Series("y", [0, 2, 0, 1])), DtypeError, "y"),
        (
            lambda f: f.with_columns(pl.Series("y_pred_proba", [0.1, 1.2, 0.3, 0.4])),
            ProbabilityRangeError,
            "y_pred_proba",
        ),
        (lambda f: f.with_columns(pl.lit("not a time").alias("ts")), DtypeError, "ts"),
    ],
)
def test_bad_input_gets_a_typed_error_naming_the_column(
    frame: pl.DataFrame, contract: ModelContract, mutate: object, error: type[Exception], column: str
) -> None:
    with pytest.raises(error) as info:
        validate_batch(mutate(frame), contract, source="batch-7.parquet", require_target=True)  # type: ignore[operator]
    assert column in str(info.value)
    assert "batch-7.parquet" in str(info.value)


def test_empty_batch(frame: pl.DataFrame, contract: ModelContract) -> None:
    with pytest.raises(EmptyBatchError, match=r"empty\.parquet"):
        validate_batch(frame.head(0), contract, source="empty.parquet")


def test_single_class_labels(frame: pl.DataFrame, contract: ModelContract) -> None:
    one = validate_batch(frame.with_columns(pl.lit(1).alias("y")), contract, source="s.csv", require_target=True)
    with pytest.raises(SingleClassError, match="'y'"):
        require_two_classes(one, contract, source="s.csv")


def test_feature_matrix_codes_categories_and_marks_unseen_missing(frame: pl.DataFrame, contract: ModelContract) -> None:
    batch = frame.with_columns(pl.Series("color", ["red", "purple", "blue", None]))
    matrix = feature_matrix(validate_batch(batch, contract, source="b"), contract)
    assert matrix.shape == (4, 3)
    assert matrix[0, 1] == 2.0  # red is the third known category
    assert math.isnan(matrix[1, 1]) and math.isnan(matrix[3, 1])
    assert list(matrix[:, 2]) == [1.0, 0.0, 1.0, 0.0]
