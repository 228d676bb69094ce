"""The loop's decisions under delayed labels, on scenarios with known truth (tasks/data/scenarios.py).

Each scenario is monitored in shadow mode (nothing retrains) with its labels arriving 0, 1 and 2 batches late
(`driftgate replay --scenario NAME --label-delay K`), and the recorded decisions are scored against the truth:

- caught: degraded stretches that got a RETRAIN, and the delay in monitored batches from the stretch's onset
  (the target: within label delay + 1);
- false RETRAINs on stationary and benign batches (the target: none over >= 20 such batches per scenario);
- BLOCKs on broken batches;
- gate: at label delay 1, the first RETRAIN of each scenario is acted on once (retrain, gate, never promote) and
  the gate's verdict is set beside the truth of whether retraining can help (noise, covariate: it cannot).

    uv run python benchmarks/decisions.py                      # every scenario at delays 0, 1, 2 (~30-40 min)
    uv run python benchmarks/decisions.py --scenario concept --delay 1 --stationary 8 --changed 4   # one cell

The table is printed at the end (and written as JSON with --json FILE). Run it on a quiet machine: every
batch runs the whole monitor (scoring, profiling, CBPE, policy, audit store).
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

SCENARIOS = ("concept", "covariate", "benign", "broken", "noise", "employment")


def run_cell(name: str, delay: int, root: Path, args: argparse.Namespace) -> dict[str, Any]:
    from flows.replay import replay_scenario_flow
    from tasks.core.settings import load_settings
    from tasks.resources.workspace import open_workspace

    home = root / f"{name}-delay{delay}"
    started = time.perf_counter()
    result = replay_scenario_flow(
        home=str(home),
        scenario=name,
        seed=args.seed,
        stationary=args.stationary,
        drifted=args.changed,
        rows_per_batch=args.rows,
        n_trials=args.trials,
        label_delay=delay,
    )
    seconds = time.perf_counter() - started
    plan = _plan(home)
    truth = {b["batch_id"]: b for b in plan["batches"]}
    steps = result["current"]["steps"]
    clean = {b for b, t in truth.items() if not t["truly_degraded"] and t["expected"] != "BLOCK"}
    broken = {b for b, t in truth.items() if t["expected"] == "BLOCK"}
    ws = open_workspace(load_settings(Path(result["config"])))
    try:
        recorded = ws.store.decisions(ws.model, kind="policy")
    finally:
        ws.close()
    blocked = {r["batch_id"] for r in recorded if r["outcome"] == "BLOCK"}
    retrained = {s["batch_id"] for s in steps if s["action"] == "RETRAIN"}
    episodes = result["current"]["episodes"]
    return {
        "scenario": name,
        "delay": delay,
        "batches": len(truth),
        "clean_batches": len(clean),
        "degraded_batches": sum(1 for t in truth.values() if t["truly_degraded"]),
        "episodes": len(episodes),
        "caught": sum(1 for e in episodes if e["delay"] is not None),
        "delays": [e["delay"] for e in episodes],
        "false_retrains": len(retrained & clean),
        "broken_batches": len(broken),
        "blocked_broken": len(blocked & broken),
        "retrain_on_broken": len(retrained & broken),
        "seconds": round(seconds, 1),
        "home": str(home),
        "config": result["config"],
    }


def _plan(home: Path) -> dict[str, Any]:
    import yaml

    return dict(yaml.safe_load((home / "scenario.yaml").read_text()))


def gate_verdict(cell: dict[str, Any]) -> dict[str, Any] | None:
    """Act once on the cell's first RETRAIN (never promoting): does the gate agree that retraining helps?"""
    from flows.retrain import retrain_flow
    from tasks.core.settings import load_settings
    from tasks.resources.workspace import open_workspace

    ws = open_workspace(load_settings(Path(cell["config"])))
    try:
        first = next((r for r in ws.store.decisions(ws.model, kind="policy") if r["outcome"] == "RETRAIN"), None)
    finally:
        ws.close()
    if first is None:
        return None
    helps = {b["batch_id"]: b["retrain_helps"] for b in _plan(Path(cell["home"]))["batches"]}
    payload = first["payload"]
    outcome = retrain_flow(
        window_start=payload.get("window_start"),
        window_end=payload.get("window_end"),
        idempotency_key=payload.get("retrain_key"),
        reason=f"benchmark: first RETRAIN of {cell['scenario']}",
        auto_promote=False,
        config=cell["config"],
    )
    return {
        "batch": first["batch_id"],
        "retrain_helps": helps.get(first["batch_id"]),
        "gate_passed": outcome["gate_passed"],
        "candidate": outcome.get("candidate_metric"),
        "champion": outcome.get("champion_metric"),
        "first_reason": outcome["reasons"][0] if outcome["reasons"] else "",
    }


def table(cells: list[dict[str, Any]]) -> str:
    lines = [
        "| scenario | label delay | batches (clean) | degraded caught | delay (batches) | target | false RETRAIN "
        "on clean | broken BLOCKed | gate (retrain helps?) |",
        "|---|---:|---:|---:|---|---:|---:|---:|---|",
    ]
    for c in cells:
        caught = f"{c['caught']}/{c['episodes']}" if c["episodes"] else "–"
        delays = ", ".join("missed" if d is None else str(d) for d in c["delays"]) or "–"
        target = f"≤ {c['delay'] + 1}" if c["episodes"] else "–"
        broken = f"{c['blocked_broken']}/{c['broken_batches']}" if c["broken_batches"] else "–"
        gate = c.get("gate")
        verdict = (
            "–"
            if not gate
            else f"{'passed' if gate['gate_passed'] else 'rejected'} ({'yes' if gate['retrain_helps'] else 'no'})"
        )
        lines.append(
            f"| {c['scenario']} | {c['delay']} | {c['batches']} ({c['clean_batches']}) | {caught} | {delays} | "
            f"{target} | {c['false_retrains']} | {broken} | {verdict} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, help="scenario(s); default: all")
    parser.add_argument("--delay", action="append", type=int, help="label delay(s) in batches; default 0, 1, 2")
    parser.add_argument("--stationary", type=int, default=20, help="stationary batches before the change")
    parser.add_argument("--changed", type=int, default=6, help="changed batches after it")
    parser.add_argument("--rows", type=int, default=4000, help="rows per batch")
    parser.add_argument("--trials", type=int, default=3, help="Optuna trials of the gate's retrain")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-gate", action="store_true", help="skip the gate runs")
    parser.add_argument("--json", type=Path, default=None, help="write the cells as JSON here")
    parser.add_argument("--keep", type=Path, default=None, help="keep the scenario homes under this folder")
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from tasks.core.telemetry import disable_telemetry

    disable_telemetry()
    scenarios = args.scenario or list(SCENARIOS)
    delays = args.delay or [0, 1, 2]
    root = args.keep or Path(tempfile.mkdtemp(prefix="driftgate-decisions-"))
    cells = []
    for name in scenarios:
        for delay in delays:
            cell = run_cell(name, delay, root, args)
            if delay == (1 if 1 in delays else delays[0]) and not args.no_gate:
                cell["gate"] = gate_verdict(cell)
            cells.append(cell)
            print(f"{name} delay {delay}: {json.dumps({k: v for k, v in cell.items() if k not in ('home', 'config')})}")
            sys.stdout.flush()
    print()
    print(f"load average at the end: {os.getloadavg()[0]:.2f}; scenario homes under {root}")
    print(table(cells))
    if args.json:
        args.json.write_text(json.dumps(cells, indent=2, default=str))


if __name__ == "__main__":
    main()
