"""One settings object for driftgate: env prefix ``DRIFTGATE_`` (nested with ``__``), optional YAML file.

Precedence (highest first): explicit keyword arguments, environment variables, the YAML file, defaults,
however the file is given (``load_settings(path)``, ``--config`` or ``DRIFTGATE_CONFIG``; a path given
explicitly replaces the one ``DRIFTGATE_CONFIG`` names). Nested sections merge key by key across the
layers, and every section refuses keys it does not know (a typo is an error naming the key).
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from tasks.core.errors import ConfigError

# gate.decision_threshold's default, the one place it is written; library functions default to it too.
DEFAULT_DECISION_THRESHOLD: Final = 0.5


class _Section(BaseModel):
    """A nested settings section: unknown keys are errors (``gate: {alpah: 0.05}`` names ``gate.alpah``)."""

    model_config = ConfigDict(extra="forbid")


class ProfilingSettings(_Section):
    chunk_size: int = Field(5000, ge=50, description="rows per chunk when chunking by size")
    reference_chunks: int = Field(20, ge=5, description="reference chunks used to calibrate drift thresholds")
    false_alarm_quantile: float = Field(
        0.99, gt=0.5, lt=1.0, description="per-feature threshold = this quantile of reference chunk statistics"
    )
    batch_alpha: float = Field(
        0.05,
        gt=0.0,
        lt=1.0,
        description="batch-level error: chance that a stationary batch gives any drift evidence to the policy, "
        "whatever the number of features (tasks/drift/batch_control.py)",
    )
    batch_correction: Literal["holm", "none"] = Field(
        "holm",
        description="holm: the policy acts on the drift tests that survive Holm's correction at batch_alpha; "
        "none: on every per-feature alert (each at 1 - false_alarm_quantile, so k features alert more often)",
    )
    min_rows: int = Field(100, ge=1, description="a batch with fewer rows fails data quality")
    max_missing_rate: float = Field(0.2, ge=0.0, le=1.0, description="missingness above this fails data quality")
    block_range_multiple: float = Field(
        10.0,
        gt=0.0,
        description="values beyond the reference range by more than this many range widths are broken data "
        "(a unit change, a sentinel, a corrupted file), not drift",
    )
    block_range_share: float = Field(
        0.01, ge=0.0, le=1.0, description="a batch with more than this share of such values fails data quality"
    )


class ConceptDriftSettings(_Section):
    """Detector on the model's per-row error stream once labels arrive (tasks/drift/concept.py)."""

    method: Literal["mean_shift", "page_hinkley", "adwin", "off"] = Field(
        "mean_shift",
        description="mean_shift (each batch against the model's reference error), page_hinkley, adwin, or off",
    )
    error: Literal["brier", "zero_one", "log_loss"] = Field("brier", description="per-row loss fed to the detector")
    action: Literal["retrain", "alert"] = Field(
        "retrain", description="an alarm counts as performance degradation (retrain) or only alerts"
    )
    alpha: float = Field(
        0.01, gt=0.0, lt=0.5, description="mean_shift: false-alarm rate per batch of its one-sided Welch z test"
    )
    min_increase: float = Field(
        0.10, ge=0.0, description="mean_shift: relative increase of the mean error over the reference also required"
    )
    min_rows: int = Field(100, ge=2, description="mean_shift: labelled rows a batch needs to be tested")
    strata: int = Field(
        20, ge=1, description="mean_shift: score strata of the reference error, compared at a batch's scores (1: off)"
    )
    ph_delta: float = Field(0.03, ge=0.0, description="Page-Hinkley tolerated increase per row, in std. deviations")
    ph_threshold: float = Field(
        120.0,
        gt=0.0,
        description="Page-Hinkley lambda in std. deviations (~0.4 % false alarms per 4000 rows; more per larger batch)",
    )
    ph_min_rows: int = Field(300, ge=2, description="rows before Page-Hinkley starts testing")
    adwin_delta: float = Field(0.002, gt=0.0, lt=1.0, description="ADWIN confidence per cut test")
    adwin_bucket_rows: int = Field(100, ge=1, description="ADWIN rows per bucket")
    adwin_max_buckets: int = Field(400, ge=10, description="ADWIN window cap in buckets")


