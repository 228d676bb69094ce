"""Promote flow: gate pass → staging → approval → canary → watch window → production (old one kept as
previous-production). A canary that misses a threshold is withdrawn and production never moves (body:
flows/bodies.py)."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput

from flows import steps
from flows.bodies import promote_body
from flows.steps import FLOW
from tasks.resources.workspace import Workspace
from tasks.stages.promotion import Approval


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
    return promote_body(
        FLOW,
        version,
        reason,
        actor,
        evidence,
        home,
        config,
        model,
        watch_batches,
        labels,
        auto_approve,
        force,
        expected,
    )


def wait_for_approval(ws: Workspace, version: str) -> Approval:
    """Pause for the approver as the promotion settings say (see _wait_for_approval)."""
    settings = ws.settings.promotion
    return _wait_for_approval(ws, version, settings.approval_timeout_seconds, settings.approval_poll_seconds)


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
