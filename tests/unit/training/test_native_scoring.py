"""Scoring through lib_lightgbm directly (tasks/training/native.py) equals Booster.predict: NaNs in numeric and
categorical features, default-left and zero-as-missing splits, categorical bitsets beyond 32 categories,
single-leaf trees, linear trees, several threads; multi-output models are refused, and without the library
scoring falls back to the lightgbm package."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import lightgbm as lgb
import numpy as np
import polars as pl
import pytest

from tasks.core.errors import TrainingError
from tasks.data.contract import FeatureSpec, ModelContract, feature_matrix
from tasks.training import native
from tasks.training.native import NativeUnavailable, load_native
from tasks.training.scoring import score_frame
from tasks.training.train import predict_proba


def data(seed: int, rows: int, categories: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.column_stack(
        [
            rng.normal(size=rows),
            rng.lognormal(size=rows),
            rng.integers(0, categories, rows).astype(np.float64),
            np.where(rng.random(rows) < 0.3, 0.0, rng.normal(size=rows)),  # many exact zeros
            rng.integers(0, 4, rows).astype(np.float64),
        ]
    )
    logit = x[:, 0] - 0.5 * np.log(x[:, 1]) + np.sin(x[:, 2]) + 0.8 * x[:, 3] + (x[:, 4] == 2)
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    x[rng.random(rows) < 0.08, 0] = np.nan
    x[rng.random(rows) < 0.05, 2] = np.nan
    x[rng.random(rows) < 0.05, 3] = np.nan
    x[rng.random(rows) < 0.05, 4] = np.nan
    return x, y


MODELS = {
    "default": ({"num_leaves": 31}, 60, 40),
    "categorical_wide": ({"num_leaves": 15, "max_cat_to_onehot": 4, "min_data_per_group": 5, "cat_smooth": 1}, 40, 70),
    "zero_as_missing": ({"num_leaves": 7, "zero_as_missing": True}, 30, 12),
    "no_missing": ({"num_leaves": 7, "use_missing": False}, 30, 12),
    "deep_sigmoid": ({"num_leaves": 63, "sigmoid": 0.7, "learning_rate": 0.3}, 25, 20),
    "stumps": ({"num_leaves": 2, "min_gain_to_split": 0.0}, 80, 8),
}


def booster(name: str, seed: int) -> tuple[lgb.Booster, np.ndarray]:
    params, rounds, categories = MODELS[name]
    x, y = data(seed, 6000, categories)
    base = {"objective": "binary", "verbosity": -1, "seed": seed, "num_threads": 1, "deterministic": True}
    train = lgb.Dataset(x, y, categorical_feature=[2, 4], free_raw_data=False)
    model = lgb.train({**base, **params}, train, num_boost_round=rounds)
    test, _ = data(seed + 1000, 4000, categories)
    test[:50, 2] = -3.0  # negative categories go right
    test[50:100, 2] = categories + 40  # unseen large categories
    return model, test


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.slow)])
def test_equals_booster_predict(name: str, seed: int) -> None:
    model, test = booster(name, seed)
    text = model.model_to_string()
    expected = lgb.Booster(model_str=text).predict(test, num_threads=1)
    assert np.array_equal(load_native(text).predict(test), expected)
    assert np.array_equal(load_native(text).predict(test, num_threads=2), expected)


def test_single_leaf_linear_and_truncated_models() -> None:
    x, y = data(3, 400, 5)
    stump = lgb.train(  # no split meets min_data_in_leaf: LightGBM keeps one single-leaf tree and stops
        {"objective": "binary", "verbosity": -1, "min_data_in_leaf": 300, "num_leaves": 4},
        lgb.Dataset(x, y),
        num_boost_round=5,
    ).model_to_string()
    assert np.array_equal(load_native(stump).predict(x), lgb.Booster(model_str=stump).predict(x))
    linear = lgb.train({"objective": "binary", "verbosity": -1, "linear_tree": True}, lgb.Dataset(x, y), 3)
    text = linear.model_to_string()
    assert np.array_equal(load_native(text).predict(x), lgb.Booster(model_str=text).predict(x))
    model, test = booster("default", 3)
    text = model.model_to_string(num_iteration=3)  # what train_candidate stores: the best iteration's trees
    assert np.array_equal(load_native(text).predict(test), lgb.Booster(model_str=text).predict(test))
    assert load_native(text) is load_native(text), "loaded once per process"


def test_bad_models_and_shapes_are_refused() -> None:
    x, y = data(4, 1500, 5)
    multiclass = lgb.train(
        {"objective": "multiclass", "num_class": 3, "verbosity": -1}, lgb.Dataset(x, y + (x[:, 4] == 1)), 3
    )
    with pytest.raises(NativeUnavailable, match="3 outputs per row"):
        load_native(multiclass.model_to_string())
    with pytest.raises(TrainingError, match="could not load model"):
        load_native("not a model")
    model, _ = booster("stumps", 0)
    with pytest.raises(ValueError, match="expected a matrix with 5 columns"):
        load_native(model.model_to_string()).predict(np.zeros((3, 4)))


CONTRACT = ModelContract(
    name="trees",
    features=[
        FeatureSpec(name="a", kind="numeric"),
        FeatureSpec(name="colour", kind="categorical", categories=["red", "green", "blue"]),
    ],
    target="y",
    entity_id="id",
    timestamp="ts",
)


def frame(rows: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    colour = rng.choice(np.array(["red", "green", "blue", "violet"]), rows)
    a = rng.normal(size=rows)
    return (
        pl.DataFrame(
            {
                "id": np.arange(rows),
                "ts": [datetime(2026, 1, 1) + timedelta(minutes=i) for i in range(rows)],
                "a": a,
                "colour": colour,
                "y": (rng.random(rows) < 1 / (1 + np.exp(-a - (colour == "blue")))).astype(np.int64),
                "gap_a": rng.random(rows) < 0.05,
                "gap_colour": rng.random(rows) < 0.05,
            }
        )
        .with_columns(
            pl.when(pl.col("gap_a")).then(None).otherwise(pl.col("a")).alias("a"),
            pl.when(pl.col("gap_colour")).then(None).otherwise(pl.col("colour")).alias("colour"),
        )
        .drop("gap_a", "gap_colour")
    )


def test_score_frame_equals_lightgbm_and_falls_back_without_the_library(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    train = frame(3000, 5)
    x = feature_matrix(train, CONTRACT)
    model = lgb.train(
        {"objective": "binary", "verbosity": -1, "num_leaves": 7},
        lgb.Dataset(x, train.get_column("y").to_numpy(), categorical_feature=[1]),
        num_boost_round=20,
    )
    text = model.model_to_string()
    batch = frame(2000, 6)
    scored = score_frame(batch, text, CONTRACT, version="v1", threshold=0.5)
    expected = predict_proba(text, batch, CONTRACT)
    assert np.max(np.abs(scored.get_column("y_pred_proba").to_numpy() - expected)) <= 1e-12
    assert scored.get_column("y_pred").to_list() == (expected >= 0.5).astype(int).tolist()
    assert np.array_equal(scored.get_column("y_pred_proba").to_numpy(), expected)

    def missing() -> None:
        raise NativeUnavailable("lib_lightgbm.so is not in the installed lightgbm package")

    monkeypatch.setattr(native, "_library", missing)
    native._cached.cache_clear()
    with caplog.at_level(logging.INFO, logger="tasks.training.scoring"):
        fallback = score_frame(batch, text, CONTRACT, version="v2", threshold=0.5)
    assert "scoring with the lightgbm package" in caplog.text
    assert np.array_equal(fallback.get_column("y_pred_proba").to_numpy(), expected)
