"""Cycle flow: monitor the batches; the first RETRAIN decision retrains, and a passing candidate is promoted."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows._common import banner
from flows.monitor import monitor_flow
from flows.retrain import retrain_flow


@flow(name="driftgate-cycle", log_prints=True)
def cycle_flow(
    batches: list[str],
    labels: list[str] | None = None,
    home: str | None = None,
    config: str | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    banner("monitor")
    outcomes = monitor_flow(batches=batches, labels=labels, home=home, config=config, model=model)
    retrain: dict[str, Any] | None = None
    request = next((o for o in outcomes if o["action"] == "RETRAIN"), None)
    if request is not None:
        banner(f"retrain requested by batch {request['batch_id']}")
        retrain = retrain_flow(
            window_start=request["window_start"].isoformat() if request["window_start"] else None,
            window_end=request["window_end"].isoformat() if request["window_end"] else None,
            idempotency_key=request["retrain_key"],
            reason=f"policy RETRAIN on batch {request['batch_id']}",
            priority_class=request["priority_class"],
            home=home,
            config=config,
            model=model,
        )
    return {"monitor": outcomes, "retrain": retrain}
