"""Cycle flow: monitor the batches (and attach labels); the first RETRAIN decision retrains, and a passing
candidate is promoted."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows._common import act_on_retrain, banner
from flows.monitor import monitor_flow


@flow(name="driftgate-cycle", log_prints=True)
def cycle_flow(
    batches: list[str],
    labels: list[str] | None = None,
    home: str | None = None,
    config: str | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    banner("monitor")
    result = monitor_flow(batches=batches, labels=labels, home=home, config=config, model=model)
    late = [b for b in (result["labels"] or {}).get("batches", []) if b["action"] == "RETRAIN"]
    request = next((o for o in result["batches"] if o["action"] == "RETRAIN"), None)
    retrain: dict[str, Any] | None = None
    if request is not None:
        retrain = act_on_retrain(request, f"policy RETRAIN on batch {request['batch_id']}", home, config, model)
    elif late:
        request = late[0]
        retrain = act_on_retrain(
            request, f"policy RETRAIN on late labels of batch {request['batch_id']}", home, config, model
        )
    return {"monitor": result["batches"], "labels": result["labels"], "retrain": retrain}
