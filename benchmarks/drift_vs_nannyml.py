"""driftgate's drift profiling against NannyML's UnivariateDriftCalculator and a polars floor, same data, same chunks.

    uv run python benchmarks/drift_vs_nannyml.py                      # 100k, 1M and 5M rows, once each
    uv run python benchmarks/drift_vs_nannyml.py --rows 1000000 --repeat 3
    uv run python benchmarks/drift_vs_nannyml.py --parquet-rows 20000000  # bounded memory: 1M-row chunks
    uv run python benchmarks/drift_vs_nannyml.py --rows 1000000 --repeat 3 --shape wide   # or --shape skewed

Data (benchmarks/drift_data.py, seeded): a reference and an analysis of N rows each, 20 numeric + 5
categorical features, 3 of them shifted in the analysis's second half, written once to Parquet.
Every measurement runs in its own process, which imports its libraries first (not timed; reported),
then times reading the Parquet files and computing (wall time, and CPU time of all its threads, which
a busy shared machine disturbs less), and reports its peak RSS (``ru_maxrss``, imports included).
The tools take turns within each round of repeats, after one discarded floor pass that lets the
machine settle from the previous round:

- ``polars-sum``: one lazy polars pass over both files that sums every numeric column and the byte
  length of every text column (the floor: reading the data once);
- ``driftgate``: ``fit_reference_profile(pl.scan_parquet(reference))`` (one pass up to 32M cells,
  column by column beyond) and ``profile_chunks(..., pl.scan_parquet(analysis), Chunking.by_number(10))``
  (streaming; small chunks two at a time, big ones one at a time); its imports include loading the
  compiled numba kernels (compiling them on a new machine, once): KS, Wasserstein, Jensen-Shannon,
  Hellinger and PSI per numeric feature, chi2, JS, L-infinity and Hellinger per categorical feature,
  each with its calibrated threshold, plus data-quality checks; the multivariate PCA row is left out
  (NannyML's univariate calculator has none; ``--multivariate`` adds it);
- ``nannyml``: ``pandas.read_parquet`` of both files, ``UnivariateDriftCalculator(chunk_number=10)`` with
  the same methods (KS and Wasserstein in its default mode, which bins references of 10,000+ rows,
  cheaper than driftgate's exact values), ``fit(reference)`` and ``calculate(analysis)``.

After the runs the script checks that driftgate and NannyML computed the same statistics on the same
chunks (largest difference per method; KS/Wasserstein differ by NannyML's binning) and prints one
table: median work time and peak RSS per tool and size, and the ratios, then driftgate's fit and
profile times.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.drift_data import CATEGORICAL, NUMERIC, SHAPES, contract, shape_of, write_parquet  # noqa: E402

NANNYML_CONTINUOUS = ["kolmogorov_smirnov", "jensen_shannon", "wasserstein", "hellinger"]
NANNYML_CATEGORICAL = ["chi2", "jensen_shannon", "l_infinity", "hellinger"]
CHUNKS = 10
DEFAULT_SIZES = [100_000, 1_000_000, 5_000_000]
BIG_REFERENCE_ROWS = 1_000_000
BOUNDED_CHUNK_ROWS = 1_000_000


def files(data_dir: Path, rows: int, reference_rows: int | None = None) -> tuple[Path, Path]:
    reference_rows = reference_rows or rows
    shape = shape_of()
    tag = "" if shape == "mixed" else f"{shape}-"  # the default shape keeps its files' old names
    reference = write_parquet(data_dir / f"{tag}reference-{reference_rows}.parquet", reference_rows, 1, shifted=False)
    analysis = write_parquet(data_dir / f"{tag}analysis-{rows}.parquet", rows, 2, shifted=True)
    return reference, analysis


# --- workers (each in its own process) -----------------------------------------------------


def work_polars_sum(reference: Path, analysis: Path, out: Path | None, multivariate: bool) -> dict[str, Any]:
    import polars as pl

    started = time.perf_counter()
    totals = []
    per_file = []
    for path in (reference, analysis):
        file_started = time.perf_counter()
        frame = (
            pl.scan_parquet(path)
            .select(
                pl.col(pl.Float64, pl.Int64).sum(),
                pl.col(pl.String).str.len_bytes().sum(),
                pl.col(pl.Datetime).cast(pl.Int64).sum(),
            )
            .collect(engine="streaming")
        )
        totals.append(float(sum(v for v in frame.row(0) if v is not None)))
        per_file.append(time.perf_counter() - file_started)
    return {"seconds": time.perf_counter() - started, "analysis_seconds": per_file[1], "checksum": sum(totals)}


def work_driftgate(reference: Path, analysis: Path, out: Path | None, multivariate: bool) -> dict[str, Any]:
    import polars as pl

    from tasks.core.settings import ProfilingSettings
    from tasks.data.chunking import Chunking
    from tasks.drift.chunked import profile_chunks
    from tasks.drift.reference import fit_reference_profile

    rows = int(pl.scan_parquet(analysis).select(pl.len()).collect().item())
    chunk_rows = int(os.environ.get("DRIFT_BENCH_CHUNK_ROWS", "0"))
    chunking = Chunking.by_size(chunk_rows) if chunk_rows else Chunking.by_number(CHUNKS)
    settings = ProfilingSettings(chunk_size=max(chunk_rows or rows // CHUNKS, 50))
    model_contract = contract()
    started = time.perf_counter()
    profile = fit_reference_profile(pl.scan_parquet(reference), model_contract, settings, multivariate=multivariate)  # type: ignore[arg-type]
    fitted = time.perf_counter()
    results = profile_chunks(profile, pl.scan_parquet(analysis), model_contract, settings, chunking)  # type: ignore[arg-type]
    finished = time.perf_counter()
    if out is not None:
        results.write_parquet(out)
    return {
        "seconds": finished - started,
        "fit_seconds": fitted - started,
        "profile_seconds": finished - fitted,
        "chunks": results.get_column("chunk_index").n_unique(),
        "alerts": int(results.filter(pl.col("primary")).get_column("alert").sum()),
    }


def work_nannyml(reference: Path, analysis: Path, out: Path | None, multivariate: bool) -> dict[str, Any]:
    import nannyml as nml
    import pandas as pd

    started = time.perf_counter()
    reference_frame = pd.read_parquet(reference)
    analysis_frame = pd.read_parquet(analysis)
    calculator = nml.UnivariateDriftCalculator(
        column_names=NUMERIC + CATEGORICAL,
        treat_as_numerical=NUMERIC,
        treat_as_categorical=CATEGORICAL,
        continuous_methods=NANNYML_CONTINUOUS,
        categorical_methods=NANNYML_CATEGORICAL,
        chunk_number=CHUNKS,
    )
    calculator.fit(reference_frame)
    fitted = time.perf_counter()
    table = calculator.calculate(analysis_frame).filter(period="analysis").to_df()
    finished = time.perf_counter()
    if out is not None:
        rows = [
            {
                "chunk_index": int(i),
                "feature": column,
                "method": method,
                "statistic": float(row[(column, method, "value")]),
            }
            for i, row in table.iterrows()
            for column, methods in [(c, NANNYML_CONTINUOUS) for c in NUMERIC]
            + [(c, NANNYML_CATEGORICAL) for c in CATEGORICAL]
            for method in methods
        ]
        pd.DataFrame(rows).to_parquet(out)
    return {"seconds": finished - started, "fit_seconds": fitted - started, "profile_seconds": finished - fitted}


WORKERS = {"polars-sum": work_polars_sum, "driftgate": work_driftgate, "nannyml": work_nannyml}


def worker_main(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    if args.worker == "nannyml":
        os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"
        import nannyml  # noqa: F401
    elif args.worker == "driftgate":
        import polars
        import scipy.special  # noqa: F401

        import tasks.data.chunking
        import tasks.drift.multivariate
        import tasks.drift.profiling  # noqa: F401
        from tasks.drift.kernels import warm_up

        warm_up()  # numba: import and load the compiled kernels (compile them on a new machine)
    else:
        import polars  # noqa: F401
    imported = time.perf_counter() - started
    cpu_before = _cpu_seconds()
    result = WORKERS[args.worker](
        Path(args.reference), Path(args.analysis), Path(args.out) if args.out else None, args.multivariate
    )
    result.update(
        tool=args.worker,
        cpu_seconds=_cpu_seconds() - cpu_before,
        import_seconds=imported,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )
    print(json.dumps(result))


def _cpu_seconds() -> float:
    """User + system CPU time of this process, all threads: steadier than wall time on a shared machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- driver ----------------------------------------------------------------------------------


