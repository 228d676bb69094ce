"""Paired statistics of two models scored on the same rows: DeLong's test, paired bootstraps, McNemar,
Holm's adjustment, mean-difference z tests. Pure numpy/scipy; no settings, no I/O."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tasks.core.errors import GateError
from tasks.gate.business import finite_vector
from tasks.gate.results import AccuracyComparison, RegressionComparison

if TYPE_CHECKING:
    import numpy as np


# Upper bound on resample draws held in memory at once (elements of the chunk's index matrix).
_BOOTSTRAP_CHUNK_ELEMENTS = 4_000_000


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
