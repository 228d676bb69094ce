"""The monitored model's contract, and validation of every batch against it.

The contract names the features (with kind and, for categoricals, the known categories),
the target, the prediction and probability columns, the timestamp, the entity id and the
slice columns. Every batch is validated at the boundary so that a bad file fails with a
typed error naming the column, never deep inside a library.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator

from tasks.core.errors import (
    ContractError,
    DataError,
    DtypeError,
    EmptyBatchError,
    MissingColumnError,
    NonFiniteError,
    ProbabilityRangeError,
    SingleClassError,
)

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

FeatureKind = Literal["numeric", "categorical", "boolean"]


class FeatureSpec(BaseModel):
    name: str
    kind: FeatureKind
    categories: list[str] | None = Field(
        None, description="known categories (categorical only); others count as unseen"
    )


class ModelContract(BaseModel):
    """What a batch of the monitored model must look like."""

    name: str
    problem_type: Literal["binary_classification"] = "binary_classification"
    features: list[FeatureSpec]
    target: str
    probability: str = "y_pred_proba"
    prediction: str = "y_pred"
    timestamp: str | None = None
    entity_id: str
    slices: list[str] = Field(default_factory=list)
    positive_label: int = 1

    @model_validator(mode="after")
    def _consistent(self) -> ModelContract:
        names = [f.name for f in self.features]
        if not names:
            raise ValueError("a contract needs at least one feature")
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"duplicate feature names: {sorted(dupes)}")
        reserved = {self.target, self.probability, self.prediction, self.entity_id} | (
            {self.timestamp} if self.timestamp else set()
        )
        clash = reserved & set(names)
        if clash:
            raise ValueError(f"columns used both as feature and as target/prediction/id/timestamp: {sorted(clash)}")
        unknown = [s for s in self.slices if s not in names]
        if unknown:
            raise ValueError(f"slice columns must be features of the contract; not features: {unknown}")
        return self

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def feature(self, name: str) -> FeatureSpec:
        for spec in self.features:
            if spec.name == name:
                return spec
        raise ContractError(f"feature {name!r} is not in contract {self.name!r}")

    # --- persistence ----------------------------------------------------------------
    def save(self, path: Path) -> Path:
        import yaml

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: Path) -> ModelContract:
        import yaml

        if not path.is_file():
            raise ContractError(
                f"model contract {path} does not exist; write one with `driftgate contract REFERENCE_FILE ...`"
            )
        try:
            return cls.model_validate(yaml.safe_load(path.read_text()))
        except (yaml.YAMLError, ValidationError) as exc:
            raise ContractError(f"model contract {path} is invalid: {exc}") from exc


def infer_contract(
    frame: pl.DataFrame,
    *,
    name: str,
    target: str,
    entity_id: str,
    timestamp: str | None = None,
    probability: str = "y_pred_proba",
    prediction: str = "y_pred",
    slices: list[str] | None = None,
    exclude: list[str] | None = None,
    max_categories: int = 50,
    source: str = "reference",
) -> ModelContract:
    """Infer a contract from a reference frame: every other column becomes a feature.

    The target, entity id and timestamp are checked first (:func:`check_key_columns`): a reference the
    pipeline could not train or window on is refused here, with the option to change, not at bootstrap.
    """
    import polars as pl

    check_key_columns(frame, target=target, entity_id=entity_id, timestamp=timestamp, source=source)
    required = [target, entity_id] + ([timestamp] if timestamp else [])
    skip = set(required) | {probability, prediction} | set(exclude or [])
    features: list[FeatureSpec] = []
    for column, dtype in frame.schema.items():
        if column in skip:
            continue
        if dtype == pl.Boolean:
            features.append(FeatureSpec(name=column, kind="boolean"))
        elif dtype.is_numeric():
            features.append(FeatureSpec(name=column, kind="numeric"))
        elif dtype in (pl.String, pl.Categorical, pl.Enum):
            values = frame.get_column(column).cast(pl.String).drop_nulls().unique().sort().to_list()
            if len(values) > max_categories:
                raise DtypeError(
                    f"text column has {len(values)} distinct values (> {max_categories}); exclude it or encode it",
                    source=source,
                    column=column,
                )
            features.append(FeatureSpec(name=column, kind="categorical", categories=values))
        else:
            raise DtypeError(f"unsupported dtype {dtype}; pass --exclude to leave it out", source=source, column=column)
    try:
        return ModelContract(
            name=name,
            features=features,
            target=target,
            probability=probability,
            prediction=prediction,
            timestamp=timestamp,
            entity_id=entity_id,
            slices=slices or [],
        )
    except ValidationError as exc:
        raise ContractError(f"cannot build a contract from {source}: {exc}") from exc


def validate_batch(
    frame: pl.DataFrame,
    contract: ModelContract,
    *,
    source: str,
    require_target: bool = False,
    require_scores: bool = False,
    min_rows: int = 1,
    check_finite: bool = True,
) -> pl.DataFrame:
    """Check a batch against the contract and return it with canonical dtypes.

    Raises a typed DataError naming the source and the column at fault. ``check_finite=False`` skips
    the NaN/inf scan of numeric features, for callers that have already turned those into nulls.
    """
    import polars as pl

    if frame.height < min_rows:
        raise EmptyBatchError(f"batch has {frame.height} rows, needs at least {min_rows}", source=source)
    needed = [*contract.feature_names, contract.entity_id]
    if contract.timestamp:
        needed.append(contract.timestamp)
    if require_target:
        needed.append(contract.target)
    if require_scores:
        needed.append(contract.probability)
    for column in needed:
        if column not in frame.columns:
            raise MissingColumnError("required column is missing", source=source, column=column)

    casts: list[pl.Expr] = []
    for spec in contract.features:
        dtype = frame.schema[spec.name]
        if spec.kind == "numeric":
            if not (dtype.is_numeric() or dtype == pl.Boolean or dtype == pl.Null):
                raise DtypeError(f"expected a numeric dtype, found {dtype}", source=source, column=spec.name)
            casts.append(pl.col(spec.name).cast(pl.Float64))
        elif spec.kind == "boolean":
            if not (dtype == pl.Boolean or dtype.is_integer() or dtype == pl.Null):
                raise DtypeError(f"expected a boolean dtype, found {dtype}", source=source, column=spec.name)
            casts.append(pl.col(spec.name).cast(pl.Boolean))
        else:
            if not (dtype in (pl.String, pl.Categorical, pl.Enum, pl.Null) or dtype.is_integer()):
                raise DtypeError(f"expected a categorical/text dtype, found {dtype}", source=source, column=spec.name)
            casts.append(pl.col(spec.name).cast(pl.String))
    if contract.timestamp:
        ts_dtype = frame.schema[contract.timestamp]
        parse = _timestamp_parse(contract.timestamp, ts_dtype)
        if parse is not None:
            casts.append(parse)
        elif not ts_dtype.is_temporal():
            raise DtypeError(f"expected a datetime, found {ts_dtype}", source=source, column=contract.timestamp)
    out = frame.with_columns(casts)
    if (
        contract.timestamp
        and out.get_column(contract.timestamp).null_count() > frame.get_column(contract.timestamp).null_count()
    ):
        raise DtypeError("timestamps could not be parsed", source=source, column=contract.timestamp)

    numeric = [s.name for s in contract.features if s.kind == "numeric"]
    if numeric and check_finite:
        bad = out.select([(~pl.col(c).is_finite() & pl.col(c).is_not_null()).sum().alias(c) for c in numeric]).row(0)
        for column, count in zip(numeric, bad, strict=True):
            if count:
                raise NonFiniteError(f"{count} NaN/inf values", source=source, column=column)

    if contract.probability in out.columns:
        prob = out.get_column(contract.probability)
        if not prob.dtype.is_numeric():
            raise DtypeError(f"expected probabilities, found {prob.dtype}", source=source, column=contract.probability)
        out = out.with_columns(pl.col(contract.probability).cast(pl.Float64))
        outside = out.select(
            (~pl.col(contract.probability).is_between(0.0, 1.0) & pl.col(contract.probability).is_not_null()).sum()
        ).item()
        if outside:
            raise ProbabilityRangeError(f"{outside} values outside [0, 1]", source=source, column=contract.probability)
    if contract.target in out.columns:
        out = _canonical_target(out, contract, source)
    return out


def _timestamp_parse(column: str, dtype: pl.DataType) -> pl.Expr | None:
    """How validation turns a timestamp column into datetimes: text is parsed, a date becomes its midnight
    (windows and row keys work in microsecond datetimes); None for datetimes and for what cannot be parsed."""
    import polars as pl

    if dtype == pl.String:
        return pl.col(column).str.to_datetime(strict=False)
    if dtype == pl.Date:
        return pl.col(column).cast(pl.Datetime("us"))
    return None


def with_parsed_timestamp(frame: pl.DataFrame, contract: ModelContract) -> pl.DataFrame:
    """``frame`` with only its timestamp column parsed as :func:`validate_batch` parses it; every other
    column keeps the dtype it was read with."""
    if not contract.timestamp or contract.timestamp not in frame.columns:
        return frame
    parse = _timestamp_parse(contract.timestamp, frame.schema[contract.timestamp])
    return frame if parse is None else frame.with_columns(parse)


def _canonical_target(frame: pl.DataFrame, contract: ModelContract, source: str) -> pl.DataFrame:
    import polars as pl

    target = frame.get_column(contract.target)
    if not is_binary_label(target):
        if not target.dtype.is_numeric():
            raise DtypeError(f"expected a 0/1 label, found {target.dtype}", source=source, column=contract.target)
        values = set(target.drop_nulls().unique().to_list())
        raise DtypeError(
            f"binary labels must be 0/1, found {sorted(values - {0, 1})[:5]}", source=source, column=contract.target
        )
    return frame.with_columns(pl.col(contract.target).cast(pl.Int8))


def is_binary_label(labels: pl.Series) -> bool:
    """The one binary-label check: booleans, or numbers that are all 0 or 1 (nulls aside)."""
    import polars as pl

    if labels.dtype == pl.Boolean:
        return True
    return labels.dtype.is_numeric() and set(labels.drop_nulls().unique().to_list()) <= {0, 1}


_OPTION_FIX = {
    "timestamp": "pass another column with --timestamp, or leave the option out",
    "target": "pass a 0/1 or true/false label column with --target",
    "entity_id": "pass a column with one unique value per row with --entity-id",
}


def check_key_columns(
    frame: pl.DataFrame, *, target: str, entity_id: str, timestamp: str | None, source: str, rewrite: bool = False
) -> None:
    """Refuse a reference whose target, entity id or timestamp the pipeline cannot use.

    The target must be a binary label as :func:`validate_batch` reads labels (boolean, or numbers 0/1)
    holding both classes; the entity id must be present on every row and unique (labels join on it);
    the timestamp must be datetimes, dates or text that parses as datetimes, and not entirely null.
    Each refusal is a typed :class:`~tasks.core.errors.DataError` naming the source, the column and the fix
    (``rewrite``: the contract exists already, so the fix is to write it again).
    """
    fixes = {
        key: f"write the contract again (`driftgate contract`): {fix}" if rewrite else fix
        for key, fix in _OPTION_FIX.items()
    }
    required = [target, entity_id] + ([timestamp] if timestamp else [])
    for column in required:
        if column not in frame.columns:
            raise MissingColumnError("column named by option is absent", source=source, column=column)
    if frame.height == 0:
        raise EmptyBatchError("reference has no rows", source=source)
    if timestamp:
        _check_timestamp(frame.get_column(timestamp), source, fixes["timestamp"])
    _check_target(frame.get_column(target), source, fixes["target"])
    ids = frame.get_column(entity_id)
    nulls = ids.null_count()
    if nulls:
        raise DataError(
            f"entity id is missing on {nulls} of {frame.height} rows; {fixes['entity_id']}",
            source=source,
            column=entity_id,
        )
    repeated = ids.is_duplicated()
    if repeated.any():
        examples = ids.filter(repeated).unique(maintain_order=True).head(3).to_list()
        raise DataError(
            f"entity id repeats on {int(repeated.sum())} rows (e.g. {examples}); ids must be unique because labels "
            f"join on them: {fixes['entity_id']}",
            source=source,
            column=entity_id,
        )


def check_reference(frame: pl.DataFrame, contract: ModelContract, *, source: str) -> None:
    """:func:`check_key_columns` of a labelled reference against an existing contract (bootstrap)."""
    check_key_columns(
        frame,
        target=contract.target,
        entity_id=contract.entity_id,
        timestamp=contract.timestamp,
        source=source,
        rewrite=True,
    )


def _check_timestamp(stamps: pl.Series, source: str, fix: str) -> None:
    import polars as pl

    column = stamps.name
    dtype = stamps.dtype
    if dtype == pl.Null or stamps.null_count() == stamps.len():
        raise DataError(f"timestamp column is entirely null: {fix}", source=source, column=column)
    if dtype in (pl.Time, pl.Duration):
        raise DtypeError(
            f"timestamp column holds {dtype} values (times of day or durations), which do not order rows in time: "
            f"{fix}",
            source=source,
            column=column,
        )
    if dtype == pl.String:
        parsed = stamps.str.to_datetime(strict=False)  # as validate_batch parses it
        failed = stamps.is_not_null() & parsed.is_null()
        if failed.any():
            examples = stamps.filter(failed).head(3).to_list()
            raise DtypeError(
                f"{int(failed.sum())} of {stamps.len()} timestamps do not parse as datetimes (e.g. {examples}); "
                f"write them as ISO 8601 text (2024-01-31 12:00:00) or datetimes, or {fix}",
                source=source,
                column=column,
            )
    elif not dtype.is_temporal():
        raise DtypeError(
            f"timestamp column is {dtype}, not datetimes or text that parses as datetimes: convert it, or {fix}",
            source=source,
            column=column,
        )


def _check_target(labels: pl.Series, source: str, fix: str) -> None:
    """The reference's labels, read as :func:`_canonical_target` reads them: boolean, or numbers 0 and 1."""

    column = labels.name
    present = labels.drop_nulls()
    if present.len() == 0:
        raise DataError(
            f"target column is entirely null, so the reference is unlabelled: {fix}", source=source, column=column
        )
    values = present.unique().sort().to_list()
    shown = values[:5]
    if len(values) > 2:
        raise DtypeError(
            f"target has {len(values)} distinct values (e.g. {shown}), not a binary label: {fix}",
            source=source,
            column=column,
        )
    if not is_binary_label(labels):
        raise DtypeError(
            f"target values {shown} ({labels.dtype}) are not 0/1 or true/false: recode them as 1 for the positive "
            f"class and 0 for the other, or {fix}",
            source=source,
            column=column,
        )
    if len(values) < 2:
        raise SingleClassError(
            f"target holds a single class {values}; a reference needs rows of both classes to train and judge a model",
            source=source,
            column=column,
        )


def require_two_classes(frame: pl.DataFrame, contract: ModelContract, *, source: str) -> None:
    labels = frame.get_column(contract.target).drop_nulls()
    if labels.n_unique() < 2:
        only = labels.unique().to_list()
        raise SingleClassError(
            f"labels hold a single class {only}; need both 0 and 1", source=source, column=contract.target
        )


def feature_matrix(frame: pl.DataFrame, contract: ModelContract) -> np.ndarray:
    """Float matrix in contract feature order; categoricals become codes of the contract's categories
    (unseen and missing become NaN, which LightGBM treats as missing)."""
    import numpy as np
    import polars as pl

    exprs: list[pl.Expr] = []
    for spec in contract.features:
        col = pl.col(spec.name)
        if spec.kind == "categorical":
            mapping = {value: float(code) for code, value in enumerate(spec.categories or [])}
            exprs.append(col.cast(pl.String).replace_strict(mapping, default=None, return_dtype=pl.Float64))
        else:
            exprs.append(col.cast(pl.Float64))
    return frame.select(exprs).to_numpy().astype(np.float64, copy=False)


def categorical_indices(contract: ModelContract) -> list[int]:
    return [i for i, spec in enumerate(contract.features) if spec.kind == "categorical"]
