from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from tasks.core.errors import GateError
from tasks.core.settings import GateSettings
from tasks.gate.evaluate import evaluate_gate
from tasks.gate.paired_tests import (
    _resampled_aucs,
    _tie_groups,
    delong_roc_test,
    holm_adjust,
    one_sided_p,
    paired_bootstrap_auc_diff,
    roc_auc,
)
from tasks.gate.results import MISSING_SLICE_VALUE


def _latent_pair(rng: np.random.Generator, n: int, noise_cand: float, noise_champ: float):
    """Labels from a latent risk; each model sees the risk through its own independent noise."""
    latent = rng.normal(size=n)
    labels = (rng.random(n) < 1.0 / (1.0 + np.exp(-1.5 * latent))).astype(np.int8)
    candidate = latent + noise_cand * rng.normal(size=n)
    champion = latent + noise_champ * rng.normal(size=n)
    return labels, candidate, champion


def _slow_delong(labels: np.ndarray, score_a: np.ndarray, score_b: np.ndarray):
    """Textbook DeLong (1988): O(m n) kernel matrices, structural components, their covariances."""
    pos, neg = labels == 1, labels == 0
    m, n = int(pos.sum()), int(neg.sum())
    v10, v01, aucs = [], [], []
    for scores in (score_a, score_b):
        x, y = scores[pos][:, None], scores[neg][None, :]
        psi = (x > y).astype(float) + 0.5 * (x == y)
        aucs.append(psi.mean())
        v10.append(psi.mean(axis=1))
        v01.append(psi.mean(axis=0))
    s10 = np.array([[np.sum((v10[i] - aucs[i]) * (v10[j] - aucs[j])) / (m - 1) for j in range(2)] for i in range(2)])
    s01 = np.array([[np.sum((v01[i] - aucs[i]) * (v01[j] - aucs[j])) / (n - 1) for j in range(2)] for i in range(2)])
    cov = s10 / m + s01 / n
    var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    z = (aucs[0] - aucs[1]) / math.sqrt(var)
    return aucs[0], aucs[1], var, z, 2 * norm.sf(abs(z))


# --- statistics ----------------------------------------------------------------------------------


def test_delong_aucs_equal_sklearn_with_ties() -> None:
    rng = np.random.default_rng(1)
    labels, a, b = _latent_pair(rng, 3000, 1.0, 1.3)
    a = np.round(a, 1)  # many ties: midranks must count them one half
    auc_a, auc_b, *_ = delong_roc_test(labels, a, b)
    assert auc_a == pytest.approx(roc_auc_score(labels, a), abs=1e-12)
    assert auc_b == pytest.approx(roc_auc_score(labels, b), abs=1e-12)
    assert roc_auc(labels, a) == pytest.approx(roc_auc_score(labels, a), abs=1e-12)


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_delong_variance_and_p_match_slow_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels, a, b = _latent_pair(rng, 400, 1.0, 1.2)
    b = np.round(b, 1)
    fast = delong_roc_test(labels, a, b)
    slow = _slow_delong(labels, a, b)
    for got, want in zip(fast, slow, strict=True):
        assert got == pytest.approx(want, abs=1e-10, rel=1e-10)


def test_delong_identical_scores_have_zero_variance_and_p_one() -> None:
    rng = np.random.default_rng(5)
    labels, a, _ = _latent_pair(rng, 500, 1.0, 1.0)
    auc_a, auc_b, var, z, p = delong_roc_test(labels, a, a)
    assert (auc_a - auc_b, var, z, p) == (0.0, 0.0, 0.0, 1.0)
    assert one_sided_p(0.0, -0.02, 0.0) == (None, 0.0)
    assert one_sided_p(0.0, 0.0, 0.0) == (None, 1.0)


def test_holm_matches_statsmodels() -> None:
    from statsmodels.stats.multitest import multipletests

    p = [0.01, 0.04, 0.03, 0.005, 0.2, 0.04]
    assert holm_adjust(p) == pytest.approx(list(multipletests(p, method="holm")[1]), abs=1e-15)
    assert holm_adjust([]) == []


def test_resampled_aucs_equal_sklearn_on_the_resampled_rows() -> None:
    rng = np.random.default_rng(6)
    labels, scores, _ = _latent_pair(rng, 300, 1.0, 1.0)
    scores = np.round(scores, 1)
    groups, k = _tie_groups(scores)
    pos_idx, neg_idx = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    pos_draws = rng.integers(0, pos_idx.size, size=(5, pos_idx.size))
    neg_draws = rng.integers(0, neg_idx.size, size=(5, neg_idx.size))
    aucs = _resampled_aucs(groups[pos_idx], groups[neg_idx], k, pos_draws, neg_draws)
    for row in range(5):
        rows = np.concatenate([pos_idx[pos_draws[row]], neg_idx[neg_draws[row]]])
        assert aucs[row] == pytest.approx(roc_auc_score(labels[rows], scores[rows]), abs=1e-12)


