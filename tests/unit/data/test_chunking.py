"""Chunking by rows, count and period over frames and lazy Parquet/CSV sources; chunked profiling end to end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tasks.core.errors import ConfigError, DtypeError, MissingColumnError
from tasks.core.settings import ProfilingSettings
from tasks.data.chunking import Chunking, iter_chunks, row_slices, split
from tasks.drift.chunked import iter_chunk_profiles, profile_chunks
from tasks.drift.reference import fit_reference_profile
from tests.support.streams import CONTRACT, stream

SETTINGS = ProfilingSettings(chunk_size=2_000)


def test_row_slices_follow_nannyml_rules() -> None:
    assert row_slices(10, Chunking.by_size(4)) == [(0, 4), (4, 4), (8, 2)]
    assert row_slices(10, Chunking.by_size(4, "append")) == [(0, 4), (4, 6)]
    assert row_slices(10, Chunking.by_size(4, "drop")) == [(0, 4), (4, 4)]
    assert row_slices(10, Chunking.by_number(3)) == [(0, 3), (3, 3), (6, 3), (9, 1)]
    assert row_slices(3, Chunking.by_size(5, "drop")) == [(0, 3)]  # never nothing at all
    assert row_slices(0, Chunking.by_size(5)) == []


@pytest.mark.parametrize(
    "chunking",
    [Chunking.by_size(700), Chunking.by_size(700, "append"), Chunking.by_number(4), Chunking.by_period("day")],
)
def test_lazy_parquet_and_csv_chunks_equal_in_memory_chunks(tmp_path: Path, chunking: Chunking) -> None:
    frame = stream(3_000, 1)
    frame.write_parquet(tmp_path / "s.parquet", row_group_size=256)
    frame.write_csv(tmp_path / "s.csv")
    eager = split(frame, chunking, timestamp="ts")
    for source in (pl.scan_parquet(tmp_path / "s.parquet"), pl.scan_csv(tmp_path / "s.csv", try_parse_dates=True)):
        lazy = list(iter_chunks(source, chunking, timestamp="ts"))
        assert [w for w, _ in lazy] == [w for w, _ in eager]
        for (_, a), (_, b) in zip(lazy, eager, strict=True):
            assert a.get_column("id").to_list() == b.get_column("id").to_list()
            np.testing.assert_allclose(a.get_column("x0").to_numpy(), b.get_column("x0").to_numpy())


def test_windows_name_rows_and_instants() -> None:
    frame = stream(200, 2)
    (first, chunk), *_ = split(frame, Chunking.by_size(72), timestamp="ts")
    assert chunk.height == 72
    assert (first.key, first.start_index, first.end_index, first.rows) == ("[0:71]", 0, 71, 72)
    assert (first.start_date, first.end_date) == (  # naive timestamps read as UTC
        datetime(2025, 1, 1, tzinfo=UTC),
        datetime(2025, 1, 1, tzinfo=UTC) + timedelta(minutes=20 * 71),
    )
    days = split(frame, Chunking.by_period("day"), timestamp="ts")
    assert [w.key for w, _ in days] == ["2025-01-01", "2025-01-02", "2025-01-03"]
    assert days[1][0].start_date == datetime(2025, 1, 2, tzinfo=UTC)
    assert days[1][0].end_date == datetime(2025, 1, 2, 23, 59, 59, 999_999, tzinfo=UTC)
    assert sum(w.rows for w, _ in days) == 200 and days[1][0].rows == 72
    weeks = split(stream(2_000, 3), Chunking.by_period("week"), timestamp="ts")
    assert weeks[0][0].key == "2024-12-30/2025-01-05"  # Monday to Sunday, as pandas' weekly periods


def test_bad_chunking_is_a_typed_error() -> None:
    with pytest.raises(ConfigError, match="exactly one"):
        Chunking(size=10, number=3)
    with pytest.raises(ConfigError, match="at least 1"):
        Chunking.by_size(0)
    with pytest.raises(ConfigError, match="period"):
        Chunking(period="hour")  # type: ignore[arg-type]
    frame = stream(50, 4)
    with pytest.raises(ConfigError, match="timestamp"):
        split(frame, Chunking.by_period("day"))
    with pytest.raises(MissingColumnError, match="when"):
        split(frame, Chunking.by_period("day"), timestamp="when")
    with pytest.raises(DtypeError, match="datetime"):
        split(frame, Chunking.by_period("day"), timestamp="x0")


@pytest.mark.slow
def test_calibrated_thresholds_on_a_chunked_stream(tmp_path: Path) -> None:
    """Three references, each followed by 50 calm chunks of 1,000 rows and then 3 chunks where x0's mean
    has moved by 0.25 sd: each (feature, statistic) alerts on fewer than 5% of the 150 calm chunks, and the
    shift is caught in the first chunk after it starts, every time."""
    calm_chunks, chunk = 50, 1_000
    settings = ProfilingSettings(chunk_size=chunk)
    calm_parts, shifted_parts = [], []
    for seed in (10, 20, 30):
        profile = fit_reference_profile(stream(40_000, seed), CONTRACT, settings)
        analysis = stream(
            (calm_chunks + 3) * chunk, seed + 1, first_id=10**6, shift_from=calm_chunks * chunk, shift=0.25
        )
        path = tmp_path / f"analysis-{seed}.parquet"
        analysis.write_parquet(path)
        results = profile_chunks(profile, pl.scan_parquet(path), CONTRACT, settings, Chunking.by_size(chunk))
        assert results.get_column("chunk_index").n_unique() == calm_chunks + 3
        assert results.get_column("quality_passed").all()
        calm_parts.append(results.filter(pl.col("chunk_index") < calm_chunks))
        shifted_parts.append(results.filter(pl.col("chunk_index") >= calm_chunks))
    calm = pl.concat(calm_parts)
    rates = calm.group_by("feature", "method").agg(pl.col("alert").mean().alias("rate"))
    print("\nworst calm alert rates:", rates.sort("rate", descending=True).head(5).rows())
    print("pooled calm alert rate:", calm.get_column("alert").mean())
    assert rates.height == 4 * 5 + 5 + 1  # 4 numeric x 5 methods, the categorical tier x 5, the joint PCA row
    assert rates.get_column("rate").max() < 0.05
    assert calm.get_column("alert").mean() < 0.02  # type: ignore[operator]
    for shifted in shifted_parts:
        x0 = shifted.filter((pl.col("feature") == "x0") & pl.col("primary")).sort("chunk_index")
        assert x0.get_column("alert").to_list() == [True, True, True]
        others = shifted.filter(pl.col("primary") & pl.col("feature").is_in(["x1", "x2", "x3", "tier"]))
        assert others.get_column("alert").sum() <= 1


def test_bad_chunks_become_quality_failures_not_crashes() -> None:
    profile = fit_reference_profile(stream(5_000, 20), CONTRACT, SETTINGS)
    analysis = stream(3_000, 21, first_id=10**6).with_columns(
        # NaN in the second chunk, a repeated id in the third.
        pl.when(pl.col("id") == 10**6 + 1_500).then(float("nan")).otherwise("x1").alias("x1"),
        pl.when(pl.col("id") == 10**6 + 2_500).then(10**6 + 2_501).otherwise("id").alias("id"),
    )
    chunks = list(iter_chunk_profiles(profile, analysis.lazy(), CONTRACT, SETTINGS, Chunking.by_size(1_000)))
    failures = [{(i.check, i.column) for i in result.quality.issues if i.severity == "fail"} for _, result in chunks]
    assert failures == [set(), {("non_finite", "x1")}, {("duplicate_id", "id")}]
    second = chunks[1][1]
    assert next(d for d in second.drift if d.feature == "x1" and d.primary).sample_size == 999
    with pytest.raises(MissingColumnError, match="x3"):
        profile_chunks(profile, analysis.drop("x3").lazy(), CONTRACT, SETTINGS, Chunking.by_size(1_000))


def test_chunks_profiled_in_parallel_equal_chunks_profiled_one_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import tasks.drift.chunked

    profile = fit_reference_profile(stream(5_000, 30), CONTRACT, SETTINGS)
    analysis = stream(6_500, 31, first_id=10**6).lazy()
    parallel = profile_chunks(profile, analysis, CONTRACT, SETTINGS, Chunking.by_size(1_000))
    monkeypatch.setattr(tasks.drift.chunked, "PARALLEL_CHUNK_BYTES", 0)  # every chunk "too big": one at a time
    serial = profile_chunks(profile, analysis, CONTRACT, SETTINGS, Chunking.by_size(1_000))
    assert parallel.get_column("chunk_index").unique(maintain_order=True).to_list() == list(range(7))
    assert parallel.equals(serial)


def test_ordered_parallel_map_keeps_order_and_reads_at_most_in_flight_items_ahead() -> None:
    import threading
    import time

    from tasks.core.parallel import ordered_parallel_map

    taken = 0
    done = 0
    ahead: list[int] = []
    lock = threading.Lock()

    def items():  # type: ignore[no-untyped-def]
        nonlocal taken
        for i in range(12):
            with lock:
                taken += 1
                ahead.append(taken - done)
            yield i

    def work(i: int) -> int:
        nonlocal done
        time.sleep(0.01 * (i % 3))
        with lock:
            done += 1
        return i * i

    assert list(ordered_parallel_map(work, items(), 2)) == [i * i for i in range(12)]
    assert max(ahead) <= 2
