"""One exception root for driftgate; every message names the file, column, version or setting at fault."""

from __future__ import annotations


class DriftgateError(Exception):
    """Root of every error driftgate raises on purpose."""


class ConfigError(DriftgateError):
    """A setting or configuration file is invalid."""


class ContractError(DriftgateError):
    """The model contract is invalid or does not fit the data it describes."""


class DataError(DriftgateError):
    """A batch, reference or label file cannot be used as given."""

    def __init__(self, message: str, *, source: str | None = None, column: str | None = None) -> None:
        self.source = source
        self.column = column
        where = []
        if source:
            where.append(f"in {source}")
        if column:
            where.append(f"column {column!r}")
        super().__init__(f"{message} ({', '.join(where)})" if where else message)


class DataFileError(DataError):
    """A data file is missing, unreadable or of an unknown format."""


class MissingColumnError(DataError):
    """A column the contract requires is absent."""


class DtypeError(DataError):
    """A column has a dtype the contract does not allow."""


class EmptyBatchError(DataError):
    """A batch has no rows (or fewer than the minimum)."""


class NonFiniteError(DataError):
    """A numeric feature holds NaN or infinite values."""


class SingleClassError(DataError):
    """A label set holds a single class, so a classifier cannot be trained or scored on it."""


class ProbabilityRangeError(DataError):
    """A probability column holds values outside [0, 1]."""


class EstimationError(DriftgateError):
    """Performance estimation failed or was asked for something it cannot do."""


class TrainingError(DriftgateError):
    """Retraining failed (bad window, no labels, tuning produced no model)."""


class GateError(DriftgateError):
    """The promotion gate cannot judge the given inputs (no labels, mismatched rows, unknown slice)."""


class RegistryError(DriftgateError):
    """Base for registry failures."""


class VersionNotFoundError(RegistryError):
    """A model version or alias does not exist."""


class AliasConflictError(RegistryError):
    """A conditional alias move lost a race: the alias no longer points where the caller believed."""


class IntegrityError(RegistryError):
    """A stored artifact does not match its manifest digest (tampered or truncated)."""


class LedgerIntegrityError(IntegrityError):
    """The ledger's hash chain or its anchor is broken: names the entry (``seq``) and what is wrong (``problem``)."""

    def __init__(self, message: str, *, seq: int | None = None, problem: str = "") -> None:
        self.seq = seq
        self.problem = problem
        super().__init__(message)


class PromotionInProgressError(AliasConflictError):
    """Another promotion of the model holds the promotion lease; this one is refused before any alias moves."""


class UnsafePathError(RegistryError):
    """A registry path resolves outside the registry home (a symlink pointing elsewhere)."""


class StoreError(DriftgateError):
    """The audit store cannot be reached or written."""


class TrackingError(DriftgateError):
    """The experiment tracker (W&B) cannot start a run or record what it was given."""


class OrchestrationError(DriftgateError):
    """A Prefect server, worker or deployment command failed to start or answer (names the command and its log)."""


class UnknownClassError(DataError):
    """A label or prediction names a class that the model's probability outputs do not cover."""
