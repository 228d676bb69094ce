"""`driftgate events list|flush` and the run-mode choice (direct vs flow) of the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from driftgate import cli
from driftgate.cli import main
from tasks.resources import events
from tasks.resources.store import AuditStore


def _home_with_events(tmp_path: Path) -> str:
    home = tmp_path / "home"
    with AuditStore(f"sqlite:///{home / 'audit.db'}") as store, events.outbox(store):
        events.emit(events.BATCH_PROFILED, "model", {"batch_id": "b1"})
        events.emit(events.RETRAIN_REQUESTED, "model", {"batch_id": "b1"}, idempotency_key="k")
    return str(home)


def test_events_list_counts_pending(tmp_path: Path) -> None:
    home = _home_with_events(tmp_path)
    result = CliRunner().invoke(main, ["events", "list", "--home", home])
    assert result.exit_code == 0, result.output
    assert "outbox: 2 pending, 0 delivered" in result.output
    assert events.RETRAIN_REQUESTED in result.output


def test_events_flush_without_an_api_is_one_line_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "_prefect_api_configured", lambda: False)
    result = CliRunner().invoke(main, ["events", "flush", "--home", _home_with_events(tmp_path)])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error: no Prefect API configured")
    assert len(result.output.strip().splitlines()) == 1


def test_events_flush_delivers_and_marks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = _home_with_events(tmp_path)
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(cli, "_prefect_api_configured", lambda: True)
    monkeypatch.setattr(events, "prefect_sender", lambda: sent.extend)
    runner = CliRunner()
    result = runner.invoke(main, ["events", "flush", "--home", home])
    assert result.exit_code == 0, result.output
    assert "delivered 2 event(s)" in result.output
    assert [row["event_id"] for row in sent][1] == str(events.event_id_for("k"))
    assert "0 pending, 2 delivered" in runner.invoke(main, ["events", "list", "--home", home]).output
    assert "delivered 0 event(s)" in runner.invoke(main, ["events", "flush", "--home", home]).output


@pytest.mark.parametrize(("api", "option", "flow"), [(False, None, False), (True, None, True), (True, False, False)])
def test_the_run_mode_follows_the_api_unless_told(
    api: bool, option: bool | None, flow: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    flushed: list[str | None] = []
    monkeypatch.setattr(cli, "_prefect_api_configured", lambda: api)
    monkeypatch.setattr(cli, "_flush_outbox", lambda home, config, model, quiet=False: flushed.append(home) or 0)
    monkeypatch.setattr(cli, "_quiet_prefect", lambda verbose: None)
    ctx = click.Context(main, obj={"verbose": False})
    assert cli._use_flow(ctx, option, "h", None, None) is flow
    assert flushed == (["h"] if flow else [])  # flow mode first delivers what direct mode left in the outbox
