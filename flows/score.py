"""Score flow: score batch files by alias, routing the canary share of entities to the canary."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import flow

from flows import steps
from flows._common import banner, workspace
from tasks.stages import canary


@flow(name="driftgate-score", log_prints=True)
def score_flow(
    batches: list[str],
    labels: list[str] | None = None,
    home: str | None = None,
    config: str | None = None,
    model: str | None = None,
) -> list[dict[str, Any]]:
    """Each batch is scored by production and (for its share of entities) the canary; every prediction is
    stored with the version that made it. Label files, if given, are joined into the stored predictions."""
    from tasks.data.files import expand_paths

    with workspace(home, config, model) as ws:
        routing = canary.resolve_routing(ws)
        route = f"canary {routing.canary.version} at {routing.share:.0%}" if routing.canary else "no canary"
        banner(f"score with production {routing.production.version}, {route}")
        results = [asdict(steps.score_file(ws, str(path), routing=routing)) for path in expand_paths(batches)]
        if labels:
            steps.attach_prediction_labels(ws, labels)
        return results
