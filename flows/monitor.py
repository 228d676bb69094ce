"""Monitor flow: each batch is validated, scored if needed, profiled, estimated, judged, recorded and announced;
labels of the call that belong to earlier batches then judge those batches again (body: flows/bodies.py)."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows._common import monitor_task_runner
from flows.bodies import monitor_body
from flows.steps import FLOW


@flow(name="driftgate-monitor", log_prints=True, task_runner=monitor_task_runner())
def monitor_flow(
    batches: list[str] | None = None,
    labels: list[str] | None = None,
    home: str | None = None,
    config: str | None = None,
    model: str | None = None,
    only_new: bool = False,
) -> dict[str, Any]:
    """Monitor batch files (names or globs; none: the home's inbox, setting `inbox`); `labels` are label files
    (or globs) keyed by entity id, for these batches or any batch monitored before.
    Returns {"batches": [outcome, ...], "labels": arrival or None}.

    With only_new (the scheduled deployment), batches already in the audit store are skipped and an
    empty inbox is not an error. A batch refused at the boundary is recorded as BLOCK; the first refusal is
    raised once every batch has been seen.
    """
    return monitor_body(FLOW, batches, labels, home, config, model, only_new)