class PolicySettings(_Section):
    performance_drop: float = Field(
        0.02, ge=0.0, description="estimated/realized metric drop below the reference that counts as degradation"
    )
    drift_feature_share: float = Field(
        0.2, ge=0.0, le=1.0, description="share of drifted features that makes drift 'broad'"
    )
    retrain_on_drift_alone: bool = Field(False, description="allow RETRAIN on drift without performance evidence")
    persistence: int = Field(1, ge=1, description="consecutive degraded batches required before RETRAIN")
    cooldown_hours: float = Field(0.0, ge=0.0, description="no new retrain within this time after the last one")
    min_new_rows: int = Field(1000, ge=0, description="labelled rows required since the last retrain")
    max_retrains_per_day: int = Field(4, ge=0, description="retraining budget")
    wait_after_inconclusive: bool = Field(
        True,
        description="after a retrain whose gate was inconclusive (too few labels to tell), alert instead of "
        "retraining until the labelled rows its gate asked for have arrived",
    )
    business_weight: float = Field(1.0, ge=0.0, description="weight of one point of metric drop")
    traffic_weight: float = Field(1.0, ge=0.0, description="weight of traffic (rows per batch / 10k)")
    urgent_impact: float = Field(5.0, gt=0.0, description="impact at or above which a retrain is urgent")
    normal_impact: float = Field(1.0, gt=0.0, description="impact at or above which a retrain is normal (else low)")
    slice_action: Literal["retrain", "alert", "off"] = Field(
        "retrain", description="a degraded slice counts as degradation (retrain), only alerts, or is not judged"
    )
    slice_performance_drop: float = Field(
        0.05, ge=0.0, description="metric drop below the slice's own reference that degrades a slice"
    )
    slice_z: float = Field(3.0, ge=0.0, description="a slice's drop must also exceed this many sampling errors")
    min_slice_rows: int = Field(300, ge=1, description="slices with fewer rows are reported, not judged")
    concept_drift: ConceptDriftSettings = ConceptDriftSettings()

    @model_validator(mode="after")
    def _ordered_impacts(self) -> PolicySettings:
        if self.normal_impact > self.urgent_impact:
            raise ValueError(
                f"normal_impact ({self.normal_impact}) must not exceed urgent_impact ({self.urgent_impact})"
            )
        return self


class TrainingSettings(_Section):
    n_trials: int = Field(8, ge=1, description="Optuna trial budget (of the whole study, shared by its workers)")
    timeout_seconds: float = Field(120.0, gt=0, description="Optuna wall-time budget of one tuning call")
    num_boost_round: int = Field(300, ge=10, description="max trees; early stopping picks fewer")
    early_stopping_rounds: int = Field(20, ge=1)
    validation_fraction: float = Field(
        0.2, gt=0.0, lt=0.5, description="time-ordered tail of the recent training rows that validates"
    )
    holdout_fraction: float = Field(
        0.3, gt=0.0, lt=0.6, description="time-ordered tail of the recent rows kept for the gate"
    )
    window: Literal["sliding", "expanding", "reference_plus_recent"] = Field(
        "sliding",
        description="sliding: the newest window_rows labelled rows; expanding: the labelled reference plus every "
        "labelled monitored row; reference_plus_recent: a sample of the reference (weighted) plus the newest rows",
    )
    window_rows: int = Field(20000, ge=500, description="most recent labelled rows used for retraining")
    reference_rows: int = Field(
        20000, ge=0, description="reference rows sampled into a reference_plus_recent window (0: none)"
    )
    reference_weight: float = Field(
        0.5, gt=0.0, le=1.0, description="weight of a reference row relative to a recent row (reference_plus_recent)"
    )
    seed: int = 42


