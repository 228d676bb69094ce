"""Monitor flow: each batch is validated, scored if needed, profiled, estimated, judged, recorded and announced."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import flow

from flows import steps
from flows._common import banner, workspace
from tasks import progress
from tasks.data import expand_paths


@flow(name="driftgate-monitor", log_prints=True)
def monitor_flow(
    batches: list[str],
    labels: list[str] | None = None,
    home: str | None = None,
    config: str | None = None,
    model: str | None = None,
    only_new: bool = False,
) -> list[dict[str, Any]]:
    """Monitor batch files (names or globs); `labels` are label files keyed by entity id.

    With only_new (the scheduled deployment), batches already in the audit store are skipped and an
    empty inbox is not an error.
    """
    ws = workspace(home, config, model)
    paths = steps.select_batches(ws, batches, only_new)
    if not paths:
        banner("no new batches")
        ws.close()
        return []
    label_paths = [str(p) for p in expand_paths(labels)] if labels else None
    banner(f"prepare: production model, reference profile and estimator for {ws.model}")
    ctx = steps.prepare_context(ws)
    outcomes = []
    for done, path in enumerate(paths, start=1):
        banner(f"batch {done}/{len(paths)}: {path}")
        batch = steps.load_batch(ws, ctx, path, label_paths)
        batch_profile = steps.profile(ws, ctx, batch)
        est, realized = steps.estimate(ws, ctx, batch)
        decision = steps.judge(ws, batch, batch_profile, est, realized)
        key = steps.record_monitoring(ws, batch, batch_profile, est, realized, decision)
        steps.announce(ws, batch, decision, key)
        outcome = steps.report_monitoring(ws, batch, batch_profile, est, realized, decision, key)
        outcomes.append(asdict(outcome))
        progress.report("monitor", done, len(paths), f"{batch.batch_id}: {decision.action.value}")
    ws.close()
    return outcomes
