"""The promotion gate: does the candidate beat the champion on the same holdout rows, everywhere that matters?

Pure functions only. The decision is a frozen :class:`GateDecision` holding every rule's verdict
with its numbers (``rules``, and one line each in ``reasons``), so the audit trail explains a
refusal as fully as a promotion.

Rules (all paired: both models are scored on the same rows):

1. *Superiority* in the primary metric (``gate.metric``) by ``gate.min_effect``, one-sided, level
   alpha: ROC AUC by DeLong's test (variance in O(n log n) with midranks, Sun & Xu 2014);
   accuracy by McNemar's test (exact conditional binomial when ``min_effect`` is 0, otherwise a Wald
   test of the paired difference of proportions); expected business cost (``gate.cost_matrix`` at
   ``gate.decision_threshold``) by a z-test of the mean per-row saving. A paired bootstrap interval
   of the primary difference is reported next to the test; the secondary metrics are reported.
2. *Non-inferiority per slice* (ROC AUC, margin ``gate.slice_margin``), Holm-adjusted across every
   slice large enough to judge; smaller slices are reported, never silently passed.
3. *Back-test*: non-inferiority of ROC AUC (margin ``gate.backtest_margin``) on older rows that
   neither model trained on, so that a candidate overfit to the recent window fails.
4. *Sandbox stress*: under each covariate-shift scenario (:mod:`tasks.gate.stress`), the candidate may
   not lose more than ``gate.stress_margin`` AUC beyond what the champion loses.
5. *Inference budget*: scoring time per 10k rows and model size within ``gate.max_latency_ratio`` /
   ``gate.max_size_ratio`` of the champion's (or within an absolute allowance).

A first model (no champion) is judged against absolute floors only; the other rules are reported.

Why the false-promotion rate stays at or below alpha with several rules: the gate promotes only if
*every* blocking rule passes, so the promotion event is the intersection of the rules' pass events.
Under the null hypothesis that matters -- the candidate is not better than the champion by
``min_effect`` -- the probability of promoting is at most the probability that the superiority test
alone rejects, which is at most alpha whatever the other rules do and however they depend on it
(an intersection-union test, Berger 1982). No correction across rules is needed; each extra rule can
only lower the false-promotion rate (and costs some power). The stress and budget rules are
deterministic guards, not tests.

The same argument applies within the slice rule: "non-inferior on every slice" is itself an
intersection-union test, for which testing each slice at level alpha already keeps the level. The
Holm adjustment the issue asks for is therefore conservative: it keeps the chance of declaring a
truly inferior slice non-inferior at most alpha *per family* rather than per slice, at the price of
failing more good candidates on many small slices. It is kept, on purpose and documented.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from tasks.core.errors import GateError
from tasks.core.settings import GateSettings
from tasks.core.verdicts import Number, RuleResult, Verdict
from tasks.gate.business import finite_vector

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

    from tasks.gate.stress import StressScenario
    from tasks.training.train import InferenceCost

MISSING_SLICE_VALUE = "<missing>"
# Upper bound on resample draws held in memory at once (elements of the chunk's index matrix).
_BOOTSTRAP_CHUNK_ELEMENTS = 4_000_000


@dataclass(frozen=True)
class SliceResult:
    """One value of one slice column. ``diff`` is candidate - champion; the CI is DeLong's Wald interval."""

    column: str
    value: str
    n: int
    champion: float | None
    candidate: float | None  # None when the slice holds a single class (AUC undefined)
    diff: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    p_adjusted: float | None
    verdict: str  # "pass" | "fail" | "too_small" | "single_class" | "no_champion"


@dataclass(frozen=True)
class AccuracyComparison:
    """Accuracy at ``threshold`` and McNemar's test on the discordant pairs."""

    threshold: float
    candidate_accuracy: float
    champion_accuracy: float
    diff: float  # candidate - champion
    candidate_only_correct: int  # b: rows only the candidate gets right
    champion_only_correct: int  # c: rows only the champion gets right
    chi2: float  # McNemar's statistic with continuity correction, (|b - c| - 1)^2 / (b + c)
    p_chi2: float  # two-sided, chi-square with 1 degree of freedom
    p_exact: float  # two-sided, exact conditional binomial
    p_superiority: float  # one-sided, H0: diff <= bound
    bound: float
    method: str
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class CostComparison:
    """Mean business cost per row of each model's decisions, and the candidate's saving."""

    threshold: float
    candidate_cost: float
    champion_cost: float | None
    saving: float | None  # champion - candidate: positive when the candidate is cheaper
    ci_low: float | None
    ci_high: float | None
    z: float | None
    p_superiority: float | None  # one-sided, H0: saving <= bound
    bound: float
    baseline_cost: float  # the cheaper constant decision (the no-skill baseline)
    baseline: str


@dataclass(frozen=True)
class BacktestData:
    """Older labelled rows scored by both models; ``y_true`` is None when no such rows exist."""

    y_true: Any
    candidate_scores: Any
    champion_scores: Any
    period: str  # e.g. "2018-01-01 → 2019-04-03"
    note: str  # how the rows were chosen, or why there are none


@dataclass(frozen=True)
class BacktestResult:
    n_rows: int
    period: str
    candidate_auc: float | None
    champion_auc: float | None
    diff: float | None
    ci_low: float | None
    ci_high: float | None
    z: float | None
    p_value: float | None  # one-sided, H0: diff <= -margin
    margin: float
    verdict: str  # "pass" | "fail" | "skipped"
    blocking: bool
    note: str


@dataclass(frozen=True)
class StressResult:
    scenario: str
    feature: str
    effective_rows: float
    candidate_base: float
    candidate_shifted: float
    champion_base: float | None
    champion_shifted: float | None
    # AUC the candidate loses under the shift minus what the champion loses (a gain counts as no loss);
    # > 0: the candidate is the more fragile
    extra_loss: float | None
    verdict: str  # "pass" | "fail" | "too_small" | "no_champion"


@dataclass(frozen=True)
class InferenceResult:
    candidate_ms_per_10k: float
    champion_ms_per_10k: float | None
    latency_ratio: float | None
    latency_budget_ms: float | None  # max(gate.max_latency_ratio * champion, gate.latency_allowance_ms)
    candidate_bytes: int
    champion_bytes: int | None
    size_ratio: float | None
    size_budget_bytes: float | None  # max(gate.max_size_ratio * champion, gate.size_allowance_bytes)
    verdict: str  # "pass" | "fail" | "reported"


@dataclass(frozen=True)
class RegressionComparison:
    """RMSE and MAE of two regressors on the same rows; improvements are champion - candidate (> 0 better)."""

    n: int
    rmse_candidate: float
    rmse_champion: float
    rmse_improvement: float
    rmse_ci_low: float
    rmse_ci_high: float
    rmse_z: float | None
    rmse_p: float  # one-sided, H0: rmse_improvement <= min_effect (delta method)
    mae_candidate: float
    mae_champion: float
    mae_improvement: float
    mae_ci_low: float
    mae_ci_high: float
    mae_z: float | None
    mae_p: float  # one-sided, H0: mae_improvement <= min_effect (paired z-test)
    cost_candidate: float | None  # cost_per_unit_error * MAE, when a cost is configured
    cost_champion: float | None
    cost_saving: float | None


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    metric: str  # the primary criterion
    n_rows: int
    first_model: bool
    champion_metric: float | None  # primary metric of each model on the holdout
    candidate_metric: float
    diff: float | None  # improvement in the primary metric (AUC or accuracy: cand - champ; cost: champ - cand)
    ci_low: float | None  # paired bootstrap interval of ``diff``
    ci_high: float | None
    delong_z: float | None  # one-sided DeLong test of the AUC gain (None when the variance is 0)
    delong_p: float | None
    alpha: float
    min_effect: float
    slice_margin: float
    reasons: tuple[str, ...]
    slices: tuple[SliceResult, ...]
    candidate_auc: float | None = None
    champion_auc: float | None = None
    primary_z: float | None = None
    primary_p: float | None = None
    rules: tuple[RuleResult, ...] = ()
    accuracy: AccuracyComparison | None = None
    cost: CostComparison | None = None
    backtest: BacktestResult | None = None
    stress: tuple[StressResult, ...] = ()
    inference: InferenceResult | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["reasons"] = list(self.reasons)
        out["slices"] = [asdict(s) for s in self.slices]
        out["rules"] = [asdict(r) for r in self.rules]
        out["stress"] = [asdict(s) for s in self.stress]
        return out

    def rule(self, name: str) -> RuleResult | None:
        return next((r for r in self.rules if r.rule == name), None)


