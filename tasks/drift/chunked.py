"""Profiling a large or lazy source chunk by chunk (one chunk in memory, small chunks in parallel), and the
frame of per-chunk drift that reports and plots read."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from tasks.core.parallel import T, ordered_parallel_map
from tasks.core.settings import ProfilingSettings
from tasks.data.contract import ModelContract, validate_batch
from tasks.drift.profiling import profile_batch
from tasks.drift.reference import ReferenceProfile, fit_reference_profile
from tasks.drift.results import BatchProfile, FeatureDrift, QualityIssue, _drift_schema

if TYPE_CHECKING:
    import polars as pl

    from tasks.data.chunking import Chunking, ChunkWindow


# Chunks up to this size (polars' estimate) are profiled in parallel, one per core; larger ones one at a
# time with their columns in parallel, so a bounded-memory run still holds a single big chunk.
PARALLEL_CHUNK_BYTES = 64 * 2**20


def _non_finite_as_missing(
    frame: pl.DataFrame, contract: ModelContract
) -> tuple[pl.DataFrame, tuple[QualityIssue, ...]]:
    """NaN/inf in numeric features become quality failures and are then treated as missing values."""
    import polars as pl

    schema = frame.schema
    numeric = [
        spec.name
        for spec in contract.features
        if spec.kind == "numeric" and spec.name in schema and schema[spec.name].is_float()
    ]
    if not numeric or frame.height == 0:
        return frame, ()
    # A sum is finite unless the column holds NaN or inf (or overflows): a cheap gate before counting.
    sums = frame.select(pl.col(numeric).sum()).row(0)
    suspects = [name for name, total in zip(numeric, sums, strict=True) if not math.isfinite(total)]
    if not suspects:
        return frame, ()
    bad = frame.select((~pl.col(name).is_finite() & pl.col(name).is_not_null()).sum() for name in suspects).row(0)
    issues = tuple(
        QualityIssue("non_finite", name, f"{count} NaN/inf values, treated as missing", "fail")
        for name, count in zip(suspects, bad, strict=True)
        if count
    )
    if not issues:
        return frame, ()
    fixed = [pl.when(pl.col(i.column).is_finite()).then(pl.col(i.column)).alias(i.column) for i in issues if i.column]
    return frame.with_columns(fixed), issues


def iter_chunk_profiles(
    profile: ReferenceProfile,
    source: pl.LazyFrame | pl.DataFrame,
    contract: ModelContract,
    settings: ProfilingSettings,
    chunking: Chunking,
    *,
    source_name: str = "analysis",
) -> Iterator[tuple[ChunkWindow, BatchProfile]]:
    """Profile each chunk of ``source`` as it is read, in order.

    Small chunks are profiled in parallel, one per core (at most that many in memory); chunks over
    ``PARALLEL_CHUNK_BYTES`` one at a time, their columns in parallel (one chunk in memory).
    """
    import os

    from tasks.data.chunking import iter_chunks

    raw_schema = dict(source.collect_schema()) if hasattr(source, "collect_schema") else dict(source.schema)

    def profile_one(item: tuple[ChunkWindow, pl.DataFrame]) -> tuple[ChunkWindow, BatchProfile]:
        window, chunk = item
        del item
        where = f"{source_name} chunk {window.key}"
        chunk, issues = _non_finite_as_missing(chunk, contract)
        # _non_finite_as_missing has turned NaN/inf into nulls (and reported them): no second scan.
        batch = validate_batch(chunk, contract, source=where, min_rows=0, check_finite=False)
        del chunk
        result = profile_batch(
            profile, batch, contract, settings, source=where, raw_schema=raw_schema, extra_issues=issues
        )
        return window, result

    chunks = iter_chunks(source, chunking, timestamp=contract.timestamp)
    first = next(chunks, None)
    if first is None:
        return
    in_flight = (os.cpu_count() or 1) if first[1].estimated_size() <= PARALLEL_CHUNK_BYTES else 1
    pieces = _prepend(first, chunks)
    del first  # only the generator holds the first chunk now, until it is profiled
    yield from ordered_parallel_map(profile_one, pieces, in_flight)


def _prepend(first: T, rest: Iterator[T]) -> Iterator[T]:
    yield first
    del first  # not kept alive while the rest are read
    yield from rest


def profile_chunks(
    profile: ReferenceProfile,
    source: pl.LazyFrame | pl.DataFrame,
    contract: ModelContract,
    settings: ProfilingSettings,
    chunking: Chunking,
    *,
    source_name: str = "analysis",
) -> pl.DataFrame:
    """Drift and quality of every chunk: one row per (chunk, feature, method), with the chunk window on each row."""
    import polars as pl

    frames = [
        chunk_frame(window, result)
        for window, result in iter_chunk_profiles(
            profile, source, contract, settings, chunking, source_name=source_name
        )
    ]
    if not frames:
        return chunk_frame(None, None)
    return pl.concat(frames, how="vertical")


def chunk_frame(window: ChunkWindow | None, result: BatchProfile | None) -> pl.DataFrame:
    """The rows of one chunk, its window on each; a chunk without drift rows keeps one row with a null feature."""
    import polars as pl

    schema: dict[str, Any] = {
        "chunk_index": pl.Int64,
        "chunk_key": pl.String,
        "start_index": pl.Int64,
        "end_index": pl.Int64,
        "start_date": pl.Datetime("us"),
        "end_date": pl.Datetime("us"),
        "rows": pl.Int64,
        "quality_passed": pl.Boolean,
        "quality_failures": pl.List(pl.String),
        **_drift_schema(),
    }
    if window is None or result is None:
        return pl.DataFrame(schema=schema)
    names = list(_drift_schema())
    drift = [dict(zip(names, astuple_drift(d), strict=True)) for d in result.drift] or [dict.fromkeys(names)]
    failures = [f"{i.check}:{i.column or ''}" for i in result.quality.issues if i.severity == "fail"]
    chunk = {
        "chunk_index": window.index,
        "chunk_key": window.key,
        "start_index": window.start_index,
        "end_index": window.end_index,
        "start_date": window.start_date,
        "end_date": window.end_date,
        "rows": result.rows,
        "quality_passed": result.quality.passed,
        "quality_failures": failures,
    }
    return pl.DataFrame([{**chunk, **row} for row in drift], schema=schema)


def astuple_drift(d: FeatureDrift) -> tuple[Any, ...]:
    """The fields of a drift row in schema order (dataclasses.astuple deep-copies, which is slow in bulk)."""
    return (
        d.feature,
        d.kind,
        d.method,
        d.statistic,
        d.threshold,
        d.alert,
        d.p_value,
        d.primary,
        d.sample_size,
        d.batch_alert,
    )


def drift_statistics(
    reference: pl.DataFrame, analysis: pl.DataFrame, contract: ModelContract, settings: ProfilingSettings | None = None
) -> list[FeatureDrift]:
    """One-shot helper: fit the reference profile and return the drift rows of ``analysis``."""
    settings = settings or ProfilingSettings()
    profile = fit_reference_profile(reference, contract, settings)
    batch = validate_batch(analysis, contract, source="analysis")
    return list(profile_batch(profile, batch, contract, settings, source="analysis").drift)
