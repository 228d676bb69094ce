"""A registry version as a W&B ``model`` artifact: used by the W&B mirror and by tracking runs."""

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


def artifact_files(version: ModelVersion) -> list[str]:
    """The files of a registry version as W&B receives them (its files plus its manifest), all present."""
    from tasks.registry.model import MANIFEST_NAME

    files = [*sorted(version.digests), MANIFEST_NAME]
    missing = [name for name in files if not (version.path / name).is_file()]
    if missing:
        raise TrackingError(f"cannot log {version.model}:{version.version} to W&B: {missing} absent in {version.path}")
    return files


def model_artifact(version: ModelVersion) -> Any:
    """A W&B ``model`` artifact of a registry version, named after the model, its digests in the metadata."""
    import wandb

    artifact = wandb.Artifact(
        name=version.model,
        type="model",
        description=f"driftgate registry {version.model}:{version.version}",
        metadata={
            **plain_json(version.metadata),
            "registry_version": version.version,
            "created_at": version.created_at.isoformat(),
            "digests": dict(version.digests),
        },
    )
    for name in artifact_files(version):
        # "immutable": reference the read-only registry file instead of copying it to staging.
        artifact.add_file(str(version.path / name), name=name, policy="immutable")
    return artifact