class CostMatrix(_Section):
    """Cost of each outcome of one decision taken at gate.decision_threshold (any unit; lower is better)."""

    true_negative: float = 0.0
    false_positive: float = Field(..., description="cost of predicting positive for a negative row")
    false_negative: float = Field(..., description="cost of predicting negative for a positive row")
    true_positive: float = 0.0


GateRule = Literal["backtest", "stress", "inference"]


class GateSettings(_Section):
    metric: Literal["roc_auc", "accuracy", "expected_cost"] = Field(
        "roc_auc",
        description="primary criterion: roc_auc (DeLong), accuracy (McNemar) or expected_cost (gate.cost_matrix)",
    )
    alpha: float = Field(0.05, gt=0.0, lt=0.5, description="significance level of every test")
    min_effect: float = Field(
        0.0, ge=0.0, description="required improvement in the primary metric (AUC or accuracy, or cost saved per row)"
    )
    slice_margin: float = Field(0.02, ge=0.0, description="non-inferiority margin of ROC AUC per slice")
    min_slice_rows: int = Field(200, ge=10, description="slices smaller than this are reported, not judged")
    n_bootstrap: int = Field(1000, ge=100, description="bootstrap resamples")
    min_rows: int = Field(500, ge=10, description="minimum holdout rows for a verdict")
    target_effect: float = Field(
        0.01,
        gt=0.0,
        description="smallest improvement of the primary metric worth finding (AUC or accuracy points, or cost saved "
        "per row): the gate states its power against it",
    )
    min_power: float = Field(
        0.8,
        ge=0.5,
        lt=1.0,
        description="a failed gate with less power than this at gate.target_effect is inconclusive, not 'no better'",
    )
    floor_roc_auc: float = Field(0.6, ge=0.5, le=1.0, description="absolute floor for a first model")
    floor_accuracy: float | None = Field(
        None, ge=0.0, le=1.0, description="first-model accuracy floor; default: the holdout's majority-class rate"
    )
    max_expected_cost: float | None = Field(
        None, description="first-model ceiling on cost per row; default: the cheaper constant decision's cost"
    )
    decision_threshold: float = Field(
        DEFAULT_DECISION_THRESHOLD,
        gt=0.0,
        lt=1.0,
        description="probability from which a row is predicted positive: scoring, canary, estimation, the gate",
    )
    cost_matrix: CostMatrix | None = Field(None, description="business costs of classification outcomes")
    cost_per_unit_error: float | None = Field(
        None, gt=0.0, description="business cost of one unit of absolute error (regression comparisons)"
    )
    backtest_margin: float = Field(
        0.10, ge=0.0, description="non-inferiority margin of ROC AUC on older data the models did not train on"
    )
    backtest_rows: int = Field(10000, ge=100, description="older rows sampled for the back-test")
    max_latency_ratio: float = Field(3.0, ge=1.0, description="candidate / champion scoring time per 10k rows")
    latency_allowance_ms: float = Field(
        250.0, ge=0.0, description="scoring time per 10k rows that is always within budget, whatever the ratio"
    )
    max_size_ratio: float = Field(4.0, ge=1.0, description="candidate / champion model size")
    size_allowance_bytes: int = Field(
        5_000_000, ge=0, description="model size that is always within budget, whatever the ratio"
    )
    stress_features: int = Field(
        3, ge=0, description="most important features of each model shifted in the stress test (0: no stress test)"
    )
    stress_shift: float = Field(
        0.5, gt=0.0, description="exponential tilt of a numeric feature, in standard deviations"
    )
    stress_category_factor: float = Field(3.0, gt=1.0, description="weight multiplier of one category in a scenario")
    stress_margin: float = Field(
        0.05, ge=0.0, description="largest extra AUC loss under a scenario, candidate vs champion, that still passes"
    )
    advisory_rules: list[GateRule] = Field(
        default_factory=list, description="rules that are reported but do not block (backtest, stress, inference)"
    )

    @model_validator(mode="after")
    def _primary_needs_costs(self) -> GateSettings:
        if self.metric == "expected_cost" and self.cost_matrix is None:
            raise ValueError("gate.metric 'expected_cost' needs gate.cost_matrix (false_positive, false_negative)")
        return self


