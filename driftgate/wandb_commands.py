"""`driftgate wandb publish`: bring a home's offline W&B state online, or show what that would do.

Only click is imported at module level (``driftgate --help`` stays instant); the CLI helpers and everything
else are imported inside the command.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from tasks.registry.replay import ReplayPlan
    from tasks.resources.wandb_monitoring import MonitoringBatch
    from tasks.resources.workspace import Workspace

_KEY_MISSING = (
    "driftgate wandb publish needs a W&B API key: set WANDB_API_KEY or run `wandb login` "
    "(or pass --dry-run to see what would be published)"
)


@dataclass(frozen=True)
class PublishPlan:
    """Everything one publish would send: offline runs, report specifications, monitoring rows, the alias replay."""

    runs: tuple[Path, ...]
    reports: tuple[Path, ...]
    monitoring: MonitoringBatch
    replay: ReplayPlan
    cursor: dict[str, Any]


@click.group(name="wandb")
def wandb_group() -> None:
    """W&B as the review surface: publish offline runs, reports, monitoring and the alias history."""


def _offline_runs(ws: Workspace, published: set[str]) -> list[Path]:
    root = ws.settings.wandb_dir / "wandb"
    runs = sorted(p for p in root.glob("offline-run-*") if p.is_dir()) if root.is_dir() else []
    return [p for p in runs if ws.settings.shareable(p) not in published]


def _report_specs(ws: Workspace, published: set[str]) -> list[Path]:
    from tasks.report.wandb_report import SPEC_SUFFIX

    folder = ws.settings.reports_dir / "wandb" / ws.model
    specs = sorted(folder.glob(f"*{SPEC_SUFFIX}")) if folder.is_dir() else []
    return [p for p in specs if ws.settings.shareable(p) not in published]


def plan_publish(ws: Workspace) -> PublishPlan:
    """Read the home (cursor, run folders, report specs, audit store, ledger); sends nothing."""
    from tasks.registry.replay import plan_replay
    from tasks.resources.wandb_monitoring import cursor_path, monitoring_cursor, pending_monitoring, read_cursor

    cursor = read_cursor(cursor_path(ws.settings.wandb_dir))
    return PublishPlan(
        runs=tuple(_offline_runs(ws, set(cursor["synced"]))),
        reports=tuple(_report_specs(ws, set(cursor["reports"]))),
        monitoring=pending_monitoring(ws.store, ws.model, monitoring_cursor(cursor, ws.model)),
        replay=plan_replay(ws.model, ws.registry.ledger(ws.model)),
        cursor=cursor,
    )


def _aliases(held: dict[str, str]) -> str:
    return " ".join(f"{alias}={version}" for alias, version in sorted(held.items())) or "(none)"


def describe(ws: Workspace, plan: PublishPlan) -> list[str]:
    """The plan as lines: runs, reports (with their panels), monitoring steps, every alias step, final states."""
    import json

    from tasks.report.wandb_report import panel_keys, report_from_spec

    share = ws.settings.shareable
    lines = [f"runs to upload (wandb sync): {len(plan.runs)}", *(f"  {share(p)}" for p in plan.runs)]
    lines.append(f"reports to save: {len(plan.reports)}")
    for path in plan.reports:
        report = report_from_spec(json.loads(path.read_text(encoding="utf-8")))
        panels = sum(len(keys) for keys in panel_keys(report).values())
        lines.append(f"  {share(path)}: {report.title!r} ({len(report.blocks)} blocks, {panels} panel keys)")
    batch = plan.monitoring
    if batch.steps:
        lines.append(
            f"monitoring: 1 run (group {batch.model}, job_type monitoring, tags {list(batch.decisions)}), "
            f"{len(batch.steps)} batch steps {batch.steps[0].batch_id} .. {batch.steps[-1].batch_id}, "
            f"{len(batch.keys)} keys"
        )
    else:
        lines.append("monitoring: nothing new since the last publish")
    replay = plan.replay
    lines.append(f"alias replay onto the W&B Registry ({len(replay.steps)} steps, removals included):")
    lines += [f"  {step.describe()}" for step in replay.steps]
    lines.append(f"replayed final aliases: {_aliases(replay.final)}")
    lines.append(f"ledger final aliases:   {_aliases(replay.ledger_final)}")
    lines.append(f"replayed final state equals the ledger's: {'yes' if replay.agrees else 'NO'}")
    return lines


def _require_key() -> None:
    """Fail in one line, before anything is sent, when no W&B API key is configured."""
    from tasks.core.errors import ConfigError

    if os.environ.get("WANDB_API_KEY"):
        return
    from tasks.core.telemetry import disable_telemetry

    disable_telemetry()
    import wandb

    try:
        wandb.Api(timeout=10)  # reads `wandb login`'s netrc; raises at once without a key
    except Exception as exc:
        raise ConfigError(_KEY_MISSING) from exc


def _sync(run_dir: Path) -> None:
    import subprocess
    import sys

    from tasks.core.errors import TrackingError

    result = subprocess.run(
        [sys.executable, "-m", "wandb", "sync", str(run_dir)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise TrackingError(f"`wandb sync {run_dir}` failed: {(result.stderr or result.stdout).strip()[-500:]}")


def execute(ws: Workspace, plan: PublishPlan) -> list[str]:
    """Send the plan; the cursor is written after each part, so a re-run sends only what is left."""
    import json

    from tasks.registry.replay import apply_replay
    from tasks.registry.wandb_mirror import WandbMirror
    from tasks.report.wandb_report import save_spec
    from tasks.resources.tracking import WandbTracker
    from tasks.resources.wandb_monitoring import (
        cursor_path,
        log_monitoring,
        with_monitoring_cursor,
        with_published,
        write_cursor,
    )

    settings = ws.settings
    path = cursor_path(settings.wandb_dir)
    cursor = plan.cursor
    done: list[str] = []
    for run_dir in plan.runs:
        _sync(run_dir)
        cursor = with_published(cursor, "synced", [settings.shareable(run_dir)])
        write_cursor(path, cursor)
        done.append(f"synced {settings.shareable(run_dir)}")
    for spec in plan.reports:
        url = save_spec(json.loads(spec.read_text(encoding="utf-8")), entity=settings.wandb_entity)
        cursor = with_published(cursor, "reports", [settings.shareable(spec)])
        write_cursor(path, cursor)
        done.append(f"saved report {url}")
    if plan.monitoring.steps:
        tracker = WandbTracker(
            mode="online",
            project=settings.wandb_project,
            entity=settings.wandb_entity,
            directory=settings.wandb_dir,
            local_metadata=settings.share_absolute_paths,
        )
        run_id = log_monitoring(tracker, plan.monitoring)
        cursor = with_monitoring_cursor(cursor, ws.model, plan.monitoring.cursor)
        write_cursor(path, cursor)
        done.append(f"monitoring run {run_id}: {len(plan.monitoring.steps)} batch steps")
    mirror = WandbMirror(
        registry=settings.wandb_registry,
        project=settings.wandb_project,
        entity=settings.wandb_entity,
        directory=settings.wandb_dir,
        artifact_rows=settings.wandb_artifact_rows,
    )
    steps = apply_replay(plan.replay, mirror, lambda version: ws.registry.get(ws.model, version))
    done.append(f"alias replay: {len(steps)} steps; W&B aliases now {_aliases(plan.replay.final)}")
    return done


@wandb_group.command(name="publish")
@click.option("--dry-run", is_flag=True, help="Print the runs, reports, monitoring and alias replay; send nothing.")
@click.option("--home", type=click.Path(file_okay=False), default=None, help="State directory. Env: DRIFTGATE_HOME.")
@click.option("--config", type=click.Path(dir_okay=False, exists=True), default=None, help="YAML settings file.")
@click.option("--model", default=None, help="Model (registry collection) name. Env: DRIFTGATE_MODEL_NAME.")
def publish(dry_run: bool, home: str | None, config: str | None, model: str | None) -> None:
    """Upload offline runs (`wandb sync`), save the report specifications, log monitoring (one run, one step per
    batch since the last publish) and replay the alias ledger onto the W&B Registry, removals included."""
    from driftgate.cli import _errors, _fail, _home
    from tasks.core.errors import RegistryError

    with _errors(), _home(home, config, model) as ws:
        if not dry_run:
            _require_key()
        plan = plan_publish(ws)
        click.echo(f"W&B publish for {ws.model}{' (dry run: nothing is sent)' if dry_run else ''}")
        for line in describe(ws, plan):
            click.echo(line)
        if not plan.replay.agrees:
            _fail(RegistryError("the replayed aliases differ from the ledger's final state; nothing published"))
        if dry_run:
            return
        for line in execute(ws, plan):
            click.echo(line)
