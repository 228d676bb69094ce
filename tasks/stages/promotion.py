"""Staged promotion and rollback: alias moves with their ledger entries, audit rows, tracking and events.

The path of a version: gate pass → ``staging`` → approval → ``canary`` → watch window →
``production`` (the old production kept as ``previous-production``). Each step is one conditional
alias move in the registry ledger; the approval and the post-deployment audit are ledger notes,
so the ledger alone tells who approved what, on which evidence, and what served when.

A canary that misses a threshold during the watch window is withdrawn (production never moves)
and ``driftgate.model.rolled_back`` is emitted with the reasons; a production whose audit fails
within ``promotion.rollback_window_hours`` of its promotion is rolled back the same way.

A promotion holds the registry's promotion lease from before its first alias move (``begin``) until the
production move, a withdrawal, or a hand-over to `driftgate watch` (see ``tasks.registry.local``): a second
promotion is refused up front. When a step fails after the lease was taken, the promotion withdraws
itself (staging/canary cleared, lease ended) before the error goes on. ``promote`` and ``rollback`` carry
the production version the operator saw (``expected``) and are refused (``AliasConflictError``) if it moved.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks.core.errors import AliasConflictError, DriftgateError, RegistryError
from tasks.core.faults import fault_point
from tasks.core.records import FromDict
from tasks.registry.model import ANY, CANARY, PRODUCTION, STAGING, Unchecked
from tasks.report.publish import artifact_key, publish
from tasks.resources import events
from tasks.stages.move_report import write_move_report

if TYPE_CHECKING:
    from tasks.registry.model import Lease, LedgerEntry, ModelVersion
    from tasks.resources.workspace import Workspace
    from tasks.stages.canary import AuditVerdict, CanaryVerdict, PairedComparison, ServingStats

AUTO_APPROVER = "policy:auto-approve"


@dataclass(frozen=True)
class Approval:
    """Who let a staged version go on to the canary, and what they said."""

    approver: str
    comment: str = ""
    approved: bool = True


@dataclass(frozen=True)
class PromotionOutcome(FromDict):
    version: str
    status: str  # "promoted" | "watching" | "aborted" | "rejected"
    steps: tuple[str, ...]  # aliases moved onto the version, in order
    previous: str | None  # production before the promotion
    approver: str | None
    reasons: tuple[str, ...]
    report_path: str | None = None  # the canary report
    audit_path: str | None = None  # the post-deployment audit


@dataclass(frozen=True)
class WatchOutcome(FromDict):
    action: str  # "promoted" | "aborted" | "watching" | "rolled_back" | "audited" | "idle"
    version: str | None
    reasons: tuple[str, ...]
    report_path: str | None = None
    labelled: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class RollbackOutcome:
    """Production before and after a rollback; a flow returns it as ``{"from": before, "to": after}``."""

    before: str | None
    after: str | None

    def to_dict(self) -> dict[str, str | None]:
        return {"from": self.before, "to": self.after}

    @classmethod
    def from_dict(cls, data: Mapping[str, str | None]) -> RollbackOutcome:
        """Rebuilt from :meth:`to_dict` (the rollback flow's result)."""
        return cls(before=data["from"], after=data["to"])


# --- small helpers ---------------------------------------------------------------------------------


def announce(ws: Workspace, name: str, payload: dict[str, Any]) -> str | None:
    """Emit an event when it can be delivered, and always record it in the audit store."""
    if not ws.settings.emit_events:
        return None
    event_id = events.emit(name, ws.model, payload) if events.deliverable() else None
    ws.store.record_event(name, events.resource_id(ws.model), {**payload, "event_id": event_id}, None)
    return event_id


def track_moves(ws: Workspace, entries: Sequence[LedgerEntry], *, job: str, name: str) -> Path | None:
    """Log every version an entry touched with the aliases it holds right after that entry (one W&B run).

    W&B deduplicates identical artifacts, so re-logging a version moves the given aliases onto it:
    ``wandb sync`` of these runs replays the alias history. A cleared alias cannot be expressed this way
    (W&B has no offline alias removal); the ledger stays the authority on it.
    """
    from tasks.registry.model import LATEST, replay_aliases

    applied = [e for e in entries if e.outcome == "applied" and e.moves]
    if not applied:
        return None
    ledger = ws.registry.ledger(ws.model)
    run = ws.tracker.start_run(job_type=job, name=name, config={"ledger_seq": [e.seq for e in applied]})
    try:
        for entry in applied:
            held = replay_aliases([e for e in ledger if e.seq <= entry.seq])
            touched = sorted({v for m in entry.moves for v in (m.from_version, m.to_version) if v})
            for version in touched:
                aliases = sorted(a for a, v in held.items() if v == version and a != LATEST)
                run.log_model(ws.registry.get(ws.model, version), aliases=aliases)
        run.summary({"ledger_seq": applied[-1].seq})
    finally:
        run.finish()
    return run.dir


# Audit rows derived from the ledger: one per applied entry of these actions, keyed by the entry itself.
LEDGER_AUDIT = "ledger-audit"
_LEDGERED: dict[str, tuple[str, str]] = {
    "promote": ("promotion", "promoted"),
    "rollback": ("rollback", "rolled_back"),
    "withdraw": ("promotion", "withdrawn"),
    "complete": ("promotion", "completed"),
}


def ledger_key(model: str, entry: LedgerEntry) -> str:
    """The audit row's idempotency key of a ledger entry: ``ledger:<model>:<seq>:<digest>``."""
    return f"ledger:{model}:{entry.seq}:{entry.digest}"


def _record(
    ws: Workspace,
    kind: str,
    outcome: str,
    version: str | None,
    reasons: Sequence[str],
    *,
    entry: LedgerEntry | None = None,
    **payload: Any,
) -> None:
    """The audit row of a decision; with the ledger ``entry`` it stands for, inserted once under its ledger key."""
    from tasks.resources.store import DecisionRecord

    decision = DecisionRecord(
        model=ws.model, kind=kind, outcome=outcome, reasons=tuple(reasons), version=version, payload=payload
    )
    if entry is not None and entry.chained:
        ws.store.record_decision_once(
            DecisionRecord(**{**decision.__dict__, "payload": {**payload, "ledger_seq": entry.seq}}),
            ledger_key(ws.model, entry),
            purpose=LEDGER_AUDIT,
        )
    else:
        ws.store.record_decision(decision)


def audit_ledger(ws: Workspace) -> int:
    """Write the audit row of every chained promote/rollback/withdraw/complete entry that has none yet.

    Repairs a process killed between its ledger append and its audit write (and records the registry's own
    settlements); run before every promotion, rollback and withdrawal. Returns how many rows it wrote.
    """
    done = ws.store.claimed_keys(LEDGER_AUDIT, ws.model)
    written = 0
    for entry in ws.registry.ledger(ws.model):
        if not entry.chained or entry.outcome != "applied" or entry.action not in _LEDGERED:
            continue
        if ledger_key(ws.model, entry) in done:
            continue
        kind, outcome = _LEDGERED[entry.action]
        production = next((m for m in entry.moves if m.alias == PRODUCTION), None)
        version = production.to_version if production else next((m.from_version for m in entry.moves), None)
        before = production.from_version if production else None
        _record(
            ws,
            kind,
            outcome,
            version,
            [entry.reason],
            entry=entry,
            **{"from": before, "to": version, "actor": entry.actor, "derived_from_ledger": True},
        )
        written += 1
    return written


# --- the stages ------------------------------------------------------------------------------------


def check_candidate(ws: Workspace, version: str, *, force: bool = False) -> ModelVersion:
    """The version, verified on disk, if it may enter promotion: it passed the gate (or ``force``), not production."""
    found = ws.registry.get(ws.model, version)
    ws.registry.verify(found)
    if found.metadata.get("gate_passed") is not True and not force:
        raise RegistryError(
            f"{ws.model}:{version} did not pass the gate (gate_passed={found.metadata.get('gate_passed')!r}, "
            f"report: {ws.registry.annotations(ws.model, version).get('gate_report', 'none')}); "
            "promotion needs a gate pass (override with --force)"
        )
    if ws.registry.aliases(ws.model).get(PRODUCTION) == version:
        raise RegistryError(f"{ws.model}:{version} already holds 'production'; nothing to promote")
    return found


def move(
    ws: Workspace, alias: str, version: str | None, *, actor: str, reason: str, evidence: str | None = None
) -> LedgerEntry:
    """Move an alias conditionally on what it points at now (a concurrent move makes this one fail)."""
    current = ws.registry.aliases(ws.model).get(alias)
    return ws.registry.move_alias(
        ws.model, alias, version, expected=current, actor=actor, reason=reason, evidence=evidence
    )


def stage(ws: Workspace, version: str, *, actor: str, reason: str, evidence: str | None) -> LedgerEntry:
    return move(ws, STAGING, version, actor=actor, reason=f"staged: {reason}", evidence=evidence)


def record_approval(ws: Workspace, version: str, approval: Approval, *, evidence: str | None) -> LedgerEntry:
    """The approver's decision as a ledger note (actor = approver, evidence = the gate report)."""
    verb = "approved" if approval.approved else "rejected"
    comment = f": {approval.comment}" if approval.comment else ""
    return ws.registry.note(
        ws.model,
        "approve" if approval.approved else "reject",
        actor=approval.approver,
        reason=f"{verb} {version} for canary{comment}",
        evidence=evidence,
    )


def await_approval(ws: Workspace, version: str, *, why: str, evidence: str | None) -> None:
    """A promotion that wants an approver where nothing can pause (direct mode): nothing moves, and the audit row
    ``promotion``/``awaiting-approval`` is what `driftgate pending` lists until the version is promoted or refused."""
    from tasks.stages.review import AWAITING_APPROVAL

    _record(ws, "promotion", AWAITING_APPROVAL, version, [why], evidence=evidence)


def reject(ws: Workspace, version: str, approval: Approval) -> list[LedgerEntry]:
    """A refused (or timed-out) approval: staging is cleared, production and canary never move."""
    entries = withdraw_quietly(ws, version, actor=approval.approver, reason=f"approval refused: {approval.comment}")
    _record(
        ws,
        "promotion",
        "rejected",
        version,
        [f"approval refused by {approval.approver}: {approval.comment or 'no comment'}"],
        entry=entries[0] if entries else None,
        approver=approval.approver,
    )
    return entries


def start_canary(ws: Workspace, version: str, *, actor: str, reason: str, evidence: str | None) -> LedgerEntry:
    held = ws.registry.aliases(ws.model).get(CANARY)
    if held is not None and held != version:
        raise RegistryError(
            f"'canary' of model {ws.model!r} is held by {held}, an unfinished canary; let `driftgate watch` decide "
            f"on it or withdraw it before starting {version}"
        )
    return move(ws, CANARY, version, actor=actor, reason=f"canary: {reason}", evidence=evidence)


def canary_started_at(ws: Workspace, version: str) -> datetime | None:
    """When the version last became canary (from the ledger)."""
    for entry in reversed(ws.registry.ledger(ws.model)):
        if entry.outcome == "applied" and any(m.alias == CANARY and m.to_version == version for m in entry.moves):
            return entry.at
    return None


def promoted_at(ws: Workspace, version: str) -> datetime | None:
    for entry in reversed(ws.registry.ledger(ws.model)):
        if entry.outcome == "applied" and any(m.alias == PRODUCTION and m.to_version == version for m in entry.moves):
            return entry.at
    return None


@dataclass(frozen=True)
class CanaryEvidence:
    canary: ServingStats
    production: ServingStats | None  # None for a first model: nothing to compare with
    comparison: PairedComparison | None
    started_at: datetime | None
    elapsed_hours: float


def gather_canary_evidence(ws: Workspace, version: str, *, now: datetime | None = None) -> CanaryEvidence:
    """Serving statistics and the paired comparison with production over the rows scored since the canary began."""
    from tasks.stages.canary import compare_versions, load_predictions, serving_stats

    now = now or datetime.now(UTC)
    started = canary_started_at(ws, version)
    production = ws.registry.resolve(ws.model, PRODUCTION)
    frame = load_predictions(ws, since=started, until=now)
    comparison = None
    if frame is not None and production is not None:
        comparison = compare_versions(ws, frame, ws.registry.get(ws.model, version), production)
    return CanaryEvidence(
        canary=serving_stats(frame, version),
        production=serving_stats(frame, production.version) if production else None,
        comparison=comparison,
        started_at=started,
        elapsed_hours=(now - started).total_seconds() / 3600 if started else 0.0,
    )


def judge(ws: Workspace, evidence: CanaryEvidence) -> CanaryVerdict:
    from tasks.stages.canary import judge_canary

    return judge_canary(
        evidence.canary,
        evidence.comparison,
        ws.settings.promotion,
        alpha=ws.settings.gate.alpha,
        elapsed_hours=evidence.elapsed_hours,
    )


def write_canary_report(
    ws: Workspace, version: str, evidence: CanaryEvidence, verdict: CanaryVerdict, *, now: datetime | None = None
) -> Path:
    from tasks.report.markdown import write_report
    from tasks.stages.canary import canary_markdown

    now = now or datetime.now(UTC)
    markdown = canary_markdown(
        model=ws.model,
        canary=evidence.canary,
        production=evidence.production,
        comparison=evidence.comparison,
        verdict=verdict,
        started_at=evidence.started_at,
        now=now,
    )
    path = write_report(
        ws.settings.reports_dir / "canary" / f"{version}-{now:%Y%m%dT%H%M%S}.md",
        markdown,
        reports_root=ws.settings.reports_dir,
    )
    publish(markdown, key=artifact_key("canary", ws.model, version), description=f"canary {version}: {verdict.action}")
    return path


def abort_canary(
    ws: Workspace, version: str, verdict: CanaryVerdict, *, actor: str, report: Path | None
) -> list[LedgerEntry]:
    """Automatic rollback during the watch window: the canary is withdrawn, production never moves."""
    production = ws.registry.aliases(ws.model).get(PRODUCTION)
    why = "; ".join(verdict.failures) or "; ".join(verdict.reasons)
    evidence = ws.settings.shareable(report) if report else None
    entries = withdraw_quietly(ws, version, actor=actor, reason=f"automatic rollback: {why}", evidence=evidence)
    _record(
        ws,
        "rollback",
        "canary_aborted",
        version,
        verdict.reasons,
        entry=entries[0] if entries else None,
        **{"from": version, "to": production, "stage": "canary", "report": evidence, "actor": actor},
    )
    announce(
        ws,
        events.MODEL_ROLLED_BACK,
        {
            "model": ws.model,
            "from": version,
            "to": production,
            "stage": "canary",
            "reasons": list(verdict.failures or verdict.reasons),
            "report": evidence,
        },
    )
    return entries


def finalize(
    ws: Workspace,
    version: str,
    *,
    actor: str,
    reason: str,
    evidence: str | None,
    expected_production: str | None,
) -> list[LedgerEntry]:
    """Move production (only if it is still ``expected_production``), keep the old one as previous-production.

    The promotion lease open for ``version`` (if any) ends in the same ledger entry, which also clears the
    version's staging and canary."""
    held = ws.registry.open_lease(ws.model)
    entry = ws.registry.promote(
        ws.model,
        version,
        actor=actor,
        reason=reason,
        evidence=evidence,
        expected_production=expected_production,
        lease=held if held is not None and held.version == version else None,
    )
    fault_point("promote", "after_production")
    entries = [entry]
    for alias in (STAGING, CANARY):
        if ws.registry.aliases(ws.model).get(alias) == version:
            entries.append(move(ws, alias, None, actor=actor, reason=f"promoted to production ({alias} done)"))
    _record(
        ws,
        "promotion",
        "promoted",
        version,
        [reason],
        entry=entry,
        **{"from": expected_production, "to": version, "actor": actor, "evidence": evidence},
    )
    fault_point("promote", "after_audit")
    audit_ledger(ws)  # rows of entries written on the way (a settlement of a dead holder's lease)
    write_move_report(ws, entry, kind="promotion")
    announce(ws, events.MODEL_PROMOTED, {"model": ws.model, "version": version, "previous": expected_production})
    return entries


def post_deployment_audit(
    ws: Workspace, version: str, previous: str, *, since: datetime, now: datetime | None = None
) -> tuple[AuditVerdict, PairedComparison | None, Path]:
    """Compare the new production with the previous one on the same rows since ``since``; link the report
    from the ledger (an ``audit`` note whose evidence is the report) and from the version's annotations."""
    from tasks.report.markdown import write_report
    from tasks.stages.canary import audit_markdown, compare_versions, judge_audit, load_predictions

    now = now or datetime.now(UTC)
    frame = load_predictions(ws, since=since, until=now)
    comparison = None
    if frame is not None:
        comparison = compare_versions(
            ws, frame, ws.registry.get(ws.model, version), ws.registry.get(ws.model, previous)
        )
    verdict = judge_audit(comparison, ws.settings.promotion, alpha=ws.settings.gate.alpha)
    markdown = audit_markdown(model=ws.model, comparison=comparison, verdict=verdict, since=since, now=now)
    path = write_report(
        ws.settings.reports_dir / "audit" / f"{version}-vs-{previous}-{now:%Y%m%dT%H%M%S}.md",
        markdown,
        reports_root=ws.settings.reports_dir,
    )
    publish(markdown, key=artifact_key("audit", ws.model, version), description=f"post-deployment audit {version}")
    rows = comparison.rows if comparison else 0
    labelled = comparison.labelled_rows if comparison else 0
    ws.registry.note(
        ws.model,
        "audit",
        actor="driftgate",
        reason=(
            f"post-deployment audit of {version} vs {previous} on {rows} rows ({labelled} labelled): "
            f"{'passed' if verdict.passed else 'FAILED: ' + '; '.join(verdict.failures)}"
        ),
        evidence=ws.settings.shareable(path),
    )
    ws.registry.annotate(
        ws.model,
        version,
        "post_deployment_audit",
        {
            "report": ws.settings.shareable(path),
            "passed": verdict.passed,
            "rows": rows,
            "labelled_rows": labelled,
            "at": now.isoformat(),
        },
    )
    return verdict, comparison, path


def begin(
    ws: Workspace,
    version: str,
    *,
    actor: str,
    reason: str,
    evidence: str | None,
    expected: str | Unchecked | None = ANY,
) -> tuple[Lease, str | None]:
    """Take the promotion lease for ``version``; returns it and the production the promotion expects.

    ``expected`` is the production the operator saw (default: production now). Refused before any alias
    moves: ``PromotionInProgressError`` while another promotion runs, ``AliasConflictError`` if production
    is no longer ``expected``.
    """
    audit_ledger(ws)
    before = ws.registry.aliases(ws.model).get(PRODUCTION) if isinstance(expected, Unchecked) else expected
    lease = ws.registry.begin_promotion(
        ws.model, version, actor=actor, reason=reason, evidence=evidence, expected_production=before
    )
    fault_point("promote", "after_lease")
    return lease, before


def hand_over_to_watch(ws: Workspace, version: str, *, actor: str) -> Lease | None:
    """The canary stays for its watch window: the promotion lease passes to `driftgate watch`, which ends it."""
    held = ws.registry.open_lease(ws.model)
    if held is None or held.version != version or held.pid is None:
        return held
    return ws.registry.hand_over(ws.model, held, actor=actor, reason="the canary stays for its watch window")


def withdraw_quietly(
    ws: Workspace, version: str, *, actor: str, reason: str, evidence: str | None = None
) -> list[LedgerEntry]:
    """Withdraw ``version`` if it still is a candidate (staging, canary or the leased version); else nothing."""
    try:
        return [ws.registry.withdraw(ws.model, version, actor=actor, reason=reason, evidence=evidence)]
    except AliasConflictError:
        return []


def withdraw(
    ws: Workspace, version: str | None = None, *, actor: str, reason: str, evidence: str | None = None
) -> LedgerEntry:
    """Withdraw a staging/canary candidate and end its promotion lease (conditional: see the registry's
    ``withdraw``); production never moves. Recorded in the audit store as a ``promotion``/``withdrawn`` row."""
    audit_ledger(ws)
    entry = ws.registry.withdraw(ws.model, version, actor=actor, reason=reason, evidence=evidence)
    withdrawn = next((m.from_version for m in entry.moves if m.from_version), version) or "?"
    _record(ws, "promotion", "withdrawn", withdrawn, [reason], entry=entry, actor=actor)
    audit_ledger(ws)
    track_moves(ws, [entry], job="withdraw", name=f"withdraw-{withdrawn}")
    return entry


def promote(
    ws: Workspace,
    version: str,
    *,
    actor: str,
    reason: str,
    evidence: str | None,
    expected: str | Unchecked | None = ANY,
) -> list[str]:
    """Promote at once through staging and canary (no watch window); returns the aliases moved onto the version.

    Conditional on ``expected`` (the production the operator saw; default: production now) and on holding
    the promotion lease; a failure after the lease was taken withdraws the version before raising.
    """
    ws.registry.get(ws.model, version)
    _lease, before = begin(ws, version, actor=actor, reason=reason, evidence=evidence, expected=expected)
    entries: list[LedgerEntry] = []  # the lease entry moves nothing: tracking starts with staging
    try:
        entries.append(stage(ws, version, actor=actor, reason=reason, evidence=evidence))
        fault_point("promote", "after_staging")
        entries.append(start_canary(ws, version, actor=actor, reason=reason, evidence=evidence))
        fault_point("promote", "after_canary")
        entries += finalize(ws, version, actor=actor, reason=reason, evidence=evidence, expected_production=before)
    except DriftgateError as exc:
        entries += withdraw_quietly(ws, version, actor=actor, reason=f"promotion failed: {exc}")
        track_moves(ws, entries, job="promote", name=f"promote-{version}-withdrawn")
        raise
    track_moves(ws, entries, job="promote", name=f"promote-{version}")
    return [STAGING, CANARY, PRODUCTION]


def rollback(
    ws: Workspace, *, actor: str, reason: str, evidence: str | None = None, expected: str | None = None
) -> tuple[str | None, str]:
    """Restore the last known good version to production in one step; returns (from, to).

    With ``expected`` (the production version the caller saw) the rollback is conditional: it is refused with
    AliasConflictError when production moved meanwhile. The alias moves first (that is what serving reads),
    then the audit row, tracking run and event follow.
    """
    audit_ledger(ws)
    entry = ws.registry.rollback(ws.model, actor=actor, reason=reason, evidence=evidence, expected_production=expected)
    fault_point("rollback", "after_production")
    before = next(m.from_version for m in entry.moves if m.alias == PRODUCTION)
    after = next(m.to_version for m in entry.moves if m.alias == PRODUCTION)
    if after is None:  # rollback always names the version it restores; keeps the type checker honest
        raise RegistryError(f"rollback of {ws.model!r} restored no version (ledger entry #{entry.seq})")
    _record(
        ws, "rollback", "rolled_back", after, [reason], entry=entry, **{"from": before, "to": after, "actor": actor}
    )
    fault_point("rollback", "after_audit")
    audit_ledger(ws)
    track_moves(ws, [entry], job="rollback", name=f"rollback-{after}")
    write_move_report(ws, entry, kind="rollback")
    announce(ws, events.MODEL_ROLLED_BACK, {"model": ws.model, "from": before, "to": after, "reason": reason})
    return before, after


# --- the watch -----------------------------------------------------------------------------------


def watch(
    ws: Workspace, *, actor: str = "driftgate-watch", labels: Sequence[str] = (), now: datetime | None = None
) -> WatchOutcome:
    """One look at the watch window: decide on a pending canary, or audit a recent promotion (and roll it back)."""
    from tasks.stages.canary import attach_labels

    now = now or datetime.now(UTC)
    labelled = attach_labels(ws, labels) if labels else {}
    aliases = ws.registry.aliases(ws.model)
    canary = aliases.get(CANARY)
    if canary is not None and canary != aliases.get(PRODUCTION):
        outcome = decide_canary(ws, canary, actor=actor, now=now)
        return WatchOutcome(outcome.status, canary, outcome.reasons, outcome.report_path, labelled)
    production, previous = aliases.get(PRODUCTION), aliases.get("previous-production")
    since = promoted_at(ws, production) if production else None
    if production is None or previous is None or since is None:
        return WatchOutcome("idle", production, ("no canary and no recent promotion to watch",), None, labelled)
    window = ws.settings.promotion.rollback_window_hours
    if (now - since).total_seconds() / 3600 > window:
        return WatchOutcome(
            "idle", production, (f"{production} is past its {window:g} h rollback window",), None, labelled
        )
    last = ws.registry.annotations(ws.model, production).get("post_deployment_audit") or {}
    if not labelled and last:
        return WatchOutcome("idle", production, ("no new labels since the last audit",), last.get("report"), labelled)
    started = canary_started_at(ws, production) or since
    verdict, _comparison, path = post_deployment_audit(ws, production, previous, since=started, now=now)
    if verdict.passed:
        return WatchOutcome("audited", production, verdict.reasons, str(path), labelled)
    rollback(
        ws,
        actor=actor,
        reason=f"automatic rollback: audit failed: {'; '.join(verdict.failures)}",
        evidence=ws.settings.shareable(path),
    )
    return WatchOutcome("rolled_back", production, verdict.reasons, str(path), labelled)


def decide_canary(
    ws: Workspace,
    version: str,
    *,
    actor: str,
    now: datetime | None = None,
    reason: str = "canary passed its watch window",
    evidence: str | None = None,
    expected_production: str | Unchecked | None = ANY,
    earlier: Sequence[LedgerEntry] = (),
) -> PromotionOutcome:
    """Judge the running canary: abort (automatic rollback), wait, or promote it and audit the period.

    Production moves only if it still is ``expected_production`` (default: whatever it is now).
    ``earlier`` moves of the same promotion (staging, canary) go to the same tracking run as the
    decision's moves; while waiting nothing is tracked (the caller tracks ``earlier`` itself).
    """
    now = now or datetime.now(UTC)
    found = gather_canary_evidence(ws, version, now=now)
    verdict = judge(ws, found)
    current = ws.registry.aliases(ws.model).get(PRODUCTION)
    previous = current if isinstance(expected_production, Unchecked) else expected_production
    if verdict.action == "wait":
        return PromotionOutcome(version, "watching", (CANARY,), previous, None, verdict.reasons)
    report = write_canary_report(ws, version, found, verdict, now=now)
    if verdict.action == "abort":
        entries = abort_canary(ws, version, verdict, actor=actor, report=report)
        track_moves(ws, [*earlier, *entries], job="canary-abort", name=f"canary-abort-{version}")
        return PromotionOutcome(version, "aborted", (CANARY,), previous, None, verdict.reasons, str(report))
    approver = _approver_of(ws, version) or actor
    entries = finalize(
        ws,
        version,
        actor=approver,
        reason=f"{reason}; {verdict.reasons[0]}",
        evidence=evidence or ws.settings.shareable(report),
        expected_production=previous,
    )
    audit_path = None
    if previous is not None and found.comparison is not None and found.started_at is not None:
        _, _, audit = post_deployment_audit(ws, version, previous, since=found.started_at, now=now)
        audit_path = str(audit)
    track_moves(ws, [*earlier, *entries], job="promote", name=f"promote-{version}")
    return PromotionOutcome(
        version, "promoted", (CANARY, PRODUCTION), previous, approver, verdict.reasons, str(report), audit_path
    )


def _approver_of(ws: Workspace, version: str) -> str | None:
    for entry in reversed(ws.registry.ledger(ws.model)):
        if entry.action == "approve" and entry.reason.startswith(f"approved {version} "):
            return entry.actor
    return None
