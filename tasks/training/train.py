"""Retraining: an Optuna-tuned LightGBM binary classifier on a time-ordered window, and scoring with it.

LightGBM's native API is used throughout (``LGBMClassifier`` breaks with scikit-learn 1.9), and
models travel as LightGBM's text format, never as pickles. Tuning is deterministic given the
seed and thread count, prunes hopeless trials with a median rule, and, given a storage
directory, keeps its study in an Optuna journal file so that an interrupted retrain resumes and
several processes can tune one study together.

Rows may carry a weight (column :data:`WEIGHT_COLUMN`), which is how a reference-plus-recent window
counts older rows for less; the class imbalance of the (weighted) training rows sets
``scale_pos_weight``.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import re
import socket
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks.core.errors import (
    ConfigError,
    ContractError,
    DataError,
    IntegrityError,
    MissingColumnError,
    TrainingError,
)
from tasks.core.settings import TrainingSettings
from tasks.data.contract import ModelContract, categorical_indices, feature_matrix, require_two_classes, validate_batch

if TYPE_CHECKING:
    import lightgbm as lgb
    import numpy as np
    import optuna
    import polars as pl

MIN_TRAINING_ROWS = 200
# Row weights travel with the rows in this column (added by tasks.training.windows, never a contract feature).
WEIGHT_COLUMN = "__driftgate_weight"
# A minority share below this switches on positive-class weighting.
IMBALANCE_SHARE = 0.2
# Intermediate validation AUC is reported to Optuna every this many boosting rounds: often
# enough for the median rule, rarely enough that a shared journal file stays small.
REPORT_EVERY_ROUNDS = 10
PRUNER_WARMUP_ROUNDS = 30
_STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

ProgressCallback = Callable[[int, int, float | None], None]


@dataclass(frozen=True)
class TrainedModel:
    model_text: str  # LightGBM text format (booster.model_to_string()); never a pickle
    params: dict[str, Any]
    best_iteration: int
    validation_auc: float
    n_trials: int  # finished trials (complete + pruned) in the study, including resumed ones
    n_pruned: int
    tuning_seconds: float  # wall time of this call's tuning and refit
    train_rows: int
    valid_rows: int
    window_start: datetime | None
    window_end: datetime | None
    feature_importance: dict[str, float]  # total gain, by contract feature name
    study_name: str
    weighted: bool = False  # rows carried unequal weights (a reference-plus-recent window)
    # validation AUC after each boosting round of the final fit, up to where early stopping ended it
    learning_curve: tuple[float, ...] = ()


def model_digest(model_text: str) -> str:
    """SHA-256 of the model text: the identity of a model wherever it is stored or cached."""
    return hashlib.sha256(model_text.encode("utf-8")).hexdigest()


def time_ordered_split(
    frame: pl.DataFrame, contract: ModelContract, fraction: float
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(older rows, newest ``fraction`` of rows), sorted by the contract's timestamp when it has one.

    Ties keep their input order, so every row of the second frame is at least as recent as every
    row of the first: no future rows leak into the first part.
    """
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"split fraction must lie in (0, 1), got {fraction}")
    if frame.height < 2:
        raise DataError(f"cannot split {frame.height} rows into two parts", source="time-ordered split")
    ordered = frame
    if contract.timestamp is not None:
        if contract.timestamp not in frame.columns:
            raise MissingColumnError(
                "timestamp column is missing", source="time-ordered split", column=contract.timestamp
            )
        nulls = frame.get_column(contract.timestamp).null_count()
        if nulls:
            raise DataError(
                f"{nulls} rows have no timestamp, so their order in time is unknown",
                source="time-ordered split",
                column=contract.timestamp,
            )
        ordered = frame.sort(contract.timestamp, maintain_order=True)
    tail = min(max(round(frame.height * fraction), 1), frame.height - 1)
    return ordered.head(frame.height - tail), ordered.tail(tail)


