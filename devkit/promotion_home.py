"""A small driftgate home for promotion, canary and drill tests: synthetic rows, real LightGBM text models.

Not a test module (no ``test_`` prefix): imported by tests/unit/test_{canary,drill,...}.py,
tests/flows/test_promotion.py and benchmarks/rollback.py.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import polars as pl

from tasks.core.settings import DriftgateSettings, load_settings
from tasks.data.contract import FeatureSpec, ModelContract, feature_matrix
from tasks.registry.local import LocalRegistry
from tasks.registry.model import ModelVersion
from tasks.resources.workspace import CONTRACT_FILE, MODEL_FILE, REFERENCE_FILE, make_registry

MODEL = "toy"
REGIONS = ["north", "south", "east"]
CONTRACT = ModelContract(
    name=MODEL,
    features=[
        FeatureSpec(name="x1", kind="numeric"),
        FeatureSpec(name="x2", kind="numeric"),
        FeatureSpec(name="x3", kind="numeric"),
        FeatureSpec(name="region", kind="categorical", categories=REGIONS),
    ],
    target="y",
    entity_id="id",
    timestamp="ts",
    slices=["region"],
)


def rows(n: int, *, seed: int, first_id: int = 0, start: datetime | None = None) -> pl.DataFrame:
    """Labelled rows: P(y=1) = sigmoid(1.5 x1 - x2 + 0.5 x3 + region effect)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    region = rng.choice(len(REGIONS), size=n)
    logit = 1.5 * x[:, 0] - 1.0 * x[:, 1] + 0.5 * x[:, 2] + np.array([0.0, 0.4, -0.4])[region]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    start = start or datetime(2026, 1, 1)
    return pl.DataFrame(
        {
            "id": np.arange(first_id, first_id + n, dtype=np.int64),
            "ts": [start + timedelta(seconds=int(s)) for s in np.sort(rng.uniform(0, 86_400, n))],
            "x1": x[:, 0],
            "x2": x[:, 1],
            "x3": x[:, 2],
            "region": [REGIONS[i] for i in region],
            "y": y,
        }
    )


def train_text(frame: pl.DataFrame, *, flip_labels: bool = False, features: int = 4, rounds: int = 25) -> str:
    """A LightGBM text model; ``flip_labels`` makes a degraded one, ``features`` < 4 one that cannot score."""
    matrix = feature_matrix(frame, CONTRACT)[:, :features]
    labels = frame.get_column("y").to_numpy()
    labels = 1 - labels if flip_labels else labels
    params = {"objective": "binary", "verbosity": -1, "num_threads": 1, "num_leaves": 7, "seed": 1}
    booster = lgb.train(params, lgb.Dataset(matrix, labels), num_boost_round=rounds)
    return str(booster.model_to_string())


def scored_reference(frame: pl.DataFrame, text: str) -> bytes:
    booster = lgb.Booster(model_str=text)
    matrix = feature_matrix(frame, CONTRACT)
    if booster.num_feature() != matrix.shape[1]:
        proba = np.full(frame.height, 0.5)  # a broken model still needs a reference to be registered
    else:
        proba = np.asarray(booster.predict(matrix, num_threads=1))
    out = io.BytesIO()
    frame.with_columns(
        pl.Series("y_pred_proba", proba), pl.Series("y_pred", (proba >= 0.5).astype(np.int8))
    ).write_parquet(out)
    return out.getvalue()


@dataclass
class Home:
    root: Path
    settings: DriftgateSettings
    config: Path

    @property
    def registry(self) -> LocalRegistry:
        return make_registry(self.settings)

    def register(
        self, text: str, *, gate_passed: bool = True, reference_rows: int = 1500, seed: int = 11
    ) -> ModelVersion:
        reference = rows(reference_rows, seed=seed, first_id=10_000_000)
        return self.registry.register(
            MODEL,
            {
                MODEL_FILE: text.encode(),
                REFERENCE_FILE: scored_reference(reference, text),
                CONTRACT_FILE: self.settings.resolved_contract_path.read_bytes(),
            },
            {"gate_passed": gate_passed, "params": {"num_leaves": 7}},
            actor="test",
            reason="test version",
        )

    def batch(self, name: str, n: int, *, seed: int, first_id: int, labels: bool = False) -> tuple[Path, Path]:
        frame = rows(n, seed=seed, first_id=first_id)
        batch_path = self.root / "inputs" / f"{name}.parquet"
        labels_path = self.root / "inputs" / f"{name}-labels.parquet"
        batch_path.parent.mkdir(parents=True, exist_ok=True)
        frame.drop("y").write_parquet(batch_path)
        frame.select("id", "y").write_parquet(labels_path)
        return batch_path, labels_path


def make_home(root: Path, **settings: Any) -> Home:
    """A home with the toy contract; settings as in driftgate.yaml (written to <root>/driftgate.yaml)."""
    import yaml

    root.mkdir(parents=True, exist_ok=True)
    CONTRACT.save(root / "contract.yaml")
    values: dict[str, Any] = {
        "home": str(root),
        "model_name": MODEL,
        "tracking_mode": "disabled",
        "emit_events": True,
        "profiling": {"chunk_size": 500},
        **settings,
    }
    config = root / "driftgate.yaml"
    config.write_text(yaml.safe_dump(values))
    loaded = load_settings(config)
    loaded.ensure_dirs()
    return Home(root, loaded, config)


def good_and_bad_models(seed: int = 3) -> dict[str, str]:
    """Texts of a good champion, an equally good challenger, a degraded model and one that cannot score."""
    train = rows(3000, seed=seed)
    other = rows(3000, seed=seed + 1, first_id=50_000)
    return {
        "good": train_text(train),
        "good2": train_text(other),
        "degraded": train_text(train, flip_labels=True),
        "broken": train_text(train, features=2),
    }
