"""Reports a reviewer can read: markdown for each monitored batch, each retrain/gate, each cycle; plots as PNG."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tasks.estimation import PerformanceEstimate, RealizedPerformance
    from tasks.gating import GateDecision
    from tasks.policy import PolicyDecision
    from tasks.profiling import BatchProfile
    from tasks.training import TrainedModel


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
    drift_png: Path | None = None,
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
        *[f"| {r.rule} | {r.outcome} | {r.detail} |" for r in decision.rules],
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
        "## Drift (statistic vs threshold calibrated on reference chunks)",
        "| feature | method | statistic | threshold | alert |",
        "|---|---|---|---|---|",
        *[
            f"| {d.feature} | {d.method} | {d.statistic:.4f} | {d.threshold:.4f} | {'**yes**' if d.alert else ''} |"
            for d in profile.drift
        ],
    ]
    if drift_png is not None:
        lines += ["", f"![drift]({drift_png.name})"]
    return "\n".join(lines) + "\n"


def drift_chart(profile: BatchProfile, path: Path, *, title: str) -> Path:
    """Bar chart of each feature's primary statistic relative to its threshold (1.0 = alert line)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    primary: dict[str, Any] = {}
    for d in profile.drift:
        if not d.primary:  # the deciding method per feature, so colours agree with drifted_features
            continue
        ratio = d.statistic / d.threshold if d.threshold > 0 else 0.0
        primary[d.feature] = (ratio, d.method, d.alert)
    names = list(primary)
    ratios = [primary[n][0] for n in names]
    colors = ["#d62728" if primary[n][2] else "#1f77b4" for n in names]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(names) + 1.2))
    ax.barh(names, ratios, color=colors)
    ax.axvline(1.0, color="black", linestyle="--", linewidth=1)
    ax.set_xlabel("statistic / calibrated threshold (>1 = drift)")
    ax.set_title(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def gate_markdown(
    *,
    model: str,
    candidate_version: str,
    champion_version: str | None,
    trained: TrainedModel,
    gate: GateDecision,
    forest_png: Path | None = None,
) -> str:
    verdict = "PASSED" if gate.passed else "FAILED"
    lines = [
        f"# driftgate gate — {model} — candidate {candidate_version} vs champion {champion_version or '(none)'}",
        "",
        f"**Gate {verdict}** on {gate.n_rows} paired holdout rows ({gate.metric}).",
        "",
        "## Rules",
        *[f"- {reason}" for reason in gate.reasons],
        "",
        "## Overall",
        "| champion | candidate | difference | CI | DeLong z | p |",
        "|---|---|---|---|---|---|",
        f"| {_num(gate.champion_metric)} | {_num(gate.candidate_metric)} | {_num(gate.diff)} | "
        f"[{_num(gate.ci_low)}, {_num(gate.ci_high)}] | {_num(gate.delong_z, 3)} | {_num(gate.delong_p, 5)} |",
        "",
        "## Slices (non-inferiority, Holm-adjusted)",
        "| slice | n | champion | candidate | diff | CI | p (adj.) | verdict |",
        "|---|---|---|---|---|---|---|---|",
        *[
            f"| {s.column}={s.value} | {s.n} | {_num(s.champion)} | {_num(s.candidate)} | {_num(s.diff)} | "
            f"[{_num(s.ci_low)}, {_num(s.ci_high)}] | {_num(s.p_adjusted, 5)} | {s.verdict} |"
            for s in gate.slices
        ],
        "",
        "## Candidate training",
        f"- window {trained.window_start} → {trained.window_end}; {trained.train_rows} train / "
        f"{trained.valid_rows} validation rows",
        f"- Optuna: {trained.n_trials} trials ({trained.n_pruned} pruned) in {trained.tuning_seconds:.1f} s; "
        f"validation AUC {trained.validation_auc:.4f}; best iteration {trained.best_iteration}",
        f"- params: `{trained.params}`",
    ]
    if forest_png is not None:
        lines += ["", f"![slices]({forest_png.name})"]
    return "\n".join(lines) + "\n"


def forest_plot(gate: GateDecision, path: Path, *, title: str) -> Path | None:
    """Per-slice difference (candidate - champion) with its interval; the margin as a dashed line."""
    candidates = [("overall", gate.diff, gate.ci_low, gate.ci_high, gate.passed)]
    candidates += [(f"{s.column}={s.value}", s.diff, s.ci_low, s.ci_high, s.verdict == "pass") for s in gate.slices]
    rows = [
        (name, diff, low, high, ok)
        for name, diff, low, high, ok in candidates
        if diff is not None and low is not None and high is not None
    ]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.4 * len(rows) + 1.4))
    for i, (_, diff, low, high, ok) in enumerate(rows):
        color = "#2ca02c" if ok else "#d62728"
        ax.plot([low, high], [i, i], color=color, linewidth=2)
        ax.plot([diff], [i], "o", color=color)
    ax.axvline(0.0, color="black", linewidth=1)
    ax.axvline(-gate.slice_margin, color="grey", linestyle="--", linewidth=1)
    ax.set_yticks(range(len(rows)), [r[0] for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel(f"{gate.metric}: candidate - champion (dashed: -margin {gate.slice_margin})")
    ax.set_title(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_report(path: Path, markdown: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(markdown)
    tmp.replace(path)
    return path


def publish_markdown(markdown: str, *, key: str, description: str) -> None:
    """Publish as a Prefect artifact when running inside a flow; a no-op outside one."""
    from prefect.artifacts import create_markdown_artifact
    from prefect.context import FlowRunContext

    if FlowRunContext.get() is None:
        return
    create_markdown_artifact(markdown=markdown, key=_artifact_key(key), description=description)


def _artifact_key(key: str) -> str:
    # Prefect artifact keys: lowercase letters, digits and dashes only.
    import re

    return re.sub(r"[^a-z0-9-]+", "-", key.lower()).strip("-")[:100] or "driftgate"
