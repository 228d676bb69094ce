"""One clock: utc() and time_span() in tasks/core/timeutil.py, and the windows chunking and profiling report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import polars as pl

from tasks.core.settings import ProfilingSettings
from tasks.core.timeutil import parse_utc, time_span, utc
from tasks.data.chunking import Chunking, iter_chunks
from tasks.data.contract import validate_batch
from tasks.drift.profiling import profile_batch
from tasks.drift.reference import fit_reference_profile
from tests.support.streams import CONTRACT, stream

BERLIN_WINTER = timezone(timedelta(hours=1))


def test_utc_reads_naive_as_utc_and_converts_aware_times() -> None:
    assert utc(datetime(2025, 1, 1, 12)) == datetime(2025, 1, 1, 12, tzinfo=UTC)
    converted = utc(datetime(2025, 1, 1, 12, tzinfo=BERLIN_WINTER))
    assert converted.tzinfo is UTC and converted == datetime(2025, 1, 1, 11, tzinfo=UTC)
    assert utc(None) is None
    assert parse_utc("2025-01-01T12:00:00") == parse_utc("2025-01-01T13:00:00+01:00") == converted.replace(hour=12)
    assert parse_utc("2025-01-01T12:00:00").tzinfo is UTC


def test_time_span_is_utc_whatever_the_column_zone() -> None:
    naive = pl.DataFrame({"ts": [datetime(2025, 1, 1, 12), datetime(2025, 1, 2, 6)]})
    zoned = naive.with_columns(pl.col("ts").dt.replace_time_zone("UTC").dt.convert_time_zone("Europe/Berlin"))
    start, end = time_span(naive, "ts")
    assert (start, end) == (datetime(2025, 1, 1, 12, tzinfo=UTC), datetime(2025, 1, 2, 6, tzinfo=UTC))
    assert time_span(zoned, "ts") == (start, end)
    assert start is not None and start.tzinfo is UTC
    assert time_span(naive, None) == time_span(naive, "other") == time_span(naive.head(0), "ts") == (None, None)
    assert time_span(pl.DataFrame({"ts": ["2025-01-01"]}), "ts") == (None, None)


def test_chunk_windows_and_batch_profiles_report_the_same_utc_span() -> None:
    frame = stream(3000, seed=5)
    windows = [window for window, _ in iter_chunks(frame, Chunking.by_size(1000), timestamp="ts")]
    assert [(w.start_date, w.end_date) for w in windows] == [
        time_span(frame.slice(i * 1000, 1000), "ts") for i in range(3)
    ]
    assert all(w.start_date is not None and w.start_date.tzinfo is UTC for w in windows)
    by_day = [window for window, _ in iter_chunks(frame, Chunking.by_period("day"), timestamp="ts")]
    assert all(w.start_date is not None and w.start_date.tzinfo is UTC for w in by_day)

    settings = ProfilingSettings(chunk_size=1000)
    profile = fit_reference_profile(stream(4000, seed=6), CONTRACT, settings)
    batch = validate_batch(stream(1000, seed=7, first_id=10**6), CONTRACT, source="batch")
    result = profile_batch(profile, batch, CONTRACT, settings)
    assert (result.window_start, result.window_end) == time_span(batch, "ts")
    assert result.window_start is not None and result.window_start.tzinfo is UTC


def test_stored_batches_are_windowed_by_utc_bounds_whatever_their_column_zone(tmp_path: Path) -> None:
    """A retrain's window arrives UTC-aware; the batches it selects from may hold naive or zoned times."""
    from tasks.resources.lake import BatchLake

    naive = stream(72, seed=8).with_columns(pl.lit(1, dtype=pl.Int8).alias("y"))  # 20-minute steps from 2025-01-01
    zoned = naive.with_columns(pl.col("ts").dt.replace_time_zone("UTC").dt.convert_time_zone("Europe/Berlin"))
    start, end = datetime(2025, 1, 1, 4, tzinfo=UTC), datetime(2025, 1, 1, 13, 0, tzinfo=BERLIN_WINTER)
    for name, frame in (("naive", naive), ("zoned", zoned)):
        lake = BatchLake(tmp_path / name)
        lake.save("day-1", frame)
        window = lake.window(CONTRACT, start=start, end=end)
        assert window.height == 25, name  # 04:00 to 12:00 UTC, both ends included
        assert time_span(window, "ts") == (start, end.astimezone(UTC))
