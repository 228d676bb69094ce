"""The monitored batches as driftgate keeps them: scored, with labels once they arrive.

Monitoring writes each batch here; retraining reads its window from here. Files are
Parquet, written atomically, one per batch id.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from tasks.core.errors import TrainingError
from tasks.core.timeutil import utc, utc_column

if TYPE_CHECKING:
    import polars as pl

    from tasks.data.contract import ModelContract
    from tasks.data.labels import LabelJoin, LabelSet

_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def batch_id_for(source: str) -> str:
    """A stable, file-name-safe id from the batch's file name."""
    stem = Path(source).name
    for suffix in (".parquet", ".pq", ".csv"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    return _SAFE.sub("-", stem).strip("-") or "batch"


class BatchLake:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, batch_id: str) -> Path:
        return self.root / f"{batch_id}.parquet"

    def save(self, batch_id: str, frame: pl.DataFrame) -> Path:
        from tasks.data.files import write_frame

        return write_frame(frame, self.path(batch_id))

    def batch_ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.stem for p in self.root.glob("*.parquet"))

    def window(
        self,
        contract: ModelContract,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        max_rows: int | None = None,
        labelled_only: bool = True,
    ) -> pl.DataFrame:
        """Rows of stored batches within [start, end] (by timestamp), newest max_rows kept, time-ordered."""
        import polars as pl

        paths = [self.path(b) for b in self.batch_ids()]
        if not paths:
            raise TrainingError(f"no monitored batches in {self.root}; run `driftgate monitor` first")
        frame = pl.concat([pl.read_parquet(p) for p in paths], how="diagonal_relaxed")
        ts = contract.timestamp
        if ts and ts in frame.columns and (start is not None or end is not None):
            stamp = utc_column(ts, frame.schema[ts])
            if start is not None:
                frame = frame.filter(stamp >= utc(start))
            if end is not None:
                frame = frame.filter(stamp <= utc(end))
        if labelled_only:
            if contract.target not in frame.columns:
                raise TrainingError(f"no labels have arrived for the batches in {self.root}")
            frame = frame.filter(pl.col(contract.target).is_not_null())
        if ts:
            frame = frame.sort(ts)
        if max_rows is not None and frame.height > max_rows:
            frame = frame.tail(max_rows)
        return frame


def join_into_lake(lake: BatchLake, labels: LabelSet, contract: ModelContract) -> LabelJoin:
    """Join one arrival into every monitored batch holding its ids; see the module docstring for the accounting.

    Ids that match no batch are counted, not refused: the caller decides whether that is an error."""
    import polars as pl

    from tasks.data.labels import BatchLabels, LabelJoin, join_frame

    ident = contract.entity_id
    matched: pl.Series | None = None
    results: list[BatchLabels] = []
    for batch_id in lake.batch_ids():
        frame = pl.read_parquet(lake.path(batch_id))
        if ident not in frame.columns:
            continue
        present = labels.frame.get_column(ident).is_in(frame.get_column(ident).implode())
        if not present.any():
            continue
        found = labels.frame.get_column(ident).filter(present)
        matched = found if matched is None else pl.concat([matched, found])
        joined, counts = join_frame(frame, labels, contract)
        if counts.new_rows:
            lake.save(batch_id, joined)
        results.append(
            BatchLabels(
                batch_id=batch_id,
                new_rows=counts.new_rows,
                labelled_rows=counts.labelled_rows,
                rows=counts.rows,
                already_labelled=counts.already_labelled,
                conflicting=counts.conflicting,
            )
        )
    if matched is None:
        return LabelJoin(labels=labels, unknown_ids=labels.ids)
    per_id = matched.value_counts(name="batches")
    return LabelJoin(
        labels=labels,
        batches=tuple(results),
        unknown_ids=labels.ids - per_id.height,
        reused_ids=int((per_id.get_column("batches") > 1).sum()),
    )
