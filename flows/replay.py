"""Replay flows: the policy decided again over recorded batches, scored against known truth (tasks/policy/replay.py)."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

from prefect import flow

from flows import steps
from flows._common import banner, workspace
from flows.bootstrap import bootstrap_flow
from flows.labels import labels_flow
from flows.monitor import monitor_flow
from tasks.core import progress
from tasks.core.errors import ConfigError, DataError
from tasks.policy import replay
from tasks.report.markdown import write_report


@flow(name="driftgate-replay", log_prints=True)
def replay_flow(
    truth: str | None = None,
    degraded: str | None = None,
    overrides: list[str] | None = None,
    candidate_config: str | None = None,
    clock: replay.Clock = "window",
    home: str | None = None,
    config: str | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """Replay the recorded policy decisions under the current settings and, if given, candidate settings.

    truth: YAML truth file; degraded: regular expression of truly degraded batch ids (one of the two is needed).
    overrides: candidate settings as key=value; candidate_config: a settings file whose `policy:` is the candidate.
    """
    with workspace(home, config, model) as ws:
        rows = ws.store.decisions(ws.model, kind="policy")
        ids = list(dict.fromkeys(str(r["batch_id"]) for r in rows if r.get("batch_id")))
        known = replay.resolve_truth(ids, Path(truth) if truth else None, degraded)
        batches = replay.batches_from_decisions(rows, known, clock=clock)
        banner(f"replay {len(batches)} batches of {ws.model} under the current policy")
        current = steps.replay_policy(batches, ws.settings.policy)
        candidate = None
        if overrides or candidate_config:
            settings = replay.candidate_settings(
                ws.settings.policy, overrides or [], Path(candidate_config) if candidate_config else None
            )
            banner(
                "replay under the candidate policy: "
                + "; ".join(replay.settings_diff(current.settings, settings.model_dump(mode="json")))
            )
            candidate = steps.replay_policy(batches, settings)
        markdown = replay.replay_markdown(f"Policy replay — {ws.model}", current, candidate)
        path = write_report(ws.settings.reports_dir / "replay" / time.strftime("replay-%Y%m%d-%H%M%S.md"), markdown)
        return {
            "report": str(path),
            "current": replay.report_dict(current),
            "candidate": replay.report_dict(candidate) if candidate else None,
        }


@flow(name="driftgate-replay-scenario", log_prints=True)
def replay_scenario_flow(
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
    """A scenario with known truth monitored in shadow mode (nothing retrains), its labels arriving
    ``label_delay`` batches late, then replayed. ``demo``: the demo's data and drift; any other name: a scenario
    of tasks/data/scenarios.py (concept, covariate, benign, broken, noise, employment)."""
    if label_delay < 0:
        raise ConfigError(f"--label-delay must be 0 or more batches, got {label_delay}")
    banner(f"prepare: scenario {scenario}, {stationary} stationary then {drifted} changed batches (seed {seed})")
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
    banner("champion: the first model from the reference, in production")
    bootstrap_flow(reference=str(reference), home=home_dir, config=str(config))
    drive_with_delay(files, label_delay, home=home_dir, config=str(config))
    result = replay_flow(
        truth=str(truth),
        overrides=overrides,
        candidate_config=candidate_config,
        clock="window",
        home=home_dir,
        config=str(config),
    )
    return {**result, "home": home_dir, "config": str(config), "truth": str(truth), "label_delay": label_delay}


def drive_with_delay(files: list[tuple[str, str]], delay: int, *, home: str, config: str) -> None:
    """Monitor each batch with the labels of the batch ``delay`` places before it (0: its own), then deliver the
    labels still to come. A refused batch is recorded as BLOCK by the monitor and the stream goes on."""
    total = len(files) + 1
    for index, (batch, _) in enumerate(files):
        progress.report("scenario", index, total, Path(batch).stem)
        arriving = [files[index - delay][1]] if index >= delay else None
        try:
            monitor_flow(batches=[batch], labels=arriving, home=home, config=config)
        except DataError:
            continue
    leftovers = [labels for _, labels in files[len(files) - delay :]] if delay else []
    if leftovers:
        with contextlib.suppress(DataError):  # labels of refused batches only: nothing to judge
            labels_flow(labels=leftovers, home=home, config=config)
    progress.report("scenario", total, total, "replay")
