"""The promotion gate: does the candidate beat the champion on the same holdout rows, everywhere that matters?

Pure functions only. The decision is a frozen :class:`GateDecision` whose ``reasons`` state
every rule's verdict with its numbers, so the audit trail explains a promotion or a refusal.

Statistics (all paired: both models are scored on the same rows):

- ROC AUC and the variance of an AUC difference by DeLong's method, computed in
  O(n log n) with midranks (Sun & Xu 2014).
- Superiority overall: one-sided z-test of H0: AUC_cand - AUC_champ <= min_effect.
- A stratified paired bootstrap interval of the difference, reported next to the test.
- Non-inferiority per slice: one-sided z-test of H0: diff <= -slice_margin per slice value,
  Holm-Bonferroni across every judged slice.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from tasks.errors import GateError
from tasks.settings import GateSettings

if TYPE_CHECKING:
    import numpy as np

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
class GateDecision:
    passed: bool
    metric: str
    n_rows: int
    first_model: bool
    champion_metric: float | None
    candidate_metric: float
    diff: float | None
    ci_low: float | None  # bootstrap interval of candidate - champion
    ci_high: float | None
    delong_z: float | None  # one-sided superiority test statistic (None when the variance is 0)
    delong_p: float | None
    alpha: float
    min_effect: float
    slice_margin: float
    reasons: tuple[str, ...]
    slices: tuple[SliceResult, ...]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["reasons"] = list(self.reasons)
        out["slices"] = [asdict(s) for s in self.slices]
        return out


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
    import numpy as np

    try:
        scores = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise GateError(f"{name} scores are not numeric") from exc
    if scores.ndim != 1:
        raise GateError(f"{name} scores must be one-dimensional, got shape {scores.shape}")
    bad = int((~np.isfinite(scores)).sum())
    if bad:
        raise GateError(f"{name} scores hold {bad} NaN/inf values")
    return scores


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


def evaluate_gate(
    y_true: np.ndarray,
    candidate_scores: np.ndarray,
    champion_scores: np.ndarray | None,
    slices: Mapping[str, np.ndarray],
    settings: GateSettings,
    *,
    seed: int = 0,
) -> GateDecision:
    """Judge a candidate against the champion on the same labelled holdout rows.

    Rules: (1) usable inputs, else GateError; (2) a first model must reach gate.floor_roc_auc;
    (3) otherwise superiority overall by DeLong (bootstrap CI reported); (4) non-inferiority in every
    slice large enough to judge, Holm-adjusted. The gate passes only if every rule passes.
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
    reasons = [
        f"inputs: {n_rows} paired holdout rows ({positives} positive, {n_rows - positives} negative) "
        f">= gate.min_rows={settings.min_rows}: ok"
    ]
    slice_results = _judge_slices(labels, candidate, champion, slices, settings)

    if champion is None:
        auc = _structural_components(labels, candidate)[0]
        passed = auc >= settings.floor_roc_auc
        reasons.append(
            f"first model (no champion): candidate AUC {auc:.4f} "
            f"{'>=' if passed else '<'} floor gate.floor_roc_auc={settings.floor_roc_auc:g}: "
            f"{'pass' if passed else 'fail'}"
        )
        reasons += _slice_reasons(slice_results, settings, first_model=True)
        return GateDecision(
            passed=passed,
            metric=settings.metric,
            n_rows=n_rows,
            first_model=True,
            champion_metric=None,
            candidate_metric=auc,
            diff=None,
            ci_low=None,
            ci_high=None,
            delong_z=None,
            delong_p=None,
            alpha=settings.alpha,
            min_effect=settings.min_effect,
            slice_margin=settings.slice_margin,
            reasons=tuple(reasons),
            slices=tuple(slice_results),
        )

    auc_cand, auc_champ, var = _delong_pair(labels, candidate, champion)
    diff = auc_cand - auc_champ
    z, p = one_sided_p(diff, settings.min_effect, var)
    superior = p < settings.alpha
    z_text = f"z={z:.3f}" if z is not None else "zero variance (identical rankings)"
    reasons.append(
        f"superiority: AUC candidate {auc_cand:.4f} vs champion {auc_champ:.4f}, diff {diff:+.4f}; "
        f"one-sided DeLong test of H0: diff <= {settings.min_effect:g}: {z_text}, p={_fmt_p(p)} "
        f"{'<' if superior else '>='} alpha {settings.alpha:g}: {'pass' if superior else 'fail'}"
    )
    confidence = 1.0 - 2.0 * settings.alpha
    _, ci_low, ci_high = paired_bootstrap_auc_diff(
        labels, candidate, champion, n_boot=settings.n_bootstrap, seed=seed, confidence=confidence
    )
    reasons.append(
        f"bootstrap: {settings.n_bootstrap} stratified paired resamples, two-sided {100 * confidence:g}% "
        f"percentile interval of diff [{ci_low:+.4f}, {ci_high:+.4f}]; its lower end is the one-sided "
        f"{100 * (1 - settings.alpha):g}% lower bound (reported; the DeLong test decides)"
    )
    reasons += _slice_reasons(slice_results, settings, first_model=False)
    slices_ok = all(r.verdict != "fail" for r in slice_results)
    passed = superior and slices_ok
    reasons.append(
        f"gate: {'pass' if passed else 'fail'} "
        f"(superiority {'pass' if superior else 'fail'}, slices {'pass' if slices_ok else 'fail'})"
    )
    return GateDecision(
        passed=passed,
        metric=settings.metric,
        n_rows=n_rows,
        first_model=False,
        champion_metric=auc_champ,
        candidate_metric=auc_cand,
        diff=diff,
        ci_low=ci_low,
        ci_high=ci_high,
        delong_z=z,
        delong_p=p,
        alpha=settings.alpha,
        min_effect=settings.min_effect,
        slice_margin=settings.slice_margin,
        reasons=tuple(reasons),
        slices=tuple(slice_results),
    )


def prefect_tasks() -> dict[str, Any]:
    """Thin Prefect task wrappers of this module's functions (imported lazily)."""
    from prefect import task

    return {"evaluate_gate": task(name="gate-evaluate")(evaluate_gate)}
