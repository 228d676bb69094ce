"""Watch flow: during the watch window, decide on a running canary or audit a fresh promotion (scheduled)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import flow

from flows import steps
from flows._common import banner, workspace


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
    with workspace(home, config, model) as ws:
        banner(f"watch {ws.model}")
        outcome = steps.watch_window(ws, actor=actor, labels=labels or [])
        banner(f"{outcome.action}: {outcome.reasons[0] if outcome.reasons else ''}")
        return asdict(outcome)
