"""The operations bodies (score, watch, drill), runnable two ways and importing no Prefect.

Written like flows/bodies.py, over a :class:`flows.bodies.Runner`: ``Runner()`` runs them in-process (direct
mode: plain steps, banners on the ``driftgate`` logger, events into the store's outbox) and ``flows.steps.FLOW``
as Prefect flows (flows/score.py, flows/watch.py, flows/drill.py call them). bodies.py holds the bodies of the
monitoring and promotion path; these sit beside it so that neither module grows past a screenful of concerns.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flows.bodies import Runner
from tasks.data.files import expand_paths


def score_body(
    run: Runner,
    batches: list[str],
    labels: list[str] | None = None,
    home: str | None = None,
    config: str | None = None,
    model: str | None = None,
) -> list[dict[str, Any]]:
    """See flows.score.score_flow."""
    from tasks.stages import canary

    with run.workspace(home, config, model) as ws:
        routing = canary.resolve_routing(ws)
        route = f"canary {routing.canary.version} at {routing.share:.0%}" if routing.canary else "no canary"
        run.banner(f"score with production {routing.production.version}, {route}")
        results = [asdict(run.steps.score_file(ws, str(path), routing=routing)) for path in expand_paths(batches)]
        if labels:
            run.steps.attach_prediction_labels(ws, labels)
        return results


def watch_body(
    run: Runner,
    labels: list[str] | None = None,
    actor: str = "driftgate-watch",
    home: str | None = None,
    config: str | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """See flows.watch.watch_flow."""
    with run.workspace(home, config, model) as ws:
        run.banner(f"watch {ws.model}")
        outcome = run.steps.watch_window(ws, actor=actor, labels=labels or [])
        run.banner(f"{outcome.action}: {outcome.reasons[0] if outcome.reasons else ''}")
        return asdict(outcome)


def drill_body(
    run: Runner,
    keep_sandbox: bool = False,
    home: str | None = None,
    config: str | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """See flows.drill.drill_flow."""
    with run.workspace(home, config, model) as ws:
        run.banner(f"rollback drill on a sandbox copy of {ws.model}")
        result = run.steps.run_drill(ws, keep_sandbox=keep_sandbox)
        for step in result.steps:
            run.say(f"{step.name}: {step.from_version} → {step.to_version} restored in {step.seconds_to_restore:.3f} s")
        return asdict(result)
