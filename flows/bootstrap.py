"""Bootstrap flow: the first model, trained on a labelled reference file, judged against absolute floors
(body: flows/bodies.py)."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.bodies import as_read, bootstrap_body
from flows.steps import FLOW

__all__ = ["as_read", "bootstrap_flow"]


@flow(name="driftgate-bootstrap", log_prints=True)
def bootstrap_flow(
    reference: str,
    promote: bool = True,
    actor: str = "driftgate",
    home: str | None = None,
    config: str | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """Train the first model on `reference` (labelled); promote it to production if it clears the floors."""
    return bootstrap_body(FLOW, reference, promote, actor, home, config, model)
