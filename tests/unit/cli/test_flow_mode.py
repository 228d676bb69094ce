"""Flow mode hygiene: no loopback, a clear error at once; a temporary server never outlives its command."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from driftgate import cli
from driftgate.cli import main
from flows._common import spawn_reaper
from tasks.data.contract import infer_contract


def test_flow_mode_without_loopback_fails_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    frame = pl.DataFrame({"id": list(range(20)), "x": [float(i) for i in range(20)], "y": [0, 1] * 10})
    home = tmp_path / "home"
    infer_contract(frame, name="m", target="y", entity_id="id").save(home / "contract.yaml")
    frame.drop("y").write_parquet(tmp_path / "batch.parquet")
    monkeypatch.setattr(cli, "_prefect_api_configured", lambda: False)
    monkeypatch.setattr(cli, "_loopback_available", lambda: False)
    started = time.perf_counter()
    result = CliRunner().invoke(main, ["monitor", str(tmp_path / "batch.parquet"), "--flow", "--home", str(home)])
    assert result.exit_code == 2, result.output
    assert "loopback" in result.output and len(result.output.strip().splitlines()) == 1
    assert time.perf_counter() - started < 10


def test_loopback_probe_is_true_here() -> None:
    assert cli._loopback_available()


def test_the_reaper_stops_the_server_when_the_command_is_killed() -> None:
    server = subprocess.Popen(["sleep", "60"])
    command = subprocess.Popen(["sleep", "60"])
    try:
        spawn_reaper(command.pid, server.pid)
        time.sleep(1.0)
        assert server.poll() is None  # the command lives: the server stays
        command.kill()  # kill -9: no atexit hook runs in the command
        command.wait()
        assert server.wait(timeout=15) is not None
    finally:
        for process in (server, command):
            if process.poll() is None:
                process.kill()
                process.wait()
