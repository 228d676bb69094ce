"""Promotion and rollback: moving registry aliases, with the audit row, tracking run and event of each move."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tasks import events

if TYPE_CHECKING:
    from tasks.workspace import Workspace


def promote(ws: Workspace, version: str, *, actor: str, reason: str, evidence: str | None) -> list[str]:
    """Move a version through staging and canary to production; the old production becomes previous-production."""
    from tasks.store import DecisionRecord

    registry, model = ws.registry, ws.model
    registry.get(model, version)
    steps = []
    for alias in ("staging", "canary"):
        current = registry.aliases(model).get(alias)
        registry.move_alias(model, alias, version, expected=current, actor=actor, reason=reason, evidence=evidence)
        steps.append(alias)
    before = registry.aliases(model).get("production")
    registry.promote(model, version, actor=actor, reason=reason, evidence=evidence, expected_production=before)
    steps.append("production")
    for alias in ("staging", "canary"):
        registry.move_alias(model, alias, None, expected=version, actor=actor, reason="promoted to production")
    ws.store.record_decision(
        DecisionRecord(
            model=model,
            kind="promotion",
            outcome="promoted",
            reasons=(reason,),
            version=version,
            payload={"from": before, "to": version, "actor": actor, "evidence": evidence},
        )
    )
    _track_aliases(ws, "promote", version, ["production"])
    if ws.settings.emit_events:
        events.emit(events.MODEL_PROMOTED, model, {"model": model, "version": version, "previous": before})
    return steps


def rollback(ws: Workspace, *, actor: str, reason: str) -> tuple[str | None, str]:
    """Restore the last known good version to production in one step; returns (from, to)."""
    from tasks.store import DecisionRecord

    before = ws.registry.aliases(ws.model).get("production")
    ws.registry.rollback(ws.model, actor=actor, reason=reason)
    after = ws.registry.aliases(ws.model)["production"]
    ws.store.record_decision(
        DecisionRecord(
            model=ws.model,
            kind="rollback",
            outcome="rolled_back",
            reasons=(reason,),
            version=after,
            payload={"from": before, "to": after, "actor": actor},
        )
    )
    _track_aliases(ws, "rollback", after, ["production"])
    if ws.settings.emit_events:
        events.emit(events.MODEL_ROLLED_BACK, ws.model, {"model": ws.model, "from": before, "to": after})
    return before, after


def _track_aliases(ws: Workspace, job: str, version: str, aliases: list[str]) -> None:
    run = ws.tracker.start_run(job_type=job, name=f"{job}-{version}", config={"version": version})
    try:
        run.log_model(ws.registry.get(ws.model, version), aliases=aliases)
    finally:
        run.finish()
