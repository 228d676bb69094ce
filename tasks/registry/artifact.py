"""A registry version as a W&B ``model`` artifact: used by the W&B mirror and by tracking runs.

What leaves the machine: the model (LightGBM text), the contract, the gate verdict and the manifest, with the
version's metadata and the SHA-256 digest of *every* file in the artifact's metadata. A version's row data —
the files it stores as Parquet: the monitoring reference (holdout rows) and the training-row keys — stays in
the registry unless ``wandb_artifact_rows`` asks for it: the digests still pin exactly which rows the version
carries, so a reviewer can match them without the rows being shared. The ledger, not W&B, is the source of
truth (tasks/registry/wandb_mirror.py), so nothing reads these files back from W&B.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tasks.core.errors import TrackingError

if TYPE_CHECKING:
    from tasks.registry.model import ModelVersion


def plain_json(values: Mapping[str, Any]) -> dict[str, Any]:
    """Paths, datetimes and other objects become strings, so W&B config never fails on a value."""
    result: dict[str, Any] = json.loads(json.dumps(dict(values), default=str))
    return result


# Row data is what a version stores as Parquet; model, contract, verdict and manifest are text or JSON.
ROW_DATA_SUFFIX = ".parquet"


def is_row_data(name: str) -> bool:
    return name.endswith(ROW_DATA_SUFFIX)


def artifact_files(version: ModelVersion, *, rows: bool = False) -> list[str]:
    """The files of a registry version as W&B receives them (its files plus its manifest), all present; row data
    only with ``rows``."""
    from tasks.registry.model import MANIFEST_NAME

    files = [*sorted(name for name in version.digests if rows or not is_row_data(name)), MANIFEST_NAME]
    missing = [name for name in files if not (version.path / name).is_file()]
    if missing:
        raise TrackingError(f"cannot log {version.model}:{version.version} to W&B: {missing} absent in {version.path}")
    return files


def model_artifact(version: ModelVersion, *, rows: bool = False) -> Any:
    """A W&B ``model`` artifact of a registry version, named after the model, every file's digest in the metadata;
    row data (the Parquet files) only with ``rows``."""
    import wandb

    files = artifact_files(version, rows=rows)

    artifact = wandb.Artifact(
        name=version.model,
        type="model",
        description=f"driftgate registry {version.model}:{version.version}",
        metadata={
            **plain_json(version.metadata),
            "registry_version": version.version,
            "created_at": version.created_at.isoformat(),
            "digests": dict(version.digests),
            "row_data": "included" if rows else "withheld (setting wandb_artifact_rows)",
        },
    )
    for name in files:
        # "immutable": reference the read-only registry file instead of copying it to staging.
        artifact.add_file(str(version.path / name), name=name, policy="immutable")
    return artifact
