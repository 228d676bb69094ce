"""The gate's stated power is the power it has, and a failed gate that could not tell says so.

Two data-generating processes: binormal score pairs (equal-variance, correlated through a shared term) at
prevalence 0.5 and 0.02, and scores seen through independent noise on a logistic latent risk.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from tasks.core.settings import GateSettings
from tasks.gate.evaluate import evaluate_gate
from tasks.gate.paired_tests import _delong_pair, one_sided_p
from tasks.gate.power import PowerCheck, power_check, slice_rule_power, standard_error_from_interval


def _binormal(
    rng: np.random.Generator, rows: int, prevalence: float, effect: float, auc: float = 0.8, rho: float = 0.5
):
    labels = (rng.random(rows) < prevalence).astype(np.int8)
    mu_champion = math.sqrt(2.0) * norm.ppf(auc)
    mu_candidate = math.sqrt(2.0) * norm.ppf(auc + effect)
    shared, own = rng.normal(size=rows), rng.normal(size=rows)
    candidate = mu_candidate * labels + shared
    champion = mu_champion * labels + rho * shared + math.sqrt(1.0 - rho * rho) * own
    return labels, candidate, champion


def _latent(rng: np.random.Generator, rows: int, noise_cand: float, noise_champ: float):
    latent = rng.normal(size=rows)
    labels = (rng.random(rows) < 1.0 / (1.0 + np.exp(-(1.5 * latent - 3.0)))).astype(np.int8)  # ~7 % positive
    return labels, latent + noise_cand * rng.normal(size=rows), latent + noise_champ * rng.normal(size=rows)


@pytest.mark.slow  # 300 holdouts per case: 5-11 s each
@pytest.mark.parametrize(
    ("process", "rows", "prevalence", "effect"),
    [("binormal", 20_000, 0.5, 0.01), ("binormal", 50_000, 0.02, 0.01), ("latent", 20_000, None, None)],
)
def test_predicted_power_matches_the_measured_rejection_rate(process: str, rows: int, prevalence, effect) -> None:
    """Mean predicted power (from each holdout's own DeLong variance) vs the share of holdouts that reject."""
    rng = np.random.default_rng(11)
    alpha, replicates = 0.05, 300
    predicted, rejected = [], 0
    if process == "latent":  # the pair's true AUC gain, from two million rows
        big = _latent(np.random.default_rng(3), 2_000_000, 0.9, 1.0)
        auc_c, auc_h, _ = _delong_pair(*big)
        latent_effect = auc_c - auc_h
    for _ in range(replicates):
        if process == "binormal":
            labels, cand, champ = _binormal(rng, rows, prevalence, effect)
            true_effect = effect
        else:
            labels, cand, champ = _latent(rng, rows, 0.9, 1.0)
            true_effect = latent_effect
        auc_c, auc_h, var = _delong_pair(labels, cand, champ)
        _, p = one_sided_p(auc_c - auc_h, 0.0, var)
        rejected += p < alpha
        check = power_check(
            metric="roc_auc",
            standard_error=math.sqrt(var),
            effect=true_effect,
            bound=0.0,
            alpha=alpha,
            min_power=0.8,
            rows=rows,
            positives=int(labels.sum()),
        )
        predicted.append(check.power)
    measured = rejected / replicates
    mc = math.sqrt(max(measured * (1 - measured), 0.01) / replicates)
    assert abs(measured - float(np.mean(predicted))) <= 3 * mc + 0.03, (measured, float(np.mean(predicted)))


def test_an_underpowered_failure_is_inconclusive_and_says_how_many_rows_would_settle_it() -> None:
    rng = np.random.default_rng(5)
    settings = GateSettings(n_bootstrap=200)
    labels, cand, champ = _binormal(rng, 5_000, 0.02, 0.01)  # ~100 positives: a 0.01 gain cannot be seen
    decision = evaluate_gate(labels, cand, champ, {}, settings)
    assert not decision.passed and decision.inconclusive
    power = decision.power
    assert isinstance(power, PowerCheck) and power.underpowered and power.power < 0.3
    assert power.more_rows > 10_000 and 0 < power.more_positives < power.more_rows
    assert "inconclusive" in decision.reasons[-1] and f"{power.more_rows} more labelled rows" in decision.reasons[-1]
    assert decision.rule("power") is not None and decision.rule("power").verdict == "reported"
    # at the rows it asks for, the same holdout's standard error gives the promised power
    scaled = power_check(
        metric="roc_auc",
        standard_error=power.standard_error * math.sqrt(power.rows / power.rows_needed),
        effect=power.effect,
        bound=power.bound,
        alpha=power.alpha,
        min_power=power.min_power,
        rows=power.rows_needed,
        positives=power.positives,
    )
    assert scaled.power == pytest.approx(0.8, abs=0.01)
    # and the decision serializes with it for the audit store
    assert decision.to_dict()["power"]["rows_needed"] == power.rows_needed
    # the policy waits for the labelled rows that give the next holdout those rows (holdout = 30 % of a window)
    assert decision.awaiting_labels(0.3) == power.labelled_rows_for(0.3) == math.ceil(power.more_rows / 0.3)


def test_a_well_powered_failure_is_a_real_no() -> None:
    rng = np.random.default_rng(6)
    labels, cand, champ = _binormal(rng, 40_000, 0.5, 0.0)  # no gain, 20k positives
    decision = evaluate_gate(labels, cand, champ, {}, GateSettings(n_bootstrap=200))
    if decision.passed:  # a false promotion (probability alpha): this seed is not one
        pytest.fail("seed 6 promoted a no-better candidate")
    assert not decision.inconclusive and decision.power is not None and decision.power.power > 0.9
    assert decision.awaiting_labels(0.3) is None  # a real "no" is not waited on
    assert "inconclusive" not in decision.reasons[-1]


def test_a_slice_shown_inferior_is_conclusive_whatever_the_power() -> None:
    rng = np.random.default_rng(7)
    labels, cand, champ = _binormal(rng, 5_000, 0.3, 0.0)
    segment = np.where(rng.random(5_000) < 0.5, "a", "b")
    cand = np.where(segment == "b", rng.normal(size=5_000), cand)  # the candidate is useless on slice b
    decision = evaluate_gate(labels, cand, champ, {"segment": segment}, GateSettings(n_bootstrap=200))
    assert not decision.passed and not decision.inconclusive


def test_slice_rule_power_matches_holm_in_closed_form() -> None:
    """One slice: the one-sided z-test's power. Two independent equal slices: Holm passes both when both clear
    z(1 - alpha/2), or one clears it and the other clears z(1 - alpha) only."""
    alpha, gain, se = 0.05, 0.04, 0.02
    one = norm.cdf(gain / se - norm.ppf(1 - alpha))
    assert slice_rule_power([se], effect=0.02, margin=0.02, alpha=alpha) == pytest.approx(one, abs=0.01)
    q1, q2 = norm.sf(norm.ppf(1 - alpha) - gain / se), norm.sf(norm.ppf(1 - alpha / 2) - gain / se)
    two = q2 * q2 + 2 * (q1 - q2) * q2
    assert slice_rule_power([se, se], effect=0.02, margin=0.02, alpha=alpha) == pytest.approx(two, abs=0.01)
    assert slice_rule_power([], effect=0.02, margin=0.02, alpha=alpha) == 1.0
    # a pure function: the same inputs, the same power
    assert slice_rule_power([se, 0.03], effect=0.01, margin=0.02, alpha=alpha) == slice_rule_power(
        [se, 0.03], effect=0.01, margin=0.02, alpha=alpha
    )


def test_the_stated_power_is_the_whole_gates_and_its_rows_reach_it() -> None:
    common = {"metric": "roc_auc", "effect": 0.02, "bound": 0.0, "alpha": 0.05, "min_power": 0.8, "rows": 10_000}
    check = power_check(standard_error=0.0159, positives=200, slices=[0.032] * 4, slice_margin=0.02, **common)
    alone = power_check(standard_error=0.0159, positives=200, **common)
    assert check.superiority == pytest.approx(alone.power) and check.slice_power < 0.05
    assert check.power == pytest.approx(check.superiority * check.slice_power)
    assert check.underpowered and check.rows_needed is not None and check.rows_needed > alone.rows_needed
    assert "slice non-inferiority over 4 slices" in check.describe()
    scale = math.sqrt(check.rows / check.rows_needed)  # every standard error shrinks as 1/sqrt(rows)
    there = power_check(
        standard_error=0.0159 * scale, positives=200, slices=[0.032 * scale] * 4, slice_margin=0.02, **common
    )
    assert there.power == pytest.approx(0.8, abs=0.015)


def test_a_low_prevalence_gate_short_of_slice_power_is_inconclusive_not_no() -> None:
    """10k rows at 2 % positives, 4 slices of ~50 positives, a real +0.02 AUC gain: superiority passes (seed 0),
    but no slice can show non-inferiority within 0.02; the gate says how many labels would settle it."""
    from benchmarks.gate_calibration import simulate_pair

    labels, cand, champ, segment = simulate_pair(np.random.default_rng(0), 10_000, 0.8, 0.02, 0.5, 0.02)
    decision = evaluate_gate(
        labels, cand, champ, {"segment": segment}, GateSettings(n_bootstrap=100, target_effect=0.02)
    )
    assert decision.rule("superiority").verdict == "pass" and decision.rule("slices").verdict == "fail"
    assert not decision.passed and decision.inconclusive
    power = decision.power
    assert power is not None and power.slice_power < 0.05 and power.power < power.superiority
    assert power.more_rows > 50_000 and power.more_positives > 1_000
    assert f"{power.more_rows} more labelled rows" in decision.reasons[-1]
    assert decision.awaiting_labels(0.3) == math.ceil(power.more_rows / 0.3)


def test_standard_error_read_off_an_interval() -> None:
    z = norm.ppf(0.95)
    assert standard_error_from_interval(-z * 0.01, z * 0.01, 0.05) == pytest.approx(0.01)
    assert standard_error_from_interval(None, 0.1, 0.05) is None
    with pytest.raises(ValueError, match="min_power"):
        power_check(
            metric="m", standard_error=0.01, effect=0.01, bound=0, alpha=0.05, min_power=1.2, rows=9, positives=1
        )
