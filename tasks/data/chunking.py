"""Chunking of polars frames and LazyFrames by row count, number of chunks, or time period (NannyML's rules).

- ``Chunking.by_size(n)``: consecutive chunks of ``n`` rows; the remainder is kept as a smaller last chunk
  (``incomplete="keep"``), appended to the last full chunk (``"append"``) or dropped (``"drop"``), as
  NannyML's ``SizeBasedChunker``.
- ``Chunking.by_number(k)``: chunks of ``rows // k`` rows with the same remainder rule, as NannyML's
  ``CountBasedChunker`` (so ``"keep"`` can give k + 1 chunks).
- ``Chunking.by_period("day" | "week" | "month")``: one chunk per calendar period of the timestamp column
  that holds rows (weeks run Monday to Sunday, as pandas' ``W`` periods NannyML uses); rows without a
  timestamp belong to no period.

Every chunk carries its window (:class:`ChunkWindow`): index, a NannyML-style key (``[0:9999]``,
``2025-01-06/2025-01-12``, ``2025-01``), the first and last row index in the source order, and the
first and last instant it covers: for row chunks the earliest and latest timestamp in it, for
period chunks the period's start and its last microsecond.

Rows are chunked in the order given. NannyML sorts by the timestamp first (an unstable sort), so to
reproduce its chunks, sort the data by timestamp (ties in a fixed order) before chunking.

LazyFrames are read with polars' streaming engine: row chunks in one pass (``collect_batches``, re-cut
to exact chunk lengths), period chunks one filtered scan per period (Parquet row-group statistics let a
time-sorted file skip the other periods). Only one chunk is in memory at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from tasks.core.errors import ConfigError, DataError, DtypeError, MissingColumnError
from tasks.core.timeutil import time_span, utc

if TYPE_CHECKING:
    import polars as pl

ChunkPeriod = Literal["day", "week", "month"]
Incomplete = Literal["keep", "append", "drop"]
PERIOD_EVERY = {"day": "1d", "week": "1w", "month": "1mo"}
# Rows per streaming batch: small enough that polars' read-ahead stays a fraction of a chunk.
MAX_STREAM_BATCH = 250_000


@dataclass(frozen=True)
class Chunking:
    """How to cut data into chunks: exactly one of ``size``, ``number`` or ``period``."""

    size: int | None = None
    number: int | None = None
    period: ChunkPeriod | None = None
    incomplete: Incomplete = "keep"

    def __post_init__(self) -> None:
        given = [name for name in ("size", "number", "period") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ConfigError(f"chunking needs exactly one of size, number or period; got {given or 'none'}")
        if self.size is not None and self.size < 1:
            raise ConfigError(f"chunk size must be at least 1, got {self.size}")
        if self.number is not None and self.number < 1:
            raise ConfigError(f"number of chunks must be at least 1, got {self.number}")
        if self.period is not None and self.period not in PERIOD_EVERY:
            raise ConfigError(f"chunk period must be one of {sorted(PERIOD_EVERY)}, got {self.period!r}")
        if self.incomplete not in ("keep", "append", "drop"):
            raise ConfigError(f"incomplete must be 'keep', 'append' or 'drop', got {self.incomplete!r}")

    @classmethod
    def by_size(cls, size: int, incomplete: Incomplete = "keep") -> Chunking:
        return cls(size=size, incomplete=incomplete)

    @classmethod
    def by_number(cls, number: int, incomplete: Incomplete = "keep") -> Chunking:
        return cls(number=number, incomplete=incomplete)

    @classmethod
    def by_period(cls, period: ChunkPeriod) -> Chunking:
        return cls(period=period)

    def describe(self) -> str:
        if self.size is not None:
            return f"chunks of {self.size} rows (remainder: {self.incomplete})"
        if self.number is not None:
            return f"{self.number} chunks (remainder: {self.incomplete})"
        return f"one chunk per {self.period}"


@dataclass(frozen=True)
class ChunkWindow:
    index: int
    key: str
    start_index: int  # first row, in the source's order
    end_index: int  # last row
    start_date: datetime | None
    end_date: datetime | None
    rows: int


def row_slices(rows: int, chunking: Chunking) -> list[tuple[int, int]]:
    """(offset, length) of each row chunk, by NannyML's size/count rules."""
    if chunking.period is not None:
        raise ConfigError("row_slices is for size or number chunking; period chunks follow the timestamps")
    if rows == 0:
        return []
    if chunking.size is not None:
        size = chunking.size
    else:
        assert chunking.number is not None
        size = rows // chunking.number
        if size == 0:
            raise DataError(f"{rows} rows cannot be cut into {chunking.number} chunks of at least one row")
    slices = [(offset, size) for offset in range(0, rows - size + 1, size)]
    remainder = rows % size
    if remainder:
        if chunking.incomplete == "keep" or not slices:
            slices.append((rows - remainder, remainder))
        elif chunking.incomplete == "append":
            offset, length = slices[-1]
            slices[-1] = (offset, length + remainder)
    return slices