def run(tool: str, reference: Path, analysis: Path, out: Path | None, multivariate: bool) -> dict[str, Any]:
    command = [sys.executable, __file__, "--worker", tool, "--reference", str(reference), "--analysis", str(analysis)]
    if out is not None:
        command += ["--out", str(out)]
    if multivariate:
        command.append("--multivariate")
    done = subprocess.run(
        command, capture_output=True, text=True, cwd=REPO, env={**os.environ, "NML_DISABLE_USAGE_LOGGING": "1"}
    )
    if done.returncode != 0:
        raise RuntimeError(f"{tool} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def agreement(ours: Path, theirs: Path) -> dict[str, float]:
    """Largest |driftgate - NannyML| per NannyML method over all chunks and features."""
    import polars as pl

    from tasks.drift.results import NANNYML_METHODS

    mine = (
        pl.read_parquet(ours)
        .filter(pl.col("method").is_in(list(NANNYML_METHODS)))
        .with_columns(pl.col("method").replace_strict(NANNYML_METHODS))
        .select("chunk_index", "feature", "method", pl.col("statistic").alias("driftgate"))
    )
    joined = mine.join(
        pl.read_parquet(theirs).rename({"statistic": "nannyml"}), on=["chunk_index", "feature", "method"], how="inner"
    )
    gaps = joined.group_by("method").agg((pl.col("driftgate") - pl.col("nannyml")).abs().max().alias("gap"), pl.len())
    return {method: gap for method, gap, _ in gaps.sort("method").iter_rows()}


def _line(tool: str, attempt: int, result: dict[str, Any]) -> str:
    return (
        f"  {tool:<10} run {attempt + 1}: {result['seconds']:8.2f} s work ({result['cpu_seconds']:.2f} s CPU), "
        f"{result['peak_rss_mb']:7.0f} MB peak RSS, {result['import_seconds']:.1f} s imports, "
        f"load {os.getloadavg()[0]:.1f}"
    )


def median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, action="append", help="analysis rows (repeatable); default 100k, 1M, 5M")
    parser.add_argument("--repeat", type=int, default=1, help="runs per tool and size; the table shows medians")
    parser.add_argument("--nannyml-repeat", type=int, default=None, help="runs of NannyML (default: --repeat)")
    parser.add_argument("--skip-nannyml", action="store_true")
    parser.add_argument("--multivariate", action="store_true", help="driftgate also computes the PCA row")
    parser.add_argument("--parquet-rows", type=int, help="bounded-memory mode: profile this many rows, driftgate only")
    parser.add_argument("--data-dir", default="/tmp/driftgate-bench", help="where the seeded Parquet files are kept")
    parser.add_argument(
        "--shape",
        choices=SHAPES,
        default=None,
        help="data shape (benchmarks/drift_data.py): mixed (default), wide (100-level string categoricals, gamma "
        "and log-normal numerics, no missing values) or skewed (heavy tails, point masses, ties)",
    )
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--reference", help=argparse.SUPPRESS)
    parser.add_argument("--analysis", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args)
        return

    if args.shape:  # the workers are child processes: they read the shape from the environment
        os.environ["DRIFT_BENCH_SHAPE"] = args.shape
    data_dir = Path(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    print(
        f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start; data shape {shape_of()}",
        flush=True,
    )
    if args.parquet_rows:
        bounded(data_dir, args.parquet_rows, args.repeat, args.multivariate)
        return

    table = []
    for rows in args.rows or DEFAULT_SIZES:
        reference, analysis = files(data_dir, rows)
        print(f"\n{rows:,} rows (reference {rows:,} + analysis {rows:,}, {CHUNKS} chunks)", flush=True)
        measured: dict[str, list[dict[str, Any]]] = {}
        tools = ["polars-sum", "driftgate"] + ([] if args.skip_nannyml else ["nannyml"])
        nannyml_runs = args.nannyml_repeat or args.repeat
        # Tools take turns within each round, so a busy spell on the shared machine hits all of them.
        for attempt in range(max(args.repeat, nannyml_runs)):
            # Each round opens with a discarded floor pass: after NannyML's 1.6 GB the next process runs
            # slow (freed memory, cold caches), which would flatter every ratio to the floor.
            run("polars-sum", reference, analysis, None, args.multivariate)
            for tool in tools:
                if attempt >= (nannyml_runs if tool == "nannyml" else args.repeat):
                    continue
                out = data_dir / f"result-{tool}-{rows}.parquet" if tool != "polars-sum" and attempt == 0 else None
                result = run(tool, reference, analysis, out, args.multivariate)
                measured.setdefault(tool, []).append(result)
                print(_line(tool, attempt, result), flush=True)
        if "nannyml" in measured:
            gaps = agreement(data_dir / f"result-driftgate-{rows}.parquet", data_dir / f"result-nannyml-{rows}.parquet")
            print("  largest |driftgate - NannyML| per method: " + ", ".join(f"{m} {g:.2g}" for m, g in gaps.items()))
        table.append((rows, measured))

    print(
        "\n| rows | tool | runs | wall s (median) | CPU s (median) | peak RSS MB | NannyML / tool, wall | "
        "NannyML / tool, CPU | tool / polars-sum, wall |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for rows, measured in table:
        floor = median(measured["polars-sum"], "seconds")
        peer = measured.get("nannyml")
        for tool, runs in measured.items():
            wall, cpu = median(runs, "seconds"), median(runs, "cpu_seconds")
            by_wall = f"{median(peer, 'seconds') / wall:.1f}x" if peer else "—"
            by_cpu = f"{median(peer, 'cpu_seconds') / cpu:.1f}x" if peer else "—"
            print(
                f"| {rows:,} | {tool} | {len(runs)} | {wall:.2f} | {cpu:.2f} | {median(runs, 'peak_rss_mb'):.0f} | "
                f"{by_wall} | {by_cpu} | {wall / floor:.1f}x |"
            )
    for rows, measured in table:
        runs = measured["driftgate"]
        fit, profile = median(runs, "fit_seconds"), median(runs, "profile_seconds")
        floor = median(measured["polars-sum"], "analysis_seconds")
        print(
            f"driftgate at {rows:,} rows: fitting the reference {fit:.2f} s, profiling the analysis {profile:.2f} s "
            f"(medians); imports {median(runs, 'import_seconds'):.1f} s. Per batch, with the reference profile "
            f"already fitted (stored): {profile / floor:.1f}x a sum pass over the analysis file ({floor:.2f} s)"
        )


def bounded(data_dir: Path, rows: int, repeat: int, multivariate: bool) -> None:
    """Profile ``rows`` analysis rows from Parquet in chunks of BOUNDED_CHUNK_ROWS against a 1M-row reference."""
    reference, analysis = files(data_dir, rows, reference_rows=BIG_REFERENCE_ROWS)
    os.environ["DRIFT_BENCH_CHUNK_ROWS"] = str(BOUNDED_CHUNK_ROWS)
    print(
        f"bounded-memory mode: reference {BIG_REFERENCE_ROWS:,} rows, analysis {rows:,} rows "
        f"({analysis.stat().st_size / 1e6:.0f} MB Parquet), chunks of {BOUNDED_CHUNK_ROWS:,} rows",
        flush=True,
    )
    measured: dict[str, list[dict[str, Any]]] = {}
    for attempt in range(repeat):
        for tool in ("polars-sum", "driftgate"):
            result = run(tool, reference, analysis, None, multivariate)
            measured.setdefault(tool, []).append(result)
            print(_line(tool, attempt, result), flush=True)
    print("\n| rows | tool | runs | wall s (median) | CPU s (median) | peak RSS MB |")
    print("|---:|---|---:|---:|---:|---:|")
    for tool, runs in measured.items():
        print(
            f"| {rows:,} | {tool} | {len(runs)} | {median(runs, 'seconds'):.2f} | {median(runs, 'cpu_seconds'):.2f} | "
            f"{median(runs, 'peak_rss_mb'):.0f} |"
        )


if __name__ == "__main__":
    main()