@pytest.mark.slow
def test_bootstrap_interval_reaches_nominal_coverage() -> None:
    # Binormal truth: positives ~ N(mu, 1), negatives ~ N(0, 1) give AUC = Phi(mu / sqrt(2)).
    rng = np.random.default_rng(7)
    mu_cand, mu_champ, rho = 1.2, 1.0, 0.6
    true_diff = norm.cdf(mu_cand / math.sqrt(2)) - norm.cdf(mu_champ / math.sqrt(2))
    reps, n_pos, n_neg, confidence = 200, 150, 150, 0.9
    chol = np.linalg.cholesky(np.array([[1.0, rho], [rho, 1.0]]))
    labels = np.r_[np.ones(n_pos), np.zeros(n_neg)]
    covered = 0
    for rep in range(reps):
        noise = rng.normal(size=(n_pos + n_neg, 2)) @ chol.T
        candidate = noise[:, 0] + mu_cand * labels
        champion = noise[:, 1] + mu_champ * labels
        _, low, high = paired_bootstrap_auc_diff(
            labels, candidate, champion, n_boot=400, seed=rep, confidence=confidence
        )
        covered += low <= true_diff <= high
    coverage = covered / reps
    mc_error = math.sqrt(confidence * (1 - confidence) / reps)
    assert abs(coverage - confidence) <= 3 * mc_error, coverage


@pytest.mark.slow
def test_bootstrap_interval_agrees_with_delong_on_large_data() -> None:
    rng = np.random.default_rng(8)
    labels, a, b = _latent_pair(rng, 20_000, 1.0, 1.2)
    diff, low, high = paired_bootstrap_auc_diff(labels, a, b, n_boot=500, seed=0, confidence=0.9)
    auc_a, auc_b, var, _, _ = delong_roc_test(labels, a, b)
    assert diff == pytest.approx(auc_a - auc_b, abs=1e-12)
    half = norm.ppf(0.95) * math.sqrt(var)
    assert low == pytest.approx(diff - half, abs=0.25 * half)
    assert high == pytest.approx(diff + half, abs=0.25 * half)


# --- the gate ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_false_promotion_rate_under_no_difference_stays_at_alpha() -> None:
    settings = GateSettings(alpha=0.05, n_bootstrap=100, min_rows=500)
    rng = np.random.default_rng(9)
    pairs, gate_promotions, naive_promotions = 300, 0, 0
    for pair in range(pairs):
        labels, candidate, champion = _latent_pair(rng, 1000, 1.0, 1.0)
        decision = evaluate_gate(labels, candidate, champion, {}, settings, seed=pair)
        gate_promotions += decision.passed
        naive_promotions += decision.candidate_metric > (decision.champion_metric or 0.0)
    gate_rate, naive_rate = gate_promotions / pairs, naive_promotions / pairs
    mc_error = math.sqrt(settings.alpha * (1 - settings.alpha) / pairs)
    print(
        f"false promotions over {pairs} null pairs: gate {gate_rate:.3f}, naive AUC_cand > AUC_champ {naive_rate:.3f}"
    )
    assert gate_rate <= settings.alpha + 3 * mc_error
    assert 0.4 <= naive_rate <= 0.6


def test_clearly_better_candidate_passes() -> None:
    rng = np.random.default_rng(10)
    labels, candidate, champion = _latent_pair(rng, 3000, 0.5, 1.5)
    region = rng.choice(["north", "south", "east"], size=labels.size)
    decision = evaluate_gate(labels, candidate, champion, {"region": region}, GateSettings(), seed=1)
    assert decision.passed
    assert not decision.first_model
    assert decision.diff is not None and decision.diff > 0.05
    assert decision.delong_p is not None and decision.delong_p < 1e-6
    assert decision.ci_low is not None and decision.ci_high is not None and 0 < decision.ci_low < decision.ci_high
    assert [s.verdict for s in decision.slices] == ["pass", "pass", "pass"]
    assert all(s.p_adjusted is not None and s.p_adjusted >= (s.p_value or 0) for s in decision.slices)
    assert decision.reasons[-1].startswith("gate: pass")
    json.dumps(decision.to_dict())


def test_equal_candidate_fails_superiority_with_reason() -> None:
    rng = np.random.default_rng(11)
    labels, candidate, _ = _latent_pair(rng, 2000, 1.0, 1.0)
    decision = evaluate_gate(labels, candidate, candidate.copy(), {}, GateSettings())
    assert not decision.passed
    assert decision.diff == 0.0 and decision.delong_p == 1.0 and decision.delong_z is None
    assert any(r.startswith("superiority") and r.endswith("fail") for r in decision.reasons)


def test_min_effect_raises_the_bar() -> None:
    rng = np.random.default_rng(12)
    labels, candidate, champion = _latent_pair(rng, 4000, 0.8, 1.1)
    loose = evaluate_gate(labels, candidate, champion, {}, GateSettings(min_effect=0.0))
    strict = evaluate_gate(labels, candidate, champion, {}, GateSettings(min_effect=0.05))
    assert loose.passed and loose.diff is not None and loose.diff < 0.05
    assert not strict.passed and strict.delong_p is not None and strict.delong_p > 0.9