def iter_chunks(
    source: pl.DataFrame | pl.LazyFrame, chunking: Chunking, *, timestamp: str | None = None
) -> Iterator[tuple[ChunkWindow, pl.DataFrame]]:
    """Yield (window, rows) for each chunk; a LazyFrame is streamed so only one chunk is held at a time."""
    import polars as pl

    schema = source.collect_schema() if isinstance(source, pl.LazyFrame) else source.schema
    if timestamp is not None and timestamp not in schema:
        raise MissingColumnError("timestamp column for chunking is missing", column=timestamp)
    if chunking.period is not None:
        if timestamp is None:
            raise ConfigError(f"chunking by {chunking.period} needs the contract's timestamp column")
        yield from _period_chunks(source, chunking.period, timestamp, schema[timestamp])
        return
    if isinstance(source, pl.DataFrame):
        pieces: Iterator[pl.DataFrame] = (source.slice(o, n) for o, n in row_slices(source.height, chunking))
        slices = row_slices(source.height, chunking)
    else:
        rows = int(source.select(pl.len()).collect().item())
        slices = row_slices(rows, chunking)
        pieces = _stream_slices(source, [length for _, length in slices])
    for index, ((offset, length), frame) in enumerate(zip(slices, pieces, strict=True)):
        start, end = time_span(frame, timestamp)
        yield (
            ChunkWindow(index, f"[{offset}:{offset + length - 1}]", offset, offset + length - 1, start, end, length),
            frame,
        )
        del frame  # one chunk in memory: drop this one before the next is read


def split(
    frame: pl.DataFrame, chunking: Chunking, *, timestamp: str | None = None
) -> list[tuple[ChunkWindow, pl.DataFrame]]:
    """All chunks of an in-memory frame."""
    return list(iter_chunks(frame, chunking, timestamp=timestamp))


def _stream_slices(source: pl.LazyFrame, lengths: list[int]) -> Iterator[pl.DataFrame]:
    """Re-cut the streaming engine's batches into frames of exactly ``lengths`` rows, in order."""
    import polars as pl

    if not lengths:
        return
    batches = source.collect_batches(chunk_size=min(max(lengths), MAX_STREAM_BATCH), maintain_order=True)
    wanted = iter(lengths)
    want = next(wanted)
    buffer: list[pl.DataFrame] = []
    buffered = 0
    try:
        for batch in batches:
            while batch.height:
                take = min(want - buffered, batch.height)
                buffer.append(batch.slice(0, take))
                buffered += take
                batch = batch.slice(take)
                if buffered == want:
                    # No rechunk: the chunk keeps the batches' buffers instead of copying them.
                    piece = pl.concat(buffer, rechunk=False) if len(buffer) > 1 else buffer[0]
                    buffer, buffered = [], 0
                    yield piece
                    del piece  # not alive while the next chunk is read
                    following = next(wanted, None)
                    if following is None:
                        return
                    want = following
    finally:
        stop = getattr(batches, "stop", None)
        if callable(stop):
            stop()
    raise DataError(f"the source ended before its {len(lengths)} chunks were complete (it changed while read)")


def _period_key(start: datetime, end: datetime, period: ChunkPeriod) -> str:
    # The text of pandas' Period, as NannyML uses for its chunk keys.
    if period == "day":
        return start.strftime("%Y-%m-%d")
    if period == "week":
        return f"{start:%Y-%m-%d}/{end:%Y-%m-%d}"
    return start.strftime("%Y-%m")


def _period_chunks(
    source: pl.DataFrame | pl.LazyFrame, period: ChunkPeriod, timestamp: str, dtype: pl.DataType
) -> Iterator[tuple[ChunkWindow, pl.DataFrame]]:
    import polars as pl

    if dtype == pl.String:
        stamp = pl.col(timestamp).str.to_datetime(strict=False)
    elif dtype.is_temporal():
        stamp = pl.col(timestamp).cast(pl.Datetime("us"))
    else:
        raise DtypeError(f"chunking by {period} needs a datetime column, found {dtype}", column=timestamp)
    every = PERIOD_EVERY[period]
    starts = stamp.dt.truncate(every)
    plan = (
        source.lazy()
        .with_row_index("__row")
        .select(pl.col("__row"), starts.alias("__start"))
        .drop_nulls("__start")
        .group_by("__start")
        .agg(pl.col("__row").min().alias("first"), pl.col("__row").max().alias("last"), pl.len().alias("rows"))
        .sort("__start")
        .collect(engine="streaming")
    )
    for index, row in enumerate(plan.iter_rows(named=True)):
        start: datetime = row["__start"]
        following = _next_period(start, period)
        rows = source.lazy().filter((stamp >= start) & (stamp < following))
        frame = rows.collect(engine="streaming") if isinstance(source, pl.LazyFrame) else rows.collect()
        end = following - timedelta(microseconds=1)
        yield (
            ChunkWindow(
                index=index,
                key=_period_key(start, end, period),
                start_index=int(row["first"]),
                end_index=int(row["last"]),
                start_date=utc(start),
                end_date=utc(end),
                rows=int(row["rows"]),
            ),
            frame,
        )


def _next_period(start: datetime, period: ChunkPeriod) -> datetime:
    if period == "day":
        return start + timedelta(days=1)
    if period == "week":
        return start + timedelta(weeks=1)
    return start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
