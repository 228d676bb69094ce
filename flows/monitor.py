"""Monitor flow: each batch is validated, scored if needed, profiled, estimated, judged, recorded and announced;
labels of the call that belong to earlier batches then judge those batches again."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import flow

from flows import steps
from flows._common import banner, workspace
from tasks.core import progress
from tasks.core.errors import DataError
from tasks.data.files import expand_paths


@flow(name="driftgate-monitor", log_prints=True)
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
    refused: list[DataError] = []
    outcomes: list[dict[str, Any]] = []
    arrival = None
    with workspace(home, config, model) as ws:
        paths = steps.select_batches(ws, batches, only_new)
        label_set = steps.read_labels(ws, [str(p) for p in expand_paths(labels)] if labels else None)
        if not paths and label_set is None:
            banner("no new batches")
            return {"batches": [], "labels": None}
        if paths:
            banner(f"prepare: production model, reference profile and estimator for {ws.model}")
            ctx = steps.prepare_context(ws)
        for done, path in enumerate(paths, start=1):
            banner(f"batch {done}/{len(paths)}: {path}")
            try:
                batch = steps.load_batch(ws, ctx, path, label_set)
            except DataError as exc:
                refused.append(exc)
                outcomes.append(asdict(steps.refuse(ws, path, exc)))
                progress.report("monitor", done, len(paths), f"{path}: refused")
                continue
            batch_profile = steps.profile(ws, ctx, batch)
            est, realized = steps.estimate(ws, ctx, batch)
            decision = steps.judge(ws, batch, batch_profile, est, realized)
            key = steps.record_monitoring(ws, batch, batch_profile, est, realized, decision)
            steps.announce(ws, batch.batch_id, decision, key)
            outcome = steps.report_monitoring(ws, batch, batch_profile, est, realized, decision, key)
            outcomes.append(asdict(outcome))
            progress.report("monitor", done, len(paths), f"{batch.batch_id}: {decision.action.value}")
        if label_set is not None:
            banner(f"labels: {label_set.describe()}")
            arrival = asdict(steps.attach_labels(ws, label_set, require_match=not paths))
    if refused:
        raise refused[0]
    return {"batches": outcomes, "labels": arrival}
