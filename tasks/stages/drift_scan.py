"""Profile a whole file chunk by chunk against a reference: the engine of `driftgate profile`.

Reads both files lazily (Parquet or CSV), fits the reference profile once, streams the analysis
through :func:`tasks.drift.profiling.iter_chunk_profiles` (bounded memory, calibrated thresholds), reports
progress per chunk, and writes the results table (Parquet) and the drift heat map (PNG). It touches
no registry, audit store or Prefect API: a read-only look at a file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tasks.core import progress

if TYPE_CHECKING:
    import polars as pl

    from tasks.core.settings import ProfilingSettings
    from tasks.data.chunking import Chunking
    from tasks.data.contract import ModelContract


@dataclass(frozen=True)
class ChunkSummary:
    """One chunk in a line: its window, data quality and the features whose primary statistic alerted."""

    key: str
    start: str
    end: str
    rows: int
    quality_passed: bool
    quality_failures: tuple[str, ...]
    drifted: tuple[str, ...]
    joint_drift: bool  # the multivariate (PCA reconstruction) row alerted
    score_drift: bool  # the model's probability column drifted


@dataclass(frozen=True)
class DriftScan:
    results: pl.DataFrame  # one row per chunk x feature x method, as profile_chunks returns it
    chunks: tuple[ChunkSummary, ...]
    results_path: Path
    heatmap_path: Path | None
    seconds: float


def scan_drift(
    analysis: Path | str,
    reference: Path | str,
    contract: ModelContract,
    settings: ProfilingSettings,
    chunking: Chunking,
    out_dir: Path,
) -> DriftScan:
    """Profile every chunk of ``analysis`` against ``reference``; write results.parquet and heatmap.svg."""
    import polars as pl

    from tasks.data.chunking import row_slices
    from tasks.data.files import scan_file
    from tasks.drift.chunked import chunk_frame, iter_chunk_profiles
    from tasks.drift.reference import fit_reference_profile
    from tasks.report.drift_plots import drift_heatmap

    started = time.perf_counter()
    source = scan_file(analysis)
    progress.report("reference", 0, 1, f"fitting {Path(reference).name}")
    profile = fit_reference_profile(scan_file(reference), contract, settings, source=str(reference))
    progress.report("reference", 1, 1, f"{profile.rows:,} rows")
    total = 0
    if chunking.period is None:
        total = len(row_slices(int(source.select(pl.len()).collect().item()), chunking))
    frames = []
    summaries = []
    for window, result in iter_chunk_profiles(
        profile, source, contract, settings, chunking, source_name=Path(analysis).name
    ):
        frames.append(chunk_frame(window, result))
        drifted = tuple(result.drifted_features)
        joint, score = result.multivariate_drift, result.prediction_drift
        summaries.append(
            ChunkSummary(
                key=window.key,
                start=f"{window.start_date:%Y-%m-%d %H:%M}" if window.start_date else "",
                end=f"{window.end_date:%Y-%m-%d %H:%M}" if window.end_date else "",
                rows=result.rows,
                quality_passed=result.quality.passed,
                quality_failures=tuple(
                    f"{i.check}:{i.column or ''}" for i in result.quality.issues if i.severity == "fail"
                ),
                drifted=drifted,
                joint_drift=bool(joint is not None and joint.drifts),
                score_drift=bool(score is not None and score.alert),
            )
        )
        done = len(summaries)
        progress.report("chunks", done, max(total, done), f"{window.key}: {len(drifted)} drifted")
    results = pl.concat(frames, how="vertical") if frames else chunk_frame(None, None)
    out_dir.mkdir(parents=True, exist_ok=True)
    results_path = out_dir / "results.parquet"
    results.write_parquet(results_path)
    heatmap = drift_heatmap(results, out_dir / "heatmap.svg", title=f"drift by chunk — {Path(analysis).name}")
    return DriftScan(results, tuple(summaries), results_path, heatmap, time.perf_counter() - started)
