"""Every flow and every CLI command closes its workspace, whichever step fails (no Prefect run needed:
each flow's plain function runs with every step of the table (flows/bodies.py Steps, wrapped by flows/steps.py)
replaced by one that raises), in flow mode and in direct mode."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tasks.resources.workspace import Workspace

FLOWS: list[tuple[str, str, dict[str, Any]]] = [
    ("flows.monitor", "monitor_flow", {"batches": ["batch.parquet"]}),
    ("flows.retrain", "retrain_flow", {}),
    ("flows.bootstrap", "bootstrap_flow", {"reference": "reference.parquet"}),
    ("flows.labels", "labels_flow", {"labels": ["labels.parquet"]}),
    ("flows.promote", "promote_flow", {"version": "v1"}),
    ("flows.score", "score_flow", {"batches": ["batch.parquet"]}),
    ("flows.watch", "watch_flow", {}),
    ("flows.drill", "drill_flow", {}),
    ("flows.rollback", "rollback_flow", {}),
    ("flows.replay", "replay_flow", {"degraded": "x"}),
]


class StepFailed(RuntimeError):
    pass


@pytest.fixture()
def closes(monkeypatch: pytest.MonkeyPatch) -> list[Workspace]:
    closed: list[Workspace] = []
    original = Workspace.close

    def close(self: Workspace) -> None:
        closed.append(self)
        original(self)

    monkeypatch.setattr(Workspace, "close", close)
    return closed


@pytest.mark.parametrize(("module", "name", "kwargs"), FLOWS, ids=[f[1] for f in FLOWS])
def test_a_flow_closes_its_workspace_when_a_step_raises(
    module: str, name: str, kwargs: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, closes: list
) -> None:
    from flows import steps

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise StepFailed("a step failed")

    for step in vars(steps.TASKS):
        monkeypatch.setattr(steps.TASKS, step, fail)
    flow_module = importlib.import_module(module)
    monkeypatch.setattr(flow_module, "banner", lambda text: None, raising=False)
    monkeypatch.setattr(steps.FlowRunner, "banner", lambda self, text: None)
    with pytest.raises(Exception):  # noqa: B017 - the step's own error or the first one the empty home raises
        getattr(flow_module, name).fn(**kwargs, home=str(tmp_path / "home"))
    assert len(closes) == 1


BODIES: list[tuple[str, dict[str, Any]]] = [
    ("monitor_body", {"batches": ["batch.parquet"]}),
    ("cycle_body", {"batches": ["batch.parquet"]}),
    ("retrain_body", {}),
    ("bootstrap_body", {"reference": "reference.parquet"}),
    ("labels_body", {"labels": ["labels.parquet"]}),
    ("promote_body", {"version": "v1"}),
    ("score_body", {"batches": ["batch.parquet"]}),
    ("watch_body", {}),
    ("drill_body", {}),
]


@pytest.mark.parametrize(("name", "kwargs"), BODIES, ids=[b[0] for b in BODIES])
def test_a_direct_body_closes_its_workspace_when_a_step_raises(
    name: str, kwargs: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, closes: list
) -> None:
    from flows import bodies, ops_bodies

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise StepFailed("a step failed")

    run = bodies.Runner()
    for step in vars(run.steps):
        monkeypatch.setattr(run.steps, step, fail)
    with pytest.raises(Exception):  # noqa: B017 - the step's own error or the first one the empty home raises
        body = getattr(bodies, name, None) or getattr(ops_bodies, name)
        body(run, **kwargs, home=str(tmp_path / "home"))
    assert len(closes) == 1


def test_history_closes_its_workspace(tmp_path: Path, closes: list) -> None:
    from driftgate.cli import main

    runner = CliRunner()
    for args in (["history"], ["history", "--at", "2026-01-01T00:00:00"]):
        result = runner.invoke(main, [*args, "--home", str(tmp_path / "home")])
        assert result.exit_code == 0, result.output
    assert len(closes) == 2