# --- tuning --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Split:
    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    feature_names: list[str]
    categorical: list[int]
    w_train: np.ndarray | None = None
    w_valid: np.ndarray | None = None

    def datasets(self, params: dict[str, Any]) -> tuple[lgb.Dataset, lgb.Dataset]:
        # Fresh Datasets per trial: binning depends on trial params such as min_data_in_leaf.
        import lightgbm as lgb

        train = lgb.Dataset(
            self.x_train,
            label=self.y_train,
            weight=self.w_train,
            feature_name=self.feature_names,
            categorical_feature=self.categorical,
            params=params,
            free_raw_data=False,
        )
        valid = lgb.Dataset(self.x_valid, label=self.y_valid, weight=self.w_valid, reference=train, free_raw_data=False)
        return train, valid

    def fingerprint(self, settings: TrainingSettings) -> str:
        digest = hashlib.sha256()
        for array in (self.x_train, self.y_train, self.x_valid, self.y_valid, self.w_train, self.w_valid):
            if array is not None:
                digest.update(array.tobytes())
        digest.update(repr((self.feature_names, self.categorical)).encode())
        digest.update(repr((settings.num_boost_round, settings.early_stopping_rounds, settings.seed)).encode())
        return digest.hexdigest()


def _lightgbm_names(names: list[str]) -> list[str]:
    # LightGBM rejects JSON punctuation in feature names; keep them readable in the model text.
    cleaned = [re.sub(r"[^0-9A-Za-z_]", "_", name) for name in names]
    if len(set(cleaned)) < len(cleaned):
        cleaned = [f"{name}_{i}" for i, name in enumerate(cleaned)]
    return cleaned


def _base_params(
    y_train: np.ndarray, settings: TrainingSettings, num_threads: int, weights: np.ndarray | None = None
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "objective": "binary",
        "metric": "auc",
        "verbosity": -1,
        "seed": settings.seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": num_threads,
        "bagging_freq": 1,
        "feature_pre_filter": False,
    }
    import numpy as np

    # Class mass counts weights, so a down-weighted reference does not skew the balance.
    mass = np.ones_like(y_train) if weights is None else weights
    positives = float((mass * y_train).sum())
    negatives = float(mass.sum()) - positives
    if min(positives, negatives) / (positives + negatives) < IMBALANCE_SHARE:
        params["scale_pos_weight"] = negatives / positives
    return params


