"""The resources one driftgate home holds, each chosen by settings (registry, store, tracker, lake)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from tasks.core.errors import ConfigError, VersionNotFoundError
from tasks.core.settings import DriftgateSettings
from tasks.data.contract import ModelContract

if TYPE_CHECKING:
    import polars as pl

    from tasks.registry.local import LocalRegistry
    from tasks.registry.model import ModelVersion
    from tasks.resources.lake import BatchLake
    from tasks.resources.store import AuditStore
    from tasks.resources.tracking import Tracker

MODEL_FILE = "model.txt"
REFERENCE_FILE = "reference.parquet"
CONTRACT_FILE = "contract.yaml"
# Model names become registry folders and W&B collection names: settings.model_name's own pattern.
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass
class Workspace:
    settings: DriftgateSettings
    _closers: list[object] = field(default_factory=list, repr=False)
    _verified: set[str] = field(default_factory=set, repr=False)

    @property
    def model(self) -> str:
        """The model (registry collection) this home serves: ``model_name`` when it was set (keyword,
        ``DRIFTGATE_MODEL_NAME``, YAML, ``--model``), otherwise the contract's name, so that a contract
        written by ``driftgate contract churn.parquet`` gives model ``churn`` everywhere. Without a
        contract file, the default ``model_name``."""
        settings = self.settings
        if "model_name" in settings.model_fields_set or not settings.resolved_contract_path.is_file():
            return settings.model_name
        name = self.contract.name
        if not MODEL_NAME.fullmatch(name):
            raise ConfigError(
                f"contract {settings.resolved_contract_path} is named {name!r}, which is not a model name "
                f"({MODEL_NAME.pattern}): rename it in the contract, or pass --model (DRIFTGATE_MODEL_NAME)"
            )
        return name

    @cached_property
    def contract(self) -> ModelContract:
        return ModelContract.load(self.settings.resolved_contract_path)

    @cached_property
    def registry(self) -> LocalRegistry:
        """The registry of ``settings.registry_backend``: local, or the local ledger mirrored to W&B."""
        return make_registry(self.settings)

    @cached_property
    def store(self) -> AuditStore:
        from tasks.resources.store import AuditStore

        return AuditStore(self.settings.resolved_store_url)

    @cached_property
    def tracker(self) -> Tracker:
        from tasks.resources.tracking import make_tracker

        return make_tracker(self.settings)

    @cached_property
    def lake(self) -> BatchLake:
        from tasks.resources.lake import BatchLake

        if self.settings.artifact_store:
            from tasks.resources.objects import open_store

            url = f"{self.settings.artifact_store.rstrip('/')}/batches/{self.model}"
            return BatchLake(open_store(url, self.settings.artifact_store_options))
        return BatchLake(self.settings.home / "batches" / self.model)

    def production(self) -> ModelVersion:
        version = self.registry.resolve(self.model, "production")
        if version is None:
            raise VersionNotFoundError(
                f"model {self.model!r} has no 'production' version in {self.settings.registry_dir}; "
                "register one with `driftgate bootstrap` (or run `driftgate demo`)"
            )
        return version

    def model_text(self, version: ModelVersion) -> str:
        """The LightGBM text of a version, after its whole manifest was verified (a tampered version is refused)."""
        key = f"{version.model}:{version.version}"
        if key not in self._verified:
            self.registry.verify(version)
            self._verified.add(key)
        return self.registry.read_file(version, MODEL_FILE).decode()

    def reference_of(self, version: ModelVersion) -> pl.DataFrame:
        """The monitoring reference that travels with a version: its holdout, scored by it."""
        import io

        import polars as pl

        return pl.read_parquet(io.BytesIO(self.registry.read_file(version, REFERENCE_FILE)))

    def __reduce__(self) -> tuple[object, tuple[DriftgateSettings]]:
        """A workspace travels to another process (a Dask worker) as its settings and is opened there afresh:
        connections, locks and caches belong to one process."""
        return (open_workspace, (self.settings,))

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()
        if "registry" in self.__dict__:
            closer = getattr(self.registry, "close", None)
            if closer is not None:
                closer()


@contextmanager
def open_home(settings: DriftgateSettings) -> Iterator[Workspace]:
    """The workspace of a home for one block (``with open_home(settings) as ws:``), closed however it ends."""
    ws = open_workspace(settings)
    try:
        yield ws
    finally:
        ws.close()


def open_workspace(settings: DriftgateSettings) -> Workspace:
    from tasks.core.telemetry import disable_telemetry

    if not settings.telemetry:
        disable_telemetry()
    settings.ensure_dirs()
    return Workspace(settings)


def make_registry(settings: DriftgateSettings) -> LocalRegistry:
    """The registry chosen by ``settings.registry_storage`` (files in the home, or SQL + the artifact store) and
    ``settings.registry_backend`` (mirrored to W&B for ``wandb``)."""
    from tasks.registry.local import LocalRegistry

    if settings.registry_storage == "sql":
        return make_sql_registry(settings)
    if settings.registry_backend == "local":
        return LocalRegistry(settings.registry_dir)
    if settings.registry_backend == "wandb":
        from tasks.registry.wandb_mirror import WandbRegistry

        return WandbRegistry.from_settings(settings)
    raise ConfigError(f"DRIFTGATE_REGISTRY_BACKEND={settings.registry_backend!r} is not one of ['local', 'wandb']")


def make_sql_registry(settings: DriftgateSettings) -> LocalRegistry:
    """Metadata in the store's database (``store_url``), files in ``settings.registry_objects``."""
    from tasks.resources.objects import open_store
    from tasks.resources.registry_sql import SqlRegistry

    mirror = None
    if settings.registry_backend == "wandb":
        from tasks.registry.wandb_mirror import WandbMirror

        mirror = WandbMirror.from_settings(settings)
    objects = open_store(settings.registry_objects, settings.artifact_store_options)
    return SqlRegistry(settings.resolved_store_url, objects, settings.registry_copies_dir, mirror=mirror)
