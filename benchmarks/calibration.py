"""Batch-level false-alert rate of drift evidence on stationary batches, with the batch-level control off and on.

    uv run python benchmarks/calibration.py            # 2,000 batches per row, both processes (~30 min)
    uv run python benchmarks/calibration.py --quick    # mixed process, 300/300/150 batches, < 2 minutes

Every (feature, statistic) threshold is calibrated at about 1 % per batch, so "some feature alerts"
(uncorrected: what the policy acted on before the control) fires on about 1 - 0.99^k of stationary batches.
With ``profiling.batch_correction: holm`` the policy acts only on the tests that survive Holm's correction
at ``profiling.batch_alpha`` (5 %). Both are read off the same batches, profiled exactly as the monitor
does (``tasks.drift.profiling.profile_batch``; the multivariate PCA test is part of the family).

Processes: ``normal`` (independent standard normals, where 1 - 0.99^k is exact for the per-feature tests),
``mixed`` (cycling through t3, zero-inflated lognormal, Poisson counts, a 5-category column with a 1 %
category, booleans). Reference: 5,000 rows; batches: 1,000 rows. A "batch with any alert" counts the
contract features' primary tests and the joint (PCA) test. Monte-Carlo error of a rate r over N batches:
sqrt(r (1 - r) / N). The policy column feeds each batch's drift evidence, uncorrected and controlled, to
``tasks.policy.decide`` (default policy settings, quality passed, no performance drop): the ALERT and RETRAIN
decisions on stationary batches with the control off and on, so the difference is what the control removes.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import polars as pl

from tasks.core.settings import PolicySettings, ProfilingSettings
from tasks.data.contract import infer_contract, validate_batch
from tasks.drift.profiling import profile_batch
from tasks.drift.reference import fit_reference_profile
from tasks.drift.results import BatchProfile
from tasks.policy.decide import Action, PolicyEvidence, PolicyState, decide

REFERENCE_ROWS = 5_000
BATCH_ROWS = 1_000
Draw = Callable[[np.random.Generator, int, int], dict[str, np.ndarray]]


def normal(rng: np.random.Generator, n: int, k: int) -> dict[str, np.ndarray]:
    return {f"x{j}": rng.standard_normal(n) for j in range(k)}


def mixed(rng: np.random.Generator, n: int, k: int) -> dict[str, np.ndarray]:
    columns: dict[str, np.ndarray] = {}
    for j in range(k):
        kind = j % 5
        if kind == 0:
            columns[f"x{j}"] = rng.standard_t(3, n)
        elif kind == 1:
            columns[f"x{j}"] = np.where(rng.random(n) < 0.6, 0.0, rng.lognormal(0.0, 1.0, n))
        elif kind == 2:
            columns[f"x{j}"] = rng.poisson(2.0, n).astype(np.float64)
        elif kind == 3:
            columns[f"x{j}"] = rng.choice(np.array(["a", "b", "c", "d", "rare"]), n, p=[0.4, 0.3, 0.2, 0.09, 0.01])
        else:
            columns[f"x{j}"] = rng.random(n) < 0.3
    return columns


PROCESSES: dict[str, Draw] = {"normal": normal, "mixed": mixed}


def frame(draw: Draw, rng: np.random.Generator, n: int, k: int) -> pl.DataFrame:
    return pl.DataFrame({"id": np.arange(n), **draw(rng, n, k), "y": (rng.random(n) < 0.3).astype(np.int8)})


def acted_on(result: BatchProfile, controlled: bool) -> bool:
    """Whether the policy (``tasks.policy.decide``, default settings, no performance evidence) alerts or retrains."""
    joint = result.multivariate_drift
    features = result.drifted_features if controlled else result.alerting_features
    evidence = PolicyEvidence(
        batch_id="b",
        rows=result.rows,
        quality_passed=True,
        drifted_features=tuple(features),
        drift_share=len(features) / len(result.features),
        multivariate_drift=bool(joint is not None and (joint.drifts if controlled else joint.alert)),
        estimated_drop=0.0,
    )
    decision = decide(evidence, PolicyState(), PolicySettings(), datetime(2026, 1, 1, tzinfo=UTC))
    return decision.action in (Action.ALERT, Action.RETRAIN)


def rates(process: str, k: int, batches: int, seed: int) -> tuple[float, float, float, float, float]:
    """Over ``batches`` stationary batches: uncorrected any-alert rate, controlled rate, the policy's ALERT/RETRAIN
    rate on each, seconds."""
    draw = PROCESSES[process]
    settings = ProfilingSettings(chunk_size=BATCH_ROWS)
    started = time.perf_counter()
    rng = np.random.default_rng([seed, k])
    reference = frame(draw, rng, REFERENCE_ROWS, k)
    contract = infer_contract(reference, name="calibration", target="y", entity_id="id")
    profile = fit_reference_profile(reference, contract, settings)
    uncorrected = controlled = acted_off = acted_on_ = 0
    for _ in range(batches):
        batch = validate_batch(frame(draw, rng, BATCH_ROWS, k), contract, source="stationary")
        result = profile_batch(profile, batch, contract, settings)
        joint = result.multivariate_drift
        uncorrected += bool(result.alerting_features or (joint is not None and joint.alert))
        controlled += bool(result.drifted_features or (joint is not None and joint.drifts))
        acted_off += acted_on(result, controlled=False)
        acted_on_ += acted_on(result, controlled=True)
    shares = (uncorrected / batches, controlled / batches, acted_off / batches, acted_on_ / batches)
    return (*shares, time.perf_counter() - started)


def _rate(rate: float, n: int) -> str:
    return f"{rate:.3f} ± {math.sqrt(max(rate * (1 - rate), 1e-12) / n):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="mixed process, 300/300/150 batches (< 2 minutes)")
    parser.add_argument("--batches", type=int, default=2_000, help="stationary batches per row (full mode)")
    parser.add_argument("--process", choices=[*PROCESSES, "both"], default=None)
    parser.add_argument("--seed", type=int, default=20_261_205)
    args = parser.parse_args()
    process = args.process or ("mixed" if args.quick else "both")
    processes = list(PROCESSES) if process == "both" else [process]
    plan = {10: 300, 25: 300, 100: 150} if args.quick else dict.fromkeys((10, 25, 100), args.batches)
    level = ProfilingSettings().batch_alpha
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start", flush=True)
    print(f"reference {REFERENCE_ROWS:,} rows, batches {BATCH_ROWS:,} rows, batch_alpha {level}, seed {args.seed}")
    print()
    print(
        "| process | features | batches | any alert, uncorrected | 1 - 0.99^(k+1) | any drift, Holm "
        "| policy ALERT+RETRAIN off / on | s | load |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in processes:
        for k, batches in plan.items():
            off, on, policy_off, policy_on, seconds = rates(name, k, batches, args.seed)
            naive = 1 - 0.99 ** (k + 1)  # k features and the PCA test, if independent
            print(
                f"| {name} | {k} | {batches} | {_rate(off, batches)} | {naive:.3f} | {_rate(on, batches)} | "
                f"{round(policy_off * batches)} / {round(policy_on * batches)} | {seconds:.0f} | "
                f"{os.getloadavg()[0]:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
