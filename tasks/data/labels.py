"""Labels as first-class, late events: read label files, check them together, and join them into the lake.

Labels arrive days after their batch, in files keyed by the contract's entity id, possibly several files
(a glob) at once. Before anything is written, every file of one arrival is read and checked *together*:

- each file has the id and target columns, at least one row, and binary labels (the contract's mapping);
- an id labelled twice with the same value (in one file or across files) is one label, counted as a duplicate;
  an id labelled twice with *different* values is a :class:`LabelConflictError` naming both files;
- an arrival whose labels hold one class only is a :class:`~tasks.core.errors.SingleClassError` naming the files
  (realized ROC AUC and retraining need both classes).

Joining (:func:`tasks.resources.lake.join_into_lake`) then labels the rows of every monitored batch that holds
those ids and accounts for every label: newly labelled rows per batch, ids already labelled (the stored label is kept;
a different stored value is counted as a conflict), ids that match no monitored batch (unknown), and ids
found in more than one batch (reused: each batch gets the label). Nothing is dropped silently: the counts
travel in :class:`LabelJoin` to the audit store, the report and the command line.

Each batch file is rewritten atomically (temp file, then rename), one batch at a time, and only when it gains
labels; a crash in between leaves every batch either before or after its join, and re-sending the same files
labels nothing twice (those ids count as already labelled).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tasks.core.errors import DataError, EmptyBatchError, MissingColumnError, SingleClassError

if TYPE_CHECKING:
    import polars as pl

    from tasks.data.contract import ModelContract

SOURCE_COLUMN = "__label_source"
LABEL_COLUMN = "__label"


class LabelConflictError(DataError):
    """One entity id carries different labels (in one file or across the files of one arrival)."""


@dataclass(frozen=True)
class LabelSet:
    """The labels of one arrival, checked together: one row per entity id (id, target, first source file)."""

    frame: pl.DataFrame
    files: tuple[str, ...]
    rows_read: int  # label rows in all files
    duplicates: int  # rows that repeated an (id, label) pair already seen

    @property
    def ids(self) -> int:
        return self.frame.height

    def describe(self) -> str:
        dup = f", {self.duplicates} duplicate row(s) collapsed" if self.duplicates else ""
        return f"{self.ids} labelled id(s) from {len(self.files)} file(s){dup}"


@dataclass(frozen=True)
class BatchLabels:
    """What one arrival did to one monitored batch."""

    batch_id: str
    new_rows: int  # rows labelled by this arrival
    labelled_rows: int  # rows of the batch with a label now
    rows: int  # rows of the batch
    already_labelled: int = 0  # ids of this arrival the batch had a label for already (kept)
    conflicting: int = 0  # of those, with a different stored label (the stored one is kept)


@dataclass(frozen=True)
class LabelJoin:
    """The accounting of one arrival against the lake: every label ends in exactly one of these counts."""

    labels: LabelSet
    batches: tuple[BatchLabels, ...] = ()
    unknown_ids: int = 0  # ids that match no monitored batch
    reused_ids: int = 0  # ids found in more than one monitored batch (each gets the label)
    notes: tuple[str, ...] = field(default=())

    @property
    def new_rows(self) -> int:
        return sum(b.new_rows for b in self.batches)

    @property
    def touched(self) -> tuple[str, ...]:
        """Batches that gained labels (in batch-id order)."""
        return tuple(b.batch_id for b in self.batches if b.new_rows > 0)

    def describe(self) -> str:
        already = sum(b.already_labelled for b in self.batches)
        conflicting = sum(b.conflicting for b in self.batches)
        parts = [
            f"{self.labels.describe()}: {self.new_rows} row(s) newly labelled in {len(self.touched)} batch(es)",
            f"{already} already labelled"
            + (f" ({conflicting} with a different stored label, kept)" if conflicting else ""),
            f"{self.unknown_ids} unknown id(s)",
            f"{self.reused_ids} id(s) in more than one batch",
        ]
        return "; ".join(parts)


def validate_label_file(frame: pl.DataFrame, contract: ModelContract, *, source: str) -> pl.DataFrame:
    """One label file reduced to (entity id, target) with the contract's 0/1 labels; typed errors name the file."""
    import polars as pl

    from tasks.data.contract import _canonical_target

    for column in (contract.entity_id, contract.target):
        if column not in frame.columns:
            raise MissingColumnError("label file lacks a column", source=source, column=column)
    if frame.height == 0:
        raise EmptyBatchError("label file has no rows", source=source)
    keys = frame.select(contract.entity_id, contract.target)
    if keys.get_column(contract.entity_id).null_count():
        raise DataError("label file has rows without an entity id", source=source, column=contract.entity_id)
    keys = keys.filter(pl.col(contract.target).is_not_null())
    return _canonical_target(keys, contract, source)


