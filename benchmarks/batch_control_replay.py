"""What the batch-level drift control changes in the loop's decisions: the demo's days (and other scenarios)
monitored twice, once with per-feature alerts uncorrected and once with Holm's control, then replayed.

    uv run python benchmarks/batch_control_replay.py                          # demo + wide, delay 1 (~5 min)
    uv run python benchmarks/batch_control_replay.py --scenario demo --stationary 20 --changed 6

Each scenario is monitored in shadow mode (nothing retrains) in direct mode, its labels ``--delay`` batches
late, with ``profiling.batch_correction`` set to ``none`` and then to ``holm`` (through the environment, which
beats the scenario's settings file). The recorded decisions are replayed against the scenario's truth:

- drift on clean batches: judgements of truly stationary batches whose drift rule failed (what an operator
  sees as "drift" on a quiet day);
- ALERT / RETRAIN on clean batches under the default policy (drift alone only alerts);
- RETRAIN on clean batches under ``retrain_on_drift_alone=true`` (the same recorded evidence decided again):
  where a drift false alarm costs a retrain, this column is what the control removes;
- degraded stretches caught (with a RETRAIN) and their delay: the control must not lose them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CORRECTIONS = ("none", "holm")
ENV = "DRIFTGATE_PROFILING__BATCH_CORRECTION"


def run_cell(scenario: str, correction: str, root: Path, args: argparse.Namespace) -> dict[str, Any]:
    from flows import bodies, ops_bodies

    home = root / f"{scenario}-{correction}"
    before = os.environ.get(ENV)
    os.environ[ENV] = correction
    started = time.perf_counter()
    try:
        result = ops_bodies.replay_scenario_body(
            bodies.Runner(),
            home=str(home),
            scenario=scenario,
            seed=args.seed,
            stationary=args.stationary,
            drifted=args.changed,
            rows_per_batch=args.rows,
            n_trials=3,
            label_delay=args.delay,
            overrides=["retrain_on_drift_alone=true"],
        )
    finally:
        if before is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = before
    seconds = time.perf_counter() - started
    current, candidate = result["current"], result["candidate"]
    clean = [s for s in current["steps"] if s["truly_degraded"] is False]
    episodes = current["episodes"]
    return {
        "scenario": scenario,
        "correction": correction,
        "clean_judgements": len(clean),
        "drift_on_clean": sum(1 for s in clean if "drift" in s["failing_rules"]),
        "alert_on_clean": current["score"]["false_alerts"],
        "retrain_on_clean": current["score"]["false_alarms"],
        "retrain_on_clean_drift_alone": candidate["score"]["false_alarms"],
        "episodes": len(episodes),
        "caught": sum(1 for e in episodes if e["delay"] is not None),
        "delays": [e["delay"] for e in episodes],
        "seconds": round(seconds, 1),
    }


def table(cells: list[dict[str, Any]]) -> str:
    lines = [
        "| scenario | batch control | clean judgements | drift on clean | ALERT on clean | RETRAIN on clean | "
        "RETRAIN on clean (retrain_on_drift_alone) | degraded caught | delay (batches) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for c in cells:
        caught = f"{c['caught']}/{c['episodes']}" if c["episodes"] else "–"
        delays = ", ".join("missed" if d is None else str(d) for d in c["delays"]) or "–"
        lines.append(
            f"| {c['scenario']} | {c['correction']} | {c['clean_judgements']} | {c['drift_on_clean']} | "
            f"{c['alert_on_clean']} | {c['retrain_on_clean']} | {c['retrain_on_clean_drift_alone']} | {caught} | "
            f"{delays} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", action="append", help="demo, wide, concept, covariate, benign, noise, ...")
    parser.add_argument("--delay", type=int, default=1, help="label delay in batches")
    parser.add_argument("--stationary", type=int, default=20, help="stationary batches before the change")
    parser.add_argument("--changed", type=int, default=6, help="changed batches after it")
    parser.add_argument("--rows", type=int, default=4000, help="rows per batch")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, default=None, help="write the cells as JSON here")
    args = parser.parse_args()
    os.environ.setdefault("DRIFTGATE_TRACKING_MODE", "disabled")
    os.environ.setdefault("DRIFTGATE_EMIT_EVENTS", "false")
    cells = []
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="driftgate-batch-control-") as tmp:
        for scenario in args.scenario or ["demo", "wide"]:
            for correction in CORRECTIONS:
                cell = run_cell(scenario, correction, Path(tmp), args)
                print(f"{scenario} / {correction}: {cell['seconds']} s", file=sys.stderr, flush=True)
                cells.append(cell)
    print(
        f"label delay {args.delay}; {args.stationary} stationary + {args.changed} changed batches of {args.rows} rows"
    )
    print(f"load average at start {load[0]:.2f}, at end {os.getloadavg()[0]:.2f}")
    print(table(cells))
    if args.json:
        args.json.write_text(json.dumps(cells, indent=2))


if __name__ == "__main__":
    main()
