"""Replay flows: the policy decided again over recorded batches, scored against known truth (tasks/replay.py)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows._common import banner, workspace
from flows.bootstrap import bootstrap_flow
from flows.monitor import monitor_flow
from tasks import progress, replay
from tasks.reporting import write_report

replay_policy = task(name="replay-policy", cache_policy=NO_CACHE, persist_result=False)(replay.replay)


@flow(name="driftgate-replay", log_prints=True)
def replay_flow(
    truth: str | None = None,
    degraded: str | None = None,
    overrides: list[str] | None = None,
    candidate_config: str | None = None,
    clock: replay.Clock = "decided",
    home: str | None = None,
    config: str | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """Replay the recorded policy decisions under the current settings and, if given, candidate settings.

    truth: YAML truth file; degraded: regular expression of truly degraded batch ids (one of the two is needed).
    overrides: candidate settings as key=value; candidate_config: a settings file whose `policy:` is the candidate.
    """
    ws = workspace(home, config, model)
    try:
        rows = ws.store.decisions(ws.model, kind="policy")
        ids = list(dict.fromkeys(str(r["batch_id"]) for r in rows if r.get("batch_id")))
        known = replay.resolve_truth(ids, Path(truth) if truth else None, degraded)
        batches = replay.batches_from_decisions(rows, known, clock=clock)
        banner(f"replay {len(batches)} batches of {ws.model} under the current policy")
        current = replay_policy(batches, ws.settings.policy)
        candidate = None
        if overrides or candidate_config:
            settings = replay.candidate_settings(
                ws.settings.policy, overrides or [], Path(candidate_config) if candidate_config else None
            )
            banner(
                "replay under the candidate policy: "
                + "; ".join(replay.settings_diff(current.settings, settings.model_dump(mode="json")))
            )
            candidate = replay_policy(batches, settings)
        markdown = replay.replay_markdown(f"Policy replay — {ws.model}", current, candidate)
        path = write_report(ws.settings.reports_dir / "replay" / time.strftime("replay-%Y%m%d-%H%M%S.md"), markdown)
        return {
            "report": str(path),
            "current": replay.report_dict(current),
            "candidate": replay.report_dict(candidate) if candidate else None,
        }
    finally:
        ws.close()


@flow(name="driftgate-replay-scenario", log_prints=True)
def replay_scenario_flow(
    home: str,
    seed: int = 7,
    stationary: int = 8,
    drifted: int = 6,
    rows_per_batch: int = 4000,
    n_trials: int = 3,
    overrides: list[str] | None = None,
    candidate_config: str | None = None,
) -> dict[str, Any]:
    """The demo's data with a known shift point, monitored in shadow mode (nothing retrains), then replayed."""
    banner(f"prepare: {stationary} stationary then {drifted} drifted batches (seed {seed})")
    plan = replay.prepare_scenario(
        Path(home), seed=seed, stationary=stationary, drifted=drifted, rows_per_batch=rows_per_batch, n_trials=n_trials
    )
    home_dir, config = str(plan.home), str(plan.config)
    total = len(plan.batches) + 2
    progress.report("scenario", 0, total, "bootstrap")
    banner("champion: the first model from the reference, in production")
    bootstrap_flow(reference=str(plan.reference), home=home_dir, config=config)
    for done, item in enumerate(plan.batches, start=1):
        progress.report("scenario", done, total, Path(item.batch).stem)
        monitor_flow(batches=[item.batch], labels=[item.labels], home=home_dir, config=config)
    progress.report("scenario", total - 1, total, "replay")
    result = replay_flow(
        truth=str(plan.truth),
        overrides=overrides,
        candidate_config=candidate_config,
        clock="window",
        home=home_dir,
        config=config,
    )
    progress.report("scenario", total, total, "done")
    return {**result, "home": home_dir, "config": config, "truth": str(plan.truth)}
