"""Promote flow: candidate → staging → canary → production, old production kept as previous-production."""

from __future__ import annotations

from prefect import flow

from flows import steps
from flows._common import banner, workspace


@flow(name="driftgate-promote", log_prints=True)
def promote_flow(
    version: str,
    reason: str = "promotion requested",
    actor: str = "driftgate",
    evidence: str | None = None,
    home: str | None = None,
    config: str | None = None,
    model: str | None = None,
) -> list[str]:
    ws = workspace(home, config, model)
    banner(f"promote {ws.model}:{version} (evidence: {evidence or 'none'})")
    moved = steps.promote(ws, version, actor=actor, reason=reason, evidence=evidence)
    ws.close()
    return moved
