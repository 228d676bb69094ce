"""Labels flow: delayed labels join the batches they belong to; realized performance is recorded."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows._common import banner, workspace
from tasks import monitoring
from tasks.data import expand_paths

attach_labels = task(name="attach-labels", cache_policy=NO_CACHE, persist_result=False)(monitoring.attach_labels)


@flow(name="driftgate-labels", log_prints=True)
def labels_flow(
    labels: list[str], home: str | None = None, config: str | None = None, model: str | None = None
) -> list[dict[str, Any]]:
    ws = workspace(home, config, model)
    paths = [str(p) for p in expand_paths(labels)]
    banner(f"attach {len(paths)} label file(s) to monitored batches of {ws.model}")
    outcomes = attach_labels(ws, paths)
    ws.close()
    return [asdict(o) for o in outcomes]