class PromotionSettings(_Section):
    """Staged promotion: approval, canary watch window and the thresholds that trigger automatic rollback."""

    auto_approve: bool = Field(True, description="policy allows promotion without a human approval (no pause)")
    approval_timeout_seconds: int = Field(3600, ge=1, description="how long the approval pause waits for input")
    approval_poll_seconds: int = Field(10, ge=1, description="how often a paused promotion checks for input")
    watch_hours: float = Field(
        0.0, ge=0.0, description="canary exposure before production moves; 0 judges at once on the evidence so far"
    )
    min_canary_rows: int = Field(0, ge=0, description="rows the canary must have served before it may be promoted")
    max_estimated_drop: float = Field(0.02, ge=0.0, description="largest CBPE-estimated AUC drop vs production")
    max_realized_drop: float = Field(0.02, ge=0.0, description="largest realized AUC drop vs production (paired)")
    min_labelled_rows: int = Field(200, ge=10, description="labelled rows before realized performance is judged")
    max_error_rate: float = Field(0.01, ge=0.0, le=1.0, description="share of routed rows the canary failed to score")
    max_latency_ms_per_1k: float = Field(2000.0, gt=0.0, description="scoring time per 1,000 rows (median of batches)")
    rollback_window_hours: float = Field(
        24.0, ge=0.0, description="after promotion, a failing post-deployment audit moves production back"
    )


