from __future__ import annotations

import multiprocessing
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from tasks.core.errors import DataError, IntegrityError, MissingColumnError, SingleClassError, TrainingError
from tasks.core.settings import TrainingSettings
from tasks.data.contract import FeatureSpec, ModelContract
from tasks.training.train import (
    WEIGHT_COLUMN,
    _load_booster,
    _pruning_callback,
    measure_inference,
    model_digest,
    predict_proba,
    time_ordered_split,
    train_candidate,
)

CONTRACT = ModelContract(
    name="synthetic",
    features=[
        FeatureSpec(name="x1", kind="numeric"),
        FeatureSpec(name="x2", kind="numeric"),
        FeatureSpec(name="noise", kind="numeric"),
        FeatureSpec(name="region", kind="categorical", categories=["east", "north", "south"]),
    ],
    target="label",
    timestamp="ts",
    entity_id="id",
    slices=["region"],
)
FAST = TrainingSettings(n_trials=3, num_boost_round=120, early_stopping_rounds=10, timeout_seconds=60)


def _window(n: int = 3000, seed: int = 0, base_logit: float = -0.3) -> pl.DataFrame:
    """Labels from a known logistic model; timestamps shuffled so that ordering must be done by the split."""
    rng = np.random.default_rng(seed)
    x1, x2, noise = rng.normal(size=(3, n))
    region = rng.choice(["east", "north", "south"], size=n)
    logit = base_logit + 1.5 * x1 - 1.0 * x2 + 1.2 * (region == "north")
    label = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int8)
    seconds = rng.permutation(n) * 60
    return pl.DataFrame(
        {
            "id": np.arange(n, dtype=np.int64),
            "x1": x1,
            "x2": x2,
            "noise": noise,
            "region": region,
            "label": label,
            "ts": [datetime(2024, 1, 1) + timedelta(seconds=int(s)) for s in seconds],
        }
    )


@pytest.fixture(scope="module")
def trained() -> tuple[Any, list[tuple[int, int, float | None]]]:
    calls: list[tuple[int, int, float | None]] = []
    model = train_candidate(_window(), CONTRACT, FAST, progress=lambda *args: calls.append(args))
    return model, calls


def test_fits_synthetic_data_well(trained: tuple[Any, list[tuple[int, int, float | None]]]) -> None:
    from sklearn.metrics import roc_auc_score

    model, calls = trained
    fresh = _window(n=2000, seed=99)
    auc = roc_auc_score(fresh.get_column("label").to_numpy(), predict_proba(model.model_text, fresh, CONTRACT))
    assert auc > 0.8
    assert model.validation_auc > 0.8
    assert (model.n_trials, model.train_rows, model.valid_rows) == (3, 2400, 600)
    assert 1 <= model.best_iteration <= FAST.num_boost_round
    assert model.window_start == datetime(2024, 1, 1)
    assert model.window_end == datetime(2024, 1, 1) + timedelta(minutes=2999)
    assert list(model.feature_importance) == ["x1", "x2", "noise", "region"]
    assert model.feature_importance["x1"] > model.feature_importance["noise"]
    assert model.feature_importance["region"] > 0
    assert model.params["deterministic"] is True and model.params["num_threads"] == 1
    assert "scale_pos_weight" not in model.params
    assert [(done, budget) for done, budget, _ in calls] == [(1, 3), (2, 3), (3, 3)]
    assert all(best is not None and 0.5 < best <= 1 for _, _, best in calls)
    assert model.model_text.startswith("tree\n")


def test_same_seed_gives_the_same_model(trained: tuple[Any, list[tuple[int, int, float | None]]]) -> None:
    again = train_candidate(_window(), CONTRACT, FAST)
    other_seed = train_candidate(_window(), CONTRACT, FAST.model_copy(update={"seed": 7}))
    assert again.model_text == trained[0].model_text
    assert model_digest(again.model_text) == model_digest(trained[0].model_text)
    assert other_seed.model_text != again.model_text


def test_time_ordered_split_has_no_leakage() -> None:
    frame = _window(n=1000)
    older, newer = time_ordered_split(frame, CONTRACT, 0.2)
    assert (older.height, newer.height) == (800, 200)
    assert older.get_column("ts").max() < newer.get_column("ts").min()  # type: ignore[operator]
    assert sorted(older.get_column("id").to_list() + newer.get_column("id").to_list()) == list(range(1000))
    # Ties straddling the boundary stay in input order; nothing newer lands in the older part.
    tied = frame.with_columns(pl.lit(datetime(2024, 1, 1)).alias("ts"))
    older, newer = time_ordered_split(tied, CONTRACT, 0.25)
    assert older.get_column("id").to_list() == list(range(750))
    # Without a timestamp the input order is the time order.
    untimed = CONTRACT.model_copy(update={"timestamp": None})
    older, newer = time_ordered_split(frame, untimed, 0.1)
    assert newer.get_column("id").to_list() == list(range(900, 1000))


def test_single_class_window_names_the_target() -> None:
    frame = _window(n=500).with_columns(pl.lit(0, dtype=pl.Int8).alias("label"))
    with pytest.raises(SingleClassError, match="column 'label'"):
        train_candidate(frame, CONTRACT, FAST)


