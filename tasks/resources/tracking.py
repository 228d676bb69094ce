"""Experiment tracking with W&B: offline by default, online or disabled by setting.

Offline runs are written under ``settings.wandb_dir`` and never touch the network; push them
later with ``wandb sync <dir>/wandb/offline-run-*``. A registry version is logged as a
``model`` artifact whose files are referenced in place (registry versions are read-only and
never change), so the W&B manifest and the registry manifest describe the same bytes.

W&B cannot read artifacts back offline (``use_artifact`` / ``link_artifact`` fail), which is
why the registry keeps its own ledger of versions and aliases; this module only reports to W&B.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

from tasks.core.errors import ConfigError, TrackingError
from tasks.core.telemetry import disable_telemetry
from tasks.registry.artifact import artifact_files, model_artifact, plain_json

if TYPE_CHECKING:
    from types import TracebackType

    import polars as pl

    from tasks.core.settings import DriftgateSettings
    from tasks.registry.model import ModelVersion

TRACKING_MODES: Final = ("offline", "online", "disabled")
_IMAGE_SUFFIXES: Final = frozenset({".png", ".jpg", ".jpeg"})
_UNSAFE_FILE_CHARS: Final = re.compile(r"[^A-Za-z0-9_.-]+")
# W&B keeps artifact staging copies and its own logs under the user's home by default; these
# follow the tracker's directory unless the user chose a place (their value is never overridden).
_STATE_DIRS: Final = (("WANDB_DATA_DIR", "data"), ("WANDB_CACHE_DIR", "cache"))
_env_lock = threading.Lock()
_env_set_by_us: dict[str, str] = {}


class TrackingRun(Protocol):
    id: str
    dir: Path | None

    def log(self, metrics: Mapping[str, float], step: int | None = None) -> None: ...

    def summary(self, values: Mapping[str, Any]) -> None: ...

    def log_model(self, version: ModelVersion, aliases: Sequence[str]) -> None: ...

    def log_file(self, name: str, path: Path) -> None: ...

    def log_table(self, name: str, frame: pl.DataFrame) -> None: ...

    def define_metric(self, name: str, *, step_metric: str) -> None: ...

    def use_dataset(self, name: str, fingerprint: str, metadata: Mapping[str, Any]) -> None: ...

    def finish(self) -> None: ...


class Tracker(Protocol):
    def start_run(
        self,
        *,
        job_type: str,
        name: str,
        config: Mapping[str, Any],
        group: str | None = None,
        tags: Sequence[str] = (),
    ) -> TrackingRun: ...


def _table_cell(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value)


def _run_file_name(name: str, source: Path) -> str:
    safe = _UNSAFE_FILE_CHARS.sub("-", name).strip("-.") or "file"
    return safe if Path(safe).suffix else f"{safe}{source.suffix}"


def _keep_wandb_state_under(directory: Path) -> None:
    with _env_lock:
        for key, sub in _STATE_DIRS:
            current = os.environ.get(key)
            if current is not None and _env_set_by_us.get(key) != current:
                continue
            value = str(directory / sub)
            os.environ[key] = value
            _env_set_by_us[key] = value


class WandbRun:
    """One W&B run; in disabled mode every call is checked and then dropped."""

    def __init__(self, run: Any, *, active: bool, artifact_rows: bool = False) -> None:
        self._run = run
        self._active = active
        self._artifact_rows = artifact_rows
        self._finished = False
        self.id: str = str(run.id)
        # The offline-run-* directory holding run-<id>.wandb (what `wandb sync` takes), not its files/.
        self.dir: Path | None = Path(run.settings.sync_dir) if active else None

    def __repr__(self) -> str:
        return f"WandbRun(id={self.id!r}, dir={self.dir!r}, finished={self._finished})"

    def __enter__(self) -> WandbRun:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._finish(exit_code=1 if exc_type else 0)

    def _check_open(self, action: str) -> None:
        if self._finished:
            raise TrackingError(f"W&B run {self.id} is finished; cannot {action}")

    def log(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self._check_open("log metrics")
        self._run.log(dict(metrics), step=step)

    def summary(self, values: Mapping[str, Any]) -> None:
        self._check_open("update the summary")
        self._run.summary.update(plain_json(values))

    def log_model(self, version: ModelVersion, aliases: Sequence[str]) -> None:
        """Log the registry version as a ``model`` artifact named after the model, with its aliases.

        Logging the same version again (same bytes, so the same W&B digest) adds no new artifact
        version: W&B moves the given aliases onto the existing one. This is how every alias move
        reaches an offline run, and so ``wandb sync`` replays the alias history.
        """
        self._check_open(f"log model {version.model}:{version.version}")
        artifact_files(version, rows=self._artifact_rows)
        if not self._active:
            return
        self._run.log_artifact(model_artifact(version, rows=self._artifact_rows), aliases=list(aliases))

    def log_file(self, name: str, path: Path) -> None:
        """Images become ``wandb.Image`` media; anything else (markdown report, JSON) a run file."""
        self._check_open(f"log file {name!r}")
        source = Path(path)
        if not source.is_file():
            raise TrackingError(f"cannot log {name!r} to W&B run {self.id}: {source} is not a file")
        if not self._active:
            return
        import wandb

        if source.suffix.lower() in _IMAGE_SUFFIXES:
            # commit=False keeps media on the caller's current step instead of opening a new one.
            self._run.log({name: wandb.Image(str(source))}, commit=False)
            return
        destination = Path(self._run.dir) / _run_file_name(name, source)
        shutil.copyfile(source, destination)
        self._run.save(str(destination), base_path=self._run.dir, policy="now", glob=False)

    def log_table(self, name: str, frame: pl.DataFrame) -> None:
        self._check_open(f"log table {name!r}")
        if not self._active:
            return
        import wandb

        limit = wandb.Table.MAX_ROWS
        shown = frame.head(limit)
        rows = [[_table_cell(value) for value in row] for row in shown.iter_rows()]
        self._run.log({name: wandb.Table(columns=list(shown.columns), data=rows)}, commit=False)
        if frame.height > limit:
            self._run.summary[f"{name}/rows_total"] = frame.height

    def define_metric(self, name: str, *, step_metric: str) -> None:
        """Plot ``name`` (a glob such as ``drift/*`` works) against ``step_metric`` instead of W&B's step."""
        self._check_open(f"define metric {name!r}")
        if not self._active:
            return
        self._run.define_metric(step_metric, hidden=False)
        self._run.define_metric(name, step_metric=step_metric)

    def use_dataset(self, name: str, fingerprint: str, metadata: Mapping[str, Any]) -> None:
        """Record the training data as a ``dataset`` artifact identified by its fingerprint.

        Online it is an input of the run (``use_artifact``), so W&B's lineage graph reads training data →
        retrain run → model artifact. Offline W&B cannot use an artifact (``use_artifact`` raises), so it is
        logged as an output of the run instead; the fingerprint stays in the run's config either way.
        """
        self._check_open(f"use dataset {name!r}")
        if not self._active:
            return
        import wandb

        safe_name = _UNSAFE_FILE_CHARS.sub("-", name)
        described = plain_json({**metadata, "fingerprint": fingerprint})
        artifact = wandb.Artifact(safe_name, type="dataset", metadata=described)
        with artifact.new_file("fingerprint.txt") as handle:
            handle.write(f"{fingerprint}\n")
        if self._run.settings.mode == "online":
            self._run.use_artifact(artifact)
        else:
            self._run.log_artifact(artifact, aliases=[f"sha256-{fingerprint[:16]}"])

    def finish(self) -> None:
        self._finish(exit_code=0)

    def _finish(self, exit_code: int) -> None:
        if self._finished:
            return
        self._finished = True
        self._run.finish(exit_code=exit_code)


class WandbTracker:
    """Starts W&B runs with the real library; several runs per process, one after another or overlapping."""

    def __init__(
        self,
        *,
        mode: str,
        project: str,
        entity: str | None,
        directory: Path,
        artifact_rows: bool = False,
        local_metadata: bool = False,
    ) -> None:
        if mode not in TRACKING_MODES:
            raise ConfigError(f"DRIFTGATE_TRACKING_MODE={mode!r} is not one of {list(TRACKING_MODES)}")
        self.mode = mode
        self.project = project
        self.entity = entity
        self.directory = Path(directory)
        self.artifact_rows = artifact_rows
        self.local_metadata = local_metadata

    def __repr__(self) -> str:
        return f"WandbTracker(mode={self.mode!r}, project={self.project!r}, directory={str(self.directory)!r})"

    def start_run(
        self,
        *,
        job_type: str,
        name: str,
        config: Mapping[str, Any],
        group: str | None = None,
        tags: Sequence[str] = (),
    ) -> WandbRun:
        """A run in this tracker's mode; ``group`` (the model) and ``tags`` (the decision) let W&B filter runs."""
        disable_telemetry()
        active = self.mode != "disabled"
        if active:
            self.directory.mkdir(parents=True, exist_ok=True)
            _keep_wandb_state_under(self.directory)
        import wandb

        settings = wandb.Settings(
            silent=True,
            quiet=True,
            show_info=False,
            show_warnings=False,
            console="off",  # leave stdout/stderr to Prefect's loggers
            x_save_requirements=False,
            disable_job_creation=True,
            # W&B's system metadata holds the host, user, program path and working directory; the code and git
            # state hold more. None of it leaves the machine unless share_absolute_paths asks for local detail.
            disable_code=True,
            disable_git=not self.local_metadata,
            x_disable_meta=not self.local_metadata,
            x_disable_machine_info=not self.local_metadata,
        )
        try:
            run = wandb.init(
                project=self.project,
                entity=self.entity,
                dir=str(self.directory) if active else None,
                job_type=job_type,
                name=name,
                group=group,
                tags=list(tags) or None,
                config=plain_json(config),
                mode=self.mode,  # type: ignore[arg-type]
                reinit="create_new",
                settings=settings,
            )
        except Exception as exc:
            raise TrackingError(
                f"cannot start W&B {self.mode} run {name!r} "
                f"(project {self.project!r}, directory {self.directory}): {exc}"
            ) from exc
        return WandbRun(run, active=active, artifact_rows=self.artifact_rows)


def make_tracker(settings: DriftgateSettings) -> Tracker:
    """The tracker chosen by ``settings.tracking_mode``, writing under ``settings.wandb_dir``."""
    return WandbTracker(
        mode=settings.tracking_mode,
        project=settings.wandb_project,
        entity=settings.wandb_entity,
        directory=settings.wandb_dir,
        artifact_rows=settings.wandb_artifact_rows,
        local_metadata=settings.share_absolute_paths,
    )


def record_model_version(
    settings: DriftgateSettings, version: ModelVersion, aliases: Sequence[str], *, job_type: str = "register"
) -> Path | None:
    """Report a registry version to W&B in a short run of its own; returns the run directory (None if disabled)."""
    run = make_tracker(settings).start_run(
        job_type=job_type,
        name=f"{version.model}-{version.version}",
        config={"model": version.model, "version": version.version, "aliases": list(aliases)},
    )
    try:
        run.log_model(version, aliases)
        run.summary({"registry_version": version.version})
    finally:
        run.finish()
    return run.dir
