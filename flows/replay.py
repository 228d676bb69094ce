"""Replay flows: the policy decided again over recorded batches, scored against known truth (tasks/policy/replay.py)
(bodies: flows/ops_bodies.py)."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.ops_bodies import replay_body, replay_scenario_body
from flows.steps import FLOW
from tasks.policy import replay


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
    return replay_body(FLOW, truth, degraded, overrides, candidate_config, clock, home, config, model)


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
    return replay_scenario_body(
        FLOW,
        home,
        scenario,
        seed,
        stationary,
        drifted,
        rows_per_batch,
        n_trials,
        label_delay,
        overrides,
        candidate_config,
    )
