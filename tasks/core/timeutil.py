"""One clock: every time driftgate keeps, compares or reports is timezone-aware UTC.

A naive time (a batch's timestamp column without a zone, an ISO string without an offset) is read as UTC;
an aware one is converted to UTC. :func:`time_span` is the one "first and last time of this column".
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, overload

if TYPE_CHECKING:
    import polars as pl


@overload
def utc(value: datetime) -> datetime: ...


@overload
def utc(value: None) -> None: ...


def utc(value: datetime | None) -> datetime | None:
    """``value`` as an aware UTC datetime (naive means UTC); None stays None."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def parse_utc(text: str) -> datetime:
    """An ISO 8601 time as an aware UTC datetime (without an offset it is UTC)."""
    return utc(datetime.fromisoformat(text))


def time_span(frame: pl.DataFrame, column: str | None) -> tuple[datetime | None, datetime | None]:
    """The earliest and latest time of ``column`` in UTC; (None, None) without the column, rows or a datetime
    dtype (a date column has no time of day and no zone: it is not a span here)."""
    if column is None or column not in frame.columns or frame.height == 0:
        return None, None
    stamps = frame.get_column(column)
    if not stamps.dtype.is_temporal():
        return None, None
    start, end = stamps.min(), stamps.max()
    return (utc(start) if isinstance(start, datetime) else None, utc(end) if isinstance(end, datetime) else None)


def utc_column(column: str, dtype: pl.DataType) -> pl.Expr:
    """A datetime column as UTC (naive means UTC, a zoned one is converted), to compare with :func:`utc` bounds."""
    import polars as pl

    expr = pl.col(column)
    if isinstance(dtype, pl.Datetime):
        return expr.dt.replace_time_zone("UTC") if dtype.time_zone is None else expr.dt.convert_time_zone("UTC")
    return expr
