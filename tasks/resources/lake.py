"""The monitored batches as driftgate keeps them: scored, with labels once they arrive.

Monitoring writes each batch here; retraining reads its window from here. One Parquet object per batch id,
``<batch_id>.parquet``, in an object store (tasks/resources/objects.py): ``<home>/batches/<model>/`` by default,
or ``<artifact_store>/batches/<model>/`` when the setting names a shared URL, so a batch monitored on one
worker is in the window a retrain on another worker reads. Each object is written whole (atomic per object).
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
    from tasks.resources.objects import ObjectStore

_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def batch_id_for(source: str) -> str:
    """A stable, file-name-safe id from the batch's file name."""
    stem = Path(source).name
    for suffix in (".parquet", ".pq", ".csv"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    return _SAFE.sub("-", stem).strip("-") or "batch"


class BatchLake:
    def __init__(self, root: Path | ObjectStore) -> None:
        from tasks.resources.objects import FolderStore

        self.store: ObjectStore = FolderStore(root) if isinstance(root, Path) else root

    @property
    def location(self) -> str:
        return self.store.url

    def save(self, batch_id: str, frame: pl.DataFrame) -> str:
        """Store the batch (replacing an earlier copy whole); returns where it is."""
        import io

        buffer = io.BytesIO()
        frame.write_parquet(buffer)
        key = f"{batch_id}.parquet"
        self.store.write(key, buffer.getvalue())
        return f"{self.store.url}/{key}"

    def read(self, batch_id: str) -> pl.DataFrame:
        import io

        import polars as pl

        return pl.read_parquet(io.BytesIO(self.store.read(f"{batch_id}.parquet")))

    def batch_ids(self) -> list[str]:
        return sorted(k[: -len(".parquet")] for k in self.store.list_keys() if "/" not in k and k.endswith(".parquet"))

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

        ids = self.batch_ids()
        if not ids:
            raise TrainingError(f"no monitored batches in {self.location}; run `driftgate monitor` first")
        frame = pl.concat([self.read(b) for b in ids], how="diagonal_relaxed")
        ts = contract.timestamp
        if ts and ts in frame.columns and (start is not None or end is not None):
            stamp = utc_column(ts, frame.schema[ts])
            if start is not None:
                frame = frame.filter(stamp >= utc(start))
            if end is not None:
                frame = frame.filter(stamp <= utc(end))
        if labelled_only:
            if contract.target not in frame.columns:
                raise TrainingError(f"no labels have arrived for the batches in {self.location}")
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
        frame = lake.read(batch_id)
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
