"""Drill flow: rehearse rollback and roll-forward on a sandbox copy of the registry (scheduled)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import flow

from flows import steps
from flows._common import banner, workspace


@flow(name="driftgate-drill", log_prints=True)
def drill_flow(
    keep_sandbox: bool = False,
    home: str | None = None,
    config: str | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    with workspace(home, config, model) as ws:
        banner(f"rollback drill on a sandbox copy of {ws.model}")
        result = steps.run_drill(ws, keep_sandbox=keep_sandbox)
        for step in result.steps:
            print(f"{step.name}: {step.from_version} → {step.to_version} restored in {step.seconds_to_restore:.3f} s")
        return asdict(result)
