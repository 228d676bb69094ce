"""Direct mode runs the same bodies as flow mode: the same audit rows, without importing Prefect."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tasks.core.settings import load_settings
from tasks.data.files import load_car_loan
from tasks.resources.workspace import open_workspace

pytestmark = pytest.mark.slow  # a flow run and a champion trained once per session

REPO = Path(__file__).resolve().parents[2]


def _copy(template: Path, target: Path) -> Path:
    shutil.copytree(template, target)
    config = target / "driftgate.yaml"
    config.write_text(config.read_text().replace(str(template), str(target)))
    return target


def _rows(home: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[str]]:
    ws = open_workspace(load_settings(home / "driftgate.yaml"))
    try:
        signals = sorted(
            (s["batch_id"], s["kind"], s["name"], s["method"], s["value"], s["threshold"], s["alert"])
            for s in ws.store.signals(ws.model)
        )
        decisions = [
            (d["kind"], d["outcome"], tuple(d["reasons"]), d["batch_id"], d["version"], json.dumps(d["payload"]))
            for d in ws.store.decisions(ws.model, kind="policy")
        ]
        events = [e["name"] for e in ws.store.events() if (e["payload"] or {}).get("batch_id") == "2026-11-01"]
        return signals, decisions, events
    finally:
        ws.close()


def test_direct_monitor_writes_the_rows_flow_mode_writes(champion_template: Path, tmp_path: Path) -> None:
    from flows.bodies import Runner, monitor_body
    from flows.monitor import monitor_flow

    _, analysis = load_car_loan()
    batch = tmp_path / "2026-11-01.parquet"
    analysis.head(3000).drop("repaid").write_parquet(batch)
    flow_home = _copy(champion_template, tmp_path / "flow")
    direct_home = _copy(champion_template, tmp_path / "direct")

    flow_result = monitor_flow(batches=[str(batch)], home=str(flow_home), config=str(flow_home / "driftgate.yaml"))
    direct_result = monitor_body(
        Runner(), batches=[str(batch)], home=str(direct_home), config=str(direct_home / "driftgate.yaml")
    )

    assert [o["action"] for o in flow_result["batches"]] == [o["action"] for o in direct_result["batches"]]
    flow_signals, flow_decisions, flow_events = _rows(flow_home)
    direct_signals, direct_decisions, direct_events = _rows(direct_home)
    assert direct_signals == flow_signals and len(direct_signals) > 5
    assert direct_decisions == flow_decisions and len(direct_decisions) == 1
    assert direct_events == flow_events
    ws = open_workspace(load_settings(direct_home / "driftgate.yaml"))
    try:
        pending = ws.store.outbox(pending=True)
    finally:
        ws.close()
    # Direct mode kept the batch's events in the outbox (flow mode sent them to the API instead).
    kept = [row["name"] for row in pending if row["payload"].get("batch_id") == "2026-11-01"]
    assert kept.count("driftgate.batch.profiled") == 1
    assert sorted(kept) == sorted(direct_events)


def test_a_direct_command_never_imports_prefect(champion_template: Path, tmp_path: Path) -> None:
    home = _copy(champion_template, tmp_path / "home")
    _, analysis = load_car_loan()
    batch = tmp_path / "2026-11-02.parquet"
    analysis.slice(3000, 2000).drop("repaid").write_parquet(batch)
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom driftgate.cli import main\n"
        f"r = CliRunner().invoke(main, ['monitor', {str(batch)!r}, '--no-retrain', '--home', {str(home)!r}, "
        f"'--config', {str(home / 'driftgate.yaml')!r}])\n"
        "print(r.output)\nassert r.exit_code == 0, r.output\n"
        "print('PREFECT', sorted(m for m in sys.modules if m == 'prefect' or m.startswith('prefect.')))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env["PREFECT_HOME"] = str(tmp_path / "no-prefect-home")  # no profile with an API: direct by default
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "PREFECT []" in out.stdout
    assert "2026-11-02:" in out.stdout