def test_single_class_validation_tail_is_rejected() -> None:
    frame = _window(n=500).sort("ts")
    frame = frame.with_columns(pl.when(pl.int_range(pl.len()) >= 400).then(0).otherwise(pl.col("label")).alias("label"))
    with pytest.raises(SingleClassError, match="validation tail"):
        train_candidate(frame, CONTRACT, FAST)


def test_unusable_windows_are_rejected() -> None:
    with pytest.raises(MissingColumnError, match="'label'"):
        train_candidate(_window(n=500).drop("label"), CONTRACT, FAST)
    with pytest.raises(TrainingError, match="50 labelled rows in column 'label'"):
        train_candidate(_window(n=50), CONTRACT, FAST)
    unlabelled = _window(n=500).with_columns(
        pl.when(pl.col("id") < 3).then(None).otherwise(pl.col("label")).alias("label")
    )
    with pytest.raises(TrainingError, match="3 rows without a label in column 'label'"):
        train_candidate(unlabelled, CONTRACT, FAST)


def test_imbalanced_window_weights_the_minority() -> None:
    frame = _window(n=2000, base_logit=-4.0)
    share = frame.get_column("label").mean()
    assert share is not None and share < 0.2  # type: ignore[operator]
    model = train_candidate(frame, CONTRACT, FAST.model_copy(update={"n_trials": 1}))
    older, _ = time_ordered_split(frame.sort("ts"), CONTRACT, FAST.validation_fraction)
    positives = int(older.get_column("label").sum())
    assert model.params["scale_pos_weight"] == pytest.approx((older.height - positives) / positives)


def test_interrupted_journal_study_resumes(tmp_path: Path) -> None:
    import optuna

    frame = _window(n=1500)
    budget = FAST.model_copy(update={"n_trials": 4})
    # A budget that runs out after the first trial stands in for an interruption.
    first = train_candidate(
        frame, CONTRACT, budget.model_copy(update={"timeout_seconds": 1e-3}), storage_dir=tmp_path, study_name="w1"
    )
    assert first.n_trials == 1
    assert (tmp_path / "w1.journal").is_file()
    resumed = train_candidate(frame, CONTRACT, budget, storage_dir=tmp_path, study_name="w1")
    assert resumed.n_trials == 4
    study = optuna.load_study(
        study_name="w1",
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(tmp_path / "w1.journal"))
        ),
    )
    params = [t.params for t in study.trials]
    assert len(params) == 4 and params[0] != params[1]  # the resumed run did not replay the first draw
    finished = train_candidate(frame, CONTRACT, budget, storage_dir=tmp_path, study_name="w1")
    assert finished.n_trials == 4 and finished.model_text == resumed.model_text
    with pytest.raises(TrainingError, match=r"'w1'.*other data"):
        train_candidate(_window(n=1500, seed=5), CONTRACT, budget, storage_dir=tmp_path, study_name="w1")


def test_pruning_callback_prunes_a_trial_below_the_median() -> None:
    import lightgbm as lgb
    import optuna

    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=1))
    good = study.ask()
    good.report(0.9, 10)
    study.tell(good, 0.9)
    trial = study.ask()
    callback = _pruning_callback(trial)

    def env(iteration: int, auc: float) -> lgb.callback.CallbackEnv:
        return lgb.callback.CallbackEnv(None, {}, iteration, 0, 100, [("valid", "auc", auc, True)])  # type: ignore[arg-type]

    callback(env(4, 0.5))  # not a reporting round: nothing reported, nothing pruned
    assert study.trials[-1].intermediate_values == {}
    with pytest.raises(optuna.TrialPruned, match="round 10"):
        callback(env(9, 0.6))


def _tune_shared_study(storage: str, first_trial_done: Any) -> None:
    held: list[int] = []

    def hold_after_first_trial(finished: int, budget: int, best: float | None) -> None:
        # Trials take milliseconds: without this rendezvous one worker could finish the whole
        # budget before the other has opened the study.
        if not held:
            held.append(finished)
            first_trial_done.wait(timeout=60)

    settings = TrainingSettings(n_trials=6, num_boost_round=40, early_stopping_rounds=5, timeout_seconds=60)
    train_candidate(
        _window(n=800),
        CONTRACT,
        settings,
        storage_dir=None if "://" in storage else Path(storage),
        storage_url=storage if "://" in storage else None,
        study_name="shared",
        progress=hold_after_first_trial,
    )


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["journal", "postgres"])
def test_two_processes_tune_one_study(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """One study, two workers: in a journal file (one machine) or in PostgreSQL (workers on several machines)."""
    import optuna

    storage = str(tmp_path) if backend == "journal" else request.getfixturevalue("postgres_url")
    # This test process is the second worker: one spawned interpreter instead of two halves the
    # import cost (lightgbm pulls in scikit-learn and scipy) on a shared machine.
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    other = context.Process(target=_tune_shared_study, args=(storage, barrier))
    other.start()
    try:
        _tune_shared_study(storage, barrier)
    finally:
        other.join(timeout=90)
    assert other.exitcode == 0
    shared: optuna.storages.BaseStorage = (
        optuna.storages.RDBStorage(storage)
        if backend == "postgres"
        else optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(tmp_path / "shared.journal"))
        )
    )
    study = optuna.load_study(study_name="shared", storage=shared)
    finished = [t for t in study.trials if t.state.is_finished()]
    # The budget is the study's: each worker stops once six trials are done (a trial in flight may add one).
    assert 6 <= len(finished) <= 7
    assert len({t.user_attrs["worker"] for t in finished}) == 2
    # Trials are seeded by their number, not by the process: the workers did not duplicate draws.
    assert len({tuple(sorted(t.params.items())) for t in finished}) == len(finished)


