"""Watch flow: during the watch window, decide on a running canary or audit a fresh promotion (scheduled)
(body: flows/ops_bodies.py)."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.ops_bodies import watch_body
from flows.steps import FLOW


@flow(name="driftgate-watch", log_prints=True)
def watch_flow(
    labels: list[str] | None = None,
    actor: str = "driftgate-watch",
    home: str | None = None,
    config: str | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """Promote a canary that met every threshold once its window ended, withdraw one that missed any, and
    roll back a production whose post-deployment audit fails within its rollback window."""
    return watch_body(FLOW, labels, actor, home, config, model)
