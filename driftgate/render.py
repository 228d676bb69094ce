"""Console rendering of the typed results of driftgate's commands.

Each function takes the typed result a command got back (a stage's outcome, a flow's result rebuilt with
``from_dict``, a registry record) and echoes its lines; ``driftgate/cli.py`` parses options, opens the home, calls,
and hands the result here. Rendering knows no stage: the result types are imported for type checking only, and
at run time this module imports click and the standard library alone (tests/unit/cli/test_render.py), so a light
command stays light.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from flows.results import DemoRun, ReplayRun
    from tasks.data.contract import ModelContract
    from tasks.policy.replay import ReplayScore
    from tasks.registry.model import Lease, LedgerEntry
    from tasks.resources.events import OutboxState
    from tasks.stages.arrivals import ArrivalOutcome
    from tasks.stages.canary import ScoredBatch
    from tasks.stages.drift_scan import DriftScan
    from tasks.stages.drill import DrillResult
    from tasks.stages.history import AliasesAt, History
    from tasks.stages.monitoring import MonitorOutcome
    from tasks.stages.promotion import PromotionOutcome, RollbackOutcome, WatchOutcome
    from tasks.stages.retraining import RetrainOutcome
    from tasks.stages.review import PendingApproval

# The aliases of the one-line state a lost race prints, in this order.
STATE_ALIASES = ("production", "previous-production", "canary", "staging")


def _verdict(ok: bool) -> str:
    return click.style("PASSED", fg="green") if ok else click.style("FAILED", fg="red")


def _metric(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


# --- demo, contract, profile ---------------------------------------------------------------------------------


def demo(run: DemoRun, elapsed: float) -> None:
    """The demo's outcomes, checked, then where everything it made lies."""
    click.echo()
    click.secho("driftgate demo — outcomes (read back from the audit store and registry)", bold=True)
    for number, check in enumerate(run.checks, start=1):
        mark = click.style("✔", fg="green") if check.ok else click.style("✘", fg="red")
        click.echo(f" {mark} {number}. {check.outcome}: {check.detail}")
    home = Path(run.home)
    click.echo()
    click.echo(f"state directory : {home}")
    click.echo(f"audit store     : {home / 'audit.db'}")
    click.echo(f"reports         : {home / 'reports'}")
    click.echo(f"demo report     : {home / 'reports' / 'demo.md'}")
    click.echo(f"W&B offline runs: {home / 'wandb'}  (upload later with `wandb sync`)")
    click.echo(f"wall time       : {elapsed:.1f} s")


def contract_written(path: Path, contract: ModelContract) -> None:
    click.echo(
        f"wrote {path}: model {contract.name!r}, {len(contract.features)} features "
        f"({', '.join(f'{f.name}:{f.kind}' for f in contract.features)})"
    )


def scan(result: DriftScan, chunking: str) -> None:
    """A chunked profile: one line per chunk, then the files written."""
    click.secho(f"{len(result.chunks)} chunks profiled in {result.seconds:.1f} s — {chunking}", bold=True)
    for chunk in result.chunks:
        window = f"{chunk.start} .. {chunk.end}" if chunk.start else chunk.key
        quality = "ok" if chunk.quality_passed else "FAIL " + ", ".join(chunk.quality_failures)
        flags = [*chunk.drifted, *(["score"] if chunk.score_drift else []), *(["joint"] if chunk.joint_drift else [])]
        click.echo(f"  {window:<35} {chunk.rows:>9,} rows  quality {quality:<6} drift: {', '.join(flags) or '-'}")
    click.echo(f"results : {result.results_path}")
    click.echo(f"heat map: {result.heatmap_path or '(no drift rows)'}")


# --- the loop: monitor, labels, retrain ----------------------------------------------------------------------


def monitored(
    outcomes: Sequence[MonitorOutcome], arrival: ArrivalOutcome | None, retrained: RetrainOutcome | None
) -> None:
    """Each batch's decision and report, then the label arrival and the retrain of the call, if any."""
    for o in outcomes:
        click.echo(
            f"{o.batch_id}: {o.action:<7} est. AUC {_metric(o.estimated)} realized {_metric(o.realized)} "
            f"drifted {list(o.drifted_features)} — {o.reasons[-1]}"
        )
        click.echo(f"    report: {o.report_path}")
    if arrival:
        labels(arrival)
    if retrained:
        retrain(retrained)


