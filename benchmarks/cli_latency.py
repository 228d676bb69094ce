"""Wall time of CLI commands, each in a fresh process: direct mode vs flow mode (issue 13).

Cases (median of --repeats runs each, after one untimed warm-up run per mode):
  monitor, direct   `driftgate monitor BATCH --no-retrain --no-flow` on one --rows batch, with and without scores
  monitor, flow     the same with --flow and no PREFECT_API_URL: a temporary Prefect server per command
  history           `driftgate history` (no Prefect either way)
  bad input         `driftgate monitor` of a batch that lacks a contract column: one line, exit code 2

Every monitor run starts from a fresh copy of one home (contract + champion, bootstrapped once, untimed), so the
runs are independent. The load average is printed with the results: on a shared machine it moves the figures.

    uv run python benchmarks/cli_latency.py                   # 100k rows, 3 runs per case
    uv run python benchmarks/cli_latency.py --rows 20000 --repeats 5 --no-flow-mode
    uv run python benchmarks/cli_latency.py --scores with --repeats 1 --no-warmup   # a quick look
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGETS = {"monitor": 3.0, "history": 1.0, "bad input": 1.5}


def driftgate(*args: str, env: dict[str, str], expect: int = 0) -> float:
    """Seconds one fresh `driftgate` process takes; fails loudly on an unexpected exit code."""
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "driftgate.cli", *args], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if out.returncode != expect:
        raise SystemExit(f"driftgate {' '.join(args)} exited {out.returncode}:\n{out.stdout}\n{out.stderr}")
    return seconds


def prepare(work: Path, rows: int, env: dict[str, str]) -> tuple[Path, Path, Path, Path]:
    """A bootstrapped home, a scored and an unscored batch of ``rows`` rows, and a batch missing a column."""
    from tasks.core.settings import load_settings
    from tasks.data.contract import infer_contract, validate_batch
    from tasks.data.files import ScenarioGenerator, load_car_loan
    from tasks.resources.workspace import open_home
    from tasks.training.scoring import score_frame

    reference, analysis = load_car_loan()
    home = work / "template"
    infer_contract(
        reference, name="car-loan", target="repaid", entity_id="id", timestamp="timestamp", slices=["salary_range"]
    ).save(home / "contract.yaml")
    reference.write_parquet(work / "reference.parquet")
    (home / "driftgate.yaml").write_text("training:\n  n_trials: 2\n  num_boost_round: 60\n")
    common = ["--home", str(home), "--config", str(home / "driftgate.yaml")]
    seconds = driftgate("bootstrap", str(work / "reference.parquet"), "--no-flow", *common, env=env)
    print(f"bootstrap the champion (untimed): {seconds:.1f} s")
    batch = ScenarioGenerator(analysis, seed=3).batch(rows).drop("repaid")
    unscored = work / "batch.parquet"
    batch.write_parquet(unscored)
    with open_home(load_settings(home / "driftgate.yaml", home=str(home))) as ws:
        version = ws.registry.resolve(ws.model, "production")
        assert version is not None
        contract = ws.contract
        frame = validate_batch(batch, contract, source="benchmark")
        scores = score_frame(frame, ws.model_text(version), contract, version=version.version, threshold=0.5)
    scored_path = work / "scored.parquet"
    batch.with_columns(scores.get_column(contract.probability), scores.get_column(contract.prediction)).write_parquet(
        scored_path
    )
    bad = work / "bad.parquet"
    batch.drop("car_value").write_parquet(bad)
    return home, unscored, scored_path, bad


def fresh_home(template: Path, target: Path) -> list[str]:
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(template, target)
    config = target / "driftgate.yaml"
    return ["--home", str(target), "--config", str(config)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-flow-mode", dest="flow_mode", action="store_false", help="skip the flow-mode runs")
    parser.add_argument("--scores", choices=["with", "without", "both"], default="both", help="which batches")
    parser.add_argument("--no-warmup", dest="warmup", action="store_false", help="time every run, the first too")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="driftgate-cli-latency-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(PREFECT_HOME=str(work / "prefect-home"), WANDB_MODE="offline", PYTHONPATH=str(ROOT))
    try:
        template, unscored, scored, bad = prepare(work, args.rows, env)
        cases: list[tuple[str, str, list[str], int]] = []
        batches = {"with": [("with scores", scored)], "without": [("without scores", unscored)]}
        chosen = batches["with"] + batches["without"] if args.scores == "both" else batches[args.scores]
        for label, batch in chosen:
            cases.append((f"monitor {label}", "direct", ["monitor", str(batch), "--no-retrain", "--no-flow"], 0))
            if args.flow_mode:
                cases.append((f"monitor {label}", "flow", ["monitor", str(batch), "--no-retrain", "--flow"], 0))
        cases.append(("history", "direct", ["history"], 0))
        cases.append(("bad input", "direct", ["monitor", str(bad)], 2))
        results: dict[tuple[str, str], list[float]] = {}
        warm: set[str] = set() if args.warmup else {"direct", "flow"}
        for name, mode, command, expect in cases:
            times = []
            # The first run of each mode warms caches (numba kernels, the files, Prefect's database) untimed.
            for _ in range(args.repeats + (mode not in warm)):
                common = fresh_home(template, work / "home")
                seconds = driftgate(*command, *common, env=env, expect=expect)
                if mode in warm:
                    times.append(seconds)
                warm.add(mode)
            results[(name, mode)] = times
            print(f"  {name:<24} {mode:<7} " + "  ".join(f"{t:6.2f}" for t in times), flush=True)
        load = os.getloadavg()
        print(
            f"\nfresh process per command, median of {args.repeats}, {args.rows:,} rows per batch; "
            f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores"
        )
        print(f"{'case':<26}{'mode':<8}{'median s':>10}{'vs flow':>9}{'target s':>10}")
        for (name, mode), times in results.items():
            median = statistics.median(times)
            flow = results.get((name, "flow"))
            ratio = f"{median / statistics.median(flow):.2f}" if flow else "–"
            target = next((t for key, t in TARGETS.items() if name.startswith(key)), None)
            print(f"{name:<26}{mode:<8}{median:>10.2f}{ratio:>9}{'' if target is None else f'{target:.1f}':>10}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