def test_predict_proba_caches_boosters_and_checks_inputs(trained: tuple[Any, list[Any]]) -> None:
    model = trained[0]
    frame = _window(n=300, seed=3)
    before = _load_booster.cache_info().hits
    first = predict_proba(model.model_text, frame, CONTRACT)
    second = predict_proba(model.model_text, frame, CONTRACT)
    assert _load_booster.cache_info().hits >= before + 1
    assert np.array_equal(first, second) and first.shape == (300,)
    assert ((first > 0) & (first < 1)).all()
    unseen = frame.with_columns(pl.lit("west").alias("region"))
    assert np.isfinite(predict_proba(model.model_text, unseen, CONTRACT)).all()
    assert predict_proba(model.model_text, frame.head(0), CONTRACT).shape == (0,)
    with pytest.raises(MissingColumnError, match="'x2'"):
        predict_proba(model.model_text, frame.drop("x2"), CONTRACT)
    with pytest.raises(IntegrityError, match="not a valid LightGBM"):
        predict_proba("tree\nnonsense", frame, CONTRACT)


def test_wall_time_budget_stops_tuning_before_the_trial_budget() -> None:
    frame = _window(n=1500)
    budget = FAST.model_copy(update={"n_trials": 200, "timeout_seconds": 1.0})
    model = train_candidate(frame, CONTRACT, budget)
    assert 1 <= model.n_trials < 200
    # One trial in flight when the budget runs out may finish; the refit comes on top.
    assert model.tuning_seconds < 10


def test_row_weights_change_the_model_and_the_class_balance() -> None:
    frame = _window(n=2000, base_logit=-3.5).sort("ts")
    weights = np.where(np.arange(frame.height) < 1000, 0.2, 1.0)
    weighted_frame = frame.with_columns(pl.Series(WEIGHT_COLUMN, weights))
    one_trial = FAST.model_copy(update={"n_trials": 1})
    plain = train_candidate(frame, CONTRACT, one_trial)
    weighted = train_candidate(weighted_frame, CONTRACT, one_trial, weight_column=WEIGHT_COLUMN)
    assert weighted.weighted and not plain.weighted
    assert weighted.model_text != plain.model_text
    older, _ = time_ordered_split(weighted_frame, CONTRACT, one_trial.validation_fraction)
    w = older.get_column(WEIGHT_COLUMN).to_numpy()
    y = older.get_column("label").to_numpy()
    assert weighted.params["scale_pos_weight"] == pytest.approx((w * (1 - y)).sum() / (w * y).sum())
    with pytest.raises(MissingColumnError, match=WEIGHT_COLUMN):
        train_candidate(frame, CONTRACT, one_trial, weight_column=WEIGHT_COLUMN)
    negative = weighted_frame.with_columns(pl.lit(-1.0).alias(WEIGHT_COLUMN))
    with pytest.raises(DataError, match="2000 row weights are missing, non-finite or not positive"):
        train_candidate(negative, CONTRACT, one_trial, weight_column=WEIGHT_COLUMN)


def test_inference_cost_is_measured_for_each_model(trained: tuple[Any, list[Any]]) -> None:
    model = trained[0]
    costs = measure_inference({"a": model.model_text, "b": model.model_text}, _window(n=300, seed=4), CONTRACT,
                              rows=2000, repeats=2)  # fmt: skip
    assert set(costs) == {"a", "b"}
    assert costs["a"].model_bytes == len(model.model_text.encode()) and costs["a"].n_trees >= 1
    assert costs["a"].latency_ms_per_10k > 0 and costs["a"].rows_timed == 2000


def test_orphan_running_trials_are_failed_on_resume(tmp_path: Path) -> None:
    """A process killed mid-trial leaves it RUNNING; opening the study again fails it once it is old enough
    (a young one may belong to a live worker tuning the same study)."""
    import optuna
    from optuna.trial import TrialState

    from tasks.training.train import _open_study, fail_orphan_trials

    study = _open_study(tmp_path, "orphans")
    study.ask()  # a trial that will never be told: its process "died"
    assert fail_orphan_trials(study) == []  # young: left alone
    assert fail_orphan_trials(study, older_than=0.0) == [0]
    reopened = optuna.load_study(
        study_name="orphans",
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(tmp_path / "orphans.journal"))
        ),
    )
    assert [t.state for t in reopened.get_trials(deepcopy=False)] == [TrialState.FAIL]
