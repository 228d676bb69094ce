"""Monitor of one batch in a fresh process, stage by stage: the old path (NannyML CBPE fitted per run, LightGBM
scoring) against the fast path (the fitted CBPE cached per production version and applied in numpy, the text
model walked by a numba kernel).

    uv run python benchmarks/monitor_inprocess.py                       # 100k rows, 3 runs per case
    uv run python benchmarks/monitor_inprocess.py --rows 100000 --runs 5 --workdir /tmp/monitor-bench

Setup (not timed): the demo's home (car-loan contract, reference and settings; tasks/stages/demo.py) and the
bootstrap's stage functions (read, split, tune + train, gate, register; the same calls as flows/bootstrap.py,
without Prefect's engine), then promotion of v0; one batch of --rows rows drawn like the reference, saved
unscored and scored by production. One warm-up run builds the estimator cache and loads numba's kernels.

Each timed run copies that home, starts a fresh interpreter and runs the monitor's stage functions in order:
prepare_context, load_batch, profile, estimate, judge, record, announce, report (tasks/stages/monitoring.py,
what flows/monitor.py calls), timing each with what it imports on first use. "old" swaps in the previous
implementations directly: ``fit_estimator`` (NannyML) for ``production_estimator`` and LightGBM's
``predict_proba`` for the text evaluator. Medians of --runs runs; the load average is printed beside them,
since the machine is shared. Also timed: ``import prefect``, ``import nannyml``, ``import lightgbm`` alone.

PYTHONDONTWRITEBYTECODE=1 (set in this environment) makes every fresh process compile what it imports:
import figures include that cost.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
STAGES = ("imports", "prepare_context", "load_batch", "profile", "estimate", "judge", "record", "announce", "report")
HEAVY = ("nannyml", "lightgbm", "sklearn", "pandas", "prefect", "matplotlib", "numba", "scipy")


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


# --- child: one monitor run --------------------------------------------------------------------------------


def child(mode: str, config: str, batch: str) -> None:
    times: dict[str, float] = {}
    start = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal start
        now = time.perf_counter()
        times[name] = now - start
        start = now

    from tasks.core.settings import load_settings
    from tasks.resources.workspace import open_home
    from tasks.stages import monitor_caches, monitoring

    if mode == "old":
        import tasks.training.scoring as scoring

        def nannyml_estimator(ws: Any, version: Any, reference: Any) -> Any:
            from tasks.performance.estimation import fit_estimator

            return fit_estimator(
                reference,
                ws.contract,
                chunk_size=monitor_caches.estimator_chunk_size(ws, reference.height),
                threshold=ws.settings.gate.decision_threshold,
            )

        def lightgbm_scores(text: str, frame: Any, contract: Any, *, num_threads: int = 1) -> Any:
            from tasks.training.train import predict_proba

            return predict_proba(text, frame, contract, num_threads=num_threads)

        monitoring.production_estimator = nannyml_estimator  # type: ignore[assignment]
        scoring.model_probabilities = lightgbm_scores  # type: ignore[assignment]
    # Parts of stages, timed by wrapping what the stage looks up at call time.
    import tasks.drift.reference as reference_module
    import tasks.report.performance_plots as plots_module

    def timed(name: str, fn: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                times[name] = times.get(name, 0.0) + time.perf_counter() - began

        return wrapper

    reference_module.fit_reference_profile = timed("  reference profile", reference_module.fit_reference_profile)
    monitoring.production_estimator = timed("  estimator", monitoring.production_estimator)  # type: ignore[assignment]
    plots_module.write_performance_chart = timed("  performance chart", plots_module.write_performance_chart)
    lap("imports")
    total = time.perf_counter()
    with open_home(load_settings(config)) as ws:
        ctx = monitoring.prepare_context(ws)
        lap("prepare_context")
        loaded = monitoring.load_batch(ws, ctx, batch)
        lap("load_batch")
        batch_profile = monitoring.profile(ws, ctx, loaded)
        lap("profile")
        est, realized = monitoring.estimate(ws, ctx, loaded)
        lap("estimate")
        decision = monitoring.judge(ws, loaded, batch_profile, est, realized)
        lap("judge")
        key = monitoring.record(ws, loaded, batch_profile, est, realized, decision)
        lap("record")
        monitoring.announce(ws, loaded.batch_id, decision, key)
        lap("announce")
        monitoring.report(ws, loaded, batch_profile, est, realized, decision, key)
        lap("report")
    times["monitor"] = time.perf_counter() - total
    times["process"] = times["monitor"] + times["imports"]
    print(
        json.dumps(
            {
                "times": times,
                "estimate": est.value,
                "scored_by": loaded.scored_by,
                "modules": sorted(m for m in HEAVY if m in sys.modules),
            }
        )
    )


# --- parent: setup, runs, table ----------------------------------------------------------------------------


def setup(work: Path, rows: int) -> tuple[Path, Path, Path, Path]:
    """The bootstrapped demo home, its config, and the unscored and scored batch files."""
    import polars as pl

    from flows import steps
    from tasks.core.settings import load_settings
    from tasks.resources.workspace import open_home
    from tasks.stages import demo, monitoring

    home = work / "home"
    plan = demo.prepare(home, rows_per_batch=rows, n_trials=2)
    with open_home(load_settings(plan.config)) as ws:
        raw, frame = steps.read_reference.fn(ws, str(plan.reference))
        steps.keep_reference.fn(ws, raw, source=str(plan.reference))
        window = steps.split_holdout.fn(ws, frame, with_reference=False)
        trained = steps.train.fn(ws, window, study_name=f"{ws.model}-bootstrap")
        judgement = steps.evaluate.fn(ws, trained, window, None)
        from dataclasses import replace

        from flows.bootstrap import as_read

        carried = replace(judgement, holdout_scored=as_read(judgement.holdout_scored, raw, ws.contract))
        version = steps.register.fn(ws, trained, carried, reason="benchmark bootstrap", actor="benchmark")
        ws.registry.promote(ws.model, version.version, actor="benchmark", reason="benchmark", expected_production=None)
        unscored = work / "inputs" / f"batch-{rows}.parquet"
        unscored.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(plan.batches[0].batch, unscored)
        ctx = monitoring.prepare_context(ws)  # builds the estimator cache, as the first monitor of v0 would
        scored_frame = monitoring.load_batch(ws, ctx, str(unscored)).frame.drop("model_version")
    scored = work / "inputs" / f"batch-{rows}-scored.parquet"
    scored_frame.write_parquet(scored)
    assert pl.read_parquet(unscored).height == rows
    return home, plan.config, unscored, scored


def run_child(mode: str, home: Path, config: Path, batch: Path, scratch: Path, events: bool = True) -> dict[str, Any]:
    copy = scratch / "home"
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(home, copy, ignore=shutil.ignore_patterns("inputs"))
    settings = config.read_text().replace(str(home), str(copy))
    if not events:  # without a Prefect API, emitting starts a temporary server: time the rest without it
        settings += "\nemit_events: false\n"
    copied_config = copy / "driftgate.yaml"
    copied_config.write_text(settings)
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(copied_config), str(batch)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    if out.returncode != 0:
        raise SystemExit(f"child {mode} {batch.name} failed:\n{out.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def import_time(module: str) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None, help="kept (reused when it holds a setup)")
    parser.add_argument("--no-events", action="store_true", help="emit_events: false in every timed run")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "CONFIG", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="monitor-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    marker = work / "setup.json"
    if marker.is_file():
        home, config, unscored, scored = (Path(p) for p in json.loads(marker.read_text()))
    else:
        print(f"setup in {work} ({load()})", flush=True)
        started = time.perf_counter()
        home, config, unscored, scored = setup(work, args.rows)
        marker.write_text(json.dumps([str(home), str(config), str(unscored), str(scored)]))
        print(f"setup took {time.perf_counter() - started:.0f} s", flush=True)
    scratch = work / "scratch"
    scratch.mkdir(exist_ok=True)
    run_child(
        "new", home, config, unscored, scratch, events=not args.no_events
    )  # warm-up: numba's on-disk kernels, OS file cache
    cases = [
        (mode, name, path) for name, path in (("unscored", unscored), ("scored", scored)) for mode in ("old", "new")
    ]
    results: dict[tuple[str, str], list[dict[str, Any]]] = {(m, n): [] for m, n, _ in cases}
    loads = []
    for _ in range(args.runs):  # interleaved, so a burst of load on the machine hits every case alike
        for mode, name, path in cases:
            results[(mode, name)].append(run_child(mode, home, config, path, scratch, events=not args.no_events))
            loads.append(os.getloadavg()[0])
    events = "off" if args.no_events else "as configured"
    print(
        f"\nmonitor of one {args.rows:,}-row batch, fresh process per run, median of {args.runs} runs, events {events}"
    )
    print(f"{load()} (1-min load during runs: min {min(loads):.2f}, max {max(loads):.2f}); 2 cores")
    header = (
        f"{'stage':<16}"
        + "".join(f"{m + '/' + n:>16}" for m, n, _ in cases)
        + f"{'ratio unscored':>16}{'ratio scored':>14}"
    )
    print(header)
    medians = {
        key: {stage: statistics.median(r["times"][stage] for r in runs) for stage in (*STAGES, "monitor", "process")}
        for key, runs in results.items()
    }
    parts = {"prepare_context": ("  reference profile", "  estimator"), "record": ("  performance chart",)}
    for stage in (*STAGES, "monitor", "process"):
        row = f"{stage:<16}" + "".join(f"{medians[(m, n)][stage]:>15.2f}s" for m, n, _ in cases)
        for name in ("unscored", "scored"):
            new = medians[("new", name)][stage]
            row += f"{medians[('old', name)][stage] / new:>15.1f}x" if new > 0.005 else f"{'-':>15}"
        print(row)
        for part in parts.get(stage, ()):  # where the stage's time goes
            part_medians = {key: statistics.median(r["times"][part] for r in runs) for key, runs in results.items()}
            print(f"{part:<16}" + "".join(f"{part_medians[(m, n)]:>15.2f}s" for m, n, _ in cases))
    for (mode, name), runs in results.items():
        est = {round(r["estimate"], 12) for r in runs}
        print(f"{mode}/{name}: estimate {sorted(est)}, scored by {runs[0]['scored_by']}, modules {runs[0]['modules']}")
    old_est = results[("old", "unscored")][0]["estimate"]
    new_est = results[("new", "unscored")][0]["estimate"]
    print(f"|old - new| estimate on the unscored batch: {abs(old_est - new_est):.2e}")
    print("\nimports alone (fresh process, median of 3):")
    for module in ("prefect", "nannyml", "lightgbm", "matplotlib.pyplot", "numba", "polars"):
        print(f"  import {module:<18} {statistics.median(import_time(module) for _ in range(3)):.2f} s   ({load()})")


if __name__ == "__main__":
    main()
