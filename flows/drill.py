"""Drill flow: rehearse rollback and roll-forward on a sandbox copy of the registry (scheduled) (body:
flows/ops_bodies.py)."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.ops_bodies import drill_body
from flows.steps import FLOW


@flow(name="driftgate-drill", log_prints=True)
def drill_flow(
    keep_sandbox: bool = False,
    home: str | None = None,
    config: str | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    return drill_body(FLOW, keep_sandbox, home, config, model)
