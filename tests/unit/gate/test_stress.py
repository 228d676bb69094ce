from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from tasks.core.errors import ConfigError, ContractError, MissingColumnError
from tasks.data.contract import FeatureSpec, ModelContract
from tasks.gate.stress import Z_CLIP, stress_scenarios, top_features

CONTRACT = ModelContract(
    name="synthetic",
    features=[
        FeatureSpec(name="x", kind="numeric"),
        FeatureSpec(name="flat", kind="numeric"),
        FeatureSpec(name="region", kind="categorical", categories=["a", "b", "c"]),
        FeatureSpec(name="member", kind="boolean"),
    ],
    target="label",
    entity_id="id",
)


def _frame(n: int = 20_000, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame(
        {
            "id": np.arange(n),
            "x": rng.normal(size=n),
            "flat": np.ones(n),
            "region": rng.choice(["a", "b", "c"], size=n, p=[0.6, 0.3, 0.1]),
            "member": rng.random(n) < 0.5,
            "label": rng.integers(0, 2, size=n),
        }
    )


def test_numeric_tilt_moves_the_mean_by_the_shift_in_standard_deviations() -> None:
    frame = _frame()
    scenarios = stress_scenarios(frame, CONTRACT, ["x", "flat"], shift=0.5, category_factor=3.0)
    # A constant feature cannot be shifted: it gives no scenario.
    assert [s.name for s in scenarios] == ["x +0.5 sd", "x -0.5 sd"]
    x = frame.get_column("x").to_numpy()
    for scenario, sign in zip(scenarios, (1, -1), strict=True):
        assert scenario.weights.mean() == pytest.approx(1.0)
        shifted_mean = float(np.average(x, weights=scenario.weights))
        # Exponential tilting of a standard normal by exp(s z) moves its mean by s (clipping at 3 sd aside).
        assert shifted_mean == pytest.approx(sign * 0.5, abs=0.03)
        assert 0.7 * x.size < scenario.effective_rows < x.size
    assert scenarios[0].weights.max() <= np.exp(0.5 * Z_CLIP) / scenarios[0].weights.mean() * 1.01


def test_category_boost_multiplies_one_category_share() -> None:
    frame = _frame()
    scenarios = stress_scenarios(frame, CONTRACT, ["region", "member"], shift=0.5, category_factor=3.0)
    names = [s.name for s in scenarios]
    assert names[:3] == ["region = a x3", "region = b x3", "region = c x3"]  # most frequent first
    assert set(names[3:]) == {"member = true x3", "member = false x3"}
    region = frame.get_column("region").to_numpy()
    share_c = float((region == "c").mean())
    boosted = scenarios[2]
    weighted_share = float(boosted.weights[region == "c"].sum() / boosted.weights.sum())
    assert weighted_share == pytest.approx(3 * share_c / (1 + 2 * share_c), rel=1e-9)


def test_top_features_merge_each_models_ranking() -> None:
    candidate = {"x": 5.0, "region": 9.0, "flat": 0.0, "member": 1.0}
    champion = {"x": 7.0, "member": 6.0, "region": 0.5, "flat": 0.0}
    assert top_features([candidate, champion], 2) == ["region", "x", "member"]
    assert top_features([candidate], 4) == ["region", "x", "member"]  # zero gain is never "important"
    assert top_features([candidate, champion], 0) == []


def test_bad_inputs_name_the_setting_or_column() -> None:
    frame = _frame(n=100)
    with pytest.raises(ConfigError, match=r"gate\.stress_shift"):
        stress_scenarios(frame, CONTRACT, ["x"], shift=0.0, category_factor=3.0)
    with pytest.raises(MissingColumnError, match="'x'"):
        stress_scenarios(frame.drop("x"), CONTRACT, ["x"], shift=0.5, category_factor=3.0)
    with pytest.raises(ContractError, match="'nope'"):
        stress_scenarios(frame, CONTRACT, ["nope"], shift=0.5, category_factor=3.0)
