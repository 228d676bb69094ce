"""The gate's rules, one function each: primary floors, superiority by cost, accuracy or ROC AUC, slices,
back-test, sandbox stress and the inference budget. Each returns its :class:`RuleResult` with the numbers."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tasks.core.errors import GateError
from tasks.core.settings import GateSettings
from tasks.core.verdicts import Number, RuleResult, Verdict
from tasks.gate.paired_tests import (
    _binary_labels,
    _delong_pair,
    _mean_z_test,
    _scores,
    _structural_components,
    _weighted_auc,
    holm_adjust,
    one_sided_p,
    paired_bootstrap_mean_diff,
)
from tasks.gate.results import (
    MISSING_SLICE_VALUE,
    AccuracyComparison,
    BacktestData,
    BacktestResult,
    CostComparison,
    InferenceResult,
    SliceResult,
    StressResult,
)

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

    from tasks.gate.stress import StressScenario
    from tasks.training.train import InferenceCost


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
