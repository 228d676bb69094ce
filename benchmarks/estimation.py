"""Performance estimation: speed and memory of CBPE and DLE, and the error of the estimate against realized values.

    uv run python benchmarks/estimation.py                  # both parts, sizes 100k and 1M, 3 runs each
    uv run python benchmarks/estimation.py --part speed --sizes 100000 --runs 3
    uv run python benchmarks/estimation.py --part error

Part "speed": fit + estimate at each size, by driftgate's wrapper (tasks/performance/estimation.py: validation,
polars to numpy to pandas, NannyML) and by NannyML called directly on a ready pandas frame (the peer), on the same rows.
Each measurement runs in a fresh process, so the peak resident memory (ru_maxrss, minus the process's size after
imports) is that run's own; medians of --runs runs, and the driftgate/NannyML ratio. Rows are drawn with
replacement from NannyML's car-loan (CBPE, binary, roc_auc) and car-price (DLE, regression, rmse + mae) data;
the estimate covers 10 chunks. DLE's LightGBM runs with one thread in both (its default, all cores,
oversubscribes a shared machine).

Part "error": mean absolute error between the estimate and the realized value per chunk, on NannyML's own
analysis periods with their targets: car-loan (CBPE, 5 metrics, NannyML's scores), the synthetic multiclass
data (CBPE, macro metrics), car-price (DLE, rmse and mae); for each, the mean sampling error NannyML reports and
how often the realized value falls inside the +-3 sampling-error band.

Event-to-flow-run latency on a local server is measured by benchmarks/event_latency.py.
The machine is shared: other processes may run at the same time; figures are medians.
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
CHUNKS = 10


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux


def _car_loan(rows: int, seed: int) -> tuple[Any, Any]:
    import numpy as np
    import polars as pl

    from tasks.data.files import _nannyml_data_dir

    frame = pl.read_csv(_nannyml_data_dir() / "synthetic_car_loan_reference.csv").select(
        pl.col("repaid").cast(pl.Int8), "y_pred_proba", pl.col("y_pred").cast(pl.Int8)
    )
    rng = np.random.default_rng(seed)
    return frame[rng.integers(0, frame.height, rows)], frame[rng.integers(0, frame.height, rows)]


def _car_price(rows: int, seed: int) -> tuple[Any, Any]:
    import numpy as np
    import polars as pl

    from tasks.data.files import _nannyml_data_dir

    frame = pl.read_csv(_nannyml_data_dir() / "regression_synthetic_reference.csv").drop("id", "timestamp")
    rng = np.random.default_rng(seed)
    return frame[rng.integers(0, frame.height, rows)], frame[rng.integers(0, frame.height, rows)]


PRICE_FEATURES = ("car_age", "km_driven", "price_new", "accident_count", "door_count", "fuel", "transmission")


def measure_one(method: str, impl: str, rows: int, seed: int) -> dict[str, float]:
    """One measurement, in this process (called in a fresh subprocess by the parent)."""
    os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")
    import warnings

    import pandas as pd

    warnings.simplefilter("ignore")
    pd.set_option("future.infer_string", False)
    import nannyml as nml

    from tasks.performance.metrics import ModelOutputs, estimate_metrics, fit_metric_estimator

    chunk = rows // CHUNKS
    reference, analysis = _car_loan(rows, seed) if method == "cbpe" else _car_price(rows, seed)
    base = _peak_mb()
    started = time.perf_counter()
    if impl == "driftgate":
        if method == "cbpe":
            outputs = ModelOutputs("classification_binary", "repaid", "y_pred", (("1", "y_pred_proba"),))
            estimator = fit_metric_estimator(reference, outputs, metrics=["roc_auc"], chunk_size=chunk)
        else:
            outputs = ModelOutputs("regression", "y_true", "y_pred", features=PRICE_FEATURES)
            estimator = fit_metric_estimator(reference, outputs, chunk_size=chunk, num_threads=1)
        fitted = time.perf_counter()
        estimate_metrics(estimator, analysis, chunk_size=chunk)
    else:
        from nannyml.chunk import SizeBasedChunker

        ref_pd, ana_pd = reference.to_pandas(), analysis.to_pandas()
        for column in ("fuel", "transmission"):
            if column in ref_pd:
                ref_pd[column], ana_pd[column] = ref_pd[column].astype(object), ana_pd[column].astype(object)
        base = max(base, _peak_mb())
        started = time.perf_counter()
        if method == "cbpe":
            peer = nml.CBPE(
                metrics=["roc_auc"],
                y_pred_proba="y_pred_proba",
                y_pred="y_pred",
                y_true="repaid",
                problem_type="classification_binary",
                chunker=SizeBasedChunker(chunk_size=chunk, incomplete="drop"),
            )
        else:
            peer = nml.DLE(
                feature_column_names=list(PRICE_FEATURES),
                y_pred="y_pred",
                y_true="y_true",
                metrics=["rmse", "mae"],
                chunker=SizeBasedChunker(chunk_size=chunk, incomplete="drop"),
                hyperparameters={"n_jobs": 1, "random_state": 0, "verbosity": -1},
            )
        peer.fit(ref_pd)
        fitted = time.perf_counter()
        peer.chunker = SizeBasedChunker(chunk_size=chunk, incomplete="keep")
        peer.estimate(ana_pd)
    done = time.perf_counter()
    return {"fit_s": fitted - started, "estimate_s": done - fitted, "peak_mb": _peak_mb() - base}


def speed(sizes: list[int], runs: int, methods: list[str], timeout: float) -> list[dict[str, Any]]:
    rows_out = []
    for method in methods:
        for size in sizes:
            results: dict[str, list[dict[str, float]]] = {"driftgate": [], "nannyml": []}
            skipped = False
            for run in range(runs):
                for impl in ("driftgate", "nannyml"):
                    command = [sys.executable, __file__, "--one", method, impl, str(size), str(run)]
                    try:
                        out = subprocess.run(
                            command, capture_output=True, text=True, check=True, timeout=timeout, cwd=REPO
                        )
                    except subprocess.TimeoutExpired:
                        print(f"{method} {impl} {size}: over {timeout:.0f} s, not measured", flush=True)
                        skipped = True
                        break
                    except subprocess.CalledProcessError as exc:
                        print(exc.stderr[-2000:], file=sys.stderr)
                        raise
                    results[impl].append(json.loads(out.stdout.strip().splitlines()[-1]))
                if skipped:
                    break
            if skipped:
                rows_out.append({"method": method, "rows": size, "skipped": True})
                continue
            row: dict[str, Any] = {"method": method, "rows": size}
            for impl, values in results.items():
                for key in ("fit_s", "estimate_s", "peak_mb"):
                    row[f"{impl}_{key}"] = statistics.median(v[key] for v in values)
            row["time_ratio"] = (row["driftgate_fit_s"] + row["driftgate_estimate_s"]) / (
                row["nannyml_fit_s"] + row["nannyml_estimate_s"]
            )
            rows_out.append(row)
            print(_speed_line(row), flush=True)
    return rows_out


def _speed_line(row: dict[str, Any]) -> str:
    if row.get("skipped"):
        return f"| {row['method'].upper()} | {row['rows']:,} | not measured (timeout) | | | | |"
    return (
        f"| {row['method'].upper()} | {row['rows']:,} "
        f"| {row['driftgate_fit_s']:.2f} / {row['driftgate_estimate_s']:.2f} "
        f"| {row['nannyml_fit_s']:.2f} / {row['nannyml_estimate_s']:.2f} "
        f"| {row['time_ratio']:.2f} "
        f"| {row['driftgate_peak_mb']:.0f} | {row['nannyml_peak_mb']:.0f} |"
    )


def error() -> list[dict[str, Any]]:
    import numpy as np
    import polars as pl

    from tasks.data.files import _nannyml_data_dir
    from tasks.performance.metrics import ModelOutputs, estimate_metrics, fit_metric_estimator

    folder = _nannyml_data_dir()

    def read(name: str) -> pl.DataFrame:
        return pl.read_csv(folder / name, try_parse_dates=True)

    cases = []
    loan_ref = read("synthetic_car_loan_reference.csv")
    loan_ana = read("synthetic_car_loan_analysis.csv").join(read("synthetic_car_loan_analysis_target.csv"), on="id")
    cases.append(
        (
            "car-loan (binary CBPE)",
            ModelOutputs("classification_binary", "repaid", "y_pred", (("1", "y_pred_proba"),), timestamp="timestamp"),
            loan_ref,
            loan_ana,
            5000,
            ["roc_auc", "f1", "precision", "recall", "accuracy"],
        )
    )
    classes = ("prepaid_card", "highstreet_card", "upmarket_card")
    cases.append(
        (
            "synthetic multiclass (CBPE)",
            ModelOutputs(
                "classification_multiclass",
                "y_true",
                "y_pred",
                tuple((c, f"y_pred_proba_{c}") for c in classes),
                timestamp="timestamp",
            ),
            read("mc_reference.csv"),
            read("mc_analysis.csv").join(read("mc_analysis_gt.csv"), on="id"),
            6000,
            ["roc_auc", "f1", "precision", "recall", "accuracy"],
        )
    )
    cases.append(
        (
            "car-price (regression DLE)",
            ModelOutputs("regression", "y_true", "y_pred", features=PRICE_FEATURES, timestamp="timestamp"),
            read("regression_synthetic_reference.csv"),
            read("regression_synthetic_analysis.csv").join(read("regression_synthetic_analysis_targets.csv"), on="id"),
            6000,
            ["rmse", "mae"],
        )
    )
    out = []
    for name, outputs, reference, analysis, chunk, metrics in cases:
        started = time.perf_counter()
        estimator = fit_metric_estimator(reference, outputs, metrics=metrics, chunk_size=chunk)
        chunks = estimate_metrics(estimator, analysis, chunk_size=chunk)
        elapsed = time.perf_counter() - started
        half = len(chunks) // 2
        for metric in metrics:
            rows = []
            for part, selected in (("first half", chunks[:half]), ("second half", chunks[half:])):
                errors = [abs(c.estimates[metric].value - c.realized[metric]) for c in selected]  # type: ignore[operator]
                sigmas = [c.estimates[metric].sampling_error or 0.0 for c in selected]
                inside = [
                    (c.estimates[metric].lower or 0) <= (c.realized[metric] or 0) <= (c.estimates[metric].upper or 0)
                    for c in selected
                ]
                rows.append(
                    {
                        "dataset": name,
                        "metric": metric,
                        "period": part,
                        "chunks": len(selected),
                        "mae": float(np.mean(errors)),
                        "sampling_error": float(np.mean(sigmas)),
                        "coverage": float(np.mean(inside)),
                        "seconds": elapsed,
                    }
                )
            for row in rows:
                out.append(row)
                print(
                    f"| {row['dataset']} | {row['metric']} | {row['period']} ({row['chunks']} x {chunk}) "
                    f"| {row['mae']:.4f} | {row['sampling_error']:.4f} "
                    f"| {row['mae'] / max(row['sampling_error'], 1e-12):.2f} "
                    f"| {row['coverage']:.0%} |",
                    flush=True,
                )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["speed", "error", "all"], default="all")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--methods", nargs="+", choices=["cbpe", "dle"], default=["cbpe", "dle"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600.0, help="per measurement; longer ones are reported")
    parser.add_argument("--one", nargs=4, metavar=("METHOD", "IMPL", "ROWS", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        method, impl, rows, seed = args.one
        print(json.dumps(measure_one(method, impl, int(rows), int(seed))))
        return
    from tasks.core.telemetry import disable_telemetry

    disable_telemetry()
    if args.part in ("speed", "all"):
        print(
            "\n| method | rows | driftgate fit / estimate (s) | NannyML fit / estimate (s) | time ratio | "
            "driftgate peak MB | NannyML peak MB |"
        )
        print("|---|---|---|---|---|---|---|")
        speed(args.sizes, args.runs, args.methods, args.timeout)
    if args.part in ("error", "all"):
        print("\n| data | metric | chunks | mean abs. error | mean sampling error | error / s.e. | band coverage |")
        print("|---|---|---|---|---|---|---|")
        error()


if __name__ == "__main__":
    main()
