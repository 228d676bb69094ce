"""Labels flow: delayed labels join the batches they belong to; each batch is measured and judged again, and a
RETRAIN decided on their arrival is acted on like a monitored one (body: flows/bodies.py)."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.bodies import labels_body
from flows.steps import FLOW


@flow(name="driftgate-labels", log_prints=True)
def labels_flow(
    labels: list[str],
    home: str | None = None,
    config: str | None = None,
    model: str | None = None,
    retrain: bool = False,
) -> dict[str, Any]:
    """Attach label files (names or globs); with ``retrain``, a RETRAIN their arrival decides runs at once.

    Returns {"labels": the arrival's accounting and per-batch outcomes, "retrain": retrain outcome or None}.
    """
    return labels_body(FLOW, labels, home, config, model, retrain)
