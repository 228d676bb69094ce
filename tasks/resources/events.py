"""driftgate's Prefect events: names, resource ids, idempotency keys, emission, and the outbox.

Two ways out. In a flow run (or with a Prefect API and no outbox), :func:`emit` sends at once. In direct
mode the CLI installs an outbox (:func:`outbox`; the audit store's ``driftgate_outbox`` table): :func:`emit`
then writes the event there, with its final id, and ``driftgate events flush`` delivers it later
(:func:`prefect_sender`). Nothing here imports Prefect unless an event is sent to it.
"""

from __future__ import annotations

import hashlib
import os
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from tasks.core.jsonable import jsonable

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


class Outbox(Protocol):
    """Where direct mode keeps events until ``driftgate events flush`` (the audit store implements it)."""

    def add_to_outbox(
        self,
        event_id: str,
        name: str,
        resource: Mapping[str, str],
        payload: Mapping[str, Any],
        idempotency_key: str | None,
    ) -> bool: ...


_outbox: ContextVar[Outbox | None] = ContextVar("driftgate_outbox", default=None)


@contextmanager
def outbox(box: Outbox | None) -> Iterator[None]:
    """``with outbox(ws.store):`` every :func:`emit` inside goes to the outbox instead of Prefect (None: no change)."""
    if box is None:
        yield
        return
    token = _outbox.set(box)
    try:
        yield
    finally:
        _outbox.reset(token)


@dataclass(frozen=True)
class PendingEvent:
    """An event of the outbox not delivered yet."""

    event_id: str
    name: str
    created_at: datetime


@dataclass(frozen=True)
class OutboxState:
    """The outbox of an audit store: its pending events (oldest first) and how many were delivered."""

    pending: tuple[PendingEvent, ...]
    delivered: int


class OutboxRows(Protocol):
    """Reads the outbox (the audit store)."""

    def outbox(self, *, pending: bool | None = None) -> list[dict[str, Any]]: ...


def outbox_state(store: OutboxRows) -> OutboxState:
    pending = tuple(
        PendingEvent(str(row["event_id"]), row["name"], row["created_at"]) for row in store.outbox(pending=True)
    )
    return OutboxState(pending, len(store.outbox(pending=False)))


def outbox_active() -> bool:
    return _outbox.get() is not None


def deliverable() -> bool:
    """Whether an emitted event will reach an API: an outbox keeps it for later delivery, one is configured,
    or this code runs inside a flow run.

    Outside a flow and without ``PREFECT_API_URL`` or an outbox, ``emit_event`` would boot a throwaway
    ephemeral server (8-26 s) whose events die with the process; such events are recorded in the audit store only.
    """
    if _outbox.get() is not None or os.environ.get("PREFECT_API_URL"):
        return True
    if "prefect.context" not in sys.modules:  # nothing imported Prefect, so no flow can be running
        return False
    from prefect.context import FlowRunContext

    return FlowRunContext.get() is not None


def emit(name: str, model: str, payload: dict[str, Any], *, idempotency_key: str | None = None) -> str | None:
    """Emit a Prefect event about a model; returns the event id, or None when no API is configured.

    With an outbox installed the event is written there (id: from the idempotency key, else a fresh one that
    the row keeps, so any re-delivery carries the same id) and Prefect is not imported.
    """
    box = _outbox.get()
    if box is not None:
        event_id = str(event_id_for(idempotency_key) if idempotency_key else uuid.uuid4())
        box.add_to_outbox(event_id, name, resource_of(name, model, payload), jsonable(payload), idempotency_key)
        return event_id
    from prefect.events import emit_event

    event = emit_event(
        event=name,
        resource=resource_of(name, model, payload),
        payload=jsonable(payload),
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


def prefect_sender() -> Callable[[list[dict[str, Any]]], None]:
    """POST outbox rows to the configured Prefect API (``/api/events``), each with its stored id and time.

    The call returns once the server accepted the batch (HTTP 204), so a row is marked delivered only
    after that. Re-delivering a row (a crash between the POST and the mark) sends the same event id again,
    and Prefect keeps one event per id: its event store inserts with ON CONFLICT DO NOTHING on Postgres and
    skips ids already stored on SQLite (prefect/server/events/storage/database.py, ``write_events``, 3.9.1),
    and the trigger service skips ids it has seen (``event_has_been_seen``: an in-memory TTL cache of 30
    minutes per server process, prefect/server/events/ordering). So a duplicate never reaches the event
    store; a re-delivery later than 30 minutes (or after a server restart) could fire a trigger again, which
    the retrain claim on the idempotency key then turns into a recorded duplicate, not a second retrain.
    """
    from prefect import get_client
    from prefect.events import Event

    def send(rows: list[dict[str, Any]]) -> None:
        body = [
            Event(
                id=uuid.UUID(row["event_id"]),
                event=row["name"],
                occurred=row["created_at"],
                resource=row["resource"],
                payload=row["payload"],
            ).model_dump(mode="json")
            for row in rows
        ]
        with get_client(sync_client=True) as client:
            client.request("POST", "/events", json=body).raise_for_status()

    return send


def current_flow_run() -> tuple[str | None, str | None]:
    """(id, UI URL) of the Prefect flow run this code runs in; (None, None) outside one.

    Reads ``prefect.runtime`` only when Prefect is already imported (a flow run imported it): direct mode,
    where nothing imported Prefect, pays no import for a question whose answer is "none".
    """
    if "prefect" not in sys.modules:
        return None, None
    from prefect.runtime import flow_run

    run_id = flow_run.get_id()
    if not run_id:
        return None, None
    try:
        url = flow_run.get_flow_run_ui_url()
    except Exception:  # the UI URL needs PREFECT_UI_URL or an API URL; the id alone still identifies the run
        url = None
    return str(run_id), url if url and url.startswith("http") else None