def labels(arrival: ArrivalOutcome) -> None:
    """A label arrival: its accounting, then each batch it completed with its realized metric and new decision."""
    click.echo(f"labels: {arrival.summary}")
    for b in arrival.batches:
        reference = "" if b.reference is None else f" (reference {b.reference:.4f})"
        action = b.action or "-"
        click.echo(
            f"{b.batch_id}: +{b.new_rows} labelled rows ({b.rows_labelled} in all), realized AUC {_metric(b.realized)}"
            f"{reference}; judged again: {action:<7} — {b.reasons[-1]}"
        )


def retrain(outcome: RetrainOutcome) -> None:
    """A retrain (or bootstrap): the gate's verdict and reasons, or why it was skipped."""
    if outcome.duplicate:
        click.echo(f"retrain skipped: {outcome.reasons[0]} (key {outcome.idempotency_key})")
        return
    champion = outcome.champion_version or "(none)"
    click.echo(f"candidate {outcome.candidate_version} vs champion {champion}: gate {_verdict(outcome.gate_passed)}")
    for reason in outcome.reasons:
        click.echo(f"  - {reason}")
    click.echo(f"  report: {outcome.report_path}")


# --- promotion, rollback, canary, drill ----------------------------------------------------------------------

PROMOTION_COLOURS = {"promoted": "green", "watching": "yellow", "awaiting-approval": "yellow"}


def promotion(version: str, outcome: PromotionOutcome) -> None:
    colour = PROMOTION_COLOURS.get(outcome.status, "red")
    moved = f"moved {' → '.join(outcome.steps)}" if outcome.steps else "nothing moved"
    click.echo(f"{version}: {click.style(outcome.status.upper(), fg=colour)} ({moved})")
    for reason in outcome.reasons:
        click.echo(f"  - {reason}")
    for label, path in (("canary report", outcome.report_path), ("audit", outcome.audit_path)):
        if path:
            click.echo(f"  {label}: {path}")


def promotion_needs_approver(name: str | None, version: str) -> None:
    """Said before a flow run that will pause for an approver (on stderr: the command blocks meanwhile)."""
    click.echo(
        f"{name}:{version} needs an approver: the promotion pauses before the canary; its flow run id "
        "and the `driftgate approve` commands are printed when it does (`driftgate pending` lists it)",
        err=True,
    )


def state_line(model: str, aliases: dict[str, str], lease: Lease | None) -> str:
    """The aliases and the promotion lease of ``model`` now, in one line (after a lost race)."""
    shown = " ".join(f"{alias}={aliases.get(alias) or '-'}" for alias in STATE_ALIASES)
    held = f"{lease.version} (#{lease.seq}, {lease.holder})" if lease else "none"
    return f"now: {model} {shown} lease={held}"


def rollback(outcome: RollbackOutcome) -> None:
    click.echo(f"production: {outcome.before} → {outcome.after}")


def withdrawn(entry: LedgerEntry, version: str | None) -> None:
    cleared = ", ".join(m.alias for m in entry.moves) or "no alias"
    click.echo(
        f"withdrawn: {entry.moves[0].from_version if entry.moves else version} ({cleared} cleared; ledger #{entry.seq})"
    )


def scored(batches: Sequence[ScoredBatch]) -> None:
    for r in batches:
        routed = ", ".join(f"{v}: {n}" for v, n in sorted(r.routed.items()))
        errors = sum(r.errors.values())
        click.echo(f"{r.batch_id}: {r.rows} rows ({routed}; {errors} canary errors) → {r.path}")


def watched(outcome: WatchOutcome) -> None:
    click.echo(f"{outcome.action}: {outcome.version or '-'}")
    for reason in outcome.reasons:
        click.echo(f"  - {reason}")
    if outcome.report_path:
        click.echo(f"  report: {outcome.report_path}")


def drill(result: DrillResult) -> None:
    click.echo(f"rollback drill {_verdict(result.ok)}: {result.versions_verified} versions verified")
    for step in result.steps:
        click.echo(f"  {step.name}: {step.from_version} → {step.to_version} in {step.seconds_to_restore:.3f} s")
    for problem in result.problems:
        click.echo(f"  - {problem}")
    click.echo(f"  report: {result.report_path}")


def approval_answered(flow_run_id: str, approver: str, reject: bool) -> None:
    click.echo(f"flow run {flow_run_id}: {'rejected' if reject else 'approved'} by {approver}")