def _suggest(trial: optuna.Trial, train_rows: int) -> dict[str, Any]:
    # Leaves of 200 rows make sense for a large window only; a small one would get a stump.
    max_leaf_rows = min(200, max(10, train_rows // 10))
    return {
        "num_leaves": trial.suggest_int("num_leaves", 8, 128, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
        "min_data_in_leaf": trial.suggest_int("min_data_in_leaf", 10, max_leaf_rows),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.5, 1.0),
        "bagging_fraction": trial.suggest_float("bagging_fraction", 0.5, 1.0),
        "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 10.0, log=True),
    }


def _trial_seeded_sampler(seed: int, n_startup_trials: int) -> optuna.samplers.BaseSampler:
    """TPE whose random state is derived from (seed, trial number) rather than from the process.

    One seeded TPESampler per process would make a resumed run replay the first run's draws and
    make workers sharing a journal study propose the same parameters. Seeding each trial by its
    number (unique within a study) keeps tuning reproducible for a given history and spreads
    parallel workers apart.
    """
    import optuna
    from optuna.samplers import TPESampler

    class TrialSeededTPESampler(optuna.samplers.BaseSampler):
        def __init__(self) -> None:
            self._trial_number = -1
            self._sampler = TPESampler(seed=seed, n_startup_trials=n_startup_trials)

        def _for_trial(self, number: int) -> TPESampler:
            # Every parameter of a trial must come from one sampler so that its RNG advances.
            if number != self._trial_number:
                self._trial_number = number
                self._sampler = TPESampler(seed=seed + number, n_startup_trials=n_startup_trials)
            return self._sampler

        def infer_relative_search_space(
            self, study: optuna.Study, trial: optuna.trial.FrozenTrial
        ) -> dict[str, optuna.distributions.BaseDistribution]:
            return {}

        def sample_relative(
            self,
            study: optuna.Study,
            trial: optuna.trial.FrozenTrial,
            search_space: dict[str, optuna.distributions.BaseDistribution],
        ) -> dict[str, Any]:
            return {}

        def sample_independent(
            self,
            study: optuna.Study,
            trial: optuna.trial.FrozenTrial,
            param_name: str,
            param_distribution: optuna.distributions.BaseDistribution,
        ) -> Any:
            return self._for_trial(trial.number).sample_independent(study, trial, param_name, param_distribution)

        def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            self._for_trial(trial.number).before_trial(study, trial)

        def after_trial(
            self,
            study: optuna.Study,
            trial: optuna.trial.FrozenTrial,
            state: optuna.trial.TrialState,
            values: Sequence[float] | None,
        ) -> None:
            self._for_trial(trial.number).after_trial(study, trial, state, values)

    return TrialSeededTPESampler()


def _pruning_callback(trial: optuna.Trial) -> Callable[[Any], None]:
    """LightGBM callback reporting validation AUC to Optuna and raising TrialPruned when told to."""
    import optuna

    def callback(env: Any) -> None:
        round_number = env.iteration + 1
        if round_number % REPORT_EVERY_ROUNDS:
            return
        for data_name, metric, value, _ in env.evaluation_result_list or []:
            if data_name == "valid" and metric == "auc":
                trial.report(float(value), round_number)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at round {round_number}: validation AUC {value:.4f}")

    return callback


def _fit(
    split: _Split, params: dict[str, Any], settings: TrainingSettings, extra_callbacks: list[Callable[[Any], None]]
) -> lgb.Booster:
    import lightgbm as lgb

    train, valid = split.datasets(params)
    try:
        return lgb.train(
            params,
            train,
            num_boost_round=settings.num_boost_round,
            valid_sets=[valid],
            valid_names=["valid"],
            callbacks=[lgb.early_stopping(settings.early_stopping_rounds, verbose=False), *extra_callbacks],
        )
    except lgb.basic.LightGBMError as exc:
        raise TrainingError(f"LightGBM failed with params {params}: {exc}") from exc


# RDB storage: a live worker beats every HEARTBEAT seconds; a trial silent for GRACE is failed by Optuna itself.
HEARTBEAT_SECONDS = 30
GRACE_SECONDS = 120


def _open_study(storage_dir: Path | None, study_name: str, storage_url: str | None = None) -> optuna.Study:
    """The study named ``study_name``: in the database at ``storage_url`` (Optuna's RDB storage, shared by workers
    on several machines), else in ``<storage_dir>/<study_name>.journal`` (one machine), else in memory."""
    import optuna
    from optuna.storages import BaseStorage, JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    storage: BaseStorage | None = None
    if storage_url is not None:
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.9; we rely on them
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = RDBStorage(storage_url, heartbeat_interval=HEARTBEAT_SECONDS, grace_period=GRACE_SECONDS)
        except Exception as exc:  # SQLAlchemy or driver errors: name the (masked) URL
            from tasks.core.paths import mask_password

            raise TrainingError(f"cannot open Optuna storage {mask_password(storage_url)}: {exc}") from exc
    elif storage_dir is not None:
        storage_dir.mkdir(parents=True, exist_ok=True)
        storage = JournalStorage(JournalFileBackend(str(storage_dir / f"{study_name}.journal")))
    study = optuna.create_study(storage=storage, study_name=study_name, direction="maximize", load_if_exists=True)
    if isinstance(storage, RDBStorage):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
    else:
        fail_orphan_trials(study)
    return study


def study_trials(storage_dir: Path | None, study_name: str, storage_url: str | None = None) -> list[dict[str, Any]]:
    """Every trial of a stored study (number, state, value, params), read only: unlike ``_open_study`` it
    neither creates the study nor fails another worker's running trials. Empty when the study is not stored."""
    import optuna
    from optuna.storages import BaseStorage, JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    storage: BaseStorage
    if storage_url is not None:
        storage = RDBStorage(storage_url)
    elif storage_dir is not None and (storage_dir / f"{study_name}.journal").is_file():
        storage = JournalStorage(JournalFileBackend(str(storage_dir / f"{study_name}.journal")))
    else:
        return []
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:  # no study of that name in the storage
        return []
    return [
        {"number": t.number, "state": t.state.name, "value": t.value, "params": dict(t.params)}
        for t in study.get_trials(deepcopy=False)
    ]


ORPHAN_AFTER_SECONDS = 3600.0  # a RUNNING trial older than this belongs to a process that died


def fail_orphan_trials(study: optuna.Study, *, older_than: float = ORPHAN_AFTER_SECONDS) -> list[int]:
    """Mark RUNNING trials started more than ``older_than`` seconds ago as FAIL: a process killed mid-trial
    leaves its trial RUNNING for ever (the journal has no heartbeat). Younger ones may belong to a live worker
    tuning the same study, so they are left alone. Returns the trial numbers failed."""
    from datetime import datetime, timedelta

    from optuna.trial import TrialState

    cutoff = datetime.now() - timedelta(seconds=older_than)
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.datetime_start is not None and trial.datetime_start < cutoff:
            study.tell(trial.number, state=TrialState.FAIL)
            failed.append(trial.number)
    return failed


def _finished_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))


