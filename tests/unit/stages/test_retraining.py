"""The retraining stages end to end without Prefect: a first model, then a retrain judged by every gate rule,
with the report reachable from the registered version."""

from __future__ import annotations

import hashlib
import io
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tasks.core.settings import load_settings
from tasks.data.contract import FeatureSpec, ModelContract
from tasks.resources.workspace import open_workspace
from tasks.stages import retraining

CONTRACT = ModelContract(
    name="synthetic",
    features=[
        FeatureSpec(name="x1", kind="numeric"),
        FeatureSpec(name="x2", kind="numeric"),
        FeatureSpec(name="region", kind="categorical", categories=["east", "west"]),
    ],
    target="label",
    timestamp="ts",
    entity_id="id",
    slices=["region"],
)


def _rows(n: int, *, first_id: int, start: datetime, seed: int, flip: bool = False) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=(2, n))
    region = rng.choice(["east", "west"], size=n)
    logit = 1.5 * x1 - (1.0 if not flip else -1.0) * x2
    return pl.DataFrame(
        {
            "id": np.arange(first_id, first_id + n, dtype=np.int64),
            "x1": x1,
            "x2": x2,
            "region": region,
            "label": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8),
            "ts": [start + timedelta(minutes=i) for i in range(n)],
        }
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("retrain")


def test_first_model_then_a_retrain_judged_by_every_rule(home: Path) -> None:
    settings = load_settings(
        home=str(home),
        tracking_mode="disabled",
        emit_events=False,
        training={"n_trials": 2, "num_boost_round": 30, "early_stopping_rounds": 10},
        gate={"n_bootstrap": 200, "stress_features": 2},
    )
    ws = open_workspace(settings)
    CONTRACT.save(settings.resolved_contract_path)
    try:
        reference = _rows(2000, first_id=0, start=datetime(2024, 1, 1), seed=1)
        source = home / "given-reference.parquet"
        reference.write_parquet(source)
        kept = retraining.keep_reference(ws, reference, source=str(source))
        assert kept == str(home / "reference.parquet") and pl.read_parquet(kept).equals(reference)

        first_window = retraining.split_holdout(ws, reference, with_reference=False)
        first = retraining.train(ws, first_window, study_name="first")
        judged_first = retraining.evaluate(ws, first, first_window, None)
        v0 = retraining.register(ws, first, judged_first, reason="first", actor="test")
        retraining.record(ws, first, judged_first, v0, key=None, reason="first")
        assert judged_first.gate.first_model and judged_first.gate.passed

        # The concept of x2 flips in the recent period: the candidate must adapt and still pass the back-test.
        ws.lake.save("recent", _rows(2000, first_id=10_000, start=datetime(2024, 3, 1), seed=2, flip=True))
        window = retraining.split_holdout(ws, retraining.collect_window(ws))
        candidate = retraining.train(ws, window, study_name="second")
        judgement = retraining.evaluate(ws, candidate, window, v0)
        gate = judgement.gate
        assert [r.rule for r in gate.rules] == [
            "inputs", "superiority", "bootstrap", "mcnemar", "slices", "backtest", "stress", "inference", "power",
        ]  # fmt: skip
        backtest = gate.backtest
        # Older rows: the reference minus the rows v0 trained on, i.e. v0's holdout.
        assert backtest is not None and backtest.n_rows == judged_first.gate.n_rows
        assert "1400 of 2000 older rows left out" in backtest.note
        assert backtest.diff is not None and backtest.diff < 0  # the old concept is the champion's
        assert gate.stress and gate.inference is not None and gate.inference.champion_bytes is not None

        v1 = retraining.register(ws, candidate, judgement, reason="retrain", actor="test")
        report = retraining.record(ws, candidate, judgement, v1, key="k1", reason="retrain")
        notes = ws.registry.annotations(ws.model, v1.version)
        markdown = report.read_text()
        # stored relative to the home: nothing meant to be shared holds an absolute local path
        assert (
            notes["gate_report"] == str(report.relative_to(ws.settings.home))
            and not Path(notes["gate_report"]).is_absolute()
        )
        assert notes["gate_report_markdown"] == markdown
        assert notes["gate_report_sha256"] == hashlib.sha256(markdown.encode()).hexdigest()
        plot = ws.settings.home / notes["gate_plot"]
        assert plot.is_file() and notes["gate_plot_sha256"] == hashlib.sha256(plot.read_bytes()).hexdigest()
        assert "## Back-test on older data" in markdown and "## Sandbox stress scenarios" in markdown
        assert "## Inference budget" in markdown and f"![per-slice intervals]({plot.name})" in markdown
        assert {"gate.json", retraining.TRAINING_ROWS_FILE} <= set(v1.digests)
        assert v1.metadata["gate"]["rules"]["backtest"] == backtest.verdict
        assert v1.metadata["window"]["kind"] == "sliding"
        keys = pl.read_parquet(io.BytesIO(ws.registry.read_file(v1, retraining.TRAINING_ROWS_FILE)))
        assert keys.height == window.train.height
        gates = ws.store.decisions(ws.model, kind="gate")
        assert gates[-1]["payload"]["gate"]["backtest"]["n_rows"] == backtest.n_rows
        # What changed beyond the verdict: both models' calibration on the same holdout, importance shifts.
        comparison = judgement.comparison
        assert comparison is not None and comparison.champion is not None and comparison.rows == gate.n_rows
        assert "**Why this retrain:** retrain" in markdown
        assert "## Calibration and errors at threshold" in markdown and "| champion |" in markdown
        assert "## Feature importance (share of total gain, champion → candidate)" in markdown
        assert "![reliability diagram](v1-calibration.svg)" in markdown
        assert (report.parent / "v1-calibration.svg").is_file()
        stored = gates[-1]["payload"]["comparison"]
        assert set(stored["models"]) == {"champion", "candidate"} and stored["rows"] == gate.n_rows
        assert judged_first.comparison is not None and judged_first.comparison.champion is None
        # The final fit's learning curve ends where early stopping ended it, past the best round.
        assert len(candidate.learning_curve) >= candidate.best_iteration
        assert max(candidate.learning_curve) == pytest.approx(candidate.validation_auc)
    finally:
        ws.close()


