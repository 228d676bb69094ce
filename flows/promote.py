"""Promote flow: gate pass → staging → approval → canary → watch window → production (old one kept as
previous-production). A canary that misses a threshold is withdrawn and production never moves."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import flow
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput

from flows import steps
from flows._common import banner, workspace
from tasks.registry.model import ANY
from tasks.resources.workspace import Workspace
from tasks.stages.promotion import AUTO_APPROVER, Approval, PromotionOutcome, withdraw_quietly


class ApprovalInput(RunInput):
    """What the approver answers when a promotion pauses (Prefect UI form, or `driftgate approve`)."""

    approver: str
    comment: str = ""
    approved: bool = True


@flow(name="driftgate-promote", log_prints=True)
def promote_flow(
    version: str,
    reason: str = "promotion requested",
    actor: str = "driftgate",
    evidence: str | None = None,
    home: str | None = None,
    config: str | None = None,
    model: str | None = None,
    watch_batches: list[str] | None = None,
    labels: list[str] | None = None,
    auto_approve: bool | None = None,
    force: bool = False,
    expected: str | None = None,
) -> dict[str, Any]:
    """Stage, approve (pause for typed input unless auto-approved), canary, watch, then production.

    watch_batches are scored with the canary split during the watch window (labels joined by id);
    with ``promotion.watch_hours`` > 0 the canary stays in place and `driftgate watch` decides later (the
    promotion lease is handed to it). ``expected``: the production version the operator saw (default: read
    now); if production moved, nothing changes and AliasConflictError says so. A second promotion while this
    one holds the lease is refused up front; a failure after the lease was taken withdraws the version.
    """
    with workspace(home, config, model) as ws:
        banner(f"promote {ws.model}:{version} (evidence: {evidence or 'none'})")
        steps.check_candidate(ws, version, force=force)
        _lease, before = steps.begin_promotion(
            ws, version, actor=actor, reason=reason, evidence=evidence, expected=ANY if expected is None else expected
        )
        try:
            return _staged_promotion(ws, version, before, reason, actor, evidence, watch_batches, labels, auto_approve)
        except Exception as exc:
            withdraw_quietly(ws, version, actor=actor, reason=f"promotion failed: {exc}")
            raise


def _staged_promotion(
    ws: Workspace,
    version: str,
    before: str | None,
    reason: str,
    actor: str,
    evidence: str | None,
    watch_batches: list[str] | None,
    labels: list[str] | None,
    auto_approve: bool | None,
) -> dict[str, Any]:
    """Everything after the lease: stage, approval, canary, watch window, production (or withdrawal)."""
    settings = ws.settings.promotion
    entries = [steps.stage(ws, version, actor=actor, reason=reason, evidence=evidence)]
    if settings.auto_approve if auto_approve is None else auto_approve:
        approval = Approval(AUTO_APPROVER, f"policy allows automatic approval (requested by {actor})")
    else:
        banner(f"approval: waiting up to {settings.approval_timeout_seconds} s for an approver")
        approval = _wait_for_approval(ws, version, settings.approval_timeout_seconds, settings.approval_poll_seconds)
    entries.append(steps.record_approval(ws, version, approval, evidence=evidence))
    if not approval.approved:
        entries += steps.reject(ws, version, approval)
        steps.track_moves(ws, entries, job="promote", name=f"promote-{version}-rejected")
        return asdict(
            PromotionOutcome(version, "rejected", ("staging",), before, approval.approver, (approval.comment,))
        )
    banner(f"canary: {ws.settings.canary_share:.0%} of entities routed to {version} (approved by {approval.approver})")
    entries.append(steps.start_canary(ws, version, actor=approval.approver, reason=reason, evidence=evidence))
    for batch in watch_batches or []:
        scored = steps.score_file(ws, batch)
        print(f"scored {scored.batch_id}: {scored.routed} routed, {scored.errors} errors")
    if labels:
        steps.attach_prediction_labels(ws, labels)
    banner("watch window: judge the canary")
    outcome = steps.decide_canary(
        ws,
        version,
        actor=approval.approver,
        reason=f"{reason} (approved by {approval.approver})",
        evidence=evidence,
        expected_production=before,
        earlier=entries,
    )
    if outcome.status == "watching":
        steps.hand_over_to_watch(ws, version, actor=approval.approver)
        steps.track_moves(ws, entries, job="promote", name=f"promote-{version}-canary")
    banner(f"{version}: {outcome.status} — {outcome.reasons[0]}")
    return asdict(outcome)


def _wait_for_approval(ws: Workspace, version: str, timeout: int, poll: int) -> Approval:
    """Pause for typed input; a timeout is recorded as a refusal (staging cleared) and fails the flow run."""
    try:
        answer = pause_flow_run(
            wait_for_input=ApprovalInput, timeout=timeout, poll_interval=poll, key=f"approve-{version}"
        )
    except FlowPauseTimeout:
        refused = Approval("approval-timeout", f"no approval within {timeout} s", approved=False)
        steps.record_approval(ws, version, refused, evidence=None)
        steps.reject(ws, version, refused)
        raise
    return Approval(answer.approver, answer.comment, answer.approved)
