"""The W&B Registry behind the registry interface: the local ledger, mirrored to W&B.

W&B has no conditional alias move (no compare-and-set) and no transaction over several
aliases, so it cannot be the source of truth for "move only if the alias still points where
the caller believes" or for "what held production at T". :class:`WandbRegistry` therefore keeps
the :class:`~tasks.registry.local.LocalRegistry` ledger, files and lock as they are, and mirrors them:

- **register**: the version is written locally (immutable, SHA-256 manifest), then logged as a
  ``model`` artifact and linked into ``wandb-registry-<registry>/<model>`` with its aliases
  (``Run.link_artifact``); the artifact's metadata carries ``registry_version`` and the digests.
- **every alias move** (move, promote, rollback), under the model's flock: the aliases it touches
  are re-read from W&B; if W&B disagrees with the ledger (an alias moved in the W&B UI), the move
  is refused with ``AliasConflictError`` and the refusal is recorded in the ledger. Otherwise the
  move is applied to W&B (``Api().artifact(path)``, ``aliases`` edited, ``save()``) and only then
  appended to the ledger. A W&B failure moves nothing in the ledger (and is recorded there).
- **reconcile** publishes versions W&B lacks and moves W&B aliases to where the ledger has them.

What this guarantees: between driftgate processes sharing the registry directory, moves stay
conditional and serialized (the flock); a move made outside driftgate is detected before the
next driftgate move touches that alias, never silently overwritten. What it cannot: a W&B UI move
racing a driftgate move inside the same round-trip, or a multi-alias move being atomic *on W&B*
(production and previous-production are two W&B calls; a crash between them leaves W&B half
moved while the ledger holds neither move: the next move sees the divergence, ``reconcile``
repairs it). Serving resolves aliases from the ledger, so what the ledger says is what served.
``latest`` is left to W&B, which maintains it itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from tasks.core.errors import ConfigError, RegistryError
from tasks.registry.local import LocalRegistry

if TYPE_CHECKING:
    from tasks.core.settings import DriftgateSettings
    from tasks.registry.model import AliasMove, ModelVersion

ARTIFACT_TYPE: Final = "model"
API_TIMEOUT_SECONDS: Final = 30


def registry_path(registry: str, model: str) -> str:
    """The W&B Registry collection path of a model, as ``link_artifact`` and the public API take it."""
    return f"wandb-registry-{registry}/{model}"


def aliases_by_version(artifacts: Iterable[tuple[str | None, Sequence[str]]]) -> dict[str, str]:
    """alias -> registry version from (registry_version, aliases) pairs; versions driftgate did not log are skipped."""
    held: dict[str, str] = {}
    for version, aliases in artifacts:
        if version is None:
            continue
        for alias in aliases:
            if alias in held and held[alias] != version:
                raise RegistryError(f"W&B shows alias {alias!r} on two registry versions: {held[alias]} and {version}")
            held[alias] = version
    return held


class WandbMirror:
    """The W&B Registry as an :class:`~tasks.registry.local.AliasMirror` (online only; needs an API key)."""

    def __init__(
        self,
        *,
        registry: str,
        project: str,
        entity: str | None,
        directory: Path,
        api_timeout: int = API_TIMEOUT_SECONDS,
        artifact_rows: bool = False,
    ) -> None:
        self.registry = registry
        self.artifact_rows = artifact_rows
        self.project = project
        self.entity = entity
        self.directory = Path(directory)
        self.api_timeout = api_timeout
        self._api: Any = None

    @classmethod
    def from_settings(cls, settings: DriftgateSettings) -> WandbMirror:
        return cls(
            registry=settings.wandb_registry,
            project=settings.wandb_project,
            entity=settings.wandb_entity,
            directory=settings.wandb_dir,
            artifact_rows=settings.wandb_artifact_rows,
        )

    @property
    def name(self) -> str:
        return f"the W&B Registry ({registry_path(self.registry, '<model>')})"

    def _client(self) -> Any:
        if self._api is None:
            from tasks.core.telemetry import disable_telemetry

            disable_telemetry()
            import wandb

            try:
                self._api = wandb.Api(timeout=self.api_timeout)
            except Exception as exc:  # wandb raises UsageError/AuthenticationError/... without a usable key
                raise ConfigError(
                    f"DRIFTGATE_REGISTRY_BACKEND='wandb' needs a W&B API key (WANDB_API_KEY or `wandb login`): {exc}"
                ) from exc
        return self._api

    def _artifacts(self, model: str) -> list[Any]:
        api = self._client()
        path = registry_path(self.registry, model)
        if not api.artifact_collection_exists(path, ARTIFACT_TYPE):
            return []
        return list(api.artifacts(ARTIFACT_TYPE, path))

    @staticmethod
    def _version_of(artifact: Any) -> str | None:
        value = (artifact.metadata or {}).get("registry_version")
        return str(value) if value is not None else None

    def versions(self, model: str) -> set[str]:
        return {v for v in (self._version_of(a) for a in self._artifacts(model)) if v is not None}

    def aliases(self, model: str) -> dict[str, str]:
        return aliases_by_version((self._version_of(a), list(a.aliases)) for a in self._artifacts(model))

    def publish(self, version: ModelVersion, aliases: Sequence[str]) -> None:
        import wandb

        from tasks.registry.artifact import model_artifact

        self.directory.mkdir(parents=True, exist_ok=True)
        run = wandb.init(
            project=self.project,
            entity=self.entity,
            dir=str(self.directory),
            job_type="registry",
            name=f"register-{version.model}-{version.version}",
            mode="online",
            reinit="create_new",
            settings=wandb.Settings(silent=True, console="off", x_save_requirements=False),
        )
        try:
            logged = run.log_artifact(model_artifact(version, rows=self.artifact_rows))
            logged.wait()
            run.link_artifact(logged, target_path=registry_path(self.registry, version.model), aliases=list(aliases))
        finally:
            run.finish()

    def apply(self, model: str, moves: Sequence[AliasMove]) -> None:
        if not moves:
            return
        by_version = {self._version_of(a): a for a in self._artifacts(model)}
        for move in moves:
            for version, add in ((move.from_version, False), (move.to_version, True)):
                if version is None:
                    continue
                artifact = by_version.get(version)
                if artifact is None:
                    raise RegistryError(
                        f"{model}:{version} is not in {registry_path(self.registry, model)}; "
                        "`driftgate reconcile` publishes it"
                    )
                current = list(artifact.aliases)
                if add:
                    wanted = current if move.alias in current else [*current, move.alias]
                else:
                    wanted = [a for a in current if a != move.alias]
                if wanted != current:
                    artifact.aliases = wanted
                    artifact.save()


class WandbRegistry(LocalRegistry):
    """The local registry (ledger, files, lock) mirrored to the W&B Registry; see the module docstring."""

    def __init__(self, root: Path, mirror: WandbMirror) -> None:
        super().__init__(root, mirror=mirror)

    @classmethod
    def from_settings(cls, settings: DriftgateSettings) -> WandbRegistry:
        return cls(settings.registry_dir, WandbMirror.from_settings(settings))