def test_a_retrained_versions_reference_keeps_the_dtypes_of_the_users_files() -> None:
    import polars as pl

    from tasks.stages.retraining import in_dtypes_of

    model = pl.DataFrame({"a": [1, 2], "b": [1, 2], "c": ["x", "y"]})  # Int64 as the user's file had them
    holdout = pl.DataFrame({"a": [3.0, 4.0], "b": [1.5, 2.0], "c": ["x", "z"]})  # widened by validation
    kept = in_dtypes_of(holdout, model, ["a", "b", "c"])
    assert kept.schema["a"] == pl.Int64 and kept.get_column("a").to_list() == [3, 4]
    assert kept.schema["b"] == pl.Float64  # 1.5 would not survive the cast: left as it is
    assert kept.schema["c"] == pl.String


def test_a_manual_retrain_gets_a_study_per_data_window(tmp_path: Path) -> None:
    from types import SimpleNamespace

    import polars as pl

    from tasks.stages.retraining import study_for

    contract = SimpleNamespace(entity_id="id", timestamp=None)
    ws = SimpleNamespace(model="churn", contract=contract)

    def window(first: int) -> SimpleNamespace:
        return SimpleNamespace(
            train=pl.DataFrame({"id": list(range(first, first + 50))}),
            holdout=pl.DataFrame({"id": list(range(first + 50, first + 70))}),
        )

    one = study_for(ws, window(0), None)  # type: ignore[arg-type]
    assert one == study_for(ws, window(0), None)  # type: ignore[arg-type]  # a retry resumes
    assert one.startswith("churn-manual-") and one != study_for(ws, window(100), None)  # type: ignore[arg-type]
    assert study_for(ws, window(0), "retrain-abc") == "churn-retrain-abc"  # type: ignore[arg-type]
    assert study_for(ws, window(0), "retrain-abc", "mine") == "mine"  # type: ignore[arg-type]


def test_a_flow_run_retried_after_a_kill_claims_its_window_again(tmp_path: Path) -> None:
    """The claim of a retrain request is held by its flow run: the same run retried (its worker was killed
    mid-retrain) retrains the window, another run for the same window is a duplicate."""
    import uuid
    from types import SimpleNamespace

    from prefect.context import FlowRunContext

    from tasks.resources.store import AuditStore

    def in_run(run_id: uuid.UUID) -> FlowRunContext:
        return FlowRunContext.model_construct(flow_run=SimpleNamespace(id=run_id))  # type: ignore[call-arg, arg-type]

    store = AuditStore(f"sqlite:///{tmp_path / 'audit.db'}")
    ws = SimpleNamespace(store=store)
    first, second = uuid.uuid4(), uuid.uuid4()
    try:
        assert retraining.flow_run_holder() is None
        with in_run(first):
            assert retraining.flow_run_holder() == f"flow-run:{first}"
            assert retraining.claim(ws, "retrain-w1")  # type: ignore[arg-type]
        with in_run(first):  # the killed run, retried
            assert retraining.claim(ws, "retrain-w1")  # type: ignore[arg-type]
        with in_run(second):  # a second request
            assert not retraining.claim(ws, "retrain-w1")  # type: ignore[arg-type]
        assert not retraining.claim(ws, "retrain-w1")  # type: ignore[arg-type]
    finally:
        store.close()
