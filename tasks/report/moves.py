"""The report of a production move (a promotion or a rollback): what moved, why and by whom, the two versions
side by side with their gates, the aliases after the move, and which version served production when.

A rollback is the decision a reviewer most needs to read later ("why did v3 come back on Tuesday?") and the
ledger holds all of it; this page puts it where the other reports are (``<reports>/promotion/`` and
``<reports>/rollback/``, HTML sibling and index included). Inputs are plain values gathered by
``tasks/stages/move_report.py``; nothing here reads the registry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

_UNITS = (("d", 86400.0), ("h", 3600.0), ("min", 60.0), ("s", 1.0))  # the timeline's axis: the largest that fits
PRODUCTION_HISTORY_ROWS = 10  # ledger lines shown: enough for "what happened this week", short enough to read


@dataclass(frozen=True)
class VersionFacts:
    """One version as the report shows it (from the registry's metadata and annotations)."""

    version: str
    registered: datetime
    gate_passed: bool | None  # None: no gate recorded (bootstrap of an imported model)
    metric: str | None
    holdout: float | None  # the version's holdout value of ``metric`` when it was judged
    training_window: tuple[str | None, str | None]
    gate_report: str | None  # a relative link to its gate report (markdown), from the move report's folder


@dataclass(frozen=True)
class MoveLine:
    """One ledger entry that moved production (or tried to)."""

    seq: int
    at: datetime
    action: str
    from_version: str | None
    to_version: str | None
    actor: str
    reason: str


@dataclass(frozen=True)
class ServedSpan:
    version: str
    start: datetime
    end: datetime | None  # None: still serving


def served_spans(moves: Sequence[MoveLine]) -> list[ServedSpan]:
    """Which version served production from when to when, from the production moves in ledger order."""
    spans: list[ServedSpan] = []
    for move in moves:
        if spans and spans[-1].end is None:
            spans[-1] = ServedSpan(spans[-1].version, spans[-1].start, move.at)
        if move.to_version is not None:
            spans.append(ServedSpan(move.to_version, move.at, None))
    return spans


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def move_markdown(
    *,
    kind: str,
    model: str,
    move: MoveLine,
    evidence: str | None,
    digest: str,
    aliases: Mapping[str, str],
    versions: Sequence[VersionFacts],
    history: Sequence[MoveLine],
    timeline: Path | None = None,
) -> str:
    """The page: headline, who and why, both versions' gates, aliases now, the last production moves."""
    before, after = move.from_version or "nothing", move.to_version or "nothing"
    lines = [
        f"# driftgate {kind} — {model} — production {before} → {after}",
        "",
        f"**{move.at:%Y-%m-%d %H:%M:%S} UTC** by **{_cell(move.actor)}**: {_cell(move.reason)}",
        "",
        f"- ledger entry #{move.seq} (`{move.action}`, digest `{digest[:12] or 'n/a'}`); `driftgate history` "
        "lists it and `driftgate verify` checks the chain it belongs to",
    ]
    if evidence:
        lines.append(f"- evidence: `{_cell(evidence)}`")
    if kind == "rollback":
        lines.append(
            f"- {after} was the last known good version (previous-production); {before} stays registered and can be "
            f"promoted again with `driftgate promote {before}`"
        )
    lines += [
        "",
        "## The versions",
        "| version | role | registered | gate | holdout | training window | gate report |",
        "|---|---|---|---|---|---|---|",
    ]
    roles = {move.from_version: "left production", move.to_version: "serves production"}
    for v in versions:
        gate = "n/a" if v.gate_passed is None else ("passed" if v.gate_passed else "**failed**")
        holdout = f"{v.metric} {_num(v.holdout)}" if v.metric else "n/a"
        window = " → ".join((part or "?")[:16].replace("T", " ") for part in v.training_window)
        link = f"[{v.version}]({v.gate_report})" if v.gate_report else "none"
        lines.append(
            f"| {v.version} | {roles.get(v.version, '')} | {v.registered:%Y-%m-%d %H:%M} | {gate} | {holdout} | "
            f"{window} | {link} |"
        )
    lines += [
        "",
        "## Aliases after the move",
        "| alias | version |",
        "|---|---|",
        *[f"| {alias} | {version} |" for alias, version in sorted(aliases.items())],
        "",
        f"## Production moves (last {PRODUCTION_HISTORY_ROWS})",
        "| # | at (UTC) | action | from → to | by | reason |",
        "|---|---|---|---|---|---|",
        *[
            f"| {m.seq} | {m.at:%Y-%m-%d %H:%M:%S} | {m.action} | {m.from_version or '-'} → {m.to_version or '-'} | "
            f"{_cell(m.actor)} | {_cell(m.reason)} |"
            for m in list(history)[-PRODUCTION_HISTORY_ROWS:][::-1]
        ],
    ]
    if timeline is not None:
        lines += ["", f"![which version served production when]({timeline.name})"]
    return "\n".join(lines) + "\n"


def production_timeline(spans: Sequence[ServedSpan], path: Path, *, title: str, now: datetime) -> Path:
    """One row per version, a bar for each stretch it served production (SVG; hover a bar for its times)."""
    from tasks.report import svg

    order = list(dict.fromkeys(s.version for s in spans))
    left, top, width, row = 70.0, 40.0, 560.0, 22.0
    canvas = svg.Canvas(left + width + 30, top + row * max(len(order), 1) + 40)
    canvas.text(left, 22, title, size=13, bold=True)
    if not spans:
        return canvas.save(path)
    start = min(s.start for s in spans).timestamp()
    end = max(now.timestamp(), start + 1.0)
    axis = svg.Axis(start, end, left, left + width)
    bottom = top + row * len(order)
    unit, seconds = next((u, s) for u, s in _UNITS if (end - start) >= 2 * s or s == 1.0)
    for tick in svg.nice_ticks(0.0, (end - start) / seconds, 5):
        x = axis(start + tick * seconds)
        canvas.line(x, top, x, bottom, stroke=svg.GRID)
        canvas.text(x, bottom + 14, f"+{svg.label(tick)} {unit}", size=9, anchor="middle")
    for index, version in enumerate(order):
        canvas.text(left - 8, top + row * index + row * 0.65, version, size=10, anchor="end")
    for span in spans:
        y = top + row * order.index(span.version) + 4
        stop = span.end.timestamp() if span.end is not None else end
        tip = (
            f"{span.version} served from {span.start:%Y-%m-%d %H:%M:%S} to "
            f"{f'{span.end:%Y-%m-%d %H:%M:%S}' if span.end else 'now'} UTC"
        )
        colour = svg.BLUE if span.end is not None else svg.ORANGE
        x = axis(span.start.timestamp())
        canvas.rect(x, y, max(axis(stop) - x, 2.0), row - 8, fill=colour, tip=tip)
    canvas.text(left, bottom + 30, f"time since {min(s.start for s in spans):%Y-%m-%d %H:%M} UTC", size=9)
    return canvas.save(path)
