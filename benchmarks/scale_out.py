"""Scale-out on this machine: monitoring many batch files and tuning one retrain, with 1 worker vs 2.

    uv run python benchmarks/scale_out.py                       # 12 batches of 200,000 rows, 16 trials (~8 min)
    uv run python benchmarks/scale_out.py --batches 4 --rows 5000 --trials 4      # a quick look

Monitoring: a champion home (car-loan, bootstrapped once), then ``driftgate-monitor`` as a Prefect flow on the
same unscored batch files, (1) on Prefect's thread pool with one batch in flight, (2) on prefect-dask's
``DaskTaskRunner`` on a local cluster of 2 single-threaded worker processes with 2 batches in flight (what
``DRIFTGATE_DASK_ADDRESS=tcp://...``, ``DRIFTGATE_MONITOR_CONCURRENCY=2`` give). The cluster is started once and
warmed up on two batches, as long-lived ``dask worker`` processes would be (its start is reported, not timed).
Each run starts from a fresh copy of the home. Batches per minute count the whole flow. The part that cannot
spread, judging and recording each batch in order, is timed separately in direct mode: it bounds the speed-up
on N machines.

Tuning: one Optuna study of ``--trials`` trials on a synthetic window, (1) one process, (2) two processes sharing
the study (a journal file here; PostgreSQL through ``optuna_storage``/``store_url`` across machines). The final
refit on the best parameters is serial and timed apart.

Run it on a quiet machine: with 2 cores, 2 workers can at best halve the wall time.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


# --- monitoring ------------------------------------------------------------------------------------------------
def champion_home(root: Path) -> Path:
    from flows.bodies import Runner, bootstrap_body
    from tasks.data.contract import infer_contract
    from tasks.data.files import load_car_loan

    home = root / "champion"
    home.mkdir()
    reference, _ = load_car_loan()
    infer_contract(
        reference, name="car-loan", target="repaid", entity_id="id", timestamp="timestamp", slices=["salary_range"]
    ).save(home / "contract.yaml")
    reference.head(20_000).write_parquet(home / "reference.parquet")
    (home / "driftgate.yaml").write_text(
        f"home: {home}\ntracking_mode: disabled\ntraining:\n  n_trials: 2\n  num_boost_round: 60\n"
    )
    bootstrap_body(
        Runner(), reference=str(home / "reference.parquet"), home=str(home), config=str(home / "driftgate.yaml")
    )
    return home


def batch_files(root: Path, batches: int, rows: int) -> list[str]:
    import numpy as np
    import polars as pl

    from tasks.data.files import load_car_loan

    _, analysis = load_car_loan()
    pool = analysis.head(25_000).drop("repaid")
    rng = np.random.default_rng(11)
    folder = root / "inbox"
    folder.mkdir()
    paths = []
    for day in range(batches):
        first = 10_000_000 + day * rows  # fresh entity ids
        frame = pool[rng.integers(0, pool.height, rows)].with_columns(pl.Series("id", np.arange(first, first + rows)))
        path = folder / f"2026-10-{day + 1:02d}.parquet"
        frame.write_parquet(path)
        paths.append(str(path))
    return paths


def copy_home(template: Path, target: Path) -> Path:
    shutil.copytree(template, target)
    config = target / "driftgate.yaml"
    config.write_text(config.read_text().replace(str(template), str(target)))
    return target


def monitor_run(template: Path, root: Path, name: str, paths: list[str], workers: int, address: str | None) -> float:
    """Wall seconds of one monitor flow over every batch, on a fresh copy of the champion home."""
    from prefect.task_runners import ThreadPoolTaskRunner

    from flows.monitor import monitor_flow

    home = copy_home(template, root / name)
    with (home / "driftgate.yaml").open("a") as out:
        out.write(f"monitor_concurrency: {workers}\nemit_events: false\n")
    if address is None:
        runner: Any = ThreadPoolTaskRunner(max_workers=workers)
    else:
        from prefect_dask import DaskTaskRunner

        runner = DaskTaskRunner(address=address)
    started = time.perf_counter()
    monitor_flow.with_options(task_runner=runner)(batches=paths, home=str(home), config=str(home / "driftgate.yaml"))
    return time.perf_counter() - started


def serial_share(template: Path, root: Path, paths: list[str]) -> tuple[float, float]:
    """(seconds measuring, seconds in total) of a direct-mode monitor: what spreads, and what stays in order."""
    from flows.bodies import Runner, monitor_body

    class Timed(Runner):
        measuring = 0.0

        def measure_all(self, ws: Any, ctx: Any, paths: Any, labels: Any) -> Any:
            inner = super().measure_all(ws, ctx, paths, labels)
            while True:
                started = time.perf_counter()
                try:
                    item = next(inner)
                except StopIteration:
                    return
                Timed.measuring += time.perf_counter() - started
                yield item

    home = copy_home(template, root / "direct")
    with (home / "driftgate.yaml").open("a") as out:
        out.write("emit_events: false\n")
    started = time.perf_counter()
    monitor_body(Timed(), batches=paths, home=str(home), config=str(home / "driftgate.yaml"))
    return Timed.measuring, time.perf_counter() - started


# --- tuning ------------------------------------------------------------------------------------------------------
def _window(rows: int) -> Any:
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(5)
    x = rng.normal(size=(rows, 20))
    logit = x[:, :5] @ np.array([1.0, -0.8, 0.6, 0.4, -0.3]) + 0.5 * np.sin(3 * x[:, 5])
    columns = {f"x{i}": x[:, i] for i in range(20)}
    start = 1_700_000_000_000
    return pl.DataFrame(
        {
            "id": np.arange(rows),
            **columns,
            "y": (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int8),
            "ts": pl.Series(start + np.arange(rows) * 60_000).cast(pl.Datetime("ms")),
        }
    )


def _contract() -> Any:
    from tasks.data.contract import FeatureSpec, ModelContract

    return ModelContract(
        name="scale",
        features=[FeatureSpec(name=f"x{i}", kind="numeric") for i in range(20)],
        target="y",
        timestamp="ts",
        entity_id="id",
    )


def tune(storage: str, study: str, trials: int, rows: int) -> tuple[float, float]:
    """(wall seconds of this process's tuning and refit, its refit seconds) on the shared study."""
    from tasks.core.settings import TrainingSettings
    from tasks.training.train import train_candidate

    settings = TrainingSettings(n_trials=trials, num_boost_round=300, early_stopping_rounds=20, timeout_seconds=3600)
    started = time.perf_counter()
    trained = train_candidate(_window(rows), _contract(), settings, storage_dir=Path(storage), study_name=study)
    wall = time.perf_counter() - started
    return wall, max(0.0, wall - trained.tuning_seconds)


def _tune_worker(storage: str, study: str, trials: int, rows: int) -> None:
    tune(storage, study, trials, rows)


def tuning_run(root: Path, workers: int, trials: int, rows: int) -> float:
    storage = root / f"optuna-{workers}"
    context = multiprocessing.get_context("spawn")
    others = [
        context.Process(target=_tune_worker, args=(str(storage), "scale", trials, rows)) for _ in range(workers - 1)
    ]
    started = time.perf_counter()
    for process in others:
        process.start()
    tune(str(storage), "scale", trials, rows)
    for process in others:
        process.join()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=12, help="batch files to monitor")
    parser.add_argument("--rows", type=int, default=200_000, help="rows per batch")
    parser.add_argument("--trials", type=int, default=16, help="Optuna trials of the retrain")
    parser.add_argument("--train-rows", type=int, default=100_000, help="rows of the synthetic training window")
    parser.add_argument("--repeat", type=int, default=1, help="runs per configuration (median)")
    parser.add_argument("--skip-tuning", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("DRIFTGATE_TRACKING_MODE", "disabled")
    from prefect.testing.utilities import prefect_test_harness

    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="driftgate-scale-out-") as tmp:
        root = Path(tmp)
        template = champion_home(root)
        paths = batch_files(root, args.batches, args.rows)
        measuring, direct_total = serial_share(template, root, paths)
        results: dict[int, list[float]] = {1: [], 2: []}
        from distributed import LocalCluster

        started = time.perf_counter()
        # Long-lived workers, as in production (`dask worker` on each machine): started and warmed up once.
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
        cluster_start = time.perf_counter() - started
        try:
            with prefect_test_harness(server_startup_timeout=120):
                monitor_run(template, root, "warm-up", paths[:2], 2, cluster.scheduler_address)
                for run in range(args.repeat):
                    for workers in (1, 2):
                        address = cluster.scheduler_address if workers == 2 else None
                        seconds = monitor_run(template, root, f"monitor-{workers}-{run}", paths, workers, address)
                        results[workers].append(seconds)
                        print(f"monitor, {workers} worker(s): {seconds:.1f} s", file=sys.stderr, flush=True)
        finally:
            cluster.close()
        loads.append(os.getloadavg()[0])
        tuning: dict[int, list[float]] = {1: [], 2: []}
        if not args.skip_tuning:
            for run in range(args.repeat):
                for workers in (1, 2):
                    seconds = tuning_run(root / f"tune-{run}", workers, args.trials, args.train_rows)
                    tuning[workers].append(seconds)
                    print(f"tuning, {workers} worker(s): {seconds:.1f} s", file=sys.stderr, flush=True)
        loads.append(os.getloadavg()[0])

    one, two = statistics.median(results[1]), statistics.median(results[2])
    print(f"load average (1 min) at start / after monitoring / at end: {' / '.join(f'{v:.2f}' for v in loads)}")
    print(
        f"\nMonitoring {args.batches} unscored batch files of {args.rows:,} rows (flow mode, medians of {args.repeat}):"
    )
    print("| workers | wall, s | batches per minute |")
    print("|---:|---:|---:|")
    for workers, value in ((1, one), (2, two)):
        print(f"| {workers} | {value:.1f} | {60 * args.batches / value:.1f} |")
    print(
        f"speed-up 2 vs 1 worker: {one / two:.2f}x (1 worker: Prefect's thread pool, one batch in flight; 2: a local "
        f"Dask cluster of 2 worker processes, started once in {cluster_start:.1f} s and warmed up, not timed)"
    )
    serial = direct_total - measuring
    print(
        f"\nIn direct mode the batches took {direct_total:.1f} s: {measuring:.1f} s measuring (load, score, profile, "
        f"estimate: spreads over workers) and {serial:.1f} s judging, recording and reporting in batch order "
        f"({serial / args.batches:.2f} s per batch: stays on the flow's process)."
    )
    if serial > 0:
        print(
            f"On N machines (one Dask worker each, `dask worker tcp://SCHEDULER:8786` with this project installed and "
            f"the home's store and artifact store reachable), throughput tends to at most "
            f"{60 * args.batches / serial:.0f} batches per minute (the in-order part), i.e. about "
            f"{direct_total / serial:.1f}x one worker, reached near N = {max(1, round(measuring / serial))}."
        )
    if not args.skip_tuning:
        t1, t2 = statistics.median(tuning[1]), statistics.median(tuning[2])
        print(f"\nTuning one study of {args.trials} trials on {args.train_rows:,} rows x 20 features:")
        print("| workers | wall, s |")
        print("|---:|---:|")
        print(f"| 1 | {t1:.1f} |\n| 2 | {t2:.1f} |")
        print(
            f"speed-up 2 vs 1 worker: {t1 / t2:.2f}x. Trials spread over workers sharing the study (one per "
            "machine across machines, with the study in PostgreSQL); the final refit stays serial."
        )


if __name__ == "__main__":
    main()
