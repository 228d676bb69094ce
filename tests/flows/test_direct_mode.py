"""Direct mode runs the same bodies as flow mode: the same audit rows, without importing Prefect."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
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


# --- promote, score, watch, drill: the CLI in direct mode against the flows, on toy-model homes ------------------


def _direct_cli(tmp_path: Path, *commands: list[str]) -> str:
    """Run driftgate commands (CliRunner) in a fresh process without a Prefect API; "sleep N" pauses between them.
    Fails unless every command exits 0 and no ``prefect`` module was imported; returns their output."""
    code = (
        "import sys, time\nfrom click.testing import CliRunner\nfrom driftgate.cli import main\n"
        f"for command in {commands!r}:\n"
        "    if command[0] == 'sleep':\n        time.sleep(float(command[1]))\n        continue\n"
        "    r = CliRunner().invoke(main, command)\n"
        "    print(r.output)\n    assert r.exit_code == 0, (command, r.output)\n"
        "print('PREFECT', sorted(m for m in sys.modules if m == 'prefect' or m.startswith('prefect.')))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env["PREFECT_HOME"] = str(tmp_path / "no-prefect-home")  # no profile with an API: direct by default
    env["USER"] = "driftgate"  # the CLI's actor, as the flows' default
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "PREFECT []" in out.stdout, out.stdout
    return out.stdout


def _toy_home(root: Path, texts: dict[str, str], **settings: Any) -> Any:
    from devkit.promotion_home import MODEL, make_home

    home = make_home(root, **settings)
    home.register(texts["good"])
    home.register(texts["good2"])
    home.registry.promote(MODEL, "v0", actor="gate", reason="champion", expected_production=None)
    return home


def _trail(home: Any, since: int) -> dict[str, Any]:
    """What a promotion leaves, without times and paths: ledger actions, audit decisions, recorded events, outbox."""
    from devkit.promotion_home import MODEL

    ws = open_workspace(home.settings)
    try:
        return {
            "ledger": [
                (e.action, e.actor, ",".join(f"{m.alias}:{m.to_version}" for m in e.moves))
                for e in ws.registry.ledger(MODEL)[since:]
            ],
            "decisions": sorted((d["kind"], d["outcome"], d["version"]) for d in ws.store.decisions(MODEL)),
            "events": [e["name"] for e in ws.store.events()],
            "outbox": [row["name"] for row in ws.store.outbox(pending=True)],
        }
    finally:
        ws.close()


@pytest.fixture(scope="module")
def texts() -> dict[str, str]:
    from devkit.promotion_home import good_and_bad_models

    return good_and_bad_models()


def test_direct_promote_with_a_canary_writes_what_the_flow_writes(tmp_path: Path, texts: dict[str, str]) -> None:
    from devkit.promotion_home import MODEL
    from flows.promote import promote_flow

    flow_home = _toy_home(tmp_path / "flow", texts, canary_share=0.2)
    direct_home = _toy_home(tmp_path / "direct", texts, canary_share=0.2)
    start = len(flow_home.registry.ledger(MODEL))
    batch, labels = flow_home.batch("watch-1", 2500, seed=31, first_id=7_000_000)
    flow = promote_flow(
        version="v1",
        home=str(flow_home.root),
        config=str(flow_home.config),
        watch_batches=[str(batch)],
        labels=[str(labels)],
    )
    assert flow["status"] == "promoted", flow["reasons"]
    args = ["--home", str(direct_home.root), "--config", str(direct_home.config)]
    out = _direct_cli(
        tmp_path, ["promote", "v1", "--watch", str(batch), "--labels", str(labels), *args], ["events", "list", *args]
    )
    assert f"v1: PROMOTED (moved {' → '.join(flow['steps'])})" in out, out  # the line the flow-mode command prints
    flow_trail, direct_trail = _trail(flow_home, start), _trail(direct_home, start)
    assert direct_trail["ledger"] == flow_trail["ledger"]
    assert [a for a, _, _ in direct_trail["ledger"]] == ["lease", "move", "approve", "move", "promote", "audit"]
    assert direct_trail["decisions"] == flow_trail["decisions"] and direct_trail["decisions"]
    assert direct_trail["events"] == flow_trail["events"] and "driftgate.model.promoted" in direct_trail["events"]
    # Flow mode sent the event to the API; direct mode kept it in the outbox, which `events list` shows.
    assert flow_trail["outbox"] == [] and direct_trail["outbox"] == ["driftgate.model.promoted"]
    assert "outbox: 1 pending, 0 delivered" in out and "driftgate.model.promoted" in out
    assert direct_home.registry.aliases(MODEL)["production"] == "v1"


def test_direct_score_watch_and_drill_write_what_the_flows_write(tmp_path: Path, texts: dict[str, str]) -> None:
    from devkit.promotion_home import MODEL
    from flows.drill import drill_flow
    from flows.promote import promote_flow
    from flows.score import score_flow
    from flows.watch import watch_flow

    window = {"canary_share": 0.3, "promotion": {"watch_hours": 3.0 / 3600}}
    flow_home = _toy_home(tmp_path / "flow", texts, **window)
    direct_home = _toy_home(tmp_path / "direct", texts, **window)
    start = len(flow_home.registry.ledger(MODEL))
    batch, labels = flow_home.batch("day-1", 2000, seed=33, first_id=9_000_000)
    flow_args = {"home": str(flow_home.root), "config": str(flow_home.config)}
    promoted = promote_flow(version="v1", **flow_args)
    assert promoted["status"] == "watching"
    (flow_scored,) = score_flow(batches=[str(batch)], labels=[str(labels)], **flow_args)
    time.sleep(3.2)  # let the watch window pass
    assert watch_flow(**flow_args)["action"] == "promoted"
    assert drill_flow(**flow_args)["ok"]

    args = ["--home", str(direct_home.root), "--config", str(direct_home.config)]
    out = _direct_cli(
        tmp_path,
        ["promote", "v1", *args],
        ["score", str(batch), "--labels", str(labels), *args],
        ["sleep", "3.2"],
        ["watch", *args],
        ["drill", *args],
        ["events", "list", *args],
    )
    assert f"v1: WATCHING (moved {' → '.join(promoted['steps'])})" in out, out
    routed = ", ".join(f"{v}: {n}" for v, n in sorted(flow_scored["routed"].items()))
    assert f"day-1: 2000 rows ({routed}; 0 canary errors) → " in out  # the same split: a stable hash of the id
    assert "promoted: v1" in out and "rollback drill PASSED: 2 versions verified" in out
    flow_trail, direct_trail = _trail(flow_home, start), _trail(direct_home, start)
    assert direct_trail["ledger"] == flow_trail["ledger"]
    assert [a for a, _, _ in direct_trail["ledger"]][-3:] == ["promote", "audit", "drill"]
    assert direct_trail["decisions"] == flow_trail["decisions"] and direct_trail["decisions"]
    assert direct_trail["events"] == flow_trail["events"]
    # watch promoted the canary: its event waits in the outbox, and `events list` shows it
    assert flow_trail["outbox"] == [] and direct_trail["outbox"] == ["driftgate.model.promoted"]
    assert "outbox: 1 pending, 0 delivered" in out
    assert (direct_home.root / "predictions" / MODEL / "day-1.parquet").exists()
    assert direct_home.registry.aliases(MODEL)["production"] == "v1"


def test_a_direct_promotion_that_needs_an_approver_moves_nothing_and_names_the_flow_command(
    tmp_path: Path, texts: dict[str, str]
) -> None:
    from click.testing import CliRunner

    from devkit.promotion_home import MODEL
    from driftgate.cli import main

    home = _toy_home(tmp_path / "home", texts)
    start = len(home.registry.ledger(MODEL))
    args = ["--home", str(home.root), "--config", str(home.config)]
    result = CliRunner().invoke(main, ["promote", "v1", "--require-approval", "--no-flow", *args])
    assert result.exit_code == 0, result.output
    assert "v1: AWAITING-APPROVAL (nothing moved)" in result.output
    assert "driftgate promote v1 --flow --require-approval" in result.output
    assert home.registry.ledger(MODEL)[start:] == [] and home.registry.open_lease(MODEL) is None
    pending = CliRunner().invoke(main, ["pending", *args])
    assert pending.exit_code == 0 and "driftgate promote v1 --flow --require-approval" in pending.output


def test_direct_replay_scores_the_recorded_decisions_as_the_flow_does(champion_template: Path, tmp_path: Path) -> None:
    from flows.bodies import Runner, monitor_body
    from flows.replay import replay_flow

    home = _copy(champion_template, tmp_path / "home")
    config = str(home / "driftgate.yaml")
    _, analysis = load_car_loan()
    for day, start in (("2026-11-03", 0), ("2026-11-04", 3000)):
        batch = tmp_path / f"{day}.parquet"
        analysis.slice(start, 2500).drop("repaid").write_parquet(batch)
        monitor_body(Runner(), batches=[str(batch)], home=str(home), config=config)
    flow = replay_flow(degraded="11-04", overrides=["persistence=2"], home=str(home), config=config)
    out = _direct_cli(
        tmp_path,
        ["replay", "--degraded", "11-04", "--set", "persistence=2", "--json", "--home", str(home), "--config", config],
    )
    direct = json.loads(out[: out.rindex("PREFECT")])
    flow = json.loads(json.dumps(flow, default=str))  # as the command prints it
    assert direct["current"] == flow["current"] and direct["candidate"] == flow["candidate"]
    assert direct["current"]["score"]["episodes"] == 1 and Path(direct["report"]).exists()
