"""Training windows and the older rows a back-test may use, chosen in time order and deterministically.

Three window kinds (``training.window``):

- ``sliding``: the newest ``training.window_rows`` labelled rows only;
- ``expanding``: the labelled reference plus every labelled monitored row;
- ``reference_plus_recent``: a seeded sample of ``training.reference_rows`` reference rows, each
  weighted ``training.reference_weight``, plus the newest ``training.window_rows`` rows (weight 1).

The *reference* is the labelled data the first model was trained on. ``driftgate bootstrap`` keeps a
copy at ``settings.resolved_reference_path`` (``<home>/reference.parquet`` unless
``reference_path`` names another file), so that it outlives the file the user pointed at.

Whatever the kind, the gate's holdout is the newest ``training.holdout_fraction`` of the *recent*
rows, and validation (early stopping, pruning, model choice) is the newest
``training.validation_fraction`` of the recent rows left for training: reference rows are never
held out, and no row newer than a training row is ever trained on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tasks.core.errors import TrainingError
from tasks.core.settings import TrainingSettings
from tasks.core.timeutil import utc, utc_column
from tasks.data.contract import ModelContract, validate_batch
from tasks.training.train import WEIGHT_COLUMN, time_ordered_split

if TYPE_CHECKING:
    import polars as pl

# Fewer recent rows than this cannot give a holdout and a validation tail worth the name.
MIN_RECENT_ROWS = 200


@dataclass(frozen=True)
class TrainingWindow:
    """The rows of one retrain: what trains (with weights), and the newest rows the gate judges on."""

    kind: str
    train: pl.DataFrame  # time-ordered; WEIGHT_COLUMN holds each row's weight
    holdout: pl.DataFrame  # the newest recent rows: never trained or tuned on
    recent_rows: int  # recent rows in ``train``
    reference_rows: int  # reference rows in ``train``
    reference_weight: float | None
    validation_fraction: float  # of ``train``: the validation tail is this share, all recent rows
    recent_start: datetime | None  # the oldest recent row: older rows are what a back-test may use

    @property
    def weighted(self) -> bool:
        return self.reference_weight is not None and self.reference_weight != 1.0

    def summary(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "recent_start": self.recent_start.isoformat() if self.recent_start else None,
            "train_rows": self.train.height,
            "recent_rows": self.recent_rows,
            "reference_rows": self.reference_rows,
            "reference_weight": self.reference_weight,
            "holdout_rows": self.holdout.height,
            "validation_fraction": self.validation_fraction,
        }


def model_columns(contract: ModelContract) -> list[str]:
    """The columns a training or back-test row needs: id, timestamp, features, target."""
    timestamp = [contract.timestamp] if contract.timestamp else []
    return [contract.entity_id, *timestamp, *contract.feature_names, contract.target]


def row_keys(frame: pl.DataFrame, contract: ModelContract) -> pl.DataFrame:
    """What identifies a row across files: its entity id and, when the contract has one, its timestamp.

    Keys are normalised (id as text, timestamps in microseconds) so that files written with other
    integer widths or time units still match.
    """
    return frame.select(_key_exprs(contract)).unique(maintain_order=True)


_KEY_ID = "__driftgate_key_id"
_KEY_TS = "__driftgate_key_ts"


def _key_exprs(contract: ModelContract) -> list[pl.Expr]:
    import polars as pl

    exprs = [pl.col(contract.entity_id).cast(pl.String).alias(_KEY_ID)]
    if contract.timestamp:
        exprs.append(pl.col(contract.timestamp).dt.cast_time_unit("us").alias(_KEY_TS))
    return exprs


def without_rows(frame: pl.DataFrame, keys: pl.DataFrame, contract: ModelContract) -> pl.DataFrame:
    """``frame`` minus the rows whose keys (from :func:`row_keys`) appear in ``keys``."""
    if not keys.height or not frame.height:
        return frame
    marked = frame.with_columns(_key_exprs(contract))
    return marked.join(keys, on=keys.columns, how="anti").drop(keys.columns)


def _labelled(frame: pl.DataFrame, contract: ModelContract, source: str) -> pl.DataFrame:
    import polars as pl

    checked = validate_batch(frame, contract, source=source, require_target=True)
    if contract.timestamp:
        # One time unit everywhere, so that rows of the reference and of the lake concatenate.
        checked = checked.with_columns(pl.col(contract.timestamp).dt.cast_time_unit("us"))
    return checked.filter(pl.col(contract.target).is_not_null()).select(model_columns(contract))


def _time_sorted(frame: pl.DataFrame, contract: ModelContract) -> pl.DataFrame:
    return frame.sort(contract.timestamp, maintain_order=True) if contract.timestamp else frame


def assemble_window(
    recent: pl.DataFrame,
    reference: pl.DataFrame | None,
    contract: ModelContract,
    settings: TrainingSettings,
) -> TrainingWindow:
    """Split ``recent`` (labelled monitored rows) into training rows and the gate's holdout, and add
    the reference as ``settings.window`` asks. Deterministic given ``settings.seed``.
    """
    import numpy as np
    import polars as pl

    if recent.height < MIN_RECENT_ROWS:
        raise TrainingError(
            f"the retraining window holds {recent.height} recent labelled rows; need at least {MIN_RECENT_ROWS}"
        )
    rows = _time_sorted(_labelled(recent, contract, "recent rows of the training window"), contract)
    if rows.height < recent.height:
        raise TrainingError(
            f"{recent.height - rows.height} recent rows have no label in column {contract.target!r}; "
            "pass labelled rows only"
        )
    recent_train, holdout = time_ordered_split(rows, contract, settings.holdout_fraction)

    kind = settings.window
    chosen: pl.DataFrame | None = None
    weight: float | None = None
    if kind != "sliding":
        if reference is None:
            if kind == "reference_plus_recent":
                raise TrainingError(
                    "training.window 'reference_plus_recent' needs the labelled reference, and none is kept "
                    "(run `driftgate bootstrap REFERENCE_FILE` or set reference_path)"
                )
        else:
            chosen = _older_reference(reference, rows, contract)
            if kind == "reference_plus_recent":
                weight = settings.reference_weight
                if chosen.height > settings.reference_rows:
                    rng = np.random.default_rng(settings.seed)
                    picked = np.sort(rng.choice(chosen.height, size=settings.reference_rows, replace=False))
                    chosen = chosen[picked]
    parts = [recent_train.with_columns(pl.lit(1.0).alias(WEIGHT_COLUMN))]
    if chosen is not None and chosen.height:
        parts.insert(0, chosen.with_columns(pl.lit(weight or 1.0).alias(WEIGHT_COLUMN)))
    train = _time_sorted(pl.concat(parts, how="vertical"), contract)
    reference_rows = train.height - recent_train.height
    # Validation must be recent rows only: its share of the whole training frame shrinks accordingly.
    validation = settings.validation_fraction * recent_train.height / train.height
    return TrainingWindow(
        kind=kind,
        train=train,
        holdout=holdout,
        recent_rows=recent_train.height,
        reference_rows=reference_rows,
        reference_weight=weight if reference_rows else None,
        validation_fraction=validation,
        recent_start=recent_train.get_column(contract.timestamp).min() if contract.timestamp else None,  # type: ignore[arg-type]
    )


def _older_reference(reference: pl.DataFrame, recent: pl.DataFrame, contract: ModelContract) -> pl.DataFrame:
    """Labelled reference rows older than every recent row, and not recent rows themselves."""
    import polars as pl

    rows = _labelled(reference, contract, "labelled reference")
    if contract.timestamp:
        first_recent = recent.get_column(contract.timestamp).min()
        rows = rows.filter(pl.col(contract.timestamp) < first_recent)
    rows = without_rows(rows, row_keys(recent, contract), contract)
    return _time_sorted(rows, contract)


@dataclass(frozen=True)
class OlderRows:
    """The back-test sample: older labelled rows that neither compared model trained on."""

    rows: pl.DataFrame
    available: int  # eligible rows before sampling
    pool: int  # labelled rows considered
    before: datetime | None
    note: str  # why rows were left out, or why there are none


def older_rows(
    pool: pl.DataFrame,
    contract: ModelContract,
    *,
    before: datetime | None,
    trained_on: Sequence[pl.DataFrame],
    trained_between: Sequence[tuple[datetime | None, datetime | None]] = (),
    max_rows: int,
    seed: int,
) -> OlderRows:
    """Labelled rows of ``pool`` older than ``before`` that no compared model trained on; a seeded
    sample of at most ``max_rows`` of them, in time order.

    ``trained_on`` holds row keys (entity id, timestamp) of training rows; ``trained_between`` the
    time spans of models whose rows are not known one by one (versions registered before driftgate
    kept them): every row inside such a span is left out.
    """
    import numpy as np
    import polars as pl

    if not contract.timestamp:
        return OlderRows(pool.head(0), 0, pool.height, None, "the contract has no timestamp, so no row is known older")
    if before is None:
        return OlderRows(pool.head(0), 0, pool.height, None, "the candidate's training window has no start time")
    stamp = utc_column(contract.timestamp, pool.schema[contract.timestamp])
    rows = _labelled(pool, contract, "back-test pool").filter(stamp < utc(before))
    older = rows.height
    for keys in trained_on:
        rows = without_rows(rows, keys, contract)
    for start, end in trained_between:
        inside = pl.lit(True)
        if start is not None:
            inside = inside & (stamp >= utc(start))
        if end is not None:
            inside = inside & (stamp <= utc(end))
        rows = rows.filter(~inside)
    available = rows.height
    note = f"{older - available} of {older} older rows left out as training rows of a compared model"
    if rows.height > max_rows:
        rng = np.random.default_rng(seed)
        rows = rows[np.sort(rng.choice(rows.height, size=max_rows, replace=False))]
    return OlderRows(_time_sorted(rows, contract), available, pool.height, before, note)
