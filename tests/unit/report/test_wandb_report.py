"""The W&B Report of a retrain decision, built from the real wandb-workspaces models (no network), refers only
to metric keys and files that the monitoring and retrain runs actually log."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from tasks.core.verdicts import RuleResult
from tasks.gate.comparison import importance_change
from tasks.gate.results import GateDecision, SliceResult
from tasks.report.wandb_report import (
    GateRuleRow,
    RetrainReportInput,
    SliceInterval,
    TriggerBatch,
    build_report,
    panel_keys,
    report_from_spec,
    report_spec,
    spec_path,
    write_spec,
)
from tasks.resources import wandb_monitoring as mon
from tasks.resources import wandb_retrain as ret
from tasks.resources.tracking import WandbTracker
from tasks.stages.retraining import _run_metrics
from tasks.training.train import TrainedModel
from tests.unit.resources.test_tracking import _history, read_wandb_records

FEATURES = ("car_value", "salary_range")


class RecordingRun:
    """A TrackingRun that keeps the names of everything logged (metrics, files, tables)."""

    id = "recording"
    dir = None

    def __init__(self) -> None:
        self.keys: set[str] = set()
        self.step_metrics: dict[str, str] = {}

    def log(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self.keys.update(metrics)

    def summary(self, values: Mapping[str, Any]) -> None:
        return None

    def log_model(self, version: Any, aliases: Sequence[str]) -> None:
        return None

    def log_file(self, name: str, path: Path) -> None:
        self.keys.add(name)

    def log_table(self, name: str, frame: pl.DataFrame) -> None:
        self.keys.add(name)

    def define_metric(self, name: str, *, step_metric: str) -> None:
        self.step_metrics[name] = step_metric

    def use_dataset(self, name: str, fingerprint: str, metadata: Mapping[str, Any]) -> None:
        return None

    def finish(self) -> None:
        return None


def _gate() -> GateDecision:
    return GateDecision(
        passed=True,
        metric="roc_auc",
        n_rows=4000,
        first_model=False,
        champion_metric=0.80,
        candidate_metric=0.84,
        diff=0.04,
        ci_low=0.02,
        ci_high=0.06,
        delong_z=3.1,
        delong_p=0.001,
        alpha=0.05,
        min_effect=0.0,
        slice_margin=0.02,
        reasons=("better",),
        slices=(SliceResult("region", "north", 900, 0.8, 0.83, 0.03, 0.0, 0.06, 0.04, 0.08, "pass"),),
        candidate_auc=0.84,
        champion_auc=0.80,
        primary_p=0.001,
        rules=(RuleResult("primary", "pass", "gain 0.04 > 0", True),),
    )


def _trained() -> TrainedModel:
    return TrainedModel(
        model_text="tree",
        params={"num_leaves": 7},
        best_iteration=10,
        validation_auc=0.83,
        n_trials=3,
        n_pruned=1,
        tuning_seconds=1.0,
        train_rows=1000,
        valid_rows=200,
        window_start=None,
        window_end=None,
        feature_importance={"car_value": 3.0, "salary_range": 1.0},
        study_name="s",
    )


def _input() -> RetrainReportInput:
    return RetrainReportInput(
        model="car-loan",
        project="driftgate",
        entity="",
        candidate_version="v1",
        champion_version="v0",
        gate_passed=True,
        decision="promote",
        reason="performance degraded",
        metric="roc_auc",
        candidate_metric=0.84,
        champion_metric=0.80,
        diff=0.04,
        ci_low=0.02,
        ci_high=0.06,
        retrain_run="retrain-v1",
        rules=(GateRuleRow("primary", "pass", True, "gain 0.04 > 0"),),
        slices=(SliceInterval("region", "north", 900, 0.03, 0.0, 0.06),),
        triggers=(
            TriggerBatch("day-05", "2019-04-06T02:51:10+00:00", ("car_value/psi",), 0.97, 0.96, 0.98, 0.85, "RETRAIN"),
        ),
        importance=tuple(
            s.row()
            for s in importance_change({"car_value": 3.0, "salary_range": 1.0}, {"car_value": 1.0, "salary_range": 1.0})
        ),
        calibration=(("champion", 0.12, 0.03, 80, 20, 30, 870), ("candidate", 0.11, 0.02, 85, 18, 25, 872)),
        drift_keys=(mon.drift_key("car_value", "psi"),),
        flow_run_id="0b7e",
        flow_run_url="http://127.0.0.1:4200/flow-runs/flow-run/0b7e",
        html_report="reports/gate/v1.md",
    )


def _signals() -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, float]]:
    """Audit-store rows of two batches as the monitor and the labels arrival record them."""
    end = [datetime(2019, 4, day, 2, 51, tzinfo=UTC) for day in (5, 6)]
    signals: list[dict[str, Any]] = []
    for index, (batch, when) in enumerate(zip(("day-04", "day-05"), end, strict=True)):
        base = {"batch_id": batch, "window_end": when, "threshold": None, "payload": {}}
        for feature in FEATURES:
            signals.append(
                {**base, "kind": "drift", "name": feature, "method": "psi", "value": 0.1 * index, "alert": index == 1}
            )
        signals.append(
            {
                **base,
                "kind": "estimate",
                "name": "roc_auc",
                "method": "cbpe",
                "value": 0.97,
                "alert": False,
                "threshold": 0.96,
                "payload": {"lower": 0.96, "upper": 0.98},
            }
        )
        signals.append(
            {**base, "kind": "realized", "name": "roc_auc", "method": "labels", "value": 0.85, "alert": True}
        )
        signals.append(
            {**base, "kind": "quality", "name": "data_quality", "method": "checks", "value": 0.0, "alert": False}
        )
    decisions = [{"batch_id": "day-04", "outcome": "NONE"}, {"batch_id": "day-05", "outcome": "RETRAIN"}]
    return signals, decisions, {}


def test_every_panel_refers_to_a_key_the_runs_log() -> None:
    report = build_report(_input())
    wanted = panel_keys(report)
    assert set(wanted) == {"monitoring", "retrain"}

    # The retrain run: what retraining.record logs, through the same functions.
    run = RecordingRun()
    ret.log_trials(run, [ret.TrialRow(0, "COMPLETE", 0.8, {"num_leaves": 7}), ret.TrialRow(1, "PRUNED", 0.7, {})])
    ret.log_importance(run, [s.row() for s in importance_change({"car_value": 3.0}, {"car_value": 1.0})])
    ret.log_calibration(run, [("champion", 0.12, 0.03, 80, 20, 30, 870)])
    ret.log_learning_curve(run, [0.80, 0.82, 0.83])
    run.log(_run_metrics(_trained(), _gate()))
    run.log_file(ret.FOREST_PLOT, Path("forest.png"))
    run.log_table(ret.RULES_TABLE, pl.DataFrame({"rule": ["primary"]}))
    assert wanted["retrain"] <= run.keys, wanted["retrain"] - run.keys
    assert run.step_metrics["trial/*"] == ret.TRIAL and run.step_metrics["learning_curve/*"] == ret.ROUND

    # The monitoring run: the steps publish logs from the audit store's rows.
    signals, decisions, times = _signals()
    steps = mon.monitoring_steps(signals, decisions, times)
    logged = {mon.BATCH_TIME} | {key for step in steps for key in step.metrics}
    assert wanted["monitoring"] <= logged, wanted["monitoring"] - logged
    assert [s.batch_id for s in steps] == ["day-04", "day-05"]
    assert steps[1].metrics[mon.POLICY_RETRAIN] == 1.0 and steps[1].metrics[mon.DRIFT_ALERTS] == 2.0


def test_a_real_offline_monitoring_run_logs_the_panel_keys_on_the_batch_time_axis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR"):
        monkeypatch.setenv(key, str(tmp_path / key.lower()))
    signals, decisions, times = _signals()
    batch = mon.MonitoringBatch(
        model="car-loan",
        steps=tuple(mon.monitoring_steps(signals, decisions, times)),
        cursor=mon.MonitoringCursor(10, 2),
        decisions=("NONE", "RETRAIN"),
    )
    tracker = WandbTracker(mode="offline", project="driftgate-test", entity=None, directory=tmp_path / "wandb")
    run_id = mon.log_monitoring(tracker, batch)
    (run_dir,) = (tmp_path / "wandb" / "wandb").glob(f"offline-run-*-{run_id}")
    records = read_wandb_records(run_dir / f"run-{run_id}.wandb")
    history = _history(records)
    logged = {key for row in history for key in row if not key.startswith("_")}
    wanted = panel_keys(build_report(_input()))["monitoring"]
    assert wanted <= logged, wanted - logged
    assert [row[mon.BATCH_TIME] for row in history] == [s.batch_time for s in batch.steps]
    (run_record,) = [body for kind, body in records if kind == "run"]
    assert run_record.run_group == "car-loan" and run_record.job_type == "monitoring"
    assert list(run_record.tags) == ["NONE", "RETRAIN"]


def test_the_specification_round_trips_and_is_written_next_to_the_reports(tmp_path: Path) -> None:
    report = build_report(_input())
    path = write_spec(report, spec_path(tmp_path / "reports", "car-loan", "v1"))
    assert path == tmp_path / "reports" / "wandb" / "car-loan" / "v1.report.json"
    spec = json.loads(path.read_text())
    assert spec["displayName"] == "car-loan v1 vs v0: gate passed"
    again = report_from_spec(spec)
    assert panel_keys(again) == panel_keys(report)
    assert report_spec(again)["spec"]["blocks"] == spec["spec"]["blocks"]
    text = json.dumps(spec)
    for needle in (
        "Why it was triggered",
        "day-05",
        "primary",
        "region",
        "Feature importance change",
        "Calibration: champion vs candidate",
        "| candidate | 0.1100 | 0.0200 | 85 | 18 | 25 | 872 |",
        "http://127.0.0.1:4200/flow-runs/flow-run/0b7e",
        "driftgate promote v1",
    ):
        assert needle in text, needle


def test_settings_in_a_run_config_hold_no_secret_and_no_absolute_path() -> None:
    settings = {
        "home": "/srv/dg",
        "store_url": "postgresql://u:pw@h/db",
        "policy": {"persistence": 2},
        "wandb_api_key": "x",
        "optuna_storage": "sqlite:////x.db",
        "reports": "/srv/dg/reports",
    }
    safe = ret.safe_settings(settings, share_absolute_paths=False)
    assert safe == {"home": "dg", "policy": {"persistence": 2}, "reports": "reports"}
    assert ret.safe_settings(settings, share_absolute_paths=True)["home"] == "/srv/dg"


def test_a_first_model_report_plots_nothing_a_first_model_run_does_not_log() -> None:
    from dataclasses import replace

    first = replace(_input(), champion_version=None, forest_plot=False, diff=None, ci_low=None, ci_high=None)
    gate = replace(_gate(), first_model=True, champion_metric=None, diff=None, primary_p=None, champion_auc=None)
    run = RecordingRun()
    ret.log_trials(run, [ret.TrialRow(0, "COMPLETE", 0.8, {"num_leaves": 7})])
    ret.log_learning_curve(run, [0.8, 0.81])
    run.log(_run_metrics(_trained(), gate))
    wanted = panel_keys(build_report(first))["retrain"]
    assert wanted <= run.keys, wanted - run.keys
    assert ret.FOREST_PLOT not in wanted and "gate_diff" not in wanted
