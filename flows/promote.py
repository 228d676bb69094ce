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
from tasks.stages.review import PendingApproval


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
    """Pause for typed input; a timeout is recorded as a refusal (staging cleared) and fails the flow run.

    Before pausing, the run carries the evidence (tasks/stages/review.py) and says, at WARNING so that the
    command line shows it while it blocks, which run waits and the exact commands that answer it."""
    announce_pause(ws, version, timeout)
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


def announce_pause(ws: Workspace, version: str, timeout: int) -> str | None:
    """Publish the gate evidence on this run and log the approve/reject commands; returns the flow run id."""
    from prefect import get_run_logger

    from tasks.report.publish import flow_run_id
    from tasks.stages.review import approval_commands

    run_id = flow_run_id()
    if run_id is None:
        return None
    logger = get_run_logger()
    try:
        steps.publish_gate_evidence(ws, version, flow_run_id=run_id)
    except Exception as exc:  # the approver can still answer; a missing artifact must not withdraw the promotion
        logger.warning("the gate evidence of %s:%s could not be published: %s", ws.model, version, exc)
    commands = approval_commands(run_id)
    logger.warning(
        "%s:%s awaits approval: flow run %s is paused for up to %d s (evidence: this run's artifacts).\n"
        "  approve: %s\n  reject:  %s",
        ws.model,
        version,
        run_id,
        timeout,
        commands.approve,
        commands.reject,
    )
    return run_id


def paused_promotions(limit: int = 200) -> list[PendingApproval]:
    """Promote flow runs paused for an approver on the configured Prefect API, oldest first."""
    from prefect import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    paused = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED])))
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[promote_flow.name])),
            flow_run_filter=paused,
            sort=FlowRunSort.START_TIME_ASC,
            limit=limit,
        )
    return [
        PendingApproval(
            model=run.parameters.get("model"),
            version=run.parameters.get("version"),
            since=run.state.timestamp if run.state is not None else None,
            flow_run_id=str(run.id),
            reason=str(run.parameters.get("reason") or ""),
        )
        for run in runs
    ]
