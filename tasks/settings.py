"""One settings object for driftgate: env prefix ``DRIFTGATE_`` (nested with ``__``), optional YAML file.

Precedence (highest first): explicit keyword arguments, environment variables,
the YAML file named by ``DRIFTGATE_CONFIG`` (or passed to :func:`load_settings`), defaults.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from tasks.errors import ConfigError


class ProfilingSettings(BaseModel):
    chunk_size: int = Field(5000, ge=50, description="rows per chunk when chunking by size")
    reference_chunks: int = Field(20, ge=5, description="reference chunks used to calibrate drift thresholds")
    false_alarm_quantile: float = Field(
        0.99, gt=0.5, lt=1.0, description="per-feature threshold = this quantile of reference chunk statistics"
    )
    min_rows: int = Field(100, ge=1, description="a batch with fewer rows fails data quality")
    max_missing_rate: float = Field(0.2, ge=0.0, le=1.0, description="missingness above this fails data quality")


class PolicySettings(BaseModel):
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
    business_weight: float = Field(1.0, ge=0.0, description="weight of one point of metric drop")
    traffic_weight: float = Field(1.0, ge=0.0, description="weight of traffic (rows per batch / 10k)")


class TrainingSettings(BaseModel):
    n_trials: int = Field(8, ge=1, description="Optuna trial budget")
    timeout_seconds: float = Field(120.0, gt=0, description="Optuna wall-time budget")
    num_boost_round: int = Field(300, ge=10, description="max trees; early stopping picks fewer")
    early_stopping_rounds: int = Field(20, ge=1)
    validation_fraction: float = Field(0.2, gt=0.0, lt=0.5, description="time-ordered tail held out for validation")
    holdout_fraction: float = Field(
        0.3, gt=0.0, lt=0.6, description="time-ordered tail of the window kept for the gate"
    )
    window_rows: int = Field(20000, ge=500, description="most recent labelled rows used for retraining")
    seed: int = 42


class GateSettings(BaseModel):
    metric: Literal["roc_auc"] = "roc_auc"
    alpha: float = Field(0.05, gt=0.0, lt=0.5, description="significance level of every test")
    min_effect: float = Field(0.0, ge=0.0, description="required superiority margin on the metric")
    slice_margin: float = Field(0.02, ge=0.0, description="non-inferiority margin per slice")
    min_slice_rows: int = Field(200, ge=10, description="slices smaller than this are reported, not judged")
    n_bootstrap: int = Field(1000, ge=100, description="bootstrap resamples")
    min_rows: int = Field(500, ge=10, description="minimum holdout rows for a verdict")
    floor_roc_auc: float = Field(0.6, ge=0.5, le=1.0, description="absolute floor for a first model")


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
    registry_backend: Literal["local"] = "local"
    tracking_mode: Literal["offline", "online", "disabled"] = "offline"
    wandb_project: str = "driftgate"
    wandb_entity: str | None = None
    num_threads: int = Field(1, ge=1, description="LightGBM threads; 1 is steadier on a shared machine")
    canary_share: float = Field(0.1, ge=0.0, le=1.0)
    emit_events: bool = Field(True, description="emit Prefect events (needs a Prefect API)")
    telemetry: bool = Field(False, description="leave dependency telemetry on (off by default)")
    profiling: ProfilingSettings = ProfilingSettings()
    policy: PolicySettings = PolicySettings()
    training: TrainingSettings = TrainingSettings()
    gate: GateSettings = GateSettings()

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()

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
    @property
    def registry_dir(self) -> Path:
        return self.home / "registry"

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


class _YamlSource(PydanticBaseSettingsSource):
    """Reads the YAML file named by DRIFTGATE_CONFIG, if any."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get("DRIFTGATE_CONFIG")
        if not path:
            return {}
        return read_yaml_config(Path(path))


def read_yaml_config(path: Path) -> dict[str, Any]:
    import yaml

    if not path.is_file():
        raise ConfigError(f"settings file {path} (DRIFTGATE_CONFIG) does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"settings file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"settings file {path} must hold a mapping at the top level")
    return data


def load_settings(config_file: Path | None = None, **overrides: Any) -> DriftgateSettings:
    """Build settings, turning validation failures into a ConfigError that names the setting."""
    try:
        if config_file is not None:
            file_values = read_yaml_config(config_file)
            merged = {**file_values, **{k: v for k, v in overrides.items() if v is not None}}
            return DriftgateSettings(**merged)
        return DriftgateSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(
            f"DRIFTGATE_{'__'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from exc
