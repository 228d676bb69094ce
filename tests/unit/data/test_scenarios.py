"""The scenario registry: each scenario's files are valid, and its truth is what the data really does."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import polars as pl
import pytest
import yaml
from scipy.stats import ks_2samp
from sklearn.metrics import roc_auc_score

from tasks.core.errors import ConfigError, DataError
from tasks.data.contract import ModelContract, categorical_indices, feature_matrix, infer_contract, validate_batch
from tasks.data.files import STATIONARY, ScenarioGenerator, Shift, load_employment
from tasks.data.scenarios import (
    SCENARIOS,
    Phase,
    Population,
    Scenario,
    ScenarioPlan,
    prepare,
    scenario,
    scenario_names,
)
from tasks.resources.lake import batch_id_for

CAR_LOAN_NUMERIC = ["car_value", "debt_to_income_ratio", "loan_length", "driver_tenure"]
PARAMS = {"objective": "binary", "num_threads": 1, "verbose": -1, "learning_rate": 0.1, "num_leaves": 31, "seed": 0}


def _train(frame: pl.DataFrame, contract: ModelContract, rounds: int = 60) -> lgb.Booster:
    data = lgb.Dataset(
        feature_matrix(frame, contract),
        frame.get_column(contract.target).to_numpy(),
        categorical_feature=categorical_indices(contract),
        free_raw_data=True,
    )
    return lgb.train(PARAMS, data, num_boost_round=rounds)


def _auc(model: lgb.Booster, frame: pl.DataFrame, contract: ModelContract) -> float:
    scores = np.asarray(model.predict(feature_matrix(frame, contract)))
    return float(roc_auc_score(frame.get_column(contract.target).to_numpy(), scores))


def _labelled(plan: ScenarioPlan, phase: str) -> pl.DataFrame:
    """Every batch of a phase with its labels joined back."""
    frames = [
        pl.read_parquet(b.batch).join(pl.read_parquet(b.labels), on="id", how="left")
        for b in plan.batches
        if b.phase == phase
    ]
    return pl.concat(frames)


class CarLoan:
    """Scenarios of one seed prepared once at 4,000 rows per batch, and a champion trained on the reference."""

    def __init__(self, root: Path) -> None:
        self.plans = {
            name: prepare(name, root / name, seed=11, rows_per_batch=4000, stationary=3, changed=3)
            for name in ("concept", "covariate", "benign", "broken", "noise")
        }
        # One champion per contract (benign's has the noise feature too), trained on a sample of the reference.
        self.champions: dict[tuple[str, ...], tuple[ModelContract, lgb.Booster]] = {}
        for plan in self.plans.values():
            contract = ModelContract.load(plan.contract)
            if tuple(contract.feature_names) not in self.champions:
                model = _train(pl.read_parquet(plan.reference).sample(20_000, seed=0), contract)
                self.champions[tuple(contract.feature_names)] = (contract, model)

    def champion(self, name: str) -> tuple[ModelContract, lgb.Booster]:
        features = ModelContract.load(self.plans[name].contract).feature_names
        return self.champions[tuple(features)]

    def auc(self, name: str, phase: str) -> float:
        contract, model = self.champion(name)
        return _auc(model, _labelled(self.plans[name], phase), contract)


@pytest.fixture(scope="module")
def car_loan(tmp_path_factory: pytest.TempPathFactory) -> CarLoan:
    return CarLoan(tmp_path_factory.mktemp("car-loan"))


# --- the registry -----------------------------------------------------------------------------------------
def test_registry_names_and_descriptions() -> None:
    assert scenario_names() == ("concept", "covariate", "benign", "broken", "noise", "employment", "wide")
    for name in scenario_names():
        spec = scenario(name, stationary=20, changed=4)
        assert spec.name == name and spec.n_batches == 24
        text = spec.describe()
        assert all(f"({p.name})" in text for p in spec.phases)
        assert sum(b.phase.name == "stationary" for b in spec.batches()) >= 20
    broken = scenario("broken", stationary=2, changed=3)
    assert [(p.name, p.batches, p.expected) for p in broken.phases] == [
        ("stationary", 2, "NONE"),
        ("units", 2, "BLOCK"),
        ("nulls", 1, "BLOCK"),
    ]
    assert [b.batch_id for b in scenario("noise", stationary=99, changed=1).batches()][-2:] == [
        "099-stationary",
        "100-noise",
    ]
    with pytest.raises(ConfigError, match="known: concept"):
        scenario("drifty")
    with pytest.raises(ConfigError, match="negative"):
        scenario("concept", stationary=-1)


def test_truth_of_each_scenario() -> None:
    changed = {name: SCENARIOS[name](1, 1).phases[-1] for name in scenario_names()}
    truth = {name: (p.degraded, p.retrain_helps, p.expected) for name, p in changed.items()}
    assert truth == {
        "concept": (True, True, "RETRAIN"),
        "covariate": (True, False, "RETRAIN"),
        "benign": (False, False, "ALERT"),
        "broken": (False, False, "BLOCK"),
        "noise": (True, False, "RETRAIN"),
        "employment": (False, False, "NONE"),
        "wide": (True, True, "RETRAIN"),
    }


def test_phases_and_scenarios_validate_themselves() -> None:
    with pytest.raises(ConfigError, match="exactly when"):
        Phase("drifted", 2, Shift(label_noise=0.1), degraded=True)
    with pytest.raises(ConfigError, match="only help"):
        Phase("odd", 2, Shift(label_noise=0.1), retrain_helps=True)
    with pytest.raises(ConfigError, match="unchanged data"):
        Phase("stationary", 2, STATIONARY, expected="ALERT")
    with pytest.raises(ConfigError, match="file-name safe"):
        Phase("Day 1", 2)
    with pytest.raises(ConfigError, match="at least one batch"):
        Phase("stationary", 0)
    base = Scenario.concept(2, 2)
    with pytest.raises(ConfigError, match="not features"):
        Scenario(**{**base.__dict__, "slices": ("nope",)})
    with pytest.raises(ConfigError, match="taken in order"):
        Scenario(
            **{
                **Scenario.employment(2, 0).__dict__,
                "phases": (Phase("tilted", 1, Shift(covariate={"AGEP": 1.0}), degraded=True, expected="RETRAIN"),),
            }
        )
    with pytest.raises(ConfigError, match="never resampled"):
        Population("employment-MA", resampled=True)


# --- the files --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", scenario_names())
def test_every_scenario_writes_files_the_pipeline_accepts(name: str, tmp_path: Path) -> None:
    from tasks.core.settings import load_settings

    plan = prepare(name, tmp_path, seed=3, rows_per_batch=300, stationary=2, changed=2, label_delay=1)
    reference = pl.read_parquet(plan.reference)
    contract = ModelContract.load(plan.contract)
    spec = plan.scenario
    again = infer_contract(
        reference,
        name=name,
        target=spec.target,
        entity_id=spec.entity_id,
        timestamp=spec.timestamp,
        slices=list(spec.slices),
    )
    assert again == contract and contract.feature_names == list(spec.population.features)
    truth = yaml.safe_load(plan.truth.read_text())
    assert truth == {"batches": plan.truth_map()}
    seen: set[int] = set(reference.get_column("id").to_list())
    for batch in plan.batches:
        assert batch_id_for(str(batch.batch)) == batch.batch_id
        features = pl.read_parquet(batch.batch)
        labels = pl.read_parquet(batch.labels)
        assert spec.target not in features.columns and labels.columns == [spec.entity_id, spec.target]
        validate_batch(features, contract, source=batch.batch_id)
        ids = features.get_column("id")
        assert ids.n_unique() == batch.rows == 300 and ids.to_list() == labels.get_column("id").to_list()
        assert not seen & set(ids.to_list())
        seen |= set(ids.to_list())
    assert yaml.safe_load(plan.plan.read_text()) == plan.to_dict()
    settings = load_settings(plan.config)
    assert settings.model_name == name and settings.emit_events is False
    assert settings.profiling.chunk_size == 300
    steps = plan.schedule()
    assert [s.batch.batch_id for s in steps] == [b.batch_id for b in plan.batches]
    assert [[b.batch_id for b in s.labels] for s in steps] == [[]] + [[b.batch_id] for b in plan.batches[:-1]]


def test_prepare_is_seeded_and_car_loan_scenarios_share_their_stationary_batches(tmp_path: Path) -> None:
    a = prepare("noise", tmp_path / "a", seed=5, rows_per_batch=200, stationary=1, changed=1)
    b = prepare("noise", tmp_path / "b", seed=5, rows_per_batch=200, stationary=1, changed=1)
    c = prepare("concept", tmp_path / "c", seed=5, rows_per_batch=200, stationary=1, changed=1)
    for x, y in zip(a.batches, b.batches, strict=True):
        assert pl.read_parquet(x.labels).equals(pl.read_parquet(y.labels))
    assert pl.read_parquet(a.batches[0].batch).equals(pl.read_parquet(c.batches[0].batch))
    with pytest.raises(ConfigError, match="rows_per_batch"):
        prepare("noise", tmp_path / "d", rows_per_batch=10)


# --- the truth, measured ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_concept_changes_labels_in_the_segment_not_the_features(car_loan: CarLoan) -> None:
    plan = car_loan.plans["concept"]
    before, after = _labelled(plan, "stationary"), _labelled(plan, "concept")
    for column in CAR_LOAN_NUMERIC:
        assert ks_2samp(before.get_column(column), after.get_column(column)).pvalue > 1e-3, column
    for column in ("salary_range", "size_of_downpayment"):
        share = [f.get_column(column).value_counts(normalize=True).sort(column) for f in (before, after)]
        assert np.abs(share[0].get_column("proportion") - share[1].get_column("proportion")).max() < 0.02

    def rate(frame: pl.DataFrame, segment: bool) -> float:
        inside = pl.col("salary_range") == "60K+ €"
        return float(frame.filter(inside if segment else ~inside).get_column("repaid").mean())  # type: ignore[arg-type]

    assert rate(before, True) - rate(after, True) > 0.15  # 60K+ € earners used to repay, now mostly default
    assert abs(rate(before, False) - rate(after, False)) < 0.03
    assert car_loan.auc("concept", "stationary") - car_loan.auc("concept", "concept") > 0.05


@pytest.mark.slow
def test_covariate_shift_really_degrades_a_reference_trained_model(car_loan: CarLoan) -> None:
    plan = car_loan.plans["covariate"]
    before, after = _labelled(plan, "stationary"), _labelled(plan, "covariate")
    drop = car_loan.auc("covariate", "stationary") - car_loan.auc("covariate", "covariate")
    assert drop > 0.02
    std = before.get_column("driver_tenure").std()
    assert before.get_column("driver_tenure").mean() - after.get_column("driver_tenure").mean() > 0.5 * std  # type: ignore[operator]


@pytest.mark.slow
def test_benign_shift_moves_only_the_noise_feature_and_not_performance(car_loan: CarLoan) -> None:
    plan = car_loan.plans["benign"]
    before, after = _labelled(plan, "stationary"), _labelled(plan, "benign")
    assert ks_2samp(before.get_column("noise"), after.get_column("noise")).pvalue < 1e-50
    for column in CAR_LOAN_NUMERIC:
        assert ks_2samp(before.get_column(column), after.get_column(column)).pvalue > 1e-3, column
    assert abs(car_loan.auc("benign", "stationary") - car_loan.auc("benign", "benign")) < 0.01


@pytest.mark.slow
def test_broken_batches_fail_quality_as_intended(car_loan: CarLoan) -> None:
    from tasks.core.settings import ProfilingSettings
    from tasks.drift.profiling import profile_batch
    from tasks.drift.reference import fit_reference_profile

    plan = car_loan.plans["broken"]
    contract = ModelContract.load(plan.contract)
    reference = pl.read_parquet(plan.reference)
    settings = ProfilingSettings(chunk_size=4000, reference_chunks=5)
    profile = fit_reference_profile(reference.head(10_000), contract, settings, multivariate=False)
    top = reference.get_column("car_value").max()
    checks: dict[str, set[tuple[str, str | None, str]]] = {}
    for batch in plan.batches:
        frame = validate_batch(pl.read_parquet(batch.batch), contract, source=batch.batch_id)  # the schema holds
        if batch.phase == "units":
            assert frame.get_column("car_value").min() > 50 * top  # type: ignore[operator]
        if batch.phase == "nulls":
            assert frame.get_column("debt_to_income_ratio").null_count() / frame.height > 0.8
        issues = profile_batch(profile, frame, contract, settings, source=batch.batch_id).quality.issues
        checks.setdefault(batch.phase, set()).update((i.check, i.column, i.severity) for i in issues)
    assert checks["stationary"] == set()
    assert ("missing_rate", "debt_to_income_ratio", "fail") in checks["nulls"]
    # Every value far beyond the reference range: broken data, not drift, so quality fails (BLOCK).
    assert checks["units"] == {("far_out_of_range", "car_value", "fail")}


@pytest.mark.slow
def test_label_noise_drops_realized_auc_and_keeps_features(car_loan: CarLoan) -> None:
    plan = car_loan.plans["noise"]
    before, after = _labelled(plan, "stationary"), _labelled(plan, "noise")
    for column in CAR_LOAN_NUMERIC:
        assert ks_2samp(before.get_column(column), after.get_column(column)).pvalue > 1e-3, column
    assert car_loan.auc("noise", "stationary") - car_loan.auc("noise", "noise") > 0.08


@pytest.mark.parametrize("name", ["concept", "covariate", "noise"])
@pytest.mark.slow
def test_retrain_helps_only_where_the_truth_says_so(name: str, car_loan: CarLoan) -> None:
    """A model retrained on 12,000 changed rows against the champion, on changed rows it has never seen."""
    spec = scenario(name, stationary=0, changed=1)
    phase = spec.phases[-1]
    _, pool = spec.population.load(seed=11)
    train_rows = ScenarioGenerator(pool[::2], seed=1).batch(12_000, phase.shift)
    test_rows = ScenarioGenerator(pool[1::2], seed=2).batch(8_000, phase.shift)
    contract, champion = car_loan.champion(name)
    gain = _auc(_train(train_rows, contract), test_rows, contract) - _auc(champion, test_rows, contract)
    assert (gain > 0.01) is phase.retrain_helps, gain


# --- real data --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_employment_is_real_stationary_data_in_order(tmp_path: Path) -> None:
    plan = prepare("employment", tmp_path, seed=1, rows_per_batch=4000, stationary=20, changed=0)
    assert len(plan.batches) == 20 and all(b.rows == 4000 and not b.truly_degraded for b in plan.batches)
    reference_file, analysis_file = load_employment()
    contract = ModelContract.load(plan.contract)
    reference = pl.read_parquet(plan.reference)
    columns = [*contract.feature_names, "employed"]
    assert reference.height == reference_file.height
    assert reference.select("id", *columns).sort("id").equals(reference_file.select("id", *columns).sort("id"))
    batches = pl.concat(
        [
            pl.read_parquet(b.batch).join(pl.read_parquet(b.labels), on="id").with_columns(batch=pl.lit(b.index))
            for b in plan.batches
        ]
    )
    assert batches.get_column("id").n_unique() == batches.height == 80_000
    real = batches.join(analysis_file, on="id", how="left", suffix="_file", maintain_order="left")
    for column in columns:
        assert real.get_column(column).equals(real.get_column(f"{column}_file"), check_names=False), column
    years = real.group_by("batch").agg(first=pl.col("year").min(), last=pl.col("year").max()).sort("batch")
    assert years.get_column("first").is_sorted() and years.get_column("last").is_sorted()
    assert years.get_column("first").min() == 2016 and years.get_column("last").max() == 2018
    assert real.get_column("timestamp").is_sorted()
    model = _train(reference.sample(20_000, seed=0), contract)
    aucs = [_auc(model, part, contract) for part in real.partition_by("batch", maintain_order=True)]
    assert max(aucs) - min(aucs) < 0.05, aucs
    with pytest.raises(ConfigError, match="at most 52 batches"):
        prepare("employment", tmp_path / "big", rows_per_batch=4000, stationary=50, changed=10)


# --- the generator's new shifts -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": np.arange(2000, dtype=np.int64),
            "x": np.linspace(1.0, 2.0, 2000),
            "c": ["a", "b"] * 1000,
            "y": np.tile(np.array([0, 1], dtype=np.int8), 1000),
        }
    )


def test_take_hands_out_real_rows_in_order(small: pl.DataFrame) -> None:
    gen = ScenarioGenerator(small, target="y", seed=0, start=None)
    first = gen.take(500)
    assert first.get_column("id").to_list() == list(range(500)) and first.get_column("x").equals(small["x"][:500])
    gen.skip_to(1500)
    second = gen.take(400)
    assert second.get_column("id").to_list() == list(range(1500, 1900))
    assert second.get_column("timestamp").min() > first.get_column("timestamp").max()  # type: ignore[operator]
    with pytest.raises(DataError, match="has 100 of 2000 left"):
        gen.take(200)
    with pytest.raises(DataError, match="cannot skip"):
        gen.skip_to(10)
    with pytest.raises(DataError, match="resamples"):
        gen.take(10, Shift(covariate={"x": 1.0}))


def test_label_noise_scale_offset_and_nulls(small: pl.DataFrame) -> None:
    gen = ScenarioGenerator(small, target="y", seed=0)
    shift = Shift(label_noise=0.2, scale={"x": 1000.0}, offset={"x": 1.0}, null_rate={"c": 0.5})
    out = gen.take(2000, shift)
    flipped = (out.get_column("y") != small.get_column("y")).mean()
    assert 0.17 < flipped < 0.23  # type: ignore[operator]
    assert out.get_column("x").equals(small.get_column("x") * 1000.0 + 1.0)
    assert 0.45 < out.get_column("c").null_count() / 2000 < 0.55
    assert not shift.is_stationary and STATIONARY.is_stationary and Shift(scale={"x": 1.0}).is_stationary
    assert "x ×1000" in shift.describe() and STATIONARY.describe() == "stationary"
    with pytest.raises(DataError, match="label noise"):
        Shift(label_noise=1.5)
    with pytest.raises(DataError, match="numeric"):
        gen.batch(10, Shift(scale={"c": 2.0}))
