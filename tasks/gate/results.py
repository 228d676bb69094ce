"""What the gate decides and the comparisons behind it: frozen, typed results for reports and the audit store."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from tasks.core.verdicts import RuleResult
from tasks.gate.power import PowerCheck

MISSING_SLICE_VALUE = "<missing>"


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
    power: PowerCheck | None = None  # the whole gate's power at gate.target_effect (superiority x slices)
    # failed while underpowered: the holdout could not tell, which is not evidence the candidate is no better
    inconclusive: bool = False

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["reasons"] = list(self.reasons)
        out["slices"] = [asdict(s) for s in self.slices]
        out["rules"] = [asdict(r) for r in self.rules]
        out["stress"] = [asdict(s) for s in self.stress]
        return out

    def rule(self, name: str) -> RuleResult | None:
        return next((r for r in self.rules if r.rule == name), None)

    def awaiting_labels(self, holdout_fraction: float) -> int | None:
        """New labelled rows the policy waits for before retraining again (``PendingJudgement``); None when the
        gate settled the question (passed, or failed with the power to see the target gain)."""
        if not self.inconclusive or self.power is None:
            return None
        return self.power.labelled_rows_for(holdout_fraction)