class DriftgateSettings(BaseSettings):
    """Everything driftgate can be told, with defaults that run offline on one machine."""

    model_config = SettingsConfigDict(
        env_prefix="DRIFTGATE_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    home: Path = Field(Path(".driftgate"), description="all state lives here: registry, store, runs, reports")
    model_name: str = Field("car-loan", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    contract_path: Path | None = Field(None, description="model contract YAML; default <home>/contract.yaml")
    reference_path: str | None = Field(None, description="reference data file; default <home>/reference.parquet")
    store_url: str | None = Field(None, description="SQLAlchemy URL of the audit store; default SQLite in home")
    optuna_storage: str | None = Field(
        None,
        description="database URL of the Optuna studies, shared by workers on several machines; default: the audit "
        "store's database when store_url names a server (PostgreSQL), else a journal file per study in the home",
    )
    artifact_store: str | None = Field(
        None,
        description="fsspec URL of the object store workers share (s3://bucket/prefix with the `s3` extra, gs://, "
        "az://): the batch lake lives at <url>/batches/<model>/; default: the home's folder",
    )
    artifact_store_options: dict[str, Any] = Field(
        default_factory=dict,
        description="options of the artifact store's file system, e.g. {endpoint_url: http://minio:9000} for an "
        "S3-API service; credentials come from the environment (AWS_ACCESS_KEY_ID, ...), never from here",
    )
    inbox: str = Field(
        "inbox/*.parquet",
        description="batch files the scheduled monitor picks up (a glob; relative to the home unless absolute)",
    )
    registry_backend: Literal["local", "wandb"] = Field(
        "local", description="local registry, or local ledger mirrored to the W&B Registry (needs WANDB_API_KEY)"
    )
    registry_storage: Literal["files", "sql"] = Field(
        "files",
        description="where the registry keeps its state: files (folders, a ledger file and flock in the home), or sql "
        "(versions, aliases and the ledger in the store_url database, model files content-addressed in the "
        "artifact store under <url>/registry/), for workers on several machines",
    )
    tracking_mode: Literal["offline", "online", "disabled"] = "offline"
    wandb_project: str = "driftgate"
    wandb_entity: str | None = None
    wandb_registry: str = Field(
        "model", pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$", description="W&B Registry name: wandb-registry-<name>/<model>"
    )
    num_threads: int = Field(1, ge=1, description="LightGBM threads; 1 is steadier on a shared machine")
    # Read from the environment when flows/monitor.py is imported (a flow's task runner is fixed when it is
    # defined): set them in the shell or a work pool's job variables, not in the settings file.
    monitor_concurrency: int = Field(
        1,
        ge=1,
        le=64,
        description="batch files a monitor flow measures at once on its task runner (threads, or Dask workers); "
        "judging and recording stay in batch order",
    )
    dask_address: str | None = Field(
        None,
        description="run the monitor flow's tasks on Dask (prefect-dask, extra 'dask'): a scheduler address "
        "(tcp://host:8786), or 'local' for a local cluster of monitor_concurrency worker processes",
    )
    canary_share: float = Field(0.1, ge=0.0, le=1.0)
    emit_events: bool = Field(True, description="emit Prefect events (needs a Prefect API)")
    retrain_slot: str | None = Field(
        "driftgate-retrain",
        description="Prefect global concurrency limit a retrain holds while it trains, so that at most that many "
        "retrains run across the priority deployments; skipped while the limit does not exist on the server "
        "(create it with `prefect gcl create driftgate-retrain --limit 1`); none: no slot",
    )
    telemetry: bool = Field(False, description="leave dependency telemetry on (off by default)")
    share_absolute_paths: bool = Field(
        False,
        description="write absolute local paths into reports, audit rows, ledger evidence and W&B (default: paths "
        "relative to the home or the working directory; see tasks/core/paths.py)",
    )
    wandb_artifact_rows: bool = Field(
        False,
        description="upload a version's row data (monitoring reference, training-row keys) with its W&B model "
        "artifact (default: model, contract, gate verdict, manifest and fingerprints only)",
    )
    profiling: ProfilingSettings = ProfilingSettings()
    policy: PolicySettings = PolicySettings()
    training: TrainingSettings = TrainingSettings()
    gate: GateSettings = GateSettings()
    promotion: PromotionSettings = PromotionSettings()

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("artifact_store")
    @classmethod
    def _known_object_store(cls, value: str | None) -> str | None:
        """An artifact_store URL names a file system fsspec knows and whose package is installed: checked when the
        settings load (no connection is made), so a worker does not find out after monitoring a batch."""
        if value is None or "://" not in value or value.startswith("file://"):
            return value
        import importlib.util

        from fsspec.registry import known_implementations  # only with a URL set: fsspec's import costs ~0.2 s

        protocol = value.split("://", 1)[0]
        known = known_implementations.get(protocol)
        if known is None:
            raise ValueError(f"{protocol}:// is not a file system fsspec knows (e.g. s3://, gs://, az://, memory://)")
        package = known["class"].split(".", 1)[0]
        if importlib.util.find_spec(package) is None:
            extra = " (the `s3` extra: uv sync --extra s3)" if protocol in ("s3", "s3a") else ""
            raise ValueError(f"{protocol}:// needs the {package} package, which is not installed{extra}")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlSource(settings_cls))

    # --- derived paths -------------------------------------------------------------
    def shareable(self, path: str | Path) -> str:
        """``path`` as reports, audit rows, ledger evidence and W&B may show it (tasks/core/paths.py)."""
        from tasks.core.paths import shareable

        return shareable(path, self.home, absolute=self.share_absolute_paths)

    @property
    def inbox_pattern(self) -> str:
        """The inbox glob as a path: relative globs live under the home, wherever the worker's cwd is."""
        return self.inbox if Path(self.inbox).is_absolute() else str(self.home / self.inbox)

    @property
    def registry_dir(self) -> Path:
        return self.home / "registry"

    @property
    def registry_objects(self) -> str:
        """Where ``registry_storage: sql`` keeps model files: ``<artifact_store>/registry``, else a home folder."""
        if self.artifact_store:
            return f"{self.artifact_store.rstrip('/')}/registry"
        return str(self.home / "registry-objects")

    @property
    def registry_copies_dir(self) -> Path:
        """The verified local copies of versions a ``registry_storage: sql`` registry hands out as folders."""
        return self.home / "registry-copies"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def wandb_dir(self) -> Path:
        return self.home / "wandb"

    @property
    def optuna_dir(self) -> Path:
        return self.home / "optuna"

    @property
    def optuna_storage_url(self) -> str | None:
        """Where studies live when not in journal files: ``optuna_storage``, else a server-backed audit store."""
        if self.optuna_storage:
            return self.optuna_storage
        if self.store_url and not self.store_url.startswith("sqlite"):
            return self.store_url
        return None

    @property
    def predictions_dir(self) -> Path:
        return self.home / "predictions"

    @property
    def resolved_contract_path(self) -> Path:
        return self.contract_path or self.home / "contract.yaml"

    @property
    def resolved_reference_path(self) -> str:
        return self.reference_path or str(self.home / "reference.parquet")

    @property
    def resolved_store_url(self) -> str:
        return self.store_url or f"sqlite:///{self.home / 'audit.db'}"

    def ensure_dirs(self) -> None:
        for path in (self.home, self.registry_dir, self.reports_dir, self.wandb_dir, self.optuna_dir):
            path.mkdir(parents=True, exist_ok=True)


# The file load_settings(path) was given, for the YAML source of the settings being built (one per context).
_CONFIG_FILE: ContextVar[Path | None] = ContextVar("driftgate_config_file", default=None)


class _YamlSource(PydanticBaseSettingsSource):
    """Reads the YAML file given to :func:`load_settings`, else the one ``DRIFTGATE_CONFIG`` names, if any."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        explicit = _CONFIG_FILE.get()
        if explicit is not None:
            return read_yaml_mapping(explicit)
        path = os.environ.get("DRIFTGATE_CONFIG")
        if not path:
            return {}
        return read_yaml_mapping(Path(path), named_by="DRIFTGATE_CONFIG")


def read_yaml_mapping(
    path: Path, *, what: str = "settings file", named_by: str | None = None, holds: str = "a mapping at the top level"
) -> dict[str, Any]:
    """The one reader of driftgate's YAML files: the mapping ``path`` holds (an empty file is an empty mapping).

    A missing file, invalid YAML or anything but a mapping is a ConfigError naming ``what`` and the path."""
    import yaml

    if not path.is_file():
        raise ConfigError(f"{what} {path}{f' ({named_by})' if named_by else ''} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {path} must hold {holds}")
    return data


HOME_SETTINGS_FILE = "driftgate.yaml"


def home_settings_file(home: Path | str | None) -> Path | None:
    """``<home>/driftgate.yaml`` when it exists: the file a worker given only DRIFTGATE_HOME reads, so that a
    deployed flow and the CLI that set the home up judge with the same settings."""
    if not home:
        return None
    candidate = Path(home).expanduser() / HOME_SETTINGS_FILE
    return candidate if candidate.is_file() else None


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> DriftgateSettings:
    """Build settings: keyword arguments (None means not given) over ``DRIFTGATE_*`` variables over the YAML
    file (``config_file``, else ``DRIFTGATE_CONFIG``, else ``<home>/driftgate.yaml`` of the home given as a
    keyword or in ``DRIFTGATE_HOME``) over defaults. Validation failures become a ConfigError
    that names the setting as its environment variable."""
    if config_file is None and not os.environ.get("DRIFTGATE_CONFIG"):
        config_file = home_settings_file(overrides.get("home") or os.environ.get("DRIFTGATE_HOME"))
    token = _CONFIG_FILE.set(Path(config_file) if config_file is not None else None)
    try:
        return DriftgateSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(
            f"DRIFTGATE_{'__'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from exc
    finally:
        _CONFIG_FILE.reset(token)
