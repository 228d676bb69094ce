"""Retrain flow: window → Optuna-tuned LightGBM → paired gate vs champion → registered candidate (→ promote)
(body: flows/bodies.py)."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.bodies import retrain_body
from flows.steps import FLOW


@flow(name="driftgate-retrain", log_prints=True)
def retrain_flow(
    window_start: str | None = None,
    window_end: str | None = None,
    idempotency_key: str | None = None,
    reason: str = "retrain requested",
    priority_class: str | None = None,
    auto_promote: bool = True,
    actor: str = "driftgate",
    home: str | None = None,
    config: str | None = None,
    model: str | None = None,
    study: str | None = None,
) -> dict[str, Any]:
    """Retrain on the labelled window [window_start, window_end] (ISO times; default: the newest rows).

    study: the Optuna study to tune in (default: the request's key, or one per data window for a manual retrain).
    """
    return retrain_body(
        FLOW,
        window_start,
        window_end,
        idempotency_key,
        reason,
        priority_class,
        auto_promote,
        actor,
        home,
        config,
        model,
        study,
    )
