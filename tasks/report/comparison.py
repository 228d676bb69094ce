"""The champion/candidate comparison (tasks/gate/comparison.py) rendered for the gate report: a calibration and
confusion table, a reliability diagram (SVG) and the feature-importance shifts."""

from __future__ import annotations

import math
from pathlib import Path

from tasks.gate.comparison import ModelComparison


def _num(value: float | None, digits: int = 4) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def comparison_markdown(comparison: ModelComparison, chart: Path | None = None, *, top: int = 10) -> list[str]:
    """Markdown lines: calibration and errors per model, the reliability diagram, the importance shifts."""
    models = comparison.models()
    lines = [
        "",
        f"## Calibration and errors at threshold {comparison.threshold:g} ({comparison.rows} holdout rows; "
        "descriptive, not a gate rule)",
        "| model | Brier | ECE | TP | FP | FN | TN | precision | recall |",
        "|---|---|---|---|---|---|---|---|---|",
        *[
            f"| {name} | {_num(c.brier)} | {_num(c.ece)} | {c.true_positives} | {c.false_positives} | "
            f"{c.false_negatives} | {c.true_negatives} | {_num(c.precision, 3)} | {_num(c.recall, 3)} |"
            for name, c in models
        ],
    ]
    if chart is not None:
        lines += ["", f"![reliability diagram]({chart.name})"]
    has_champion = comparison.champion is not None
    lines += [
        "",
        "## Feature importance (share of total gain" + (", champion → candidate)" if has_champion else ")"),
        "| feature | champion | candidate | change |" if has_champion else "| feature | candidate |",
        "|---|---|---|---|" if has_champion else "|---|---|",
    ]
    for shift in comparison.importance[:top]:
        if has_champion:
            change = shift.change if shift.change is not None else 0.0
            lines.append(
                f"| {shift.feature} | {shift.champion_share or 0.0:.1%} | {shift.candidate_share:.1%} | {change:+.1%} |"
            )
        else:
            lines.append(f"| {shift.feature} | {shift.candidate_share:.1%} |")
    return lines


def reliability_chart(comparison: ModelComparison, path: Path, *, title: str) -> Path:
    """Observed positive rate against mean predicted probability per bin, for each model (SVG); the diagonal is
    perfect calibration. Hovering a point shows its bin, rows and both numbers."""
    from tasks.report import svg

    left, top, size = 60.0, 50.0, 300.0
    canvas = svg.Canvas(left + size + 170, top + size + 50)
    canvas.text(left, 22, title, size=13, bold=True)
    axis_x = svg.Axis(0.0, 1.0, left, left + size)
    axis_y = svg.Axis(0.0, 1.0, top + size, top)
    for tick in svg.nice_ticks(0.0, 1.0, 5):
        canvas.line(axis_x(tick), top, axis_x(tick), top + size, stroke=svg.GRID)
        canvas.line(left, axis_y(tick), left + size, axis_y(tick), stroke=svg.GRID)
        canvas.text(axis_x(tick), top + size + 14, svg.label(tick), size=9, anchor="middle")
        canvas.text(left - 6, axis_y(tick) + 3, svg.label(tick), size=9, anchor="end")
    canvas.line(axis_x(0.0), axis_y(0.0), axis_x(1.0), axis_y(1.0), stroke=svg.GREY, dash="4 3")
    canvas.text(left + size / 2, top + size + 34, "mean predicted probability", size=10, anchor="middle")
    canvas.text(left - 40, top + size / 2, "observed positive rate", size=10, anchor="middle", rotate=-90)
    colours = {"champion": svg.BLUE, "candidate": svg.RED}
    models = [(name, model, colours[name]) for name, model in comparison.models()]
    for row, (name, model, colour) in enumerate(models):
        points = [(axis_x(b.mean_predicted), axis_y(b.observed_rate)) for b in model.bins]
        canvas.polyline(points, stroke=colour, width=1.6)
        for b, (x, y) in zip(model.bins, points, strict=True):
            tip = (
                f"{name}, p in [{b.low:.1f}, {b.high:.1f}): {b.rows} rows, "
                f"predicted {b.mean_predicted:.3f}, observed {b.observed_rate:.3f}"
            )
            canvas.marker(x, y, fill=colour, square=name == "candidate", tip=tip)
        y0 = top + 10 + row * 18
        canvas.line(left + size + 20, y0, left + size + 38, y0, stroke=colour, width=1.6)
        canvas.text(left + size + 42, y0 + 4, f"{name} (ECE {model.ece:.3f})", size=10)
    return canvas.save(path)
