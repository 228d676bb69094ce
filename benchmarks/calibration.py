"""Calibration of driftgate's statistics: false alerts per batch and per statistic, power at small shifts, and
the promotion gate's size and power beside its own prediction. Every rate is printed with its Monte-Carlo error.

    uv run python benchmarks/calibration.py                    # every section, full size (an hour or more)
    uv run python benchmarks/calibration.py --quick            # every section, reduced, < 2 minutes in all
    uv run python benchmarks/calibration.py --quick --only power gate

Sections (``--only``; all by default):

``batch``: the batch-level false-alert rate of drift evidence on stationary batches, with the batch-level control
off and on. Every (feature, statistic) threshold is calibrated at about 1 % per batch, so "some feature alerts"
(uncorrected) fires on about 1 - 0.99^k of stationary batches; with ``profiling.batch_correction: holm`` the
policy acts only on the tests that survive Holm's correction at ``profiling.batch_alpha`` (5 %). Both are read
off the same batches, profiled exactly as the monitor does (``tasks.drift.profiling.profile_batch``; the
multivariate PCA test is part of the family). Processes: ``normal`` (independent standard normals) and
``mixed`` (``devkit.processes.mixed``: t3, zero-inflated lognormal, Poisson counts, a 5-level categorical with a
1 % level, booleans). Reference 5,000 rows, batches 1,000. The policy column feeds each batch's drift evidence,
uncorrected and controlled, to ``tasks.policy.decide`` (default settings, quality passed, no performance drop).

``statistics``: each statistic's own false-alert rate (statistic above its calibrated threshold; nominal
1 - ``false_alarm_quantile`` = 1 %) and, for the statistics with a p-value, how often that p-value passes Holm's
first step at 10 features (p <= 0.005; nominal 0.5 %), on stationary 1k-row batches of a heavy-tailed (t3),
a zero-inflated, an integer (Poisson) and a long-tailed categorical (100 Zipf levels) feature, at reference
sizes 1k (= the batch), 10k and 50k. The reference is a sample too, so every rate is averaged over several
references, and its error is the between-reference standard error (the batches of one reference share it).

``power``: how often a shifted batch is caught, per statistic, with a 50k reference: a numeric mean shift of
0.05 sd (normal), the long-tailed categorical's top level +2 points (head) and its 30th level +1 point
(0.5 % -> 1.5 %, tail), at 1k and 10k rows. Two rates: "alerts" (above the per-test threshold) and "drifts
alone" (alerts and p <= 0.005, i.e. it would reach ``drifted_features`` as the one drifting feature of ten).

``gate``: the promotion gate (``benchmarks.gate_calibration.promotion_rates``, the gate as shipped) at
prevalences 0.5, 0.1 and 0.02: its false-promotion rate on null pairs (target <= alpha = 0.05) and how often it
promotes at an AUC gain, beside the power it predicts for itself (``tasks.gate.power``, mean over pairs; its
error is the spread of the predictions over sqrt(pairs)). Both for the whole gate (superiority x per-slice
non-inferiority, what a promotion needs) and for the superiority test alone; the share of pairs that fail as
*inconclusive* (underpowered: the gate asks for more labels instead of saying "not better") is printed for the
null and the shifted pairs.

The data-generating processes live in ``devkit/processes.py``, shared with ``tests/statistical``. Error of a
rate r over N independent trials: sqrt(r (1 - r) / N). The machine's load is printed with each table: the
timings are not results.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import polars as pl

from benchmarks.gate_calibration import promotion_rates
from devkit import processes
from tasks.core.settings import PolicySettings, ProfilingSettings
from tasks.data.contract import infer_contract, validate_batch
from tasks.drift.profiling import categorical_drift, numeric_drift, profile_batch
from tasks.drift.reference import CategoricalReference, NumericReference, ReferenceProfile, fit_reference_profile
from tasks.drift.results import BatchProfile
from tasks.policy.decide import Action, PolicyEvidence, PolicyState, decide

REFERENCE_ROWS = 5_000
BATCH_ROWS = 1_000
Draw = Callable[[np.random.Generator, int, int], dict[str, np.ndarray]]


def normal(rng: np.random.Generator, n: int, k: int) -> dict[str, np.ndarray]:
    return {f"x{j}": processes.normal(rng, n) for j in range(k)}


PROCESSES: dict[str, Draw] = {"normal": normal, "mixed": processes.mixed}


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


def _mean(value: float | None, sd: float, n: int) -> str:
    return "-" if value is None else f"{value:.3f} ± {sd / math.sqrt(n):.3f}"


def _load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


def batch_section(quick: bool, batches: int, process: str | None, seed: int) -> None:
    process = process or ("mixed" if quick else "both")
    names = list(PROCESSES) if process == "both" else [process]
    plan = {10: 150, 25: 100, 100: 40} if quick else dict.fromkeys((10, 25, 100), batches)
    level = ProfilingSettings().batch_alpha
    print(f"## batch: reference {REFERENCE_ROWS:,} rows, batches {BATCH_ROWS:,} rows, batch_alpha {level}\n")
    print(
        "| process | features | batches | any alert, uncorrected | 1 - 0.99^(k+1) | any drift, Holm "
        "| policy ALERT+RETRAIN off / on | s | load |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in names:
        for k, count in plan.items():
            off, on, policy_off, policy_on, seconds = rates(name, k, count, seed)
            naive = 1 - 0.99 ** (k + 1)  # k features and the PCA test, if independent
            print(
                f"| {name} | {k} | {count} | {_rate(off, count)} | {naive:.3f} | {_rate(on, count)} | "
                f"{round(policy_off * count)} / {round(policy_on * count)} | {seconds:.0f} | {_load()[5:]} |",
                flush=True,
            )
    print()


# --- per-statistic false alerts and power ---------------------------------------------------------

HOLM_FIRST_STEP = 0.05 / 10  # batch_alpha over 10 features: what one drifting feature of ten must pass
NUMERIC_COLUMNS: dict[str, processes.Column] = {**processes.NUMERIC, "normal": processes.normal}


def fitted(rows: int, chunk: int, rng: np.random.Generator) -> ReferenceProfile:
    """A reference profile of ``rows`` rows of every studied column, calibrated at ``chunk`` rows."""
    data: dict[str, np.ndarray] = {name: draw(rng, rows) for name, draw in NUMERIC_COLUMNS.items()}
    data["long_tailed"] = processes.long_tailed(rng, rows)
    reference = pl.DataFrame({"id": np.arange(rows), **data, "y": (rng.random(rows) < 0.3).astype(np.int8)})
    contract = infer_contract(reference, name="statistics", target="y", entity_id="id", max_categories=1_000)
    return fit_reference_profile(reference, contract, ProfilingSettings(chunk_size=chunk), multivariate=False)


def column_drift(
    profile: ReferenceProfile, name: str, values: np.ndarray | None = None, shares: np.ndarray | None = None
) -> dict[str, tuple[bool, bool | None]]:
    """Per method of one column: (alerts, passes Holm's first step at 10 features or None without a p-value).

    Numeric columns take the batch's values, the categorical one its category shares (a multinomial draw)."""
    ref = profile.column(name)
    if isinstance(ref, NumericReference):
        assert values is not None
        stats = numeric_drift(ref, np.sort(values))
        size = values.size
    else:
        assert isinstance(ref, CategoricalReference) and shares is not None
        size = int(shares.sum())
        present = np.flatnonzero(shares)
        stats = categorical_drift(ref, [f"c{i:03d}" for i in present], [int(shares[i]) for i in present])
    thresholds = profile.thresholds_at(name, size)
    return {
        method: (
            statistic > thresholds[method],
            None if p is None else bool(statistic > thresholds[method] and p <= HOLM_FIRST_STEP),
        )
        for method, (statistic, p) in stats.items()
    }


class Tally:
    """Rates per (column, method) over references x batches, with the between-reference standard error."""

    def __init__(self) -> None:
        self.per_reference: dict[tuple[str, str], list[tuple[float, float | None]]] = {}

    def add(self, results: list[dict[str, tuple[bool, bool | None]]], column: str) -> None:
        for method in results[0]:
            alerts = float(np.mean([r[method][0] for r in results]))
            passes = [r[method][1] for r in results]
            holm = None if passes[0] is None else float(np.mean([bool(p) for p in passes]))
            self.per_reference.setdefault((column, method), []).append((alerts, holm))

    def cell(self, key: tuple[str, str], which: int, trials: int) -> str:
        values = [v[which] for v in self.per_reference[key]]
        if values[0] is None:
            return "-"
        rates_ = np.array(values, dtype=np.float64)
        mean = float(rates_.mean())
        binomial = math.sqrt(max(mean * (1 - mean), 1e-12) / trials)
        between = float(rates_.std(ddof=1) / math.sqrt(rates_.size)) if rates_.size > 1 else 0.0
        return f"{mean:.3f} ± {max(binomial, between):.3f}"


def statistics_section(quick: bool, seed: int) -> None:
    chunk = 1_000
    plan = (
        {1_000: (15, 100), 10_000: (6, 100), 50_000: (4, 100)}
        if quick
        else {1_000: (40, 250), 10_000: (20, 250), 50_000: (10, 250)}
    )
    print(f"## statistics: stationary {chunk:,}-row batches; nominal: alerts 0.010, p <= {HOLM_FIRST_STEP} 0.005\n")
    print("| column | method | reference rows | references x batches | alerts | p <= 0.005 and alerts | load |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for rows, (references, batches) in plan.items():
        rng = np.random.default_rng([seed, rows])
        tally = Tally()
        for _ in range(references):
            profile = fitted(rows, chunk, rng)
            for name in processes.NUMERIC:
                tally.add(
                    [column_drift(profile, name, values=processes.NUMERIC[name](rng, chunk)) for _ in range(batches)],
                    name,
                )
            shares = processes.long_tailed_shares()
            tally.add(
                [column_drift(profile, "long_tailed", shares=rng.multinomial(chunk, shares)) for _ in range(batches)],
                "long_tailed",
            )
        trials = references * batches
        for column, method in tally.per_reference:
            alerts, holm = (tally.cell((column, method), which, trials) for which in (0, 1))
            print(f"| {column} | {method} | {rows:,} | {references} x {batches} | {alerts} | {holm} | {_load()[5:]} |")
    print()


def shifted_batch(case: str, profile: ReferenceProfile, rng: np.random.Generator, rows: int) -> dict[str, Any]:
    """Per-method results of one shifted batch of the power section."""
    if case == "normal mean +0.05 sd":
        return column_drift(profile, "normal", values=processes.normal(rng, rows, 0.05))
    shares = processes.head_shift(0.02) if case == "long-tailed head +2 pt" else processes.tail_shift(0.01)
    return column_drift(profile, "long_tailed", shares=rng.multinomial(rows, shares))


POWER_CASES = ("normal mean +0.05 sd", "long-tailed head +2 pt", "long-tailed tail +1 pt")


def power_section(quick: bool, seed: int) -> None:
    reference_rows = 50_000
    batches = 200 if quick else 1_000
    print(f"## power: reference {reference_rows:,} rows, {batches} shifted batches per row\n")
    print("| shift | batch rows | method | alerts | drifts alone (alerts, p <= 0.005) | load |")
    print("|---|---:|---|---:|---:|---:|")
    for chunk in (1_000, 10_000):
        rng = np.random.default_rng([seed, chunk])
        profile = fitted(reference_rows, chunk, rng)
        for case in POWER_CASES:
            results = [shifted_batch(case, profile, rng, chunk) for _ in range(batches)]
            for method in results[0]:
                alerts = _rate(float(np.mean([r[method][0] for r in results])), batches)
                alone = "-"
                if results[0][method][1] is not None:
                    alone = _rate(float(np.mean([bool(r[method][1]) for r in results])), batches)
                print(f"| {case} | {chunk:,} | {method} | {alerts} | {alone} | {_load()[5:]} |", flush=True)
    print()


def gate_section(quick: bool, seed: int) -> None:
    rows = 10_000 if quick else 50_000
    null_pairs, pairs = (150, 80) if quick else (1_000, 250)
    effect = 0.02 if quick else 0.01
    alpha = 0.05
    print(
        f"## gate: {rows:,} holdout rows per pair, champion AUC 0.8, score correlation 0.5, one 4-valued slice "
        f"column, alpha {alpha}, AUC gain {effect} (= gate.target_effect)\n"
    )
    print(
        "| prevalence | null pairs | false promotions | inconclusive (null) | pairs | promotes (whole gate) | "
        "predicted (whole gate) | superiority passes | predicted (superiority) | inconclusive | load |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for index, prevalence in enumerate((0.5, 0.1, 0.02)):
        common = {"rows": rows, "prevalence": prevalence, "alpha": alpha}
        null = promotion_rates(pairs=null_pairs, effect=0.0, seed=seed + 10 * index, **common)
        shifted = promotion_rates(pairs=pairs, effect=effect, seed=seed + 10 * index + 1, **common)
        print(
            f"| {prevalence} | {null_pairs} | {_rate(null.driftgate, null_pairs)} | "
            f"{_rate(null.inconclusive, null_pairs)} | {pairs} | {_rate(shifted.driftgate, pairs)} | "
            f"{_mean(shifted.predicted, shifted.predicted_sd, pairs)} | {_rate(shifted.superiority, pairs)} | "
            f"{_mean(shifted.predicted_superiority, shifted.predicted_superiority_sd, pairs)} | "
            f"{_rate(shifted.inconclusive, pairs)} | {_load()[5:]} |",
            flush=True,
        )
    print()


SECTIONS = ("batch", "statistics", "power", "gate")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="every section reduced, < 2 minutes in all")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="sections to run")
    parser.add_argument("--batches", type=int, default=2_000, help="stationary batches per row of 'batch' (full mode)")
    parser.add_argument("--process", choices=[*PROCESSES, "both"], default=None, help="process of 'batch'")
    parser.add_argument("--seed", type=int, default=20_261_205)
    args = parser.parse_args()
    started = time.perf_counter()
    print(f"machine: {os.cpu_count()} cores, {_load()} at start, seed {args.seed}{' (quick)' if args.quick else ''}\n")
    if "batch" in args.only:
        batch_section(args.quick, args.batches, args.process, args.seed)
    if "statistics" in args.only:
        statistics_section(args.quick, args.seed)
    if "power" in args.only:
        power_section(args.quick, args.seed)
    if "gate" in args.only:
        gate_section(args.quick, args.seed)
    print(f"total {time.perf_counter() - started:.0f} s, {_load()} at the end")


if __name__ == "__main__":
    main()
