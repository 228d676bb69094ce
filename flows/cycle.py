"""Cycle flow: monitor the batches (and attach labels); the first RETRAIN decision retrains, and a passing
candidate is promoted (body: flows/bodies.py)."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.bodies import cycle_body
from flows.steps import FLOW


@flow(name="driftgate-cycle", log_prints=True)
def cycle_flow(
    batches: list[str],
    labels: list[str] | None = None,
    home: str | None = None,
    config: str | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    return cycle_body(FLOW, batches, labels, home, config, model)
