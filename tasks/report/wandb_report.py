"""The W&B Report of one retrain decision, built with ``wandb-workspaces`` (Reports API v2).

A reviewer decides "promote or not" from this page alone: why the retrain happened (the triggering batches'
drift and performance), estimated vs realized performance over batch time, the gate's rules and forest plot,
per-slice intervals, the Optuna trials, the feature-importance change, the canary result and the decision
with its links. :func:`build_report` is pure (typed inputs in, a ``Report`` out, no network);
:func:`report_spec` is its full specification as JSON, written next to the retrain run offline and saved to
the project by ``driftgate wandb publish`` (:func:`save_spec`), or at once when tracking is online.

Every panel plots a key that the monitoring run (``tasks/resources/wandb_monitoring.py``) or the retrain run
(``tasks/resources/wandb_retrain.py``) logs; ``tests/unit/report/test_wandb_report.py`` checks it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from tasks.core.atomic import write_text_atomic
from tasks.resources import wandb_monitoring as mon
from tasks.resources import wandb_retrain as ret

if TYPE_CHECKING:
    from wandb_workspaces.reports.v2 import Report

SPEC_SUFFIX: Final = ".report.json"
TITLE_LIMIT: Final = 128  # the Reports API refuses longer titles


@dataclass(frozen=True)
class TriggerBatch:
    """A batch that led to the retrain: its drift alerts, CBPE estimate with band, realized metric, verdict."""

    batch_id: str
    batch_time: str  # ISO, the batch's data time
    drift_alerts: tuple[str, ...] = ()  # "feature/method" that alerted
    estimate: float | None = None
    lower: float | None = None
    upper: float | None = None
    realized: float | None = None
    decision: str | None = None


@dataclass(frozen=True)
class GateRuleRow:
    rule: str
    verdict: str
    blocking: bool
    detail: str


@dataclass(frozen=True)
class SliceInterval:
    column: str
    value: str
    n: int
    diff: float | None
    ci_low: float | None
    ci_high: float | None


@dataclass(frozen=True)
class RetrainReportInput:
    """Everything the report shows; built by the retrain stage from its own results and the audit store."""

    model: str
    project: str
    entity: str  # "" when unknown offline: publish fills in the API key's default entity
    candidate_version: str
    champion_version: str | None
    gate_passed: bool
    decision: str  # what follows: "promote", "keep champion", "first model"
    reason: str
    metric: str  # the gate's primary metric, also the monitored one (e.g. roc_auc)
    candidate_metric: float | None
    champion_metric: float | None
    diff: float | None
    ci_low: float | None
    ci_high: float | None
    retrain_run: str  # the retrain run's name
    rules: tuple[GateRuleRow, ...] = ()
    slices: tuple[SliceInterval, ...] = ()
    triggers: tuple[TriggerBatch, ...] = ()
    importance: tuple[ret.ImportanceRow, ...] = ()  # tasks/gate/comparison.py ImportanceShift.row()
    calibration: tuple[ret.CalibrationRow, ...] = ()  # ModelComparison.calibration_rows()
    drift_keys: tuple[str, ...] = ()  # monitoring keys of the triggering batches' drift (wandb_monitoring.drift_key)
    canary: str | None = None  # the canary's verdict, when one ran
    flow_run_id: str | None = None
    flow_run_url: str | None = None
    html_report: str | None = None  # shareable path of the HTML/markdown gate report
    forest_plot: bool = True  # the retrain run logged the forest plot (none for a first model: nothing to compare)
    window: Mapping[str, Any] = field(default_factory=dict)


def _fmt(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def title_of(data: RetrainReportInput) -> str:
    verdict = "passed" if data.gate_passed else "failed"
    title = f"{data.model} {data.candidate_version} vs {data.champion_version or 'no champion'}: gate {verdict}"
    return title[:TITLE_LIMIT]


def _why(data: RetrainReportInput) -> str:
    lines = [f"**Reason:** {data.reason}"]
    if data.window:
        span = ", ".join(f"{k}: {v}" for k, v in data.window.items() if not isinstance(v, dict | list))
        lines.append(f"**Training window:** {span}")
    if not data.triggers:
        lines.append("No monitored batch triggered this retrain (a manual or first-model retrain).")
        return "\n\n".join(lines)
    rows = [
        (
            t.batch_id,
            t.batch_time,
            ", ".join(t.drift_alerts) or "none",
            f"{_fmt(t.estimate)} [{_fmt(t.lower)}, {_fmt(t.upper)}]",
            _fmt(t.realized),
            t.decision or "n/a",
        )
        for t in data.triggers
    ]
    header = ("batch", "batch time", "drift alerts", f"estimated {data.metric} [band]", "realized", "policy")
    lines.append(_table(header, rows))
    return "\n\n".join(lines)


def _gate_summary(data: RetrainReportInput) -> str:
    head = (
        f"Candidate **{data.candidate_version}** {data.metric} {_fmt(data.candidate_metric)} vs champion "
        f"**{data.champion_version or 'none'}** {_fmt(data.champion_metric)}: difference {_fmt(data.diff)} "
        f"(95% CI {_fmt(data.ci_low)} to {_fmt(data.ci_high)}). Gate **{'passed' if data.gate_passed else 'failed'}**."
    )
    rules = _table(
        ("rule", "verdict", "blocking", "detail"),
        [(r.rule, r.verdict, "yes" if r.blocking else "no", r.detail) for r in data.rules],
    )
    return f"{head}\n\n{rules}" if data.rules else head


def _slices(data: RetrainReportInput) -> str:
    if not data.slices:
        return "No slice columns in the contract."
    rows = [(s.column, s.value, s.n, _fmt(s.diff), f"[{_fmt(s.ci_low)}, {_fmt(s.ci_high)}]") for s in data.slices]
    return _table(("slice", "value", "rows", "difference", "95% interval"), rows)


def _importance(data: RetrainReportInput) -> str:
    if not data.importance:
        return "No feature importance recorded."
    rows = [
        (feature, f"{new:.1%}", "n/a" if old is None else f"{old:.1%}", "n/a" if change is None else f"{change:+.1%}")
        for feature, new, old, change in data.importance
    ]
    return "Share of total gain per feature.\n\n" + _table(("feature", "candidate", "champion", "change"), rows)


def _calibration(data: RetrainReportInput) -> str:
    if not data.calibration:
        return "No calibration recorded."
    rows = [(m, _fmt(b), _fmt(e), tp, fp, fn, tn) for m, b, e, tp, fp, fn, tn in data.calibration]
    return (
        "On the gate's holdout: Brier score, expected calibration error (10 probability bins) and the errors at "
        f"the decision threshold (descriptive; the table `{ret.CALIBRATION_TABLE}` in the retrain run).\n\n"
        + _table(("model", "Brier", "ECE", "TP", "FP", "FN", "TN"), rows)
    )


def _decision(data: RetrainReportInput) -> str:
    lines = [f"**Decision:** {data.decision}", f"**Canary:** {data.canary or 'no canary ran for this candidate'}"]
    if data.flow_run_url:
        lines.append(f"**Prefect flow run:** [{data.flow_run_id or data.flow_run_url}]({data.flow_run_url})")
    elif data.flow_run_id:
        lines.append(f"**Prefect flow run:** {data.flow_run_id}")
    else:
        lines.append("**Prefect flow run:** none (run in direct mode)")
    if data.html_report:
        lines.append(f"**Gate report:** `{data.html_report}` (in the retrain run's Files: `{ret.GATE_REPORT_FILE}`)")
    lines.append(
        f"Approve with `driftgate promote {data.candidate_version}`; the retrain run is `{data.retrain_run}`."
        if data.gate_passed
        else f"Production stays on {data.champion_version or 'nothing'}."
    )
    return "\n\n".join(lines)


def build_report(data: RetrainReportInput) -> Report:
    """The report of one retrain decision (pure: builds the library's models, no network)."""
    import wandb_workspaces.reports.v2 as wr
    from wandb_workspaces import expr

    def runset(name: str, job_type: str, *extra: Any) -> Any:
        filters = [expr.Metric("Group") == data.model, expr.Metric("JobType") == job_type, *extra]
        return wr.Runset(entity=data.entity, project=data.project, name=name, filters=filters)

    monitoring = runset("monitoring", mon.JOB_TYPE)
    retrain = runset("retrain", ret.JOB_TYPE, expr.Metric("Name") == data.retrain_run)
    metric = data.metric
    x = mon.BATCH_TIME
    monitoring_panels: list[Any] = [
        wr.LinePlot(
            title=f"estimated (CBPE, with band) vs realized {metric}",
            x=x,
            y=[
                mon.estimate_key(metric),
                mon.estimate_key(metric, "lower"),
                mon.estimate_key(metric, "upper"),
                mon.realized_key(metric),
            ],
        ),
        wr.LinePlot(title="drift alerts per batch", x=x, y=[mon.DRIFT_ALERTS]),
        wr.LinePlot(title="policy decision (0 none, 1 alert, 2 block, 3 retrain)", x=x, y=[mon.POLICY_ACTION]),
        wr.LinePlot(title="data-quality issues", x=x, y=[mon.quality_key("data_quality")]),
    ]
    if data.drift_keys:
        monitoring_panels.append(wr.LinePlot(title="drift of the triggering features", x=x, y=list(data.drift_keys)))
    retrain_panels: list[Any] = [
        wr.LinePlot(title="Optuna trials: value and best so far", x=ret.TRIAL, y=[ret.TRIAL_VALUE, ret.TRIAL_BEST]),
        wr.LinePlot(title="Optuna trials pruned", x=ret.TRIAL, y=[ret.TRIAL_PRUNED]),
        wr.LinePlot(title="learning curve: validation AUC per boosting round", x=ret.ROUND, y=[ret.CURVE_VALID]),
        *(wr.ScalarChart(title=name, metric=name) for name in ret.SUMMARY_METRICS),
        *(wr.ScalarChart(title=name, metric=name) for name in ret.PAIRED_METRICS if data.champion_version),
    ]
    forest: list[Any] = []
    if data.forest_plot:
        forest = [
            wr.PanelGrid(runsets=[retrain], panels=[wr.MediaBrowser(title="forest plot", media_keys=[ret.FOREST_PLOT])])
        ]
    blocks: list[Any] = [
        wr.H1(text=title_of(data)),
        wr.H2(text="Why it was triggered"),
        wr.MarkdownBlock(text=_why(data)),
        wr.H2(text="Monitoring over batch time"),
        wr.PanelGrid(runsets=[monitoring], panels=monitoring_panels),
        wr.H2(text="The gate"),
        wr.MarkdownBlock(text=_gate_summary(data)),
        wr.H3(text="Per-slice intervals (forest plot)"),
        wr.MarkdownBlock(text=_slices(data)),
        *forest,
        wr.H2(text="Tuning"),
        wr.PanelGrid(runsets=[retrain], panels=retrain_panels),
        wr.H2(text="Feature importance change"),
        wr.MarkdownBlock(text=_importance(data)),
        wr.H2(text="Calibration: champion vs candidate"),
        wr.MarkdownBlock(text=_calibration(data)),
        wr.H2(text="Decision"),
        wr.MarkdownBlock(text=_decision(data)),
    ]
    return wr.Report(
        project=data.project,
        entity=data.entity,
        title=title_of(data),
        description=f"retrain decision for {data.model} {data.candidate_version}: {data.decision}",
        blocks=blocks,
    )


def report_spec(report: Report) -> dict[str, Any]:
    """The report's full specification (the library's own model, as JSON): what ``save_spec`` uploads later."""
    return dict(report._to_model().model_dump(mode="json", by_alias=True, exclude_none=True))


def report_from_spec(spec: Mapping[str, Any]) -> Report:
    from wandb_workspaces.reports.v2 import Report, internal

    return Report._from_model(internal.ReportViewspec.model_validate(dict(spec)))


def panel_keys(report: Report) -> dict[str, set[str]]:
    """Per runset name, every metric key and media key the report's panels refer to (for checks and dry runs)."""
    import wandb_workspaces.reports.v2 as wr

    def name(value: Any) -> str:
        return str(getattr(value, "name", value))

    out: dict[str, set[str]] = {}
    for block in report.blocks:
        if not isinstance(block, wr.PanelGrid):
            continue
        keys = out.setdefault(block.runsets[0].name, set())  # one runset per grid here
        for panel in block.panels:
            if isinstance(panel, wr.LinePlot):
                keys.add(name(panel.x))
                keys.update(name(y) for y in panel.y)
            elif isinstance(panel, wr.MediaBrowser):
                keys.update(panel.media_keys)
            elif isinstance(panel, wr.ScalarChart):
                keys.add(name(panel.metric))
    return out


def spec_path(reports_dir: Path, model: str, version: str) -> Path:
    return Path(reports_dir) / "wandb" / model / f"{version}{SPEC_SUFFIX}"


def write_spec(report: Report, path: Path) -> Path:
    return write_text_atomic(path, json.dumps(report_spec(report), indent=2, sort_keys=True) + "\n")


def save_spec(spec: Mapping[str, Any], *, entity: str | None = None) -> str:
    """Save a written specification to its W&B project (online; needs an API key); returns the report's URL."""
    report = report_from_spec(spec)
    if not report.entity:
        import wandb

        report.entity = str(entity or wandb.Api().default_entity or "")
        for block in report.blocks:
            for runset in getattr(block, "runsets", []):
                if not runset.entity:
                    object.__setattr__(runset, "entity", report.entity)
    report.save()
    return str(report.url)
