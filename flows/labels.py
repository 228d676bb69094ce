"""Labels flow: delayed labels join the batches they belong to; each batch is measured and judged again, and a
RETRAIN decided on their arrival is acted on like a monitored one."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import flow

from flows import steps
from flows._common import act_on_retrain, banner, workspace
from tasks.data.files import expand_paths


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
    with workspace(home, config, model) as ws:
        paths = [str(p) for p in expand_paths(labels)]
        label_set = steps.read_labels(ws, paths)
        assert label_set is not None  # paths is never empty: expand_paths refuses a pattern matching nothing
        banner(f"attach {label_set.describe()} to monitored batches of {ws.model}")
        arrival = steps.attach_labels(ws, label_set)
    request = arrival.retrain
    outcome = None
    if retrain and request is not None:
        outcome = act_on_retrain(asdict(request), f"late labels of batch {request.batch_id}", home, config, model)
    return {"labels": asdict(arrival), "retrain": outcome}
