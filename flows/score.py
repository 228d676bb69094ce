"""Score flow: score batch files by alias, routing the canary share of entities to the canary (body:
flows/ops_bodies.py)."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.ops_bodies import score_body
from flows.steps import FLOW


@flow(name="driftgate-score", log_prints=True)
def score_flow(
    batches: list[str] | None = None,
    labels: list[str] | None = None,
    home: str | None = None,
    config: str | None = None,
    model: str | None = None,
) -> list[dict[str, Any]]:
    """Each batch is scored by production and (for its share of entities) the canary; every prediction is
    stored with the version that made it. Label files, if given, are joined into the stored predictions.
    No batches: the files in the home's inbox (setting ``inbox``), wherever the worker runs."""
    return score_body(FLOW, batches, labels, home, config, model)
