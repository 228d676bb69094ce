"""The operations bodies (score, watch, drill, replay), runnable two ways and importing no Prefect.

Written like flows/bodies.py, over a :class:`flows.bodies.Runner`: ``Runner()`` runs them in-process (direct
mode: plain steps, banners on the ``driftgate`` logger, events into the store's outbox) and ``flows.steps.FLOW``
as Prefect flows (flows/score.py, flows/watch.py, flows/drill.py and flows/replay.py call them). bodies.py holds
the bodies of the monitoring and promotion path; these sit beside it, so that neither module grows too long.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from flows.bodies import Runner
from tasks.data.files import expand_paths

if TYPE_CHECKING:
    from tasks.policy.replay import Clock


def score_body(
    run: Runner,
    batches: list[str] | None,
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
        paths = expand_paths(batches or ws.settings.inbox_pattern)  # no batches: the home's inbox
        results = [asdict(run.steps.score_file(ws, str(path), routing=routing)) for path in paths]
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


def replay_body(
    run: Runner,
    truth: str | None = None,
    degraded: str | None = None,
    overrides: list[str] | None = None,
    candidate_config: str | None = None,
    clock: Clock = "window",
    home: str | None = None,
    config: str | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """See flows.replay.replay_flow."""
    import time
    from pathlib import Path

    from flows.results import ReplayRun
    from tasks.policy import replay
    from tasks.report.markdown import write_report

    with run.workspace(home, config, model) as ws:
        rows = ws.store.decisions(ws.model, kind="policy")
        ids = list(dict.fromkeys(str(r["batch_id"]) for r in rows if r.get("batch_id")))
        known = replay.resolve_truth(ids, Path(truth) if truth else None, degraded)
        batches = replay.batches_from_decisions(rows, known, clock=clock)
        run.banner(f"replay {len(batches)} batches of {ws.model} under the current policy")
        current = run.steps.replay_policy(batches, ws.settings.policy)
        candidate = None
        if overrides or candidate_config:
            settings = replay.candidate_settings(
                ws.settings.policy, overrides or [], Path(candidate_config) if candidate_config else None
            )
            run.banner(
                "replay under the candidate policy: "
                + "; ".join(replay.settings_diff(current.settings, settings.model_dump(mode="json")))
            )
            candidate = run.steps.replay_policy(batches, settings)
        markdown = replay.replay_markdown(f"Policy replay — {ws.model}", current, candidate)
        path = write_report(ws.settings.reports_dir / "replay" / time.strftime("replay-%Y%m%d-%H%M%S.md"), markdown)
        return ReplayRun(str(path), current, candidate).to_dict()


def replay_scenario_body(
    run: Runner,
    home: str,
    scenario: str = "demo",
    seed: int = 7,
    stationary: int = 8,
    drifted: int = 6,
    rows_per_batch: int = 4000,
    n_trials: int = 3,
    label_delay: int = 0,
    overrides: list[str] | None = None,
    candidate_config: str | None = None,
) -> dict[str, Any]:
    """See flows.replay.replay_scenario_flow."""
    from dataclasses import replace
    from pathlib import Path

    from flows.results import ReplayRun
    from tasks.core.errors import ConfigError
    from tasks.policy import replay

    if label_delay < 0:
        raise ConfigError(f"--label-delay must be 0 or more batches, got {label_delay}")
    run.banner(f"prepare: scenario {scenario}, {stationary} stationary then {drifted} changed batches (seed {seed})")
    if scenario == "demo":
        plan = replay.prepare_scenario(
            Path(home),
            seed=seed,
            stationary=stationary,
            drifted=drifted,
            rows_per_batch=rows_per_batch,
            n_trials=n_trials,
        )
        files = [(item.batch, item.labels) for item in plan.batches]
        config, reference, truth = plan.config, plan.reference, plan.truth
    else:
        from tasks.data.scenarios import prepare

        named = prepare(
            scenario,
            Path(home),
            seed=seed,
            rows_per_batch=rows_per_batch,
            stationary=stationary,
            changed=drifted,
            label_delay=label_delay,
            n_trials=n_trials,
        )
        files = [(str(item.batch), str(item.labels)) for item in named.batches]
        config, reference, truth = named.config, named.reference, named.truth
    home_dir = str(Path(home))
    run.banner("champion: the first model from the reference, in production")
    run.bootstrap(reference=str(reference), home=home_dir, config=str(config))
    drive_with_delay(run, files, label_delay, home=home_dir, config=str(config))
    result = ReplayRun.from_dict(
        run.replay(
            truth=str(truth),
            overrides=overrides,
            candidate_config=candidate_config,
            clock="window",
            home=home_dir,
            config=str(config),
        )
    )
    return replace(result, home=home_dir, config=str(config), truth=str(truth), label_delay=label_delay).to_dict()


def drive_with_delay(run: Runner, files: list[tuple[str, str]], delay: int, *, home: str, config: str) -> None:
    """Monitor each batch with the labels of the batch ``delay`` places before it (0: its own), then deliver the
    labels still to come. A refused batch is recorded as BLOCK by the monitor and the stream goes on."""
    import contextlib
    from pathlib import Path

    from tasks.core import progress
    from tasks.core.errors import DataError

    total = len(files) + 1
    for index, (batch, _) in enumerate(files):
        progress.report("scenario", index, total, Path(batch).stem)
        arriving = [files[index - delay][1]] if index >= delay else None
        try:
            run.monitor(batches=[batch], labels=arriving, home=home, config=config)
        except DataError:
            continue
    leftovers = [labels for _, labels in files[len(files) - delay :]] if delay else []
    if leftovers:
        with contextlib.suppress(DataError):  # labels of refused batches only: nothing to judge
            run.labels(labels=leftovers, home=home, config=config)
    progress.report("scenario", total, total, "replay")