def train_candidate(
    frame: pl.DataFrame,
    contract: ModelContract,
    settings: TrainingSettings,
    *,
    num_threads: int = 1,
    storage_dir: Path | None = None,
    storage_url: str | None = None,
    study_name: str = "retrain",
    progress: ProgressCallback | None = None,
    weight_column: str | None = None,
) -> TrainedModel:
    """Tune LightGBM with Optuna on the labelled window ``frame`` (the gate holdout already removed).

    The newest ``settings.validation_fraction`` of rows validates (early stopping, pruning, model
    choice); the best parameters are refit on the older rows. With ``storage_dir`` the study lives in
    ``<storage_dir>/<study_name>.journal``: calling again resumes it, and ``settings.n_trials`` is the
    budget of the whole study, shared by every process tuning it (with ``storage_url`` the study lives in that
    database instead, so workers on other machines share it); ``settings.timeout_seconds`` bounds
    the wall time of this call's tuning. ``progress(finished, budget, best)`` is called after each
    trial. With ``weight_column`` each row counts with its weight in training and validation.
    """
    import lightgbm as lgb
    import numpy as np
    import optuna
    from optuna.pruners import MedianPruner
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    if not _STUDY_NAME.match(study_name):
        raise ConfigError(f"study name {study_name!r} must match {_STUDY_NAME.pattern} (it names a journal file)")
    source = "training window"
    if contract.target not in frame.columns:
        raise MissingColumnError("training needs the target column", source=source, column=contract.target)
    unlabelled = frame.get_column(contract.target).null_count()
    if unlabelled:
        raise TrainingError(
            f"training window has {unlabelled} rows without a label in column {contract.target!r}; "
            "pass labelled rows only"
        )
    if frame.height < MIN_TRAINING_ROWS:
        raise TrainingError(
            f"training window has {frame.height} labelled rows in column {contract.target!r}; "
            f"need at least {MIN_TRAINING_ROWS}"
        )
    if weight_column is not None:
        _check_weights(frame, weight_column, source)
    window = validate_batch(frame, contract, source=source, require_target=True)
    require_two_classes(window, contract, source=source)
    train, valid = time_ordered_split(window, contract, settings.validation_fraction)
    require_two_classes(train, contract, source="training part of the window")
    require_two_classes(valid, contract, source="validation tail of the window")

    split = _Split(
        x_train=feature_matrix(train, contract),
        y_train=train.get_column(contract.target).to_numpy().astype(np.float64),
        x_valid=feature_matrix(valid, contract),
        y_valid=valid.get_column(contract.target).to_numpy().astype(np.float64),
        feature_names=_lightgbm_names(contract.feature_names),
        categorical=categorical_indices(contract),
        w_train=None if weight_column is None else train.get_column(weight_column).to_numpy().astype(np.float64),
        w_valid=None if weight_column is None else valid.get_column(weight_column).to_numpy().astype(np.float64),
    )
    base = _base_params(split.y_train, settings, num_threads, split.w_train)
    worker = f"{socket.gethostname()}:{os.getpid()}"

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("worker", worker)
        params = {**base, **_suggest(trial, train.height)}
        booster = _fit(split, params, settings, [_pruning_callback(trial)])
        trial.set_user_attr("best_iteration", booster.best_iteration)
        return float(booster.best_score["valid"]["auc"])

    def report_progress(study: optuna.Study, _trial: optuna.trial.FrozenTrial) -> None:
        if progress is None:
            return
        best = study.best_value if study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) else None
        progress(len(_finished_trials(study)), settings.n_trials, best)

    started = time.perf_counter()
    previous_verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = _open_study(storage_dir, study_name, storage_url)
        fingerprint = split.fingerprint(settings)
        known = study.user_attrs.get("data_fingerprint")
        if known is None:
            study.set_user_attr("data_fingerprint", fingerprint)
        elif known != fingerprint:
            raise TrainingError(
                f"Optuna study {study_name!r} in {storage_dir} was tuned on other data or settings "
                f"(fingerprint {known[:12]} vs {fingerprint[:12]}); use a new study name for a new window"
            )
        study.sampler = _trial_seeded_sampler(settings.seed, max(1, min(10, settings.n_trials // 2)))
        study.pruner = MedianPruner(n_startup_trials=3, n_warmup_steps=PRUNER_WARMUP_ROUNDS)
        remaining = settings.n_trials - len(_finished_trials(study))
        if remaining > 0:
            study.optimize(
                objective,
                n_trials=remaining,
                timeout=settings.timeout_seconds,
                callbacks=[
                    MaxTrialsCallback(settings.n_trials, states=(TrialState.COMPLETE, TrialState.PRUNED)),
                    report_progress,
                ],
            )
    finally:
        optuna.logging.set_verbosity(previous_verbosity)

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        raise TrainingError(
            f"Optuna study {study_name!r} has no completed trial after {settings.timeout_seconds:g} s "
            "(training.timeout_seconds); raise the time budget"
        )
    params = {**base, **study.best_trial.params}
    evaluations: dict[str, Any] = {}
    booster = _fit(split, params, settings, [lgb.record_evaluation(evaluations)])
    best_iteration = int(booster.best_iteration) or booster.current_iteration()
    gains = booster.feature_importance(importance_type="gain", iteration=best_iteration)
    finished = _finished_trials(study)
    timestamps = window.get_column(contract.timestamp) if contract.timestamp else None
    return TrainedModel(
        model_text=booster.model_to_string(num_iteration=best_iteration),
        params=params,
        best_iteration=best_iteration,
        validation_auc=float(booster.best_score["valid"]["auc"]),
        n_trials=len(finished),
        n_pruned=sum(t.state == TrialState.PRUNED for t in finished),
        tuning_seconds=time.perf_counter() - started,
        train_rows=train.height,
        valid_rows=valid.height,
        window_start=timestamps.min() if timestamps is not None else None,  # type: ignore[arg-type]
        window_end=timestamps.max() if timestamps is not None else None,  # type: ignore[arg-type]
        feature_importance={
            name: float(gain) for name, gain in zip(contract.feature_names, gains.tolist(), strict=True)
        },
        study_name=study_name,
        weighted=weight_column is not None,
        learning_curve=tuple(float(v) for v in evaluations.get("valid", {}).get("auc", [])),
    )


def _check_weights(frame: pl.DataFrame, column: str, source: str) -> None:
    import polars as pl

    if column not in frame.columns:
        raise MissingColumnError("the weight column named for training is absent", source=source, column=column)
    weights = frame.get_column(column)
    if not weights.dtype.is_numeric():
        raise DataError(f"row weights must be numeric, found {weights.dtype}", source=source, column=column)
    bad = frame.select((~pl.col(column).cast(pl.Float64).is_finite() | (pl.col(column) <= 0)).sum()).item()
    bad += weights.null_count()
    if bad:
        raise DataError(f"{bad} row weights are missing, non-finite or not positive", source=source, column=column)


# --- scoring -------------------------------------------------------------------------------------


class _ModelText:
    """Cache key for a model: hashed and compared by digest, carrying the text to load on a miss."""

    __slots__ = ("digest", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.digest = model_digest(text)

    def __hash__(self) -> int:
        return hash(self.digest)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ModelText) and other.digest == self.digest


@functools.lru_cache(maxsize=8)
def _load_booster(model: _ModelText) -> lgb.Booster:
    import lightgbm as lgb

    try:
        return lgb.Booster(model_str=model.text)
    except lgb.basic.LightGBMError as exc:
        raise IntegrityError(f"model sha256:{model.digest[:12]} is not a valid LightGBM text model: {exc}") from exc


def predict_proba(model_text: str, frame: pl.DataFrame, contract: ModelContract, *, num_threads: int = 1) -> np.ndarray:
    """Positive-class probabilities of ``frame`` (validated against ``contract``) under the model."""
    import numpy as np

    for column in contract.feature_names:
        if column not in frame.columns:
            raise MissingColumnError("scoring needs every contract feature", source="scoring frame", column=column)
    booster = _load_booster(_ModelText(model_text))
    if booster.num_feature() != len(contract.features):
        raise ContractError(
            f"model sha256:{model_digest(model_text)[:12]} has {booster.num_feature()} features, "
            f"contract {contract.name!r} has {len(contract.features)}"
        )
    if frame.height == 0:
        return np.empty(0, dtype=np.float64)
    features = feature_matrix(frame, contract)
    return np.asarray(booster.predict(features, num_threads=num_threads), dtype=np.float64)


@dataclass(frozen=True)
class InferenceCost:
    """What scoring with one model costs: the gate's inference budget compares these."""

    latency_ms_per_10k: float  # wall time, fastest of the timed repeats, scaled to 10,000 rows
    model_bytes: int  # size of the LightGBM text model
    n_trees: int
    rows_timed: int
    repeats: int
    cpu_ms_per_10k: float | None = None  # CPU time of the process, fastest repeat, scaled to 10,000 rows

    @property
    def budget_ms_per_10k(self) -> float:
        """The figure a budget is judged on: CPU time when measured (a busy machine does not inflate it)."""
        return self.cpu_ms_per_10k if self.cpu_ms_per_10k is not None else self.latency_ms_per_10k


def measure_inference(
    model_texts: Mapping[str, str],
    frame: pl.DataFrame,
    contract: ModelContract,
    *,
    num_threads: int = 1,
    rows: int = 10_000,
    repeats: int = 5,
) -> dict[str, InferenceCost]:
    """Time each model's ``predict`` on the same ``rows`` rows (``frame`` tiled as needed).

    Models are timed in turn within each repeat and the fastest repeat counts, so that a burst of
    load on a shared machine hits both alike. Both wall time and the process's CPU time are kept:
    other processes competing for the cores inflate the first, not the second, and with one
    LightGBM thread the CPU time is the latency on an idle core. Feature conversion is done once
    and left out: it costs every model the same.
    """
    import numpy as np

    if frame.height == 0:
        raise DataError("cannot time scoring on an empty frame", source="inference budget")
    if rows < 1 or repeats < 1:
        raise ConfigError(f"rows ({rows}) and repeats ({repeats}) of an inference timing must be positive")
    features = feature_matrix(frame, contract)
    tiled = np.ascontiguousarray(np.resize(features, (rows, features.shape[1])))
    boosters = {name: _load_booster(_ModelText(text)) for name, text in model_texts.items()}
    wall = dict.fromkeys(boosters, math.inf)
    cpu = dict.fromkeys(boosters, math.inf)
    for _ in range(repeats):
        for name, booster in boosters.items():
            started, started_cpu = time.perf_counter(), time.process_time()
            booster.predict(tiled, num_threads=num_threads)
            cpu[name] = min(cpu[name], time.process_time() - started_cpu)
            wall[name] = min(wall[name], time.perf_counter() - started)
    scale = 1000.0 * 10_000 / rows
    return {
        name: InferenceCost(
            latency_ms_per_10k=wall[name] * scale,
            model_bytes=len(model_texts[name].encode("utf-8")),
            n_trees=int(booster.num_trees()),
            rows_timed=rows,
            repeats=repeats,
            cpu_ms_per_10k=cpu[name] * scale,
        )
        for name, booster in boosters.items()
    }
