"""An in-process stand-in for the W&B calls the registry adapter (tasks/registry/wandb_mirror.py) makes.

Thin on purpose: ``wandb.Api(timeout=)`` with ``artifact_collection_exists`` and ``artifacts``; artifacts
with ``metadata``, an ``aliases`` list and ``save()``; ``wandb.init`` returning a run with ``log_artifact``
(whose result has ``wait()``), ``link_artifact(target_path=, aliases=)`` and ``finish()``. It keeps W&B's
collection semantics that matter to the ledger: an alias names one version of a collection (saving or
linking it elsewhere moves it), and W&B keeps ``latest`` on the newest version by itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest


class StandInArtifact:
    def __init__(self, api: StandInApi, path: str, metadata: dict[str, Any], aliases: Sequence[str]) -> None:
        self._api = api
        self._path = path
        self.metadata = metadata
        self.aliases = list(aliases)
        self.saved = list(aliases)

    def save(self) -> None:
        self._api.calls.append(f"save {self.metadata.get('registry_version')} {sorted(self.aliases)}")
        for other in self._api.collections[self._path]:
            if other is not self:
                other.aliases = [a for a in other.aliases if a not in self.aliases]
                other.saved = list(other.aliases)
        self.saved = list(self.aliases)


class StandInApi:
    """What ``wandb.Api()`` answers, for collections held in memory."""

    def __init__(self) -> None:
        self.collections: dict[str, list[StandInArtifact]] = {}
        self.calls: list[str] = []

    def __call__(self, timeout: int | None = None) -> StandInApi:  # stands in for the class wandb.Api
        return self

    def artifact_collection_exists(self, path: str, type: str) -> bool:
        assert type == "model"
        return path in self.collections

    def artifacts(self, type_name: str, path: str) -> list[StandInArtifact]:
        assert type_name == "model"
        # What the server returns: the saved state, not edits made locally and never saved.
        for artifact in self.collections.get(path, []):
            artifact.aliases = list(artifact.saved)
        return list(self.collections.get(path, []))

    def link(self, path: str, metadata: dict[str, Any], aliases: Sequence[str]) -> None:
        self.calls.append(f"link {metadata.get('registry_version')} {sorted(aliases)}")
        collection = self.collections.setdefault(path, [])
        for other in collection:
            other.aliases = [a for a in other.aliases if a not in aliases and a != "latest"]
            other.saved = list(other.aliases)
        collection.append(StandInArtifact(self, path, metadata, [*aliases, "latest"]))

    def aliases(self, path: str) -> dict[str, str]:
        return {a: str(x.metadata["registry_version"]) for x in self.collections.get(path, []) for a in x.saved}


class _Logged:
    def __init__(self, artifact: Any) -> None:
        self.artifact = artifact

    def wait(self) -> _Logged:
        return self


class StandInRun:
    def __init__(self, api: StandInApi) -> None:
        self._api = api

    def log_artifact(self, artifact: Any) -> _Logged:
        return _Logged(artifact)

    def link_artifact(self, logged: _Logged, *, target_path: str, aliases: Sequence[str]) -> None:
        self._api.link(target_path, dict(logged.artifact.metadata), aliases)

    def finish(self) -> None:
        return None


def install(monkeypatch: pytest.MonkeyPatch) -> StandInApi:
    """Route ``wandb.Api`` and the adapter's ``wandb.init`` to one in-memory stand-in for the rest of the test."""
    import wandb

    api = StandInApi()
    real_init = wandb.init

    def init(**kwargs: Any) -> Any:
        # Only the adapter's own runs (job type "registry"); tracking runs stay real (offline) runs.
        return StandInRun(api) if kwargs.get("job_type") == "registry" else real_init(**kwargs)

    monkeypatch.setattr(wandb, "Api", api)
    monkeypatch.setattr(wandb, "init", init)
    return api