def test_first_model_is_judged_by_the_floor() -> None:
    rng = np.random.default_rng(13)
    labels, good, _ = _latent_pair(rng, 1000, 0.5, 1.0)
    weak = rng.normal(size=labels.size) + 0.05 * labels
    settings = GateSettings(floor_roc_auc=0.7)
    region = rng.choice(["a", "b"], size=labels.size)
    passed = evaluate_gate(labels, good, None, {"region": region}, settings)
    failed = evaluate_gate(labels, weak, None, {}, settings)
    assert passed.first_model and passed.passed and passed.candidate_metric >= 0.7
    assert passed.champion_metric is None and passed.diff is None and passed.delong_p is None
    assert [s.verdict for s in passed.slices] == ["no_champion", "no_champion"]
    assert not failed.passed and failed.candidate_metric < 0.7
    assert "floor gate.floor_roc_auc=0.7: fail" in failed.reasons[1]


def test_small_slice_is_reported_never_judged() -> None:
    rng = np.random.default_rng(14)
    labels, candidate, champion = _latent_pair(rng, 3000, 0.5, 1.5)
    segment = np.where(np.arange(labels.size) < 150, "rare", "common")
    decision = evaluate_gate(labels, candidate, champion, {"segment": segment}, GateSettings(min_slice_rows=200))
    by_value = {s.value: s for s in decision.slices}
    assert by_value["rare"].verdict == "too_small" and by_value["rare"].n == 150
    assert by_value["rare"].p_value is None and by_value["rare"].diff is not None
    assert by_value["common"].verdict == "pass"
    assert any("segment=rare (n=150)" in r and "not judged" in r for r in decision.reasons)


def test_inferior_slice_fails_the_gate_despite_overall_superiority() -> None:
    rng = np.random.default_rng(15)
    labels, candidate, champion = _latent_pair(rng, 6000, 0.4, 1.2)
    region = np.where(np.arange(labels.size) % 5 == 0, "west", "rest")
    west = region == "west"
    candidate[west] = rng.normal(size=int(west.sum()))  # the candidate is blind in the west
    decision = evaluate_gate(labels, candidate, champion, {"region": region}, GateSettings())
    by_value = {s.value: s for s in decision.slices}
    assert decision.diff is not None and decision.diff > 0 and decision.delong_p is not None
    assert decision.delong_p < 0.05
    assert by_value["west"].verdict == "fail" and by_value["rest"].verdict == "pass"
    assert not decision.passed
    assert any("region=west" in r and "fail" in r for r in decision.reasons)


def test_single_class_and_numeric_and_missing_slice_values() -> None:
    rng = np.random.default_rng(16)
    labels, candidate, champion = _latent_pair(rng, 3000, 0.5, 1.5)
    tier = rng.choice([1.0, 2.0, np.nan], size=labels.size)
    pure = np.where(labels == 1, "pos", "neg")
    decision = evaluate_gate(labels, candidate, champion, {"tier": tier, "pure": pure}, GateSettings())
    values = {(s.column, s.value): s for s in decision.slices}
    assert set(values) == {
        ("tier", "1"),
        ("tier", "2"),
        ("tier", MISSING_SLICE_VALUE),
        ("pure", "pos"),
        ("pure", "neg"),
    }
    assert values[("pure", "pos")].verdict == "single_class" and values[("pure", "pos")].candidate is None
    assert decision.passed


def test_mismatched_rows_are_rejected() -> None:
    labels = np.array([0, 1] * 300)
    with pytest.raises(GateError, match="mismatched rows: candidate 600 vs champion 599"):
        evaluate_gate(labels, np.zeros(600), np.zeros(599), {}, GateSettings())
    with pytest.raises(GateError, match="mismatched rows: labels 600 vs candidate 601"):
        evaluate_gate(labels, np.zeros(601), None, {}, GateSettings())


def test_missing_labels_are_rejected() -> None:
    scores = np.linspace(0, 1, 600)
    with_nan = np.array([0.0, 1.0] * 300)
    with_nan[7] = np.nan
    with pytest.raises(GateError, match="holdout without labels: 1 of 600"):
        evaluate_gate(with_nan, scores, scores, {}, GateSettings())
    with pytest.raises(GateError, match="holdout without labels"):
        evaluate_gate([None] * 600, scores, scores, {}, GateSettings())


def test_unusable_holdouts_are_rejected() -> None:
    scores = np.linspace(0, 1, 600)
    with pytest.raises(GateError, match="single class"):
        evaluate_gate(np.ones(600), scores, scores, {}, GateSettings())
    with pytest.raises(GateError, match=r"gate.min_rows=500"):
        evaluate_gate(np.array([0, 1] * 100), scores[:200], scores[:200], {}, GateSettings())
    with pytest.raises(GateError, match="slice column 'region' has 10 values"):
        evaluate_gate(np.array([0, 1] * 300), scores, scores, {"region": np.array(["a"] * 10)}, GateSettings())
    with pytest.raises(GateError, match="champion scores hold 1 NaN"):
        evaluate_gate(np.array([0, 1] * 300), scores, np.r_[scores[:-1], np.nan], {}, GateSettings())