def duration(seconds: float) -> str:
    """``3d 4h``, ``2h 5m``, ``4m 12s``: how long something has waited, to the two largest units."""
    seconds = max(int(seconds), 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s"


def pending(items: Sequence[PendingApproval], *, source: str, now: float, as_json: bool = False) -> None:
    """Promotions waiting for an approver, one line each with the command that answers it (or as JSON)."""
    if as_json:
        click.echo(json.dumps([item.to_dict() for item in items], indent=2))
        return
    if not items:
        click.echo(f"nothing waits for approval (checked {source})")
        return
    for item in items:
        waited = duration(now - item.since.timestamp()) if item.since else "?"
        where = f"flow run {item.flow_run_id} paused" if item.flow_run_id else "direct mode, nothing paused"
        click.echo(f"{item.model or '-'}:{item.version or '?'}  waiting {waited}  ({where})  → {item.command()}")


# --- registry and store --------------------------------------------------------------------------------------


def reconciled(changes: Sequence[str]) -> None:
    click.echo("\n".join(changes) if changes else "the mirror already matches the ledger (or there is none)")


def outbox(state: OutboxState, limit: int) -> None:
    """Pending and delivered counts, the pending events per name, then the oldest ``limit`` pending ones."""
    from collections import Counter

    click.echo(f"outbox: {len(state.pending)} pending, {state.delivered} delivered")
    for name, count in sorted(Counter(event.name for event in state.pending).items()):
        click.echo(f"  {name:<34} {count}")
    for event in state.pending[:limit]:
        click.echo(f"  {event.created_at:%Y-%m-%d %H:%M:%S} {event.event_id} {event.name}")


def delivered(sent: int) -> None:
    click.echo(f"delivered {sent} event(s)")


def repaired(count: int) -> None:
    """Said on stderr: audit rows written from the ledger (a move killed before writing its row)."""
    if count:
        click.echo(f"repaired {count} audit row(s) from the ledger (a move killed before writing it)", err=True)


def verified(problems: Sequence[str], entries: int | None, versions: int | None) -> None:
    for problem in problems:
        click.echo(f"problem: {problem}")
    if problems:
        click.secho(f"{len(problems)} problem(s) found", fg="red", err=True)
        return
    click.echo(f"ok: {entries} ledger entries chained and anchored, {versions} versions verified")


def aliases_at(state: AliasesAt) -> None:
    click.secho(f"aliases of {state.model} at {state.at.isoformat()}:", bold=True)
    for alias, version in sorted(state.aliases.items()):
        click.echo(f"  {alias:<20} {version}")


def history(state: History) -> None:
    """Aliases now, the ledger and the decisions, newest last (a decision judged again on labels: kind/labels)."""
    click.secho(f"aliases of {state.model}:", bold=True)
    for alias, version in sorted(state.aliases.items()):
        click.echo(f"  {alias:<20} {version}")
    click.secho("ledger (newest last):", bold=True)
    for entry in state.ledger:
        moves = ", ".join(f"{m.alias}: {m.from_version}→{m.to_version}" for m in entry.moves)
        click.echo(
            f"  #{entry.seq} {entry.at:%Y-%m-%d %H:%M:%S} {entry.action:<8} {entry.outcome:<8} "
            f"{entry.actor}: {moves} — {entry.reason}"
        )
    repaired(state.repaired)
    click.secho("decisions (newest last):", bold=True)
    for decided in state.decisions:
        record = decided.record
        kind = f"{record.kind}/labels" if decided.trigger == "labels" else record.kind
        click.echo(
            f"  {decided.decided_at:%Y-%m-%d %H:%M:%S} {kind:<13} {record.outcome:<11} "
            f"{record.batch_id or record.version or ''} — {'; '.join(record.reasons)[:110]}"
        )


# --- replay --------------------------------------------------------------------------------------------------

REPLAY_ROWS = (
    ("degraded stretches", "episodes"),
    ("detected", "detected"),
    ("missed degradations", "missed"),
    ("false alarms (RETRAIN)", "false_alarms"),
    ("false alerts (ALERT)", "false_alerts"),
    ("mean delay (batches)", "mean_delay"),
    ("max delay (batches)", "max_delay"),
)


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def replay(run: ReplayRun, *, as_json: bool = False) -> None:
    """The policy's score under the current (and the candidate) settings, side by side; or the whole run as JSON."""
    if as_json:
        click.echo(json.dumps(run.to_dict(), default=str, indent=2))
        return
    current: ReplayScore = run.current.score
    proposed = run.candidate.score if run.candidate else None
    click.secho(f"{'':<26}{'current':>10}" + (f"{'candidate':>12}" if proposed else ""), bold=True)
    for label, name in REPLAY_ROWS:
        line = f"{label:<26}{_cell(getattr(current, name)):>10}"
        if proposed:
            line += f"{_cell(getattr(proposed, name)):>12}"
        click.echo(line)
    click.echo(f"report: {run.report}")
    if run.home is not None:
        click.echo(f"scenario home: {run.home}  (replay it again: driftgate replay --home {run.home} ...)")
