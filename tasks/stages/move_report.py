"""Write the report of a production move (tasks/report/moves.py) from the registry: the ledger entry, both
versions' metadata and gate reports, the aliases after it and the production history.

Called after the move is in the ledger and its audit row is written: the report describes a fact, so a
failure to write it (a full disk, a read-only reports folder) is logged and never undoes or fails the move.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from tasks.registry.model import PRODUCTION

if TYPE_CHECKING:
    from tasks.registry.model import LedgerEntry
    from tasks.report.moves import MoveLine, VersionFacts
    from tasks.resources.workspace import Workspace

logger = logging.getLogger(__name__)


def _line(entry: LedgerEntry) -> MoveLine | None:
    from tasks.report.moves import MoveLine

    move = next((m for m in entry.moves if m.alias == PRODUCTION), None)
    if move is None or entry.outcome != "applied":
        return None
    return MoveLine(entry.seq, entry.at, entry.action, move.from_version, move.to_version, entry.actor, entry.reason)


def _facts(ws: Workspace, version: str, folder: Path) -> VersionFacts:
    from tasks.report.moves import VersionFacts

    found = ws.registry.get(ws.model, version)
    meta = found.metadata
    gate = meta.get("gate") or {}
    metric = gate.get("metric")
    report = ws.registry.annotations(ws.model, version).get("gate_report")
    link = None
    if report:
        target = Path(report) if Path(report).is_absolute() else ws.settings.home / report
        if target.is_file():
            link = Path(os.path.relpath(target, folder)).as_posix()
    window = meta.get("training_window") or [None, None]
    return VersionFacts(
        version=version,
        registered=found.created_at,
        gate_passed=meta.get("gate_passed"),
        metric=metric,
        holdout=(meta.get("metrics") or {}).get(f"holdout_{metric}") if metric else None,
        training_window=(window[0], window[1]),
        gate_report=link,
    )


def write_move_report(ws: Workspace, entry: LedgerEntry, *, kind: str) -> Path | None:
    """``<reports>/<kind>/<model>-<to>-<seq>.md`` (+ HTML, index, timeline SVG and a Prefect artifact in a flow
    run); ``kind`` is "promotion" or "rollback". None when the entry moved no production alias or writing failed."""
    from tasks.report.markdown import write_report
    from tasks.report.moves import move_markdown, production_timeline, served_spans
    from tasks.report.publish import artifact_key, publish

    move = _line(entry)
    if move is None:
        return None
    try:
        folder = ws.settings.reports_dir / kind
        history = [line for e in ws.registry.ledger(ws.model) if e.seq <= entry.seq and (line := _line(e))]
        stem = f"{ws.model}-{move.to_version}-{entry.seq}"
        now = datetime.now(UTC)
        timeline = production_timeline(
            served_spans(history), folder / f"{stem}-timeline.svg", title=f"{ws.model}: production", now=now
        )
        versions = [_facts(ws, v, folder) for v in dict.fromkeys((move.to_version, move.from_version)) if v]
        markdown = move_markdown(
            kind=kind,
            model=ws.model,
            move=move,
            evidence=entry.evidence,
            digest=entry.digest,
            aliases=ws.registry.aliases(ws.model),
            versions=versions,
            history=history,
            timeline=timeline,
        )
        path = write_report(folder / f"{stem}.md", markdown, reports_root=ws.settings.reports_dir)
        publish(
            markdown,
            key=artifact_key(kind, ws.model, move.to_version),
            description=f"{kind}: production {move.from_version or '-'} → {move.to_version}",
            images_from=folder,
        )
        return path
    except Exception:  # the move stands; its report is a description of it (see the module docstring)
        logger.warning("the %s report of ledger entry #%d could not be written", kind, entry.seq, exc_info=True)
        return None
