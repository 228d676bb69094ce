"""What a retrain run logs to W&B beyond its summary: every Optuna trial, a safe config, importance change,
calibration.

The keys are defined here once; the W&B report of a retrain decision (``tasks/report/wandb_report.py``)
plots exactly these names, and its test checks each panel against what these functions log.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from tasks.resources.tracking import TrackingRun

TRIAL: Final = "trial"  # the x axis of the trial panels: the Optuna trial number
TRIAL_VALUE: Final = "trial/value"
TRIAL_PRUNED: Final = "trial/pruned"
TRIAL_BEST: Final = "trial/best_value"  # best value so far: the study's learning curve
TRIALS_TABLE: Final = "optuna_trials"
ROUND: Final = "boosting_round"  # the x axis of the learning curve: the final fit's boosting round
CURVE_VALID: Final = "learning_curve/valid_auc"  # validation AUC after each round (early stopping ends it)
IMPORTANCE_TABLE: Final = "feature_importance"
CALIBRATION_TABLE: Final = "calibration"
RULES_TABLE: Final = "gate_rules"
FOREST_PLOT: Final = "gate_slices.png"  # the gate's forest plot (wandb.Image)
GATE_REPORT_FILE: Final = "gate_report.md"
SUMMARY_METRICS: Final = ("holdout_auc", "validation_auc")
PAIRED_METRICS: Final = ("gate_diff", "gate_p_value")  # logged only when there is a champion to compare with
JOB_TYPE: Final = "retrain"
# Settings never copied into a run's config: credentials and connection strings may hold secrets.
_SECRET_WORDS: Final = ("key", "token", "secret", "password", "url", "storage", "dsn")


@dataclass(frozen=True)
class TrialRow:
    """One Optuna trial as W&B shows it."""

    number: int
    state: str  # COMPLETE, PRUNED, FAIL, RUNNING, WAITING
    value: float | None
    params: dict[str, Any]


def safe_settings(settings: Mapping[str, Any], *, share_absolute_paths: bool) -> dict[str, Any]:
    """Settings for a run's config: nothing that may hold a secret, no absolute path unless the user allows it."""

    def keep(name: str, value: Any) -> Any:
        if any(word in name.lower() for word in _SECRET_WORDS):
            return None
        if isinstance(value, Mapping):
            return {k: v for k, v in ((k, keep(str(k), v)) for k, v in value.items()) if v is not None}
        if isinstance(value, Path) or (isinstance(value, str) and value.startswith("/")):
            return str(value) if share_absolute_paths else Path(str(value)).name
        return value

    return {k: v for k, v in ((str(k), keep(str(k), v)) for k, v in settings.items()) if v is not None}


def log_trials(run: TrackingRun, trials: Sequence[TrialRow]) -> None:
    """One step per trial (value, pruned flag, best so far) on the trial axis, and the whole history as a table."""
    import polars as pl

    run.define_metric("trial/*", step_metric=TRIAL)
    best: float | None = None
    for trial in sorted(trials, key=lambda t: t.number):
        metrics: dict[str, float] = {TRIAL: float(trial.number), TRIAL_PRUNED: float(trial.state == "PRUNED")}
        if trial.value is not None:
            metrics[TRIAL_VALUE] = float(trial.value)
            if trial.state == "COMPLETE":
                best = trial.value if best is None else max(best, trial.value)
        if best is not None:
            metrics[TRIAL_BEST] = float(best)
        run.log(metrics)
    names = sorted({name for trial in trials for name in trial.params})
    frame = pl.DataFrame(
        {
            "number": [t.number for t in trials],
            "state": [t.state for t in trials],
            "value": [t.value for t in trials],
            **{f"param_{name}": [_cell(t.params.get(name)) for t in trials] for name in names},
        },
        strict=False,
    )
    run.log_table(TRIALS_TABLE, frame)


def log_learning_curve(run: TrackingRun, curve: Sequence[float]) -> None:
    """The final fit's validation AUC per boosting round, on its own axis."""
    run.define_metric("learning_curve/*", step_metric=ROUND)
    for index, value in enumerate(curve, start=1):
        run.log({ROUND: float(index), CURVE_VALID: float(value)})


def _cell(value: Any) -> Any:
    return value if value is None or isinstance(value, bool | int | float) else str(value)


ImportanceRow = tuple[str, float, float | None, float | None]  # feature, candidate share, champion share, change
CalibrationRow = tuple[str, float, float, int, int, int, int]  # model, Brier, ECE, TP, FP, FN, TN


def log_importance(run: TrackingRun, rows: Sequence[ImportanceRow]) -> None:
    """The feature-importance change (tasks/gate/comparison.py's shares) as a table."""
    import polars as pl

    frame = pl.DataFrame(
        {
            "feature": [r[0] for r in rows],
            "candidate_share": [r[1] for r in rows],
            "champion_share": [r[2] for r in rows],
            "change": [r[3] for r in rows],
        },
        schema={"feature": pl.String, **{c: pl.Float64 for c in ("candidate_share", "champion_share", "change")}},
    )
    run.log_table(IMPORTANCE_TABLE, frame)


def log_calibration(run: TrackingRun, rows: Sequence[CalibrationRow]) -> None:
    """Champion and candidate calibration and errors at the decision threshold on the gate's holdout."""
    import polars as pl

    names = ("model", "brier", "ece", "true_positives", "false_positives", "false_negatives", "true_negatives")
    schema = {"model": pl.String, "brier": pl.Float64, "ece": pl.Float64, **dict.fromkeys(names[3:], pl.Int64)}
    frame = pl.DataFrame(list(rows), schema=schema, orient="row")
    run.log_table(CALIBRATION_TABLE, frame)


def trials_of(storage_dir: Path | None, study_name: str, storage_url: str | None) -> list[TrialRow]:
    """The trials of a retrain's Optuna study, read from its storage (journal file or database)."""
    from tasks.training.train import study_trials

    return [
        TrialRow(number=t["number"], state=t["state"], value=t["value"], params=t["params"])
        for t in study_trials(storage_dir, study_name, storage_url)
    ]
