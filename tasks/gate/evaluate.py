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

*Power* (reported, :mod:`tasks.gate.power`): the whole gate's power at ``gate.target_effect`` on this holdout --
the superiority test's times the per-slice non-inferiority rule's (each judged slice's standard error and
``gate.slice_margin``), both stated. A gate that fails only on those two rules, each failed one short of
``gate.min_power`` on its own, while the whole gate's power is below it too, is *inconclusive*
(``GateDecision.inconclusive``): the summary says how many more labelled rows (and positives) would give the
whole gate that power. It still does not promote.

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
from typing import TYPE_CHECKING

from tasks.core.errors import GateError
from tasks.core.settings import GateSettings
from tasks.core.verdicts import Number, RuleResult, Verdict
from tasks.gate.paired_tests import (
    _binary_labels,
    _delong_pair,
    _require_both_classes,
    _scores,
    _structural_components,
    accuracy_comparison,
    one_sided_p,
    paired_bootstrap_auc_diff,
)
from tasks.gate.power import PowerCheck, power_check, standard_error_from_interval
from tasks.gate.results import (
    AccuracyComparison,
    BacktestData,
    BacktestResult,
    CostComparison,
    GateDecision,
    InferenceResult,
    SliceResult,
    StressResult,
)
from tasks.gate.rules import (
    _accuracy_rule,
    _auc_rule,
    _backtest,
    _cost_comparison,
    _cost_rule,
    _inference,
    _judge_slices,
    _num,
    _primary_floor,
    _slice_rule,
    _slice_values,
    _stress,
)

if TYPE_CHECKING:
    import numpy as np

    from tasks.gate.stress import StressScenario
    from tasks.training.train import InferenceCost


# --- the gate -----------------------------------------------------------------------------------


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
    standard_error = (
        math.sqrt(max(var, 0.0))
        if primary == "roc_auc"
        else standard_error_from_interval(ci_low, ci_high, settings.alpha)
    )
    power = None
    if standard_error is not None:
        power = power_check(
            metric=primary,
            standard_error=standard_error,
            effect=settings.target_effect,
            bound=settings.min_effect,
            alpha=settings.alpha,
            min_power=settings.min_power,
            rows=n_rows,
            positives=positives,
            slices=[
                standard_error_from_interval(r.ci_low, r.ci_high, settings.alpha) or 0.0
                for r in slice_results
                if r.verdict in ("pass", "fail")
            ],
            slice_margin=settings.slice_margin,
            # the slices are judged in ROC AUC: the target gain carries over only when it is an AUC gain
            slice_effect=settings.target_effect if primary == "roc_auc" else 0.0,
        )
        rules.append(RuleResult.reported("power", power.describe(), _power_numbers(power)))
    passed = all(r.verdict != "fail" for r in rules if r.blocking)
    # Superiority and slice non-inferiority can fail for lack of evidence; a back-test, stress or budget failure is
    # conclusive. A failure is inconclusive when only those two rules failed, each of them short of min_power on its
    # own (a well-powered failure settles the question), and the whole gate is short of it too. A slice shown
    # inferior (its upper bound below -gate.slice_margin: the mirror test rejects at alpha) settles it as well.
    slice_rule = next((r for r in rules if r.rule == "slices" and r.blocking), None)
    own_power = {id(superiority): power.superiority if power else 1.0}
    shown_inferior = any(
        r.verdict == "fail" and r.ci_high is not None and r.ci_high < -settings.slice_margin for r in slice_results
    )
    if slice_rule is not None and not shown_inferior:
        own_power[id(slice_rule)] = power.slice_power if power else 1.0
    failed = [r for r in rules if r.blocking and r.verdict == Verdict.FAIL]
    inconclusive = bool(
        not passed
        and power is not None
        and power.underpowered
        and power.rows_needed is not None
        and all(id(r) in own_power and own_power[id(r)] < settings.min_power for r in failed)
    )
    return _decision(
        passed=passed,
        power=power,
        inconclusive=inconclusive,
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


def _power_numbers(power: PowerCheck) -> dict[str, Number]:
    return {
        "power": power.power,
        "superiority_power": power.superiority,
        "slice_power": power.slice_power,
        "slices_judged": power.slices_judged,
        "target_effect": power.effect,
        "detectable": power.detectable,
        "standard_error": power.standard_error,
        "rows_needed": power.rows_needed,
        "more_rows": power.more_rows,
        "more_positives": power.more_positives,
    }


def _decision(
    *,
    passed: bool,
    power: PowerCheck | None = None,
    inconclusive: bool = False,
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
    if inconclusive and power is not None:
        summary += f" — {power.need()}"
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
        power=power,
        inconclusive=inconclusive,
    )
