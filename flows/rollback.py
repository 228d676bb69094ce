"""Rollback flow: production returns to the last known good version in one step."""

from __future__ import annotations

from prefect import flow

from flows import steps
from flows._common import banner, workspace
from tasks.stages.promotion import RollbackOutcome


@flow(name="driftgate-rollback", log_prints=True)
def rollback_flow(
    reason: str = "manual rollback",
    actor: str = "driftgate",
    home: str | None = None,
    config: str | None = None,
    model: str | None = None,
    evidence: str | None = None,
    expected: str | None = None,
) -> dict[str, str | None]:
    """Roll back; with ``expected`` only if production is still that version (see stages.promotion.rollback)."""
    with workspace(home, config, model) as ws:
        banner(f"roll back production of {ws.model}")
        before, after = steps.rollback(ws, actor=actor, reason=reason, evidence=evidence, expected=expected)
    return RollbackOutcome(before, after).to_dict()
