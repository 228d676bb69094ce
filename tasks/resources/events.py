"""driftgate's Prefect events: names, resource ids, idempotency keys, and emission."""

from __future__ import annotations

import hashlib
import os
import sys
import uuid
from datetime import datetime
from typing import Any

BATCH_PROFILED = "driftgate.batch.profiled"
DRIFT_DETECTED = "driftgate.drift.detected"
PERFORMANCE_DEGRADED = "driftgate.performance.degraded"
RETRAIN_REQUESTED = "driftgate.retrain.requested"
CANDIDATE_REGISTERED = "driftgate.candidate.registered"
GATE_PASSED = "driftgate.gate.passed"
GATE_FAILED = "driftgate.gate.failed"
MODEL_PROMOTED = "driftgate.model.promoted"
MODEL_ROLLED_BACK = "driftgate.model.rolled_back"

ALL_EVENTS = (
    BATCH_PROFILED,
    DRIFT_DETECTED,
    PERFORMANCE_DEGRADED,
    RETRAIN_REQUESTED,
    CANDIDATE_REGISTERED,
    GATE_PASSED,
    GATE_FAILED,
    MODEL_PROMOTED,
    MODEL_ROLLED_BACK,
)


_NAMESPACE = uuid.UUID("5b0f6c1e-6d1a-4f0e-9a57-6472696674ab")


def resource_id(model: str) -> str:
    return f"driftgate.model.{model}"


def retrain_key(model: str, window_start: datetime | None, window_end: datetime | None, fingerprint: str = "") -> str:
    """One retrain per (model, data window, labelled rows in it): a repeated event maps to the same key, while
    the same window with more labelled rows (late labels, a grown stretch) is a new request."""
    start = window_start.isoformat() if window_start else ""
    end = window_end.isoformat() if window_end else ""
    raw = f"{model}|{start}|{end}" + (f"|{fingerprint}" if fingerprint else "")
    return "retrain-" + hashlib.sha256(raw.encode()).hexdigest()[:24]


def event_id_for(idempotency_key: str) -> uuid.UUID:
    """Prefect's event store keeps one event per id: a re-sent request collapses into the first one."""
    return uuid.uuid5(_NAMESPACE, idempotency_key)


PRIORITY_LABEL = "driftgate.priority"
PRIORITY_CLASSES = ("urgent", "normal", "low")


def resource_of(name: str, model: str, payload: dict[str, Any]) -> dict[str, str]:
    """The event's resource. A retrain request also carries its priority class as a label: Prefect triggers match
    resource labels (not payloads), so prefect.yaml routes each class to the retrain deployment of its queue."""
    resource = {"prefect.resource.id": resource_id(model), "prefect.resource.name": model}
    if name == RETRAIN_REQUESTED:
        klass = payload.get("priority_class")
        resource[PRIORITY_LABEL] = klass if klass in PRIORITY_CLASSES else "normal"
    return resource


def deliverable() -> bool:
    """Whether a Prefect event can reach an API: one is configured, or this code runs inside a flow run.

    Outside a flow and without ``PREFECT_API_URL``, ``emit_event`` would boot a throwaway ephemeral
    server (8-26 s) whose events die with the process; such events are recorded in the audit store only.
    """
    if os.environ.get("PREFECT_API_URL"):
        return True
    if "prefect.context" not in sys.modules:  # nothing imported Prefect, so no flow can be running
        return False
    from prefect.context import FlowRunContext

    return FlowRunContext.get() is not None


def emit(name: str, model: str, payload: dict[str, Any], *, idempotency_key: str | None = None) -> str | None:
    """Emit a Prefect event about a model; returns the event id, or None when no API is configured."""
    from prefect.events import emit_event

    event = emit_event(
        event=name,
        resource=resource_of(name, model, payload),
        payload=_jsonable(payload),
        id=event_id_for(idempotency_key) if idempotency_key else None,
    )
    return str(event.id) if event is not None else None


def flush(timeout: float = 5.0) -> None:
    """Deliver queued events before a short-lived process exits (sync callers only)."""
    import inspect

    from prefect.events.worker import EventsWorker

    result = EventsWorker.drain_all(timeout=timeout)
    if inspect.iscoroutine(result):  # called from async code: the caller's loop must drain instead
        result.close()


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    return str(value)
