"""Wall time of one full retrain: window → Optuna-tuned LightGBM (20 trials) → every gate rule, on 200k rows.

    uv run python benchmarks/retrain_timing.py [--rows 200000] [--trials 20] [--threads 1]

Data: synthetic and seeded, 25 features (20 numeric, 5 categorical) as in the stack notes' measurement, labels
from a logistic model with interactions; ``--rows`` recent rows whose concept has partly changed, and 50,000
older reference rows. The champion is a LightGBM model trained (untimed) on the first 30,000 reference rows;
the rest of the reference is the back-test's older data. Every row is distinct (no resampling, so the holdout
never repeats a training row). Timed stages, as the retrain flow runs them (minus Prefect, registry, tracking):

1. window: holdout split, time-ordered (tasks.training.windows.assemble_window);
2. tune + refit: ``--trials`` Optuna trials (TPE, median pruning, early stopping) in a journal file;
3. score: candidate and champion on the holdout;
4. gate inputs: back-test rows (sampled, scored by both), stress scenarios, inference timing;
5. gate: every rule (DeLong, 1,000 stratified bootstrap resamples, McNemar, slices, back-test, stress, budget).

Run it three times and quote the median; the machine may be shared.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

CATEGORIES = ["a", "b", "c", "d"]


def synthetic(rows: int, *, seed: int, start: datetime, first_id: int, drifted: bool) -> pl.DataFrame:
    """Labelled rows one second apart; ``drifted`` flips one coefficient (concept drift)."""
    rng = np.random.default_rng(seed)
    numeric = rng.normal(size=(rows, 20))
    categorical = rng.integers(0, 4, size=(rows, 5))
    weights = np.linspace(1.0, -1.0, 20)
    if drifted:
        weights[3] *= -1.0
    logit = numeric @ weights * 0.4 + 0.8 * numeric[:, 1] * numeric[:, 2] + 0.5 * (categorical[:, 0] == 2)
    labels = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int8)
    columns: dict[str, object] = {"id": np.arange(first_id, first_id + rows, dtype=np.int64)}
    columns.update({f"x{i}": numeric[:, i] for i in range(20)})
    columns.update({f"c{i}": np.asarray(CATEGORIES)[categorical[:, i]] for i in range(5)})
    columns["label"] = labels
    columns["ts"] = pl.datetime_range(start, start + timedelta(seconds=rows - 1), "1s", eager=True)
    return pl.DataFrame(columns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    from tasks.core.settings import GateSettings, TrainingSettings
    from tasks.data.contract import infer_contract
    from tasks.gate.evaluate import evaluate_gate
    from tasks.gate.results import BacktestData
    from tasks.gate.rules import gate_slices
    from tasks.gate.stress import stress_scenarios, top_features
    from tasks.training.train import measure_inference, predict_proba, train_candidate
    from tasks.training.windows import assemble_window, older_rows, row_keys

    reference = synthetic(50_000, seed=args.seed, start=datetime(2024, 1, 1), first_id=0, drifted=False)
    recent = synthetic(args.rows, seed=args.seed + 1, start=datetime(2024, 6, 1), first_id=10**7, drifted=True)
    contract = infer_contract(reference, name="synthetic", target="label", entity_id="id", timestamp="ts",
                              slices=["c0", "c1"])  # fmt: skip
    training = TrainingSettings(n_trials=args.trials, timeout_seconds=3600, seed=args.seed)
    gate_settings = GateSettings()

    champion_rows = reference.head(30_000)
    champion_settings = training.model_copy(update={"n_trials": 3})
    champion = train_candidate(champion_rows, contract, champion_settings, num_threads=args.threads).model_text

    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        window = assemble_window(recent, None, contract, training)
        timings["window"] = time.perf_counter() - started

        mark = time.perf_counter()
        trained = train_candidate(
            window.train,
            contract,
            training.model_copy(update={"validation_fraction": window.validation_fraction}),
            num_threads=args.threads,
            storage_dir=Path(tmp),
            study_name="timing",
        )
        timings["tune + refit"] = time.perf_counter() - mark

        mark = time.perf_counter()
        holdout = window.holdout
        labels = holdout.get_column("label").to_numpy().astype(float)
        candidate_scores = predict_proba(trained.model_text, holdout, contract, num_threads=args.threads)
        champion_scores = predict_proba(champion, holdout, contract, num_threads=args.threads)
        timings["score holdout"] = time.perf_counter() - mark

        mark = time.perf_counter()
        older = older_rows(
            reference,
            contract,
            before=window.recent_start,
            trained_on=[row_keys(window.train, contract), row_keys(champion_rows, contract)],
            max_rows=gate_settings.backtest_rows,
            seed=args.seed,
        ).rows
        backtest = BacktestData(
            older.get_column("label").to_numpy().astype(float),
            predict_proba(trained.model_text, older, contract, num_threads=args.threads),
            predict_proba(champion, older, contract, num_threads=args.threads),
            "reference period",
            "reference rows the champion did not train on",
        )
        scenarios = stress_scenarios(
            holdout,
            contract,
            top_features([trained.feature_importance], gate_settings.stress_features),
            shift=gate_settings.stress_shift,
            category_factor=gate_settings.stress_category_factor,
        )
        costs = measure_inference(
            {"candidate": trained.model_text, "champion": champion}, holdout, contract, num_threads=args.threads
        )
        timings["gate inputs"] = time.perf_counter() - mark

        mark = time.perf_counter()
        decision = evaluate_gate(
            labels,
            candidate_scores,
            champion_scores,
            gate_slices(holdout, contract.slices),
            gate_settings,
            seed=args.seed,
            backtest=backtest,
            stress=scenarios,
            candidate_cost=costs["candidate"],
            champion_cost=costs["champion"],
        )
        timings["gate"] = time.perf_counter() - mark
        total = time.perf_counter() - started

    print(
        f"retrain on {args.rows} rows ({window.train.height} train incl. {trained.valid_rows} validation, "
        f"{holdout.height} holdout), {trained.n_trials} trials ({trained.n_pruned} pruned), "
        f"{args.threads} LightGBM thread(s)"
    )
    for stage, seconds in timings.items():
        print(f"  {stage:<14} {seconds:8.1f} s")
    print(f"  {'total':<14} {total:8.1f} s")
    verdicts = ", ".join(f"{r.rule} {r.verdict}" for r in decision.rules)
    print(f"gate {'passed' if decision.passed else 'failed'}: {verdicts}")
    print(f"candidate AUC {decision.candidate_auc:.4f} vs champion {decision.champion_auc:.4f}")


if __name__ == "__main__":
    main()