def read_labels(paths: Sequence[str], contract: ModelContract) -> LabelSet:
    """Read and check every label file of one arrival together (see the module docstring)."""
    import polars as pl

    from tasks.data.files import read_file

    if not paths:
        raise DataError("no label file given")
    frames = [
        validate_label_file(read_file(path), contract, source=path).with_columns(pl.lit(str(path)).alias(SOURCE_COLUMN))
        for path in paths
    ]
    stacked = pl.concat(frames, how="vertical_relaxed")
    ident, target = contract.entity_id, contract.target
    per_id = stacked.group_by(ident, maintain_order=True).agg(
        pl.col(target).n_unique().alias("values"),
        pl.col(target).first(),
        pl.col(SOURCE_COLUMN).first(),
        pl.col(SOURCE_COLUMN).unique(maintain_order=True).alias("sources"),
        pl.len().alias("copies"),
    )
    conflicts = per_id.filter(pl.col("values") > 1)
    if conflicts.height:
        example = conflicts.row(0, named=True)
        files = sorted({s for row in conflicts.get_column("sources").to_list() for s in row})
        raise LabelConflictError(
            f"{conflicts.height} id(s) carry different labels (e.g. id {example[ident]!r} in "
            f"{' and '.join(Path(s).name for s in example['sources'])}); fix the files and send them again",
            source=", ".join(files[:4]),
            column=ident,
        )
    classes = per_id.get_column(target).unique().to_list()
    if len(classes) < 2:
        raise SingleClassError(
            f"the labels of this arrival hold a single class {classes}; realized performance needs both 0 and 1 "
            "(send them together with labels of the other class)",
            source=", ".join(str(p) for p in paths[:4]) + (" ..." if len(paths) > 4 else ""),
            column=target,
        )
    frame = per_id.select(ident, target, SOURCE_COLUMN)
    return LabelSet(
        frame=frame,
        files=tuple(str(p) for p in paths),
        rows_read=stacked.height,
        duplicates=stacked.height - frame.height,
    )


def join_frame(batch: pl.DataFrame, labels: LabelSet, contract: ModelContract) -> tuple[pl.DataFrame, BatchLabels]:
    """Label the rows of one batch frame whose ids carry a label; stored labels are kept (counted when they differ)."""
    import polars as pl

    ident, target = contract.entity_id, contract.target
    keys = labels.frame.select(ident, pl.col(target).alias(LABEL_COLUMN))
    if batch.get_column(ident).dtype != keys.get_column(ident).dtype:
        keys = keys.with_columns(pl.col(ident).cast(batch.get_column(ident).dtype, strict=False))
    joined = batch.join(keys, on=ident, how="left", maintain_order="left")
    arrived = pl.col(LABEL_COLUMN).is_not_null()
    if target in joined.columns:
        stored = pl.col(target).is_not_null()
        counts = joined.select(
            (arrived & ~stored).sum().alias("new"),
            (arrived & stored).sum().alias("already"),
            (arrived & stored & (pl.col(target).cast(pl.Int8) != pl.col(LABEL_COLUMN))).sum().alias("conflicting"),
        ).row(0, named=True)
        merged = pl.coalesce(pl.col(target).cast(pl.Int8), pl.col(LABEL_COLUMN).cast(pl.Int8))
    else:
        counts = {"new": int(joined.get_column(LABEL_COLUMN).is_not_null().sum()), "already": 0, "conflicting": 0}
        merged = pl.col(LABEL_COLUMN).cast(pl.Int8)
    out = joined.with_columns(merged.alias(target)).drop(LABEL_COLUMN)
    return out, BatchLabels(
        batch_id="",
        new_rows=int(counts["new"]),
        labelled_rows=int(out.get_column(target).is_not_null().sum()),
        rows=out.height,
        already_labelled=int(counts["already"]),
        conflicting=int(counts["conflicting"]),
    )
