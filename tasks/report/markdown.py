"""Reports a reviewer can read: markdown for each monitored batch, each retrain/gate, each cycle; plots as PNG."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tasks.drift.results import BatchProfile
    from tasks.gate.comparison import ModelComparison
    from tasks.gate.results import GateDecision
    from tasks.performance.estimation import PerformanceEstimate, RealizedPerformance
    from tasks.policy.decide import PolicyDecision
    from tasks.training.train import TrainedModel


def _num(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def monitor_markdown(
    *,
    model: str,
    batch_id: str,
    source: str,
    scored_by: str,
    profile: BatchProfile,
    estimate: PerformanceEstimate,
    realized: RealizedPerformance | None,
    decision: PolicyDecision,
    drift_image: Path | None = None,
    heatmap_image: Path | None = None,
    overlays_image: Path | None = None,
) -> str:
    lines = [
        f"# driftgate monitor — {model} — batch `{batch_id}`",
        "",
        f"- source: `{source}`; rows: {profile.rows}; window: {profile.window_start} → {profile.window_end}",
        f"- scored by production version **{scored_by}**",
        f"- **decision: {decision.action.value}** (priority {decision.priority:.2f}, {decision.priority_class})",
        "",
        "## Why",
        *[f"- {reason}" for reason in decision.reasons],
        "",
        "| rule | outcome | detail |",
        "|---|---|---|",
        *[f"| {r.rule} | {r.verdict} | {r.detail} |" for r in decision.rules],
        "",
        "## Performance",
        "| signal | value | band / threshold | reference |",
        "|---|---|---|---|",
        f"| estimated {estimate.metric} ({estimate.method}) | {_num(estimate.value)} | "
        f"[{_num(estimate.lower)}, {_num(estimate.upper)}] / lower {_num(estimate.lower_threshold)} | "
        f"{_num(estimate.reference_value)} |",
    ]
    if realized is not None and realized.value is not None:
        lines.append(
            f"| realized {realized.metric} ({realized.rows_labelled} labelled rows) | {_num(realized.value)} | "
            f"— | {_num(estimate.reference_value)} |"
        )
    lines += [
        "",
        "## Data quality",
        f"- passed: **{profile.quality.passed}**",
        *[f"- {i.severity}: {i.check} {i.column or ''} — {i.detail}" for i in profile.quality.issues],
        "",
        "## Drift (statistic vs threshold calibrated at this batch's size on the reference)",
        _batch_control_line(profile),
        "",
        "| feature | method | statistic | threshold | alert | p-value | after batch control |",
        "|---|---|---|---|---|---|---|",
        *[
            f"| {d.feature} | {d.method} | {d.statistic:.4f} | {d.threshold:.4f} | {'**yes**' if d.alert else ''} | "
            f"{_p_value(d.p_value)} | {_survives(d.batch_alert)} |"
            for d in profile.drift
        ],
    ]
    if drift_image is not None:
        lines += ["", f"![drift]({drift_image.name})"]
    if heatmap_image is not None:
        lines += [
            "",
            "### Drift over recent batches (primary statistic / threshold; outlined cells alert)",
            f"![drift heat map]({heatmap_image.name})",
        ]
    if overlays_image is not None:
        lines += ["", "### Reference vs batch, most drifted features", f"![distributions]({overlays_image.name})"]
    return "\n".join(lines) + "\n"


def _batch_control_line(profile: BatchProfile) -> str:
    """Which features survive the batch-level control (the policy acts on those), and which alerted alone."""
    alerting, kept = profile.alerting_features, profile.drifted_features
    joint = profile.multivariate_drift
    if profile.batch_control == "none":
        return (
            f"- batch-level control **off**: the policy acts on every per-feature alert ({len(alerting)}: {alerting}); "
            "each test alerts on about 1 % of stationary batches, so k features alert on about 1 - 0.99^k"
        )
    dropped = [f for f in alerting if f not in kept]
    joint_text = ""
    if joint is not None and joint.alert:
        joint_text = f"; joint (PCA) drift {'survives' if joint.drifts else 'does not survive'}"
    return (
        f"- batch-level control: **{profile.batch_control}** at {profile.batch_alpha:g} (a stationary batch gives any "
        f"drift evidence at most that often); surviving features, which the policy acts on: **{kept}**; "
        f"per-feature alerts not surviving it: {dropped}{joint_text}"
    )


def _p_value(value: float | None) -> str:
    return "—" if value is None else f"{value:.2g}"


def _survives(batch_alert: bool | None) -> str:
    return "" if batch_alert is None else ("**drift**" if batch_alert else "no")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def gate_markdown(
    *,
    model: str,
    candidate_version: str,
    champion_version: str | None,
    trained: TrainedModel,
    gate: GateDecision,
    forest_png: Path | None = None,
    window: Mapping[str, Any] | None = None,
    comparison: ModelComparison | None = None,
    reliability_chart: Path | None = None,
    reason: str | None = None,
) -> str:
    """The gate's report: every rule's verdict with its numbers, then one table per rule, then what changed
    beyond the verdict (calibration, errors at the threshold, feature importance; descriptive)."""
    verdict = "PASSED" if gate.passed else "FAILED"
    lines = [
        f"# driftgate gate — {model} — candidate {candidate_version} vs champion {champion_version or '(none)'}",
        "",
        f"**Gate {verdict}** on {gate.n_rows} paired holdout rows. Primary criterion: **{gate.metric}** "
        f"(min effect {gate.min_effect:g}, alpha {gate.alpha:g}).",
        *(["", f"**Why this retrain:** {_cell(reason)}"] if reason else []),
        "",
        "Every blocking rule must pass. Promotion therefore requires the superiority test to reject at level "
        "alpha, which bounds the false-promotion rate by alpha whatever the other rules do (an intersection-union "
        "test); the other rules can only make promotion rarer.",
        "",
        "## Rules",
        "| rule | verdict | blocks | detail |",
        "|---|---|---|---|",
        *[f"| {r.rule} | **{r.verdict}** | {'yes' if r.blocking else 'no'} | {_cell(r.detail)} |" for r in gate.rules],
        "",
        f"- {gate.reasons[-1]}" if gate.reasons else "",
        "",
        f"## Overall ({gate.metric}; improvement = candidate better)",
        "| champion | candidate | improvement | bootstrap CI | z | p |",
        "|---|---|---|---|---|---|",
        f"| {_num(gate.champion_metric)} | {_num(gate.candidate_metric)} | {_num(gate.diff)} | "
        f"[{_num(gate.ci_low)}, {_num(gate.ci_high)}] | {_num(gate.primary_z, 3)} | {_num(gate.primary_p, 5)} |",
    ]
    if gate.metric != "roc_auc":
        lines += [
            "",
            f"ROC AUC (reported): champion {_num(gate.champion_auc)}, candidate {_num(gate.candidate_auc)}, "
            f"DeLong one-sided p {_num(gate.delong_p, 5)}.",
        ]
    if gate.accuracy is not None:
        a = gate.accuracy
        lines += [
            "",
            f"## Accuracy at threshold {a.threshold:g} and McNemar's test",
            "| champion | candidate | diff | CI | b (only candidate right) | c (only champion right) "
            "| chi2 | p (chi2) | p (exact) |",
            "|---|---|---|---|---|---|---|---|---|",
            f"| {_num(a.champion_accuracy)} | {_num(a.candidate_accuracy)} | {_num(a.diff)} | "
            f"[{_num(a.ci_low)}, {_num(a.ci_high)}] | {a.candidate_only_correct} | {a.champion_only_correct} | "
            f"{a.chi2:.3f} | {_num(a.p_chi2, 5)} | {_num(a.p_exact, 5)} |",
        ]
    if gate.cost is not None:
        c = gate.cost
        lines += [
            "",
            f"## Business cost per row (threshold {c.threshold:g})",
            "| champion | candidate | saving | CI | p | cheaper constant decision |",
            "|---|---|---|---|---|---|",
            f"| {_num(c.champion_cost)} | {_num(c.candidate_cost)} | {_num(c.saving)} | "
            f"[{_num(c.ci_low)}, {_num(c.ci_high)}] | {_num(c.p_superiority, 5)} | "
            f"{c.baseline} ({_num(c.baseline_cost)}) |",
        ]
    lines += [
        "",
        f"## Slices (ROC AUC non-inferiority, margin {gate.slice_margin:g}, Holm-adjusted)",
        "| slice | n | champion | candidate | diff | CI | p (adj.) | verdict |",
        "|---|---|---|---|---|---|---|---|",
        *[
            f"| {_cell(f'{s.column}={s.value}')} | {s.n} | {_num(s.champion)} | {_num(s.candidate)} | {_num(s.diff)} | "
            f"[{_num(s.ci_low)}, {_num(s.ci_high)}] | {_num(s.p_adjusted, 5)} | {s.verdict} |"
            for s in gate.slices
        ],
    ]
    if gate.backtest is not None:
        b = gate.backtest
        lines += [
            "",
            "## Back-test on older data (rows neither model trained on)",
            "| period | rows | champion AUC | candidate AUC | diff | CI | p (H0: diff <= -margin) | margin | verdict |",
            "|---|---|---|---|---|---|---|---|---|",
            f"| {_cell(b.period)} | {b.n_rows} | {_num(b.champion_auc)} | {_num(b.candidate_auc)} | {_num(b.diff)} | "
            f"[{_num(b.ci_low)}, {_num(b.ci_high)}] | {_num(b.p_value, 5)} | {b.margin:g} | {b.verdict} |",
            "",
            f"{_cell(b.note)}",
        ]
    if gate.stress:
        lines += [
            "",
            "## Sandbox stress scenarios (covariate shift of the most important features)",
            "| scenario | effective rows | champion base → shifted | candidate base → shifted | extra loss | verdict |",
            "|---|---|---|---|---|---|",
            *[
                f"| {_cell(s.scenario)} | {s.effective_rows:.0f} | {_num(s.champion_base)} → "
                f"{_num(s.champion_shifted)} | {_num(s.candidate_base)} → {_num(s.candidate_shifted)} | "
                f"{_num(s.extra_loss)} | {s.verdict} |"
                for s in gate.stress
            ],
        ]
    if gate.inference is not None:
        i = gate.inference
        lines += [
            "",
            "## Inference budget",
            "| measure | champion | candidate | ratio | budget | verdict |",
            "|---|---|---|---|---|---|",
            f"| scoring ms per 10k rows | {_num(i.champion_ms_per_10k, 1)} | {_num(i.candidate_ms_per_10k, 1)} | "
            f"{_num(i.latency_ratio, 2)} | {_num(i.latency_budget_ms, 1)} | {i.verdict} |",
            f"| model bytes | {i.champion_bytes if i.champion_bytes is not None else 'n/a'} | {i.candidate_bytes} | "
            f"{_num(i.size_ratio, 2)} | {_num(i.size_budget_bytes, 0)} | {i.verdict} |",
        ]
    lines += [
        "",
        "## Candidate training",
        f"- window {trained.window_start} → {trained.window_end}; {trained.train_rows} train / "
        f"{trained.valid_rows} validation rows{' (weighted rows)' if trained.weighted else ''}",
    ]
    if window:
        lines.append(
            f"- window kind **{window.get('kind')}**: {window.get('recent_rows')} recent + "
            f"{window.get('reference_rows')} reference rows (weight {window.get('reference_weight') or 1}); "
            f"holdout {window.get('holdout_rows')} rows"
        )
    lines += [
        f"- Optuna: {trained.n_trials} trials ({trained.n_pruned} pruned) in {trained.tuning_seconds:.1f} s; "
        f"validation AUC {trained.validation_auc:.4f}; best iteration {trained.best_iteration}",
        f"- params: `{trained.params}`",
    ]
    if forest_png is not None:
        lines += ["", f"![per-slice intervals]({forest_png.name})"]
    if comparison is not None:
        from tasks.report.comparison import comparison_markdown

        lines += comparison_markdown(comparison, reliability_chart)
    return "\n".join(lines) + "\n"


def forest_plot(gate: GateDecision, path: Path, *, title: str) -> Path | None:
    """ROC AUC difference (candidate - champion) with its interval: overall, on older data, per slice.

    Each row's tick marks the bound it is tested against: +min_effect overall (superiority),
    -gate.backtest_margin for the back-test, -slice_margin per slice (non-inferiority).
    """
    overall: tuple[float | None, float | None, float | None] = (None, None, None)
    if gate.metric == "roc_auc":
        overall = (gate.diff, gate.ci_low, gate.ci_high)
    else:
        auc_rule = gate.rule("roc_auc")
        if auc_rule is not None:
            numbers = auc_rule.numbers
            overall = tuple(  # type: ignore[assignment]
                float(v) if isinstance(v, int | float) else None
                for v in (numbers.get("diff"), numbers.get("wald_ci_low"), numbers.get("wald_ci_high"))
            )
    superiority = gate.rule("superiority")
    rows_in: list[tuple[str, float | None, float | None, float | None, bool, float]] = [
        (
            "overall",
            *overall,
            superiority is not None and superiority.verdict == "pass",
            gate.min_effect if gate.metric == "roc_auc" else 0.0,
        )
    ]
    if gate.backtest is not None and gate.backtest.diff is not None:
        b = gate.backtest
        rows_in.append(("older data (back-test)", b.diff, b.ci_low, b.ci_high, b.verdict == "pass", -b.margin))
    rows_in += [
        (f"{s.column}={s.value}", s.diff, s.ci_low, s.ci_high, s.verdict == "pass", -gate.slice_margin)
        for s in gate.slices
    ]
    rows = [
        (name, diff, low, high, ok, bound)
        for name, diff, low, high, ok, bound in rows_in
        if diff is not None and low is not None and high is not None
    ]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 0.4 * len(rows) + 1.5))
    for i, (_, diff, low, high, ok, bound) in enumerate(rows):
        color = "#2ca02c" if ok else "#d62728"
        ax.plot([low, high], [i, i], color=color, linewidth=2)
        ax.plot([diff], [i], "o", color=color)
        ax.plot([bound, bound], [i - 0.35, i + 0.35], color="grey", linestyle="--", linewidth=1)
    ax.axvline(0.0, color="black", linewidth=1)
    ax.set_yticks(range(len(rows)), [r[0] for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("ROC AUC, candidate - champion (dashes: each row's test bound)")
    ax.set_title(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_report(path: Path, markdown: str, *, reports_root: Path | None = None) -> Path:
    """Write the markdown report atomically; with ``reports_root`` also its self-contained HTML sibling and the
    refreshed ``<reports_root>/index.html`` (tasks/report/html.py)."""
    from tasks.core.atomic import write_text_atomic

    write_text_atomic(path, markdown)  # a temporary file per process and thread: concurrent writers never share one
    if reports_root is not None:
        from tasks.report.html import write_html_report

        write_html_report(path, markdown, reports_root=reports_root)
    return path
