"""One conversion of Python values to plain JSON, for every payload driftgate stores or sends (audit rows, outbox
events, Prefect events): NaN and infinities become null (PostgreSQL's JSON and strict JSON parsers reject them),
datetimes ISO strings in UTC, enums their values, dataclasses dicts, numpy scalars numbers, anything else its
string."""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

from tasks.core.timeutil import utc


def jsonable(value: Any) -> Any:
    """Plain JSON values: NaN becomes null (Postgres JSON rejects it), datetimes ISO strings, numpy scalars numbers."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return utc(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, Path):
        return str(value)
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return jsonable(item())
    return str(value)