# --- statistics ---------------------------------------------------------------------------------


def _binary_labels(y_true: Any) -> np.ndarray:
    import numpy as np

    try:
        labels = np.asarray(y_true, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise GateError("holdout without labels: labels are not numeric 0/1 (None or text values)") from exc
    if labels.ndim != 1:
        raise GateError(f"labels must be one-dimensional, got shape {labels.shape}")
    missing = int(np.isnan(labels).sum())
    if missing:
        raise GateError(f"holdout without labels: {missing} of {labels.size} rows have no label")
    unexpected = np.setdiff1d(np.unique(labels), [0.0, 1.0])
    if unexpected.size:
        raise GateError(f"binary labels must be 0/1, found {unexpected[:5].tolist()}")
    return labels.astype(np.int8)


def _scores(values: Any, name: str) -> np.ndarray:
    return finite_vector(values, f"{name} scores")


def _require_both_classes(labels: np.ndarray, where: str) -> None:
    import numpy as np

    present = np.unique(labels)
    if present.size < 2:
        raise GateError(f"{where} labels hold a single class {present.tolist()}; ROC AUC needs both 0 and 1")


def _structural_components(labels: np.ndarray, scores: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """AUC and DeLong's placement values: V10 per positive, V01 per negative (Sun & Xu 2014)."""
    from scipy.stats import rankdata

    positive = labels == 1
    m = int(positive.sum())
    n = labels.size - m
    pos_scores = scores[positive]
    neg_scores = scores[~positive]
    rank_all = rankdata(scores, method="average")
    rank_pos = rankdata(pos_scores, method="average")
    rank_neg = rankdata(neg_scores, method="average")
    # Midrank of a positive among all rows minus its midrank among positives = number of negatives
    # below it (ties count one half): its placement value times n.
    v10 = (rank_all[positive] - rank_pos) / n
    v01 = 1.0 - (rank_all[~positive] - rank_neg) / m
    auc = float(v10.mean())
    return auc, v10, v01


def roc_auc(y_true: Any, scores: Any) -> float:
    """ROC AUC by midranks (ties count one half), equal to sklearn's roc_auc_score."""
    labels = _binary_labels(y_true)
    values = _scores(scores, "model")
    if labels.size != values.size:
        raise GateError(f"mismatched rows: labels {labels.size} vs scores {values.size}")
    _require_both_classes(labels, "holdout")
    return _structural_components(labels, values)[0]


def _delong_pair(labels: np.ndarray, score_a: np.ndarray, score_b: np.ndarray) -> tuple[float, float, float]:
    """(auc_a, auc_b, variance of auc_a - auc_b) on validated inputs."""
    import numpy as np

    auc_a, v10_a, v01_a = _structural_components(labels, score_a)
    auc_b, v10_b, v01_b = _structural_components(labels, score_b)
    m, n = v10_a.size, v01_a.size
    # Variance of the contrast taken directly (not s_aa + s_bb - 2 s_ab): exact 0 for identical
    # scores and no cancellation error when the two models are nearly the same.
    var_pos = float(np.var(v10_a - v10_b, ddof=1)) if m > 1 else 0.0
    var_neg = float(np.var(v01_a - v01_b, ddof=1)) if n > 1 else 0.0
    return auc_a, auc_b, max(var_pos / m + var_neg / n, 0.0)


def delong_roc_test(y_true: Any, score_a: Any, score_b: Any) -> tuple[float, float, float, float, float]:
    """Paired DeLong test of AUC_a = AUC_b: (auc_a, auc_b, var_of_diff, z, two-sided p).

    Fast O(n log n) midrank algorithm of Sun & Xu (2014). When the variance of the difference is 0
    (identical rankings) z is 0 and p is 1 if the AUCs are equal, otherwise +-inf and 0.
    """
    from scipy.stats import norm

    labels = _binary_labels(y_true)
    a = _scores(score_a, "first model's")
    b = _scores(score_b, "second model's")
    if not labels.size == a.size == b.size:
        raise GateError(f"mismatched rows: labels {labels.size}, scores {a.size} and {b.size}")
    _require_both_classes(labels, "holdout")
    auc_a, auc_b, var = _delong_pair(labels, a, b)
    diff = auc_a - auc_b
    if var > 0.0:
        z = diff / math.sqrt(var)
        return auc_a, auc_b, var, z, float(2.0 * norm.sf(abs(z)))
    if diff == 0.0:
        return auc_a, auc_b, var, 0.0, 1.0
    return auc_a, auc_b, var, math.copysign(math.inf, diff), 0.0


def one_sided_p(diff: float, bound: float, variance: float) -> tuple[float | None, float]:
    """z and p of the one-sided test H0: diff <= bound against H1: diff > bound (normal approximation).

    With zero variance the difference is known exactly: p is 0 if it exceeds the bound, else 1.
    """
    from scipy.stats import norm

    if variance > 0.0:
        z = (diff - bound) / math.sqrt(variance)
        return z, float(norm.sf(z))
    return None, 0.0 if diff > bound else 1.0


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni step-down adjusted p-values (monotone, capped at 1), in the input order."""
    import numpy as np

    p = np.asarray(p_values, dtype=np.float64)
    k = p.size
    if k == 0:
        return []
    order = np.argsort(p, kind="stable")
    stepped = np.minimum(1.0, (k - np.arange(k)) * p[order])
    adjusted = np.empty(k)
    adjusted[order] = np.maximum.accumulate(stepped)
    return [float(v) for v in adjusted]


def _tie_groups(scores: np.ndarray) -> tuple[np.ndarray, int]:
    """Dense rank (0-based, ties share one id) of every row's score, and the number of distinct scores."""
    import numpy as np

    order = np.argsort(scores, kind="stable")
    ordered = scores[order]
    new_value = np.empty(ordered.size, dtype=bool)
    new_value[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new_value[1:])
    dense = np.cumsum(new_value) - 1
    group = np.empty(scores.size, dtype=np.int64)
    group[order] = dense
    return group, int(dense[-1]) + 1


def _resampled_aucs(
    pos_groups: np.ndarray, neg_groups: np.ndarray, n_groups: int, pos_draws: np.ndarray, neg_draws: np.ndarray
) -> np.ndarray:
    """AUC of each resample (one per row of the draw matrices), from counts per distinct score.

    ``pos_draws`` / ``neg_draws`` index into the positives / negatives; ``*_groups`` give each one's
    dense score rank. A positive beats every negative in a lower score group and ties count one half,
    so counting draws per group and one cumulative sum gives every resample's AUC without sorting.
    """
    import numpy as np

    n_resamples, m = pos_draws.shape
    n = neg_draws.shape[1]
    offsets = (np.arange(n_resamples, dtype=np.int64) * n_groups)[:, None]
    size = n_resamples * n_groups
    pos_counts = np.bincount((pos_groups[pos_draws] + offsets).ravel(), minlength=size).reshape(n_resamples, -1)
    neg_counts = np.bincount((neg_groups[neg_draws] + offsets).ravel(), minlength=size).reshape(n_resamples, -1)
    neg_at_or_below = np.cumsum(neg_counts, axis=1)
    # Row-wise dot products without c x G temporaries: wins = sum P * (below + N/2) = P.C - P.N/2.
    wins = np.einsum("ij,ij->i", pos_counts, neg_at_or_below) - 0.5 * np.einsum("ij,ij->i", pos_counts, neg_counts)
    return np.asarray(wins / (m * n), dtype=np.float64)


def paired_bootstrap_auc_diff(
    y_true: Any,
    score_candidate: Any,
    score_champion: Any,
    *,
    n_boot: int,
    seed: int,
    confidence: float,
) -> tuple[float, float, float]:
    """(AUC_cand - AUC_champ, low, high): two-sided percentile interval at ``confidence``.

    Paired and stratified: each resample draws positives and negatives separately with replacement
    (class counts fixed, as DeLong's variance assumes) and scores both models on the same draws.
    Resamples are processed in chunks to bound memory.
    """
    import numpy as np

    if n_boot < 1:
        raise GateError(f"n_boot must be positive, got {n_boot} (gate.n_bootstrap)")
    if not 0.0 < confidence < 1.0:
        raise GateError(f"confidence must lie in (0, 1), got {confidence}")
    labels = _binary_labels(y_true)
    candidate = _scores(score_candidate, "candidate")
    champion = _scores(score_champion, "champion")
    if labels.size != candidate.size:
        raise GateError(f"mismatched rows: labels {labels.size} vs candidate {candidate.size}")
    if candidate.size != champion.size:
        raise GateError(f"mismatched rows: candidate {candidate.size} vs champion {champion.size}")
    _require_both_classes(labels, "holdout")

    positive = labels == 1
    m = int(positive.sum())
    n = labels.size - m
    cand_groups, cand_k = _tie_groups(candidate)
    champ_groups, champ_k = _tie_groups(champion)
    everyone_pos = np.arange(m)[None, :]
    everyone_neg = np.arange(n)[None, :]
    point = float(
        _resampled_aucs(cand_groups[positive], cand_groups[~positive], cand_k, everyone_pos, everyone_neg)[0]
        - _resampled_aucs(champ_groups[positive], champ_groups[~positive], champ_k, everyone_pos, everyone_neg)[0]
    )

    rng = np.random.default_rng(seed)
    chunk = max(1, _BOOTSTRAP_CHUNK_ELEMENTS // labels.size)
    diffs = np.empty(n_boot)
    for start in range(0, n_boot, chunk):
        rows = min(chunk, n_boot - start)
        pos_draws = rng.integers(0, m, size=(rows, m), dtype=np.int32)
        neg_draws = rng.integers(0, n, size=(rows, n), dtype=np.int32)
        diffs[start : start + rows] = _resampled_aucs(
            cand_groups[positive], cand_groups[~positive], cand_k, pos_draws, neg_draws
        ) - _resampled_aucs(champ_groups[positive], champ_groups[~positive], champ_k, pos_draws, neg_draws)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(diffs, [tail, 1.0 - tail])
    return point, float(low), float(high)


def _weighted_auc(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> float:
    import numpy as np

    groups, k = _tie_groups(scores)
    positive = labels == 1
    pos_mass = np.bincount(groups[positive], weights=weights[positive], minlength=k)
    neg_mass = np.bincount(groups[~positive], weights=weights[~positive], minlength=k)
    below = np.cumsum(neg_mass) - neg_mass
    total = float(pos_mass.sum()) * float(neg_mass.sum())
    if total <= 0.0:
        raise GateError("weighted ROC AUC needs positive weight on both classes")
    return float((pos_mass * (below + 0.5 * neg_mass)).sum() / total)


def weighted_roc_auc(y_true: Any, scores: Any, weights: Any) -> float:
    """ROC AUC with row weights (ties count one half), equal to sklearn's ``roc_auc_score(sample_weight=...)``.

    Each positive-negative pair counts with the product of the two rows' weights.
    """
    import numpy as np

    labels = _binary_labels(y_true)
    values = _scores(scores, "model")
    w = _scores(weights, "weight")
    if not labels.size == values.size == w.size:
        raise GateError(f"mismatched rows: labels {labels.size}, scores {values.size}, weights {w.size}")
    if (w < 0).any():
        raise GateError("row weights must not be negative")
    _require_both_classes(labels, "holdout")
    return _weighted_auc(labels, values, np.asarray(w))


def mcnemar_test(y_true: Any, predicted_a: Any, predicted_b: Any) -> tuple[int, int, float, float, float]:
    """McNemar's test of equal accuracy of two classifiers on the same rows.

    Returns ``(b, c, chi2, p_chi2, p_exact)``: b rows only ``a`` gets right, c rows only ``b`` gets
    right, the continuity-corrected statistic ``(|b - c| - 1)^2 / (b + c)`` with its chi-square p,
    and the exact two-sided binomial p ``min(1, 2 P(X <= min(b, c)))``, X ~ Bin(b + c, 1/2)
    (as statsmodels' ``mcnemar``).
    """
    import numpy as np
    from scipy.stats import binom, chi2

    labels = _binary_labels(y_true)
    a = _binary_labels(predicted_a)
    b_pred = _binary_labels(predicted_b)
    if not labels.size == a.size == b_pred.size:
        raise GateError(f"mismatched rows: labels {labels.size}, predictions {a.size} and {b_pred.size}")
    right_a = a == labels
    right_b = b_pred == labels
    b = int(np.sum(right_a & ~right_b))
    c = int(np.sum(~right_a & right_b))
    if b + c == 0:
        return b, c, 0.0, 1.0, 1.0
    statistic = (abs(b - c) - 1.0) ** 2 / (b + c)
    p_exact = min(1.0, 2.0 * float(binom.cdf(min(b, c), b + c, 0.5)))
    return b, c, statistic, float(chi2.sf(statistic, 1)), p_exact


def paired_bootstrap_mean_diff(
    differences: Any, *, n_boot: int, seed: int, confidence: float
) -> tuple[float, float, float]:
    """(mean, low, high): percentile interval of the mean of paired per-row differences.

    Each resample draws rows with replacement; processed in chunks to bound memory.
    """
    import numpy as np

    if n_boot < 1:
        raise GateError(f"n_boot must be positive, got {n_boot} (gate.n_bootstrap)")
    if not 0.0 < confidence < 1.0:
        raise GateError(f"confidence must lie in (0, 1), got {confidence}")
    d = _scores(differences, "paired difference")
    if d.size == 0:
        raise GateError("no rows to bootstrap")
    rng = np.random.default_rng(seed)
    chunk = max(1, _BOOTSTRAP_CHUNK_ELEMENTS // d.size)
    means = np.empty(n_boot)
    for start in range(0, n_boot, chunk):
        rows = min(chunk, n_boot - start)
        draws = rng.integers(0, d.size, size=(rows, d.size), dtype=np.int32)
        means[start : start + rows] = d[draws].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(d.mean()), float(low), float(high)


def _mean_z_test(differences: np.ndarray, bound: float) -> tuple[float, float | None, float, float]:
    """(mean, z, one-sided p of H0: mean <= bound, standard error) of paired per-row differences."""
    import numpy as np

    mean = float(differences.mean())
    se = float(np.std(differences, ddof=1) / math.sqrt(differences.size)) if differences.size > 1 else 0.0
    z, p = one_sided_p(mean, bound, se * se)
    return mean, z, p, se


def accuracy_comparison(
    y_true: Any,
    candidate_scores: Any,
    champion_scores: Any,
    *,
    threshold: float,
    bound: float,
    confidence: float,
    bootstrap: tuple[int, int] | None = None,
) -> AccuracyComparison:
    """Accuracy of both models at ``threshold`` with McNemar's test and a one-sided test of H0: diff <= bound.

    The one-sided test is McNemar's exact conditional binomial, P(X >= b), X ~ Bin(b + c, 1/2), when
    ``bound`` is 0, otherwise a Wald z-test with the paired variance ``((b + c)/N - diff^2) / N``.
    The interval is a paired bootstrap one when ``bootstrap=(n_boot, seed)``, else Wald's.
    """
    import numpy as np
    from scipy.stats import binom, norm

    labels = _binary_labels(y_true)
    cand = _scores(candidate_scores, "candidate")
    champ = _scores(champion_scores, "champion")
    if not labels.size == cand.size == champ.size:
        raise GateError(f"mismatched rows: labels {labels.size}, candidate {cand.size}, champion {champ.size}")
    cand_pred = (cand >= threshold).astype(np.int8)
    champ_pred = (champ >= threshold).astype(np.int8)
    b, c, chi2_stat, p_chi2, p_exact = mcnemar_test(labels, cand_pred, champ_pred)
    n = labels.size
    acc_cand = float((cand_pred == labels).mean())
    acc_champ = float((champ_pred == labels).mean())
    diff = (b - c) / n
    variance = max(((b + c) / n - diff * diff) / n, 0.0)
    if bound == 0.0:
        p_sup = float(binom.sf(b - 1, b + c, 0.5)) if b + c else 1.0
        method = "exact one-sided McNemar (binomial on discordant pairs)"
    else:
        p_sup = one_sided_p(diff, bound, variance)[1]
        method = "Wald z-test of the paired accuracy difference"
    if bootstrap is not None:
        per_row = (cand_pred == labels).astype(np.float64) - (champ_pred == labels).astype(np.float64)
        _, low, high = paired_bootstrap_mean_diff(
            per_row, n_boot=bootstrap[0], seed=bootstrap[1], confidence=confidence
        )
    else:
        half = float(norm.ppf(0.5 + confidence / 2.0)) * math.sqrt(variance)
        low, high = diff - half, diff + half
    return AccuracyComparison(
        threshold=threshold,
        candidate_accuracy=acc_cand,
        champion_accuracy=acc_champ,
        diff=diff,
        candidate_only_correct=b,
        champion_only_correct=c,
        chi2=chi2_stat,
        p_chi2=p_chi2,
        p_exact=p_exact,
        p_superiority=p_sup,
        bound=bound,
        method=method,
        ci_low=low,
        ci_high=high,
    )


def regression_comparison(
    y_true: Any,
    candidate_predictions: Any,
    champion_predictions: Any,
    *,
    n_boot: int,
    seed: int,
    confidence: float,
    min_effect: float = 0.0,
    cost_per_unit_error: float | None = None,
) -> RegressionComparison:
    """RMSE and MAE differences of two regressors on the same rows, with paired tests and intervals.

    MAE: paired z-test of the per-row absolute-error differences. RMSE: z-test by the delta method
    (the influence of row i on RMSE is ``(e_i^2 - MSE) / (2 RMSE)``). Both one-sided, H0:
    improvement <= ``min_effect``; intervals from one vectorised paired bootstrap (rows resampled,
    both metrics of both models computed on each resample).
    """
    import numpy as np

    y = _scores(y_true, "target")
    cand = _scores(candidate_predictions, "candidate")
    champ = _scores(champion_predictions, "champion")
    if not y.size == cand.size == champ.size:
        raise GateError(f"mismatched rows: targets {y.size}, candidate {cand.size}, champion {champ.size}")
    if y.size < 2:
        raise GateError(f"a regression comparison needs at least 2 rows, got {y.size}")
    if not 0.0 < confidence < 1.0:
        raise GateError(f"confidence must lie in (0, 1), got {confidence}")
    err_c, err_h = cand - y, champ - y
    sq_c, sq_h = err_c * err_c, err_h * err_h
    abs_c, abs_h = np.abs(err_c), np.abs(err_h)
    rmse_c, rmse_h = math.sqrt(float(sq_c.mean())), math.sqrt(float(sq_h.mean()))
    mae_impr, mae_z, mae_p, _ = _mean_z_test(abs_h - abs_c, min_effect)

    def influence(squares: np.ndarray, rmse: float) -> np.ndarray:
        return (squares - squares.mean()) / (2.0 * rmse) if rmse > 0 else np.zeros_like(squares)

    rmse_impr = rmse_h - rmse_c
    spread = influence(sq_h, rmse_h) - influence(sq_c, rmse_c)
    rmse_z, rmse_p = one_sided_p(rmse_impr, min_effect, float(np.var(spread, ddof=1)) / y.size)

    rng = np.random.default_rng(seed)
    chunk = max(1, _BOOTSTRAP_CHUNK_ELEMENTS // y.size)
    rmse_boot = np.empty(n_boot)
    mae_boot = np.empty(n_boot)
    for start in range(0, n_boot, chunk):
        rows = min(chunk, n_boot - start)
        draws = rng.integers(0, y.size, size=(rows, y.size), dtype=np.int32)
        rmse_boot[start : start + rows] = np.sqrt(sq_h[draws].mean(axis=1)) - np.sqrt(sq_c[draws].mean(axis=1))
        mae_boot[start : start + rows] = abs_h[draws].mean(axis=1) - abs_c[draws].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    rmse_low, rmse_high = (float(v) for v in np.quantile(rmse_boot, [tail, 1.0 - tail]))
    mae_low, mae_high = (float(v) for v in np.quantile(mae_boot, [tail, 1.0 - tail]))
    mae_c, mae_h = float(abs_c.mean()), float(abs_h.mean())
    cost_c = None if cost_per_unit_error is None else cost_per_unit_error * mae_c
    cost_h = None if cost_per_unit_error is None else cost_per_unit_error * mae_h
    return RegressionComparison(
        n=int(y.size),
        rmse_candidate=rmse_c,
        rmse_champion=rmse_h,
        rmse_improvement=rmse_impr,
        rmse_ci_low=rmse_low,
        rmse_ci_high=rmse_high,
        rmse_z=rmse_z,
        rmse_p=rmse_p,
        mae_candidate=mae_c,
        mae_champion=mae_h,
        mae_improvement=mae_impr,
        mae_ci_low=mae_low,
        mae_ci_high=mae_high,
        mae_z=mae_z,
        mae_p=mae_p,
        cost_candidate=cost_c,
        cost_champion=cost_h,
        cost_saving=None if cost_c is None or cost_h is None else cost_h - cost_c,
    )


# --- the gate -----------------------------------------------------------------------------------


def _slice_values(column: str, values: Any, n_rows: int) -> np.ndarray:
    """Slice values as display strings; missing values (None, NaN) become one '<missing>' slice."""
    import numpy as np

    array = np.asarray(values)
    if array.ndim != 1 or array.size != n_rows:
        raise GateError(f"slice column {column!r} has {array.size} values; the holdout has {n_rows} rows")
    if array.dtype.kind == "f":
        # Integral floats print as integers (1.0 -> "1"); others keep full precision so that two
        # distinct values never share a label.
        return np.asarray(
            [
                MISSING_SLICE_VALUE if math.isnan(v) else str(int(v)) if v.is_integer() else repr(v)
                for v in array.tolist()
            ],
            dtype=str,
        )
    if array.dtype.kind in "iub":
        return array.astype(str)
    as_text = [
        MISSING_SLICE_VALUE if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in array.tolist()
    ]
    return np.asarray(as_text, dtype=str)


def _fmt_p(value: float) -> str:
    return f"{value:.3g}" if value >= 1e-4 else f"{value:.1e}"


def _judge_slices(
    labels: np.ndarray,
    candidate: np.ndarray,
    champion: np.ndarray | None,
    slices: Mapping[str, Any],
    settings: GateSettings,
) -> list[SliceResult]:
    import numpy as np
    from scipy.stats import norm

    z_crit = float(norm.ppf(1.0 - settings.alpha))
    pending: list[dict[str, Any]] = []
    for column, raw in slices.items():
        values = _slice_values(column, raw, labels.size)
        for value in np.unique(values):
            rows = values == value
            y = labels[rows]
            size = int(rows.sum())
            entry: dict[str, Any] = {
                "column": column,
                "value": str(value),
                "n": size,
                "champion": None,
                "candidate": None,
                "diff": None,
                "ci_low": None,
                "ci_high": None,
                "p_value": None,
                "p_adjusted": None,
            }
            if np.unique(y).size < 2:
                pending.append({**entry, "verdict": "single_class"})
                continue
            if champion is None:
                entry["candidate"] = _structural_components(y, candidate[rows])[0]
                verdict = "too_small" if size < settings.min_slice_rows else "no_champion"
                pending.append({**entry, "verdict": verdict})
                continue
            auc_cand, auc_champ, var = _delong_pair(y, candidate[rows], champion[rows])
            diff = auc_cand - auc_champ
            half_width = z_crit * math.sqrt(var)
            entry.update(
                candidate=auc_cand,
                champion=auc_champ,
                diff=diff,
                ci_low=diff - half_width,
                ci_high=diff + half_width,
            )
            if size < settings.min_slice_rows:
                pending.append({**entry, "verdict": "too_small"})
                continue
            entry["p_value"] = one_sided_p(diff, -settings.slice_margin, var)[1]
            pending.append({**entry, "verdict": "judged"})

    judged = [e for e in pending if e["verdict"] == "judged"]
    for entry, adjusted in zip(judged, holm_adjust([e["p_value"] for e in judged]), strict=True):
        entry["p_adjusted"] = adjusted
        entry["verdict"] = "pass" if adjusted < settings.alpha else "fail"
    return [SliceResult(**e) for e in pending]


def _slice_reasons(results: Sequence[SliceResult], settings: GateSettings, first_model: bool) -> list[str]:
    too_small = [r for r in results if r.verdict == "too_small"]
    single = [r for r in results if r.verdict == "single_class"]
    notes: list[str] = []
    if too_small:
        listed = ", ".join(f"{r.column}={r.value} (n={r.n})" for r in too_small)
        notes.append(
            f"slices: {len(too_small)} below gate.min_slice_rows={settings.min_slice_rows} are reported, "
            f"not judged: {listed}"
        )
    if single:
        listed = ", ".join(f"{r.column}={r.value} (n={r.n})" for r in single)
        notes.append(f"slices: {len(single)} hold a single class (AUC undefined), not judged: {listed}")
    if first_model:
        return notes
    judged = [r for r in results if r.verdict in ("pass", "fail")]
    if not judged:
        why = "no slice large enough to judge" if results else "no slice columns given"
        notes.append(f"slice non-inferiority: {why}: pass (nothing to test)")
        return notes
    failed = [r for r in judged if r.verdict == "fail"]
    head = (
        f"slice non-inferiority (H0: diff <= -{settings.slice_margin:g}, one-sided DeLong z-test, "
        f"Holm-Bonferroni over {len(judged)} slices, alpha {settings.alpha:g}; CIs are two-sided "
        f"{100 * (1 - 2 * settings.alpha):g}% Wald intervals)"
    )
    if failed:
        listed = "; ".join(
            f"{r.column}={r.value} n={r.n} diff {r.diff:+.4f} [{r.ci_low:+.4f}, {r.ci_high:+.4f}] "
            f"adjusted p={_fmt_p(r.p_adjusted or 1.0)} >= {settings.alpha:g}"
            for r in failed
        )
        notes.append(f"{head}: fail: not shown non-inferior: {listed}")
    else:
        worst = max(judged, key=lambda r: r.p_adjusted or 0.0)
        notes.append(
            f"{head}: pass: every adjusted p < {settings.alpha:g} (largest: {worst.column}={worst.value} "
            f"diff {worst.diff:+.4f}, adjusted p={_fmt_p(worst.p_adjusted or 0.0)})"
        )
    return notes


def gate_slices(frame: pl.DataFrame, columns: Sequence[str]) -> dict[str, np.ndarray]:
    """The slice columns of a holdout frame as arrays for :func:`evaluate_gate` (missing values kept as None).

    A slice column the frame lacks is a :class:`GateError` naming it: the contract only allows features
    as slices (``ModelContract`` rejects others when it is built), so this catches a holdout that does
    not match its contract.
    """
    import polars as pl

    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise GateError(f"slice column {missing[0]!r} is not in the holdout (columns: {', '.join(frame.columns[:20])})")
    return {c: frame.get_column(c).cast(pl.String).to_numpy() for c in columns}


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.4f}"


def _primary_floor(
    labels: np.ndarray, candidate: np.ndarray, settings: GateSettings
) -> tuple[RuleResult | None, float]:
    """The first model's floor in the primary metric when it is not ROC AUC; also returns the metric."""
    import numpy as np

    from tasks.gate.business import classification_costs, constant_decision_cost

    if settings.metric == "accuracy":
        accuracy = float(((candidate >= settings.decision_threshold).astype(np.int8) == labels).mean())
        majority = max(float(labels.mean()), 1.0 - float(labels.mean()))
        if settings.floor_accuracy is not None:
            ok, floor_text = accuracy >= settings.floor_accuracy, f"gate.floor_accuracy={settings.floor_accuracy:g}"
            floor = settings.floor_accuracy
        else:
            ok, floor_text, floor = accuracy > majority, f"majority-class rate {majority:.4f}", majority
        detail = (
            f"first model (no champion): accuracy at {settings.decision_threshold:g} {accuracy:.4f} "
            f"{'clears' if ok else 'does not clear'} {floor_text}: {Verdict.of(ok)}"
        )
        return RuleResult(
            rule="primary_floor",
            verdict=Verdict.of(ok),
            blocking=True,
            detail=detail,
            numbers={"accuracy": accuracy, "floor": floor},
        ), accuracy
    if settings.metric == "expected_cost" and settings.cost_matrix is not None:
        cost = float(classification_costs(labels, candidate, settings.decision_threshold, settings.cost_matrix).mean())
        baseline, which = constant_decision_cost(labels, settings.cost_matrix)
        if settings.max_expected_cost is not None:
            ok, ceiling_text, ceiling = (
                cost <= settings.max_expected_cost,
                f"gate.max_expected_cost={settings.max_expected_cost:g}",
                settings.max_expected_cost,
            )
        else:
            ok, ceiling_text, ceiling = cost < baseline, f"the constant decision '{which}' ({baseline:.4f})", baseline
        detail = (
            f"first model (no champion): expected cost per row {cost:.4f} "
            f"{'is within' if ok else 'exceeds'} {ceiling_text}: {Verdict.of(ok)}"
        )
        return RuleResult(
            rule="primary_floor",
            verdict=Verdict.of(ok),
            blocking=True,
            detail=detail,
            numbers={"expected_cost": cost, "ceiling": ceiling},
        ), cost
    return None, math.nan


def _cost_comparison(
    labels: np.ndarray,
    candidate: np.ndarray,
    champion: np.ndarray | None,
    settings: GateSettings,
    *,
    primary: bool,
    seed: int,
) -> CostComparison | None:
    from scipy.stats import norm

    from tasks.gate.business import classification_costs, constant_decision_cost

    matrix = settings.cost_matrix
    if matrix is None:
        return None
    threshold = settings.decision_threshold
    cand_cost = classification_costs(labels, candidate, threshold, matrix)
    baseline, which = constant_decision_cost(labels, matrix)
    bound = settings.min_effect if primary else 0.0
    if champion is None:
        return CostComparison(
            threshold, float(cand_cost.mean()), None, None, None, None, None, None, bound, baseline, which
        )
    champ_cost = classification_costs(labels, champion, threshold, matrix)
    saving = champ_cost - cand_cost
    mean, z, p, se = _mean_z_test(saving, bound)
    confidence = 1.0 - 2.0 * settings.alpha
    if primary:
        _, low, high = paired_bootstrap_mean_diff(saving, n_boot=settings.n_bootstrap, seed=seed, confidence=confidence)
    else:
        half = float(norm.ppf(1.0 - settings.alpha)) * se
        low, high = mean - half, mean + half
    return CostComparison(
        threshold, float(cand_cost.mean()), float(champ_cost.mean()), mean, low, high, z, p, bound, baseline, which
    )


def _cost_rule(cost: CostComparison, settings: GateSettings, *, primary: bool) -> RuleResult:
    numbers: dict[str, Number] = {
        "candidate_cost": cost.candidate_cost,
        "champion_cost": cost.champion_cost,
        "saving": cost.saving,
        "ci_low": cost.ci_low,
        "ci_high": cost.ci_high,
        "z": cost.z,
        "p": cost.p_superiority,
        "baseline_cost": cost.baseline_cost,
    }
    head = (
        f"expected cost per row at threshold {cost.threshold:g}: candidate {cost.candidate_cost:.4f} vs champion "
        f"{cost.champion_cost:.4f}, saving {cost.saving:+.4f} [{cost.ci_low:+.4f}, {cost.ci_high:+.4f}]"
    )
    if not primary:
        return RuleResult.reported("cost", f"{head} (reported; not the primary criterion)", numbers)
    ok = (cost.p_superiority or 1.0) < settings.alpha
    z_text = f"z={cost.z:.3f}" if cost.z is not None else "zero variance"
    detail = (
        f"superiority: {head}; one-sided z-test of H0: saving <= {cost.bound:g}: {z_text}, "
        f"p={_fmt_p(cost.p_superiority or 1.0)} {'<' if ok else '>='} alpha {settings.alpha:g}: {Verdict.of(ok)}"
    )
    return RuleResult(rule="superiority", verdict=Verdict.of(ok), blocking=True, detail=detail, numbers=numbers)


def _accuracy_rule(acc: AccuracyComparison, settings: GateSettings, *, primary: bool) -> RuleResult:
    numbers: dict[str, Number] = {
        "candidate_accuracy": acc.candidate_accuracy,
        "champion_accuracy": acc.champion_accuracy,
        "diff": acc.diff,
        "b_candidate_only_correct": acc.candidate_only_correct,
        "c_champion_only_correct": acc.champion_only_correct,
        "chi2": acc.chi2,
        "p_chi2": acc.p_chi2,
        "p_exact": acc.p_exact,
        "p_superiority": acc.p_superiority,
        "ci_low": acc.ci_low,
        "ci_high": acc.ci_high,
    }
    head = (
        f"accuracy at threshold {acc.threshold:g}: candidate {acc.candidate_accuracy:.4f} vs champion "
        f"{acc.champion_accuracy:.4f}, diff {acc.diff:+.4f} [{acc.ci_low:+.4f}, {acc.ci_high:+.4f}]; McNemar: "
        f"b={acc.candidate_only_correct} only candidate right, c={acc.champion_only_correct} only champion right, "
        f"chi2={acc.chi2:.3f} (p={_fmt_p(acc.p_chi2)}), exact two-sided p={_fmt_p(acc.p_exact)}"
    )
    if not primary:
        return RuleResult.reported("mcnemar", f"{head} (reported; not the primary criterion)", numbers)
    ok = acc.p_superiority < settings.alpha
    detail = (
        f"superiority: {head}; {acc.method} of H0: diff <= {acc.bound:g}: p={_fmt_p(acc.p_superiority)} "
        f"{'<' if ok else '>='} alpha {settings.alpha:g}: {Verdict.of(ok)}"
    )
    return RuleResult(rule="superiority", verdict=Verdict.of(ok), blocking=True, detail=detail, numbers=numbers)


def _auc_rule(
    aucs: tuple[float, float, float], z: float | None, p: float, bound: float, settings: GateSettings, *, primary: bool
) -> RuleResult:
    from scipy.stats import norm

    auc_cand, auc_champ, var = aucs
    diff = auc_cand - auc_champ
    half = float(norm.ppf(1.0 - settings.alpha)) * math.sqrt(var)
    z_text = f"z={z:.3f}" if z is not None else "zero variance (identical rankings)"
    numbers: dict[str, Number] = {
        "candidate_auc": auc_cand,
        "champion_auc": auc_champ,
        "diff": diff,
        "wald_ci_low": diff - half,
        "wald_ci_high": diff + half,
        "z": z,
        "p": p,
    }
    if not primary:
        detail = (
            f"roc_auc: candidate {auc_cand:.4f} vs champion {auc_champ:.4f}, diff {diff:+.4f}; one-sided DeLong "
            f"test of H0: diff <= 0: {z_text}, p={_fmt_p(p)} (reported; not the primary criterion)"
        )
        return RuleResult.reported("roc_auc", detail, numbers)
    ok = p < settings.alpha
    detail = (
        f"superiority: AUC candidate {auc_cand:.4f} vs champion {auc_champ:.4f}, diff {diff:+.4f}; "
        f"one-sided DeLong test of H0: diff <= {bound:g}: {z_text}, p={_fmt_p(p)} "
        f"{'<' if ok else '>='} alpha {settings.alpha:g}: {Verdict.of(ok)}"
    )
    return RuleResult(rule="superiority", verdict=Verdict.of(ok), blocking=True, detail=detail, numbers=numbers)


def _slice_rule(results: Sequence[SliceResult], settings: GateSettings, first_model: bool) -> list[RuleResult]:
    notes = _slice_reasons(results, settings, first_model)
    judged = [r for r in results if r.verdict in ("pass", "fail")]
    out: list[RuleResult] = []
    for note in notes:
        if note.startswith("slice non-inferiority"):
            failed = any(r.verdict == "fail" for r in judged)
            numbers: dict[str, Number] = {
                "judged": len(judged),
                "failed": sum(r.verdict == "fail" for r in judged),
                "margin": settings.slice_margin,
            }
            out.append(
                RuleResult(rule="slices", verdict=Verdict.of(not failed), blocking=True, detail=note, numbers=numbers)
            )
        else:
            out.append(RuleResult.reported("slices", note))
    return out


def _backtest(
    data: BacktestData | None, settings: GateSettings, blocking: bool
) -> tuple[BacktestResult | None, RuleResult]:
    margin = settings.backtest_margin

    def skipped(n: int, period: str, why: str) -> tuple[BacktestResult, RuleResult]:
        result = BacktestResult(n, period, None, None, None, None, None, None, None, margin, "skipped", blocking, why)
        return result, RuleResult(
            rule="backtest",
            verdict=Verdict.SKIPPED,
            blocking=blocking,
            detail=f"back-test on older data: skipped: {why}",
            numbers={},
        )

    if data is None:
        return None, RuleResult(
            rule="backtest",
            verdict=Verdict.SKIPPED,
            blocking=blocking,
            detail="back-test on older data: not run (no older data given)",
        )
    if data.y_true is None:
        return skipped(0, data.period, data.note)
    labels = _binary_labels(data.y_true)
    cand = _scores(data.candidate_scores, "back-test candidate")
    champ = _scores(data.champion_scores, "back-test champion")
    if not labels.size == cand.size == champ.size:
        raise GateError(
            f"mismatched back-test rows: labels {labels.size}, candidate {cand.size}, champion {champ.size}"
        )
    if labels.size < settings.min_rows:
        return skipped(
            int(labels.size), data.period, f"{labels.size} older rows < gate.min_rows={settings.min_rows}; {data.note}"
        )
    import numpy as np
    from scipy.stats import norm

    if np.unique(labels).size < 2:
        return skipped(int(labels.size), data.period, f"the older rows hold a single class; {data.note}")
    auc_cand, auc_champ, var = _delong_pair(labels, cand, champ)
    diff = auc_cand - auc_champ
    z, p = one_sided_p(diff, -margin, var)
    half = float(norm.ppf(1.0 - settings.alpha)) * math.sqrt(var)
    ok = p < settings.alpha
    result = BacktestResult(
        int(labels.size), data.period, auc_cand, auc_champ, diff, diff - half, diff + half, z, p, margin,
        Verdict.of(ok), blocking, data.note,
    )  # fmt: skip
    z_text = f"z={z:.3f}" if z is not None else "zero variance"
    detail = (
        f"back-test on {labels.size} older rows ({data.period}; {data.note}): AUC candidate {auc_cand:.4f} vs "
        f"champion {auc_champ:.4f}, diff {diff:+.4f} [{diff - half:+.4f}, {diff + half:+.4f}]; one-sided DeLong "
        f"non-inferiority test of H0: diff <= -{margin:g} (gate.backtest_margin): {z_text}, p={_fmt_p(p)} "
        f"{'<' if ok else '>='} alpha {settings.alpha:g}: {Verdict.of(ok)}{'' if blocking else ' (advisory)'}"
    )
    numbers: dict[str, Number] = {
        "n_rows": int(labels.size),
        "candidate_auc": auc_cand,
        "champion_auc": auc_champ,
        "diff": diff,
        "ci_low": diff - half,
        "ci_high": diff + half,
        "z": z,
        "p": p,
        "margin": margin,
    }
    return result, RuleResult(
        rule="backtest", verdict=Verdict.of(ok), blocking=blocking, detail=detail, numbers=numbers
    )


def _stress(
    labels: np.ndarray,
    candidate: np.ndarray,
    champion: np.ndarray | None,
    scenarios: Sequence[StressScenario],
    settings: GateSettings,
    blocking: bool,
) -> tuple[list[StressResult], RuleResult]:
    import numpy as np

    if not scenarios:
        return [], RuleResult(
            rule="stress",
            verdict=Verdict.SKIPPED,
            blocking=blocking,
            detail="sandbox stress test: skipped (no scenarios)",
        )
    ones = np.ones(labels.size)
    cand_base = _weighted_auc(labels, candidate, ones)
    champ_base = None if champion is None else _weighted_auc(labels, champion, ones)
    results: list[StressResult] = []
    for scenario in scenarios:
        weights = _scores(scenario.weights, f"stress scenario {scenario.name!r} weight")
        if weights.size != labels.size:
            raise GateError(
                f"stress scenario {scenario.name!r} has {weights.size} weights; the holdout has {labels.size} rows"
            )
        ess = scenario.effective_rows
        cand_shifted = _weighted_auc(labels, candidate, weights)
        if champion is None or champ_base is None:
            results.append(
                StressResult(
                    scenario.name, scenario.feature, ess, cand_base, cand_shifted, None, None, None, "no_champion"
                )
            )
            continue
        champ_shifted = _weighted_auc(labels, champion, weights)
        extra = max(cand_base - cand_shifted, 0.0) - max(champ_base - champ_shifted, 0.0)
        verdict = "too_small" if ess < settings.min_slice_rows else Verdict.of(extra <= settings.stress_margin)
        results.append(
            StressResult(
                scenario.name, scenario.feature, ess, cand_base, cand_shifted, champ_base, champ_shifted, extra, verdict
            )
        )
    worst = max(
        results, key=lambda r: r.extra_loss if r.extra_loss is not None else r.candidate_base - r.candidate_shifted
    )
    if champion is None:
        detail = (
            f"sandbox stress test: {len(results)} covariate-shift scenarios of the most important features; "
            f"worst for the candidate: {worst.scenario}, AUC {worst.candidate_base:.4f} -> "
            f"{worst.candidate_shifted:.4f} "
            "(reported; no champion to compare with)"
        )
        return results, RuleResult.reported("stress", detail, {"scenarios": len(results)})
    failed = [r for r in results if r.verdict == "fail"]
    small = [r for r in results if r.verdict == "too_small"]
    ok = not failed
    head = (
        f"sandbox stress test: {len(results)} covariate-shift scenarios of the most important features; "
        f"the candidate may lose at most gate.stress_margin={settings.stress_margin:g} AUC more than the champion "
        "loses (a gain counts as no loss)"
    )
    worst_text = (
        f"worst: {worst.scenario}: candidate {worst.candidate_base:.4f} -> {worst.candidate_shifted:.4f}, "
        f"champion {worst.champion_base:.4f} -> {worst.champion_shifted:.4f}, extra loss {worst.extra_loss:+.4f}"
    )
    listed = "; ".join(f"{r.scenario} extra loss {r.extra_loss:+.4f}" for r in failed)
    small_text = f"; {len(small)} with fewer than {settings.min_slice_rows} effective rows not judged" if small else ""
    detail = f"{head}: {Verdict.of(ok)}{': ' + listed if failed else ''} ({worst_text}){small_text}"
    if not blocking:
        detail += " (advisory)"
    numbers: dict[str, Number] = {
        "scenarios": len(results),
        "failed": len(failed),
        "worst_scenario": worst.scenario,
        "worst_extra_loss": worst.extra_loss,
        "margin": settings.stress_margin,
    }
    return results, RuleResult(rule="stress", verdict=Verdict.of(ok), blocking=blocking, detail=detail, numbers=numbers)


def _inference(
    candidate: InferenceCost | None, champion: InferenceCost | None, settings: GateSettings, blocking: bool
) -> tuple[InferenceResult | None, RuleResult]:
    if candidate is None:
        return None, RuleResult(
            rule="inference",
            verdict=Verdict.SKIPPED,
            blocking=blocking,
            detail="inference budget: skipped (not measured)",
        )
    cand_ms = candidate.budget_ms_per_10k
    measure = "CPU" if candidate.cpu_ms_per_10k is not None else "wall"
    if champion is None:
        result = InferenceResult(cand_ms, None, None, None, candidate.model_bytes, None, None, None, "reported")
        detail = (
            f"inference budget: candidate scores 10k rows in {cand_ms:.1f} ms ({measure}; wall "
            f"{candidate.latency_ms_per_10k:.1f} ms), model {candidate.model_bytes} bytes, {candidate.n_trees} trees "
            "(reported; no champion to compare with)"
        )
        numbers: dict[str, Number] = {"candidate_ms_per_10k": cand_ms, "candidate_bytes": candidate.model_bytes}
        return result, RuleResult.reported("inference", detail, numbers)
    champ_ms = champion.budget_ms_per_10k
    latency_ratio = cand_ms / max(champ_ms, 1e-9)
    size_ratio = candidate.model_bytes / max(champion.model_bytes, 1)
    latency_budget = max(settings.max_latency_ratio * champ_ms, settings.latency_allowance_ms)
    size_budget = max(settings.max_size_ratio * champion.model_bytes, float(settings.size_allowance_bytes))
    latency_ok = cand_ms <= latency_budget
    size_ok = candidate.model_bytes <= size_budget
    ok = latency_ok and size_ok
    result = InferenceResult(
        cand_ms,
        champ_ms,
        latency_ratio,
        latency_budget,
        candidate.model_bytes,
        champion.model_bytes,
        size_ratio,
        size_budget,
        Verdict.of(ok),
    )
    detail = (
        f"inference budget: {measure} ms to score 10k rows {cand_ms:.1f} vs champion {champ_ms:.1f} "
        f"(x{latency_ratio:.2f}; wall {candidate.latency_ms_per_10k:.1f} vs {champion.latency_ms_per_10k:.1f}; "
        f"budget {latency_budget:.1f} ms = max(gate.max_latency_ratio={settings.max_latency_ratio:g} x champion, "
        f"gate.latency_allowance_ms={settings.latency_allowance_ms:g})): {Verdict.of(latency_ok)}; model size "
        f"{candidate.model_bytes} vs {champion.model_bytes} bytes (x{size_ratio:.2f}; budget {size_budget:.0f} = "
        f"max(gate.max_size_ratio={settings.max_size_ratio:g} x champion, gate.size_allowance_bytes="
        f"{settings.size_allowance_bytes})): {Verdict.of(size_ok)}; trees {candidate.n_trees} vs {champion.n_trees}: "
        f"{Verdict.of(ok)}{'' if blocking else ' (advisory)'}"
    )
    numbers = {
        "candidate_ms_per_10k": cand_ms,
        "champion_ms_per_10k": champ_ms,
        "candidate_wall_ms_per_10k": candidate.latency_ms_per_10k,
        "champion_wall_ms_per_10k": champion.latency_ms_per_10k,
        "latency_ratio": latency_ratio,
        "latency_budget_ms": latency_budget,
        "candidate_bytes": candidate.model_bytes,
        "champion_bytes": champion.model_bytes,
        "size_ratio": size_ratio,
        "size_budget_bytes": size_budget,
    }
    return result, RuleResult(
        rule="inference", verdict=Verdict.of(ok), blocking=blocking, detail=detail, numbers=numbers
    )


def evaluate_gate(
    y_true: np.ndarray,
    candidate_scores: np.ndarray,
    champion_scores: np.ndarray | None,
    slices: Mapping[str, np.ndarray],
    settings: GateSettings,
    *,
    seed: int = 0,
    backtest: BacktestData | None = None,
    stress: Sequence[StressScenario] = (),
    candidate_cost: InferenceCost | None = None,
    champion_cost: InferenceCost | None = None,
) -> GateDecision:
    """Judge a candidate against the champion on the same labelled holdout rows (see the module docstring).

    Inputs that cannot be judged (no labels, mismatched rows, a single class, too few rows, a slice
    array of the wrong length) raise :class:`GateError`. Older rows for the back-test, stress
    scenarios (weights over the holdout rows) and measured inference costs are optional: a rule
    without its inputs is reported as skipped. The gate passes only if every blocking rule passes.
    """
    labels = _binary_labels(y_true)
    candidate = _scores(candidate_scores, "candidate")
    if labels.size != candidate.size:
        raise GateError(f"mismatched rows: labels {labels.size} vs candidate {candidate.size}")
    champion = None if champion_scores is None else _scores(champion_scores, "champion")
    if champion is not None and champion.size != candidate.size:
        raise GateError(f"mismatched rows: candidate {candidate.size} vs champion {champion.size}")
    _require_both_classes(labels, "holdout")
    n_rows = int(labels.size)
    if n_rows < settings.min_rows:
        raise GateError(
            f"holdout has {n_rows} rows, fewer than gate.min_rows={settings.min_rows} "
            "(DRIFTGATE_GATE__MIN_ROWS); no verdict on so little evidence"
        )
    for column, values in slices.items():
        _slice_values(column, values, n_rows)

    positives = int(labels.sum())
    rules = [
        RuleResult(
            rule="inputs",
            verdict=Verdict.PASS,
            blocking=True,
            detail=f"inputs: {n_rows} paired holdout rows ({positives} positive, {n_rows - positives} negative) "
            f">= gate.min_rows={settings.min_rows}: ok",
            numbers={"n_rows": n_rows, "positives": positives},
        )
    ]
    slice_results = _judge_slices(labels, candidate, champion, slices, settings)
    advisory = set(settings.advisory_rules)
    stress_results, stress_rule = _stress(labels, candidate, champion, stress, settings, "stress" not in advisory)
    inference, inference_rule = _inference(candidate_cost, champion_cost, settings, "inference" not in advisory)
    confidence = 1.0 - 2.0 * settings.alpha
    primary = settings.metric

    if champion is None:
        auc = _structural_components(labels, candidate)[0]
        auc_ok = auc >= settings.floor_roc_auc
        rules.append(
            RuleResult(
                rule="floor",
                verdict=Verdict.of(auc_ok),
                blocking=True,
                detail=f"first model (no champion): candidate AUC {auc:.4f} "
                f"{'>=' if auc_ok else '<'} floor gate.floor_roc_auc={settings.floor_roc_auc:g}: {Verdict.of(auc_ok)}",
                numbers={"candidate_auc": auc, "floor": settings.floor_roc_auc},
            )
        )
        primary_floor, primary_value = _primary_floor(labels, candidate, settings)
        if primary_floor is not None:
            rules.append(primary_floor)
        cost = _cost_comparison(labels, candidate, None, settings, primary=False, seed=seed)
        if cost is not None:
            rules.append(
                RuleResult(
                    rule="cost",
                    verdict=Verdict.REPORTED,
                    blocking=False,
                    detail=f"expected cost per row at threshold {cost.threshold:g}: {cost.candidate_cost:.4f} "
                    f"(constant decision '{cost.baseline}': {cost.baseline_cost:.4f}) (reported)",
                    numbers={"candidate_cost": cost.candidate_cost, "baseline_cost": cost.baseline_cost},
                )
            )
        rules += _slice_rule(slice_results, settings, first_model=True)
        rules += [
            RuleResult(
                rule="backtest",
                verdict=Verdict.SKIPPED,
                blocking=False,
                detail="back-test on older data: not applicable to a first model",
            ),
            stress_rule,
            inference_rule,
        ]
        passed = all(r.verdict != "fail" for r in rules if r.blocking)
        return _decision(
            passed=passed,
            settings=settings,
            n_rows=n_rows,
            first_model=True,
            champion_metric=None,
            candidate_metric=auc if primary == "roc_auc" else primary_value,
            diff=None,
            ci=(None, None),
            delong=(None, None),
            primary_test=(None, None),
            aucs=(auc, None),
            rules=rules,
            slices=slice_results,
            cost=cost,
            stress=stress_results,
            inference=inference,
        )

    auc_cand, auc_champ, var = _delong_pair(labels, candidate, champion)
    auc_bound = settings.min_effect if primary == "roc_auc" else 0.0
    delong_z, delong_p = one_sided_p(auc_cand - auc_champ, auc_bound, var)
    auc_rule = _auc_rule(
        (auc_cand, auc_champ, var), delong_z, delong_p, auc_bound, settings, primary=primary == "roc_auc"
    )
    accuracy = accuracy_comparison(
        labels,
        candidate,
        champion,
        threshold=settings.decision_threshold,
        bound=settings.min_effect if primary == "accuracy" else 0.0,
        confidence=confidence,
        bootstrap=(settings.n_bootstrap, seed) if primary == "accuracy" else None,
    )
    cost = _cost_comparison(labels, candidate, champion, settings, primary=primary == "expected_cost", seed=seed)
    accuracy_rule = _accuracy_rule(accuracy, settings, primary=primary == "accuracy")
    cost_rule = None if cost is None else _cost_rule(cost, settings, primary=primary == "expected_cost")

    ci_low: float | None
    ci_high: float | None
    primary_test: tuple[float | None, float | None]
    if primary == "roc_auc":
        _, ci_low, ci_high = paired_bootstrap_auc_diff(
            labels, candidate, champion, n_boot=settings.n_bootstrap, seed=seed, confidence=confidence
        )
        metric_values = (auc_cand, auc_champ, auc_cand - auc_champ)
        primary_test = (delong_z, delong_p)
        secondary = [accuracy_rule, *([cost_rule] if cost_rule else [])]
        superiority = auc_rule
    elif primary == "accuracy":
        ci_low, ci_high = accuracy.ci_low, accuracy.ci_high
        metric_values = (accuracy.candidate_accuracy, accuracy.champion_accuracy, accuracy.diff)
        primary_test = (None, accuracy.p_superiority)
        secondary = [auc_rule, *([cost_rule] if cost_rule else [])]
        superiority = accuracy_rule
    else:
        if cost is None or cost_rule is None or cost.saving is None:
            raise GateError("gate.metric 'expected_cost' needs gate.cost_matrix")
        ci_low, ci_high = cost.ci_low, cost.ci_high
        metric_values = (cost.candidate_cost, cost.champion_cost or 0.0, cost.saving)
        primary_test = (cost.z, cost.p_superiority)
        secondary = [auc_rule, accuracy_rule]
        superiority = cost_rule
    rules.append(superiority)
    stratified = " (stratified by class)" if primary == "roc_auc" else ""
    rules.append(
        RuleResult(
            rule="bootstrap",
            verdict=Verdict.REPORTED,
            blocking=False,
            detail=f"bootstrap: {settings.n_bootstrap} paired resamples{stratified}, two-sided {100 * confidence:g}% "
            f"percentile interval of the {primary} improvement [{_num(ci_low)}, {_num(ci_high)}]; "
            f"its lower end is the one-sided {100 * (1 - settings.alpha):g}% lower "
            "bound (reported; the test above decides)",
            numbers={"ci_low": ci_low, "ci_high": ci_high, "n_bootstrap": settings.n_bootstrap},
        )
    )
    rules += secondary
    rules += _slice_rule(slice_results, settings, first_model=False)
    backtest_result, backtest_rule = _backtest(backtest, settings, "backtest" not in advisory)
    rules += [backtest_rule, stress_rule, inference_rule]
    passed = all(r.verdict != "fail" for r in rules if r.blocking)
    return _decision(
        passed=passed,
        settings=settings,
        n_rows=n_rows,
        first_model=False,
        champion_metric=metric_values[1],
        candidate_metric=metric_values[0],
        diff=metric_values[2],
        ci=(ci_low, ci_high),
        delong=(delong_z, delong_p),
        primary_test=primary_test,
        aucs=(auc_cand, auc_champ),
        rules=rules,
        slices=slice_results,
        accuracy=accuracy,
        cost=cost,
        backtest=backtest_result,
        stress=stress_results,
        inference=inference,
    )


def _decision(
    *,
    passed: bool,
    settings: GateSettings,
    n_rows: int,
    first_model: bool,
    champion_metric: float | None,
    candidate_metric: float,
    diff: float | None,
    ci: tuple[float | None, float | None],
    delong: tuple[float | None, float | None],
    primary_test: tuple[float | None, float | None],
    aucs: tuple[float, float | None],
    rules: list[RuleResult],
    slices: list[SliceResult],
    accuracy: AccuracyComparison | None = None,
    cost: CostComparison | None = None,
    backtest: BacktestResult | None = None,
    stress: list[StressResult] | None = None,
    inference: InferenceResult | None = None,
) -> GateDecision:
    verdicts = ", ".join(f"{r.rule} {r.verdict}" for r in rules if r.blocking and r.rule != "inputs")
    summary = f"gate: {Verdict.of(passed)} ({verdicts})"
    return GateDecision(
        passed=passed,
        metric=settings.metric,
        n_rows=n_rows,
        first_model=first_model,
        champion_metric=champion_metric,
        candidate_metric=candidate_metric,
        diff=diff,
        ci_low=ci[0],
        ci_high=ci[1],
        delong_z=delong[0],
        delong_p=delong[1],
        alpha=settings.alpha,
        min_effect=settings.min_effect,
        slice_margin=settings.slice_margin,
        reasons=(*(r.detail for r in rules), summary),
        slices=tuple(slices),
        candidate_auc=aucs[0],
        champion_auc=aucs[1],
        primary_z=primary_test[0],
        primary_p=primary_test[1],
        rules=tuple(rules),
        accuracy=accuracy,
        cost=cost,
        backtest=backtest,
        stress=tuple(stress or ()),
        inference=inference,
    )
