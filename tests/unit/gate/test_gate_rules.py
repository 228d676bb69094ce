"""Each rule of the gate beyond DeLong superiority and slices: McNemar/accuracy, business cost, regression
differences, back-test, stress, inference budget, first-model floors, and the calibration at reduced size."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from scipy.stats import binom
from sklearn.metrics import mean_absolute_error, mean_squared_error, roc_auc_score

from tasks.core.errors import ConfigError, ContractError, GateError
from tasks.core.settings import CostMatrix, GateSettings, load_settings
from tasks.data.contract import infer_contract
from tasks.gate.business import classification_costs, constant_decision_cost, regression_costs
from tasks.gate.evaluate import evaluate_gate
from tasks.gate.paired_tests import (
    accuracy_comparison,
    mcnemar_test,
    paired_bootstrap_mean_diff,
    regression_comparison,
    weighted_roc_auc,
)
from tasks.gate.results import BacktestData
from tasks.gate.rules import gate_slices
from tasks.gate.stress import StressScenario
from tasks.training.train import InferenceCost

ROOT = Path(__file__).resolve().parents[3]


def _latent_pair(rng: np.random.Generator, n: int, noise_cand: float, noise_champ: float):
    latent = rng.normal(size=n)
    labels = (rng.random(n) < 1.0 / (1.0 + np.exp(-1.5 * latent))).astype(np.int8)
    candidate = latent + noise_cand * rng.normal(size=n)
    champion = latent + noise_champ * rng.normal(size=n)
    return labels, candidate, champion


def _probabilities(scores: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-1.5 * scores))


def _rule(decision: Any, name: str) -> Any:
    rule = decision.rule(name)
    assert rule is not None, [r.rule for r in decision.rules]
    return rule


# --- statistics against reference implementations -------------------------------------------------


def test_weighted_auc_equals_sklearn_with_ties() -> None:
    rng = np.random.default_rng(0)
    labels, scores, _ = _latent_pair(rng, 2000, 1.0, 1.0)
    scores = np.round(scores, 1)
    weights = rng.exponential(size=labels.size)
    assert weighted_roc_auc(labels, scores, weights) == pytest.approx(
        roc_auc_score(labels, scores, sample_weight=weights), abs=1e-12
    )
    assert weighted_roc_auc(labels, scores, np.ones(labels.size)) == pytest.approx(roc_auc_score(labels, scores))
    with pytest.raises(GateError, match="must not be negative"):
        weighted_roc_auc(labels, scores, -weights)


@pytest.mark.parametrize("seed", [1, 2])
def test_mcnemar_matches_statsmodels(seed: int) -> None:
    from statsmodels.stats.contingency_tables import mcnemar

    rng = np.random.default_rng(seed)
    labels, cand, champ = _latent_pair(rng, 400, 0.8, 1.0)
    pred_a, pred_b = (cand > 0).astype(int), (champ > 0).astype(int)
    b, c, chi2, p_chi2, p_exact = mcnemar_test(labels, pred_a, pred_b)
    right_a, right_b = pred_a == labels, pred_b == labels
    table = [
        [np.sum(right_a & right_b), np.sum(right_a & ~right_b)],
        [np.sum(~right_a & right_b), np.sum(~right_a & ~right_b)],
    ]
    assert (b, c) == (table[0][1], table[1][0])
    exact = mcnemar(table, exact=True)
    approx = mcnemar(table, exact=False, correction=True)
    assert p_exact == pytest.approx(exact.pvalue, abs=1e-12)
    assert chi2 == pytest.approx(approx.statistic, abs=1e-12)
    assert p_chi2 == pytest.approx(approx.pvalue, abs=1e-12)


def test_accuracy_superiority_uses_exact_mcnemar_or_wald() -> None:
    rng = np.random.default_rng(3)
    labels, cand, champ = _latent_pair(rng, 3000, 0.6, 1.2)
    exact = accuracy_comparison(labels, _probabilities(cand), _probabilities(champ), threshold=0.5, bound=0.0,
                                confidence=0.9)  # fmt: skip
    b, c = exact.candidate_only_correct, exact.champion_only_correct
    assert exact.p_superiority == pytest.approx(binom.sf(b - 1, b + c, 0.5))
    assert exact.diff == pytest.approx(exact.candidate_accuracy - exact.champion_accuracy)
    assert exact.ci_low < exact.diff < exact.ci_high
    wald = accuracy_comparison(labels, _probabilities(cand), _probabilities(champ), threshold=0.5, bound=0.01,
                               confidence=0.9, bootstrap=(500, 0))  # fmt: skip
    assert wald.method.startswith("Wald") and wald.p_superiority > exact.p_superiority
    assert wald.ci_low < wald.diff < wald.ci_high


def test_paired_bootstrap_of_a_mean_matches_the_normal_interval() -> None:
    rng = np.random.default_rng(4)
    d = rng.normal(0.1, 1.0, size=5000)
    mean, low, high = paired_bootstrap_mean_diff(d, n_boot=2000, seed=0, confidence=0.9)
    half = 1.6449 * d.std(ddof=1) / math.sqrt(d.size)
    assert mean == pytest.approx(d.mean())
    assert low == pytest.approx(mean - half, abs=0.15 * half) and high == pytest.approx(mean + half, abs=0.15 * half)


def test_regression_differences_match_sklearn_and_detect_a_better_model() -> None:
    rng = np.random.default_rng(5)
    y = rng.normal(size=3000)
    better, worse = y + 0.8 * rng.normal(size=y.size), y + 1.0 * rng.normal(size=y.size)
    result = regression_comparison(y, better, worse, n_boot=500, seed=0, confidence=0.9, cost_per_unit_error=2.0)
    assert result.rmse_candidate == pytest.approx(math.sqrt(mean_squared_error(y, better)))
    assert result.mae_champion == pytest.approx(mean_absolute_error(y, worse))
    assert result.rmse_improvement == pytest.approx(result.rmse_champion - result.rmse_candidate)
    assert result.rmse_p < 1e-6 and result.mae_p < 1e-6
    assert 0 < result.rmse_ci_low < result.rmse_improvement < result.rmse_ci_high
    assert result.cost_saving == pytest.approx(2.0 * result.mae_improvement)
    assert regression_costs(y, better, 2.0) == pytest.approx(2.0 * np.abs(y - better))


@pytest.mark.slow
def test_regression_tests_hold_alpha_and_intervals_cover() -> None:
    rng = np.random.default_rng(6)
    reps, alpha, confidence = 200, 0.05, 0.9
    rejections = {"rmse": 0, "mae": 0}
    covered = 0
    for rep in range(reps):
        y = rng.normal(size=400)
        a, b = y + rng.normal(size=y.size), y + rng.normal(size=y.size)  # equally good: improvement 0
        result = regression_comparison(y, a, b, n_boot=300, seed=rep, confidence=confidence)
        rejections["rmse"] += result.rmse_p < alpha
        rejections["mae"] += result.mae_p < alpha
        covered += result.mae_ci_low <= 0.0 <= result.mae_ci_high
    mc = math.sqrt(alpha * (1 - alpha) / reps)
    assert rejections["rmse"] / reps <= alpha + 3 * mc and rejections["mae"] / reps <= alpha + 3 * mc
    assert abs(covered / reps - confidence) <= 3 * math.sqrt(confidence * (1 - confidence) / reps)


def test_business_costs_price_each_decision() -> None:
    matrix = CostMatrix(false_positive=1.0, false_negative=5.0, true_positive=-0.5)
    labels = np.array([1, 1, 0, 0])
    scores = np.array([0.9, 0.2, 0.7, 0.1])
    assert classification_costs(labels, scores, 0.5, matrix).tolist() == [-0.5, 5.0, 1.0, 0.0]
    assert constant_decision_cost(labels, matrix) == (0.25, "everyone positive")
    with pytest.raises(ConfigError, match=r"needs gate\.cost_matrix"):
        load_settings(gate={"metric": "expected_cost"})


# --- the gate's rules -------------------------------------------------------------------------------


def test_accuracy_as_primary_criterion() -> None:
    rng = np.random.default_rng(7)
    labels, cand, champ = _latent_pair(rng, 4000, 0.5, 1.2)
    settings = GateSettings(metric="accuracy", n_bootstrap=200)
    decision = evaluate_gate(labels, _probabilities(cand), _probabilities(champ), {}, settings)
    assert decision.passed and decision.metric == "accuracy"
    assert decision.accuracy is not None and decision.diff == pytest.approx(decision.accuracy.diff)
    assert decision.primary_p == decision.accuracy.p_superiority < 0.05
    assert "exact one-sided McNemar" in _rule(decision, "superiority").detail
    assert _rule(decision, "roc_auc").verdict == "reported"
    assert decision.candidate_auc is not None and decision.candidate_auc > (decision.champion_auc or 1.0)


@pytest.mark.slow
def test_accuracy_primary_keeps_false_promotions_at_alpha() -> None:
    rng = np.random.default_rng(8)
    settings = GateSettings(metric="accuracy", n_bootstrap=100)
    pairs = 300
    promoted = 0
    for pair in range(pairs):
        labels, cand, champ = _latent_pair(rng, 1000, 1.0, 1.0)
        promoted += evaluate_gate(labels, _probabilities(cand), _probabilities(champ), {}, settings, seed=pair).passed
    assert promoted / pairs <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / pairs)


def test_expected_cost_as_primary_criterion() -> None:
    rng = np.random.default_rng(9)
    labels, cand, champ = _latent_pair(rng, 4000, 0.5, 1.2)
    matrix = CostMatrix(false_positive=1.0, false_negative=4.0)
    settings = GateSettings(metric="expected_cost", cost_matrix=matrix, n_bootstrap=200)
    decision = evaluate_gate(labels, _probabilities(cand), _probabilities(champ), {}, settings)
    cost = decision.cost
    assert decision.passed and cost is not None and cost.saving is not None and cost.saving > 0
    assert decision.candidate_metric == pytest.approx(
        classification_costs(labels, _probabilities(cand), 0.5, matrix).mean()
    )
    assert decision.diff == pytest.approx(cost.saving)
    same = evaluate_gate(labels, _probabilities(champ), _probabilities(champ), {}, settings)
    assert not same.passed and same.diff == 0.0
    # With AUC primary the cost is still reported, with its numbers.
    reported = evaluate_gate(labels, _probabilities(cand), _probabilities(champ), {}, settings.model_copy(
        update={"metric": "roc_auc"}))  # fmt: skip
    assert _rule(reported, "cost").verdict == "reported" and reported.cost is not None


def test_first_model_floors_in_the_primary_metric() -> None:
    rng = np.random.default_rng(10)
    labels, good, _ = _latent_pair(rng, 2000, 0.5, 1.0)
    noise = rng.random(labels.size)
    accuracy = GateSettings(metric="accuracy")
    assert evaluate_gate(labels, _probabilities(good), None, {}, accuracy).passed
    weak = evaluate_gate(labels, noise, None, {}, accuracy.model_copy(update={"floor_roc_auc": 0.5}))
    assert not weak.passed and "majority-class rate" in _rule(weak, "primary_floor").detail
    matrix = CostMatrix(false_positive=1.0, false_negative=1.0)
    cost = GateSettings(metric="expected_cost", cost_matrix=matrix, max_expected_cost=0.01)
    capped = evaluate_gate(labels, _probabilities(good), None, {}, cost)
    assert not capped.passed and "gate.max_expected_cost=0.01" in capped.reasons[2]
    assert capped.rules[1].verdict == "pass"  # the AUC floor itself passed


def _older(rng: np.random.Generator, noise_cand: float, noise_champ: float, n: int = 3000) -> BacktestData:
    labels, cand, champ = _latent_pair(rng, n, noise_cand, noise_champ)
    return BacktestData(labels, cand, champ, "2023-01-01 → 2023-06-30", "seeded older rows")


def test_backtest_fails_a_candidate_overfit_to_the_recent_window() -> None:
    rng = np.random.default_rng(11)
    labels, cand, champ = _latent_pair(rng, 3000, 0.5, 1.2)
    settings = GateSettings(backtest_margin=0.1)
    overfit = evaluate_gate(labels, cand, champ, {}, settings, backtest=_older(rng, 4.0, 0.8))
    assert not overfit.passed
    backtest = overfit.backtest
    assert backtest is not None and backtest.verdict == "fail" and backtest.diff is not None and backtest.diff < -0.1
    assert _rule(overfit, "superiority").verdict == "pass"
    assert "back-test on 3000 older rows" in _rule(overfit, "backtest").detail
    assert overfit.reasons[-1].startswith("gate: fail") and "backtest fail" in overfit.reasons[-1]
    steady = evaluate_gate(labels, cand, champ, {}, settings, backtest=_older(rng, 0.9, 0.8))
    assert steady.passed and steady.backtest is not None and steady.backtest.verdict == "pass"
    advisory = evaluate_gate(labels, cand, champ, {}, settings.model_copy(update={"advisory_rules": ["backtest"]}),
                             backtest=_older(rng, 4.0, 0.8))  # fmt: skip
    assert advisory.passed and not _rule(advisory, "backtest").blocking
    assert _rule(advisory, "backtest").verdict == "fail" and "(advisory)" in _rule(advisory, "backtest").detail


def test_backtest_without_enough_older_rows_is_skipped_and_says_why() -> None:
    rng = np.random.default_rng(12)
    labels, cand, champ = _latent_pair(rng, 2000, 0.5, 1.2)
    none = BacktestData(None, None, None, "n/a", "the candidate trained on every older row")
    skipped = evaluate_gate(labels, cand, champ, {}, GateSettings(), backtest=none)
    assert skipped.passed and _rule(skipped, "backtest").verdict == "skipped"
    assert "trained on every older row" in _rule(skipped, "backtest").detail
    few = evaluate_gate(labels, cand, champ, {}, GateSettings(), backtest=_older(rng, 0.5, 1.0, n=100))
    assert "100 older rows < gate.min_rows=500" in _rule(few, "backtest").detail
    with pytest.raises(GateError, match="mismatched back-test rows"):
        evaluate_gate(labels, cand, champ, {}, GateSettings(),
                      backtest=BacktestData(labels[:600], cand[:600], champ[:599], "p", "n"))  # fmt: skip


def _fragile_case(rng: np.random.Generator, n: int = 6000) -> tuple[np.ndarray, ...]:
    """The candidate ranks well where x < 1 and is blind where x > 1; the champion is uniformly decent."""
    labels, cand, champ = _latent_pair(rng, n, 0.3, 0.9)
    x = rng.normal(size=n)
    blind = x > 1.0
    cand[blind] = rng.normal(size=int(blind.sum()))
    return labels, cand, champ, x


def _tilts(x: np.ndarray, shift: float) -> list[StressScenario]:
    z = np.clip((x - x.mean()) / x.std(), -3, 3)
    out = []
    for sign in (1.0, -1.0):
        w = np.exp(sign * shift * z)
        out.append(StressScenario(f"x {'+' if sign > 0 else '-'}{shift:g} sd", "x", w / w.mean()))
    return out


@pytest.mark.slow
def test_stress_fails_a_candidate_much_more_fragile_than_the_champion() -> None:
    rng = np.random.default_rng(13)
    labels, cand, champ, x = _fragile_case(rng)
    settings = GateSettings(stress_margin=0.03)
    decision = evaluate_gate(labels, cand, champ, {}, settings, stress=_tilts(x, 1.0))
    by_name = {s.scenario: s for s in decision.stress}
    up = by_name["x +1 sd"]
    assert up.verdict == "fail" and up.extra_loss is not None and up.extra_loss > 0.03
    assert up.candidate_shifted < up.candidate_base
    assert by_name["x -1 sd"].verdict == "pass"
    assert not decision.passed and _rule(decision, "superiority").verdict == "pass"
    assert "x +1 sd extra loss" in _rule(decision, "stress").detail
    robust = evaluate_gate(labels, champ + 0.1 * rng.normal(size=labels.size), champ, {}, settings,
                           stress=_tilts(x, 1.0))  # fmt: skip
    assert all(s.verdict == "pass" for s in robust.stress)
    tiny = StressScenario("one row", "x", np.r_[np.full(labels.size - 1, 1e-6), 1.0])
    small = evaluate_gate(labels, cand, champ, {}, settings, stress=[tiny])
    assert small.stress[0].verdict == "too_small"
    with pytest.raises(GateError, match="has 10 weights"):
        evaluate_gate(labels, cand, champ, {}, settings, stress=[StressScenario("bad", "x", np.ones(10))])


def test_inference_budget_compares_latency_and_size_with_the_champion() -> None:
    rng = np.random.default_rng(14)
    labels, cand, champ = _latent_pair(rng, 2000, 0.5, 1.2)
    champion_cost = InferenceCost(20.0, 2_000_000, 100, 10_000, 5)
    settings = GateSettings(
        max_latency_ratio=2.0, latency_allowance_ms=30.0, max_size_ratio=2.0, size_allowance_bytes=0
    )
    slow = InferenceCost(90.0, 1_000_000, 300, 10_000, 5)
    failed = evaluate_gate(labels, cand, champ, {}, settings, candidate_cost=slow, champion_cost=champion_cost)
    assert not failed.passed and failed.inference is not None
    assert failed.inference.latency_ratio == pytest.approx(4.5) and failed.inference.latency_budget_ms == 40.0
    assert "x4.50" in _rule(failed, "inference").detail
    big = InferenceCost(25.0, 5_000_000, 300, 10_000, 5)
    assert not evaluate_gate(labels, cand, champ, {}, settings, candidate_cost=big, champion_cost=champion_cost).passed
    # Within the absolute allowance a ratio of small numbers does not block.
    fast_champion = InferenceCost(5.0, 2_000_000, 10, 10_000, 5)
    within = InferenceCost(25.0, 1_000_000, 300, 10_000, 5)
    assert evaluate_gate(labels, cand, champ, {}, settings, candidate_cost=within, champion_cost=fast_champion).passed
    advisory = settings.model_copy(update={"advisory_rules": ["inference"]})
    assert evaluate_gate(labels, cand, champ, {}, advisory, candidate_cost=slow, champion_cost=champion_cost).passed
    first = evaluate_gate(labels, cand, None, {}, settings, candidate_cost=slow)
    assert first.passed and _rule(first, "inference").verdict == "reported"


def test_failed_gates_are_recorded_as_fully_as_passed_ones() -> None:
    rng = np.random.default_rng(15)
    labels, cand, champ, x = _fragile_case(rng, n=3000)
    region = rng.choice(["a", "b"], size=labels.size)
    costs = {
        "candidate_cost": InferenceCost(10.0, 1000, 5, 10_000, 3),
        "champion_cost": InferenceCost(9.0, 900, 5, 10_000, 3),
    }
    settings = GateSettings(cost_matrix=CostMatrix(false_positive=1.0, false_negative=2.0), stress_margin=0.0)
    args: dict[str, Any] = {"backtest": _older(rng, 0.5, 1.0), "stress": _tilts(x, 1.0), **costs}
    failed = evaluate_gate(labels, cand, champ, {"region": region}, settings, **args)
    passed = evaluate_gate(
        labels, cand, champ, {"region": region}, settings.model_copy(update={"stress_margin": 1.0}), **args
    )
    assert not failed.passed and passed.passed
    rules = [
        "inputs",
        "superiority",
        "bootstrap",
        "mcnemar",
        "cost",
        "slices",
        "backtest",
        "stress",
        "inference",
        "power",
    ]
    assert [r.rule for r in failed.rules] == [r.rule for r in passed.rules] == rules
    assert len(failed.reasons) == len(failed.rules) + 1
    for decision in (failed, passed):
        data = json.loads(json.dumps(decision.to_dict()))
        assert {"rules", "stress", "backtest", "inference", "accuracy", "cost", "slices"} <= set(data)
        assert all(r["numbers"] for r in data["rules"] if r["rule"] != "slices" or r["verdict"] != "reported")
        assert data["diff"] == decision.diff and data["delong_p"] == decision.delong_p


# --- typed errors at the boundary ------------------------------------------------------------------


def test_slice_column_that_does_not_exist_is_caught_where_slices_are_set_up() -> None:
    frame = pl.DataFrame({"id": [1, 2], "region": ["a", "b"], "x": [0.1, 0.2], "label": [0, 1]})
    with pytest.raises(ContractError, match="not features: \\['nope'\\]"):
        infer_contract(frame, name="m", target="label", entity_id="id", slices=["nope"])
    with pytest.raises(GateError, match="slice column 'nope' is not in the holdout"):
        gate_slices(frame, ["region", "nope"])
    arrays = gate_slices(frame.with_columns(pl.lit(None, dtype=pl.String).alias("tier")), ["region", "tier"])
    assert arrays["region"].tolist() == ["a", "b"] and arrays["tier"].tolist() == [None, None]


# --- calibration at reduced size --------------------------------------------------------------------


def _calibration_module() -> Any:
    spec = importlib.util.spec_from_file_location("gate_calibration", ROOT / "benchmarks" / "gate_calibration.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_calibration_at_reduced_size_holds_alpha_and_has_power() -> None:
    calibration = _calibration_module()
    null = calibration.promotion_rates(pairs=200, rows=1000, effect=0.0, seed=0, with_accuracy=True)
    mc = math.sqrt(0.05 * 0.95 / null.pairs)
    assert null.driftgate <= 0.05 + 3 * mc
    assert null.accuracy_gate <= 0.05 + 3 * mc
    assert 0.4 <= null.naive <= 0.6
    strong = calibration.promotion_rates(pairs=40, rows=2000, effect=0.05, seed=1)
    assert strong.driftgate >= 0.8 and strong.naive == 1.0
