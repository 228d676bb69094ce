"""Promotion, canary, watch, drill and rollback flows under the Prefect test harness (one API per session)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from click.testing import CliRunner

from devkit.promotion_home import MODEL, Home, good_and_bad_models, make_home

pytestmark = pytest.mark.slow  # every flow test runs Prefect flows (and trains)


@pytest.fixture(scope="module")
def texts() -> dict[str, str]:
    return good_and_bad_models()


def _home(root: Path, texts: dict[str, str], candidate: str, **settings: Any) -> Home:
    home = make_home(root, **settings)
    home.register(texts["good"])
    home.register(texts[candidate])
    home.registry.promote(MODEL, "v0", actor="gate", reason="champion", expected_production=None)
    return home


def _actions(home: Home, since: int) -> list[tuple[str, str, str]]:
    return [
        (e.action, e.actor, ",".join(f"{m.alias}:{m.to_version}" for m in e.moves))
        for e in home.registry.ledger(MODEL)[since:]
    ]


def test_auto_approved_promotion_watches_the_canary_then_promotes_and_audits(
    tmp_path: Path, texts: dict[str, str]
) -> None:
    from flows.promote import promote_flow

    home = _home(tmp_path / "home", texts, "good2", canary_share=0.2)
    batch, labels = home.batch("watch-1", 2500, seed=31, first_id=7_000_000)
    start = len(home.registry.ledger(MODEL))
    result = promote_flow(
        version="v1",
        reason="gate passed",
        evidence="reports/gate/v1.md",
        home=str(home.root),
        config=str(home.config),
        watch_batches=[str(batch)],
        labels=[str(labels)],
    )
    assert result["status"] == "promoted", result["reasons"]
    assert result["approver"] == "policy:auto-approve" and result["previous"] == "v0"
    assert _actions(home, start) == [
        ("lease", "driftgate", ""),
        ("move", "driftgate", "staging:v1"),
        ("approve", "policy:auto-approve", ""),
        ("move", "policy:auto-approve", "canary:v1"),
        # production moves, staging and canary are cleared and the lease ends: one entry
        ("promote", "policy:auto-approve", "production:v1,previous-production:v0,staging:None,canary:None"),
        ("audit", "driftgate", ""),
    ]
    # stored relative to the home (nothing shared holds an absolute local path)
    assert home.registry.ledger(MODEL)[-1].evidence == home.settings.shareable(result["audit_path"])
    assert Path(result["report_path"]).read_text().startswith("# Canary toy:v1 — PROMOTE")


def test_degraded_canary_is_withdrawn_and_production_never_moves(tmp_path: Path, texts: dict[str, str]) -> None:
    from flows.promote import promote_flow

    home = _home(tmp_path / "home", texts, "degraded")
    batch, labels = home.batch("watch-1", 2500, seed=32, first_id=8_000_000)
    result = promote_flow(
        version="v1", home=str(home.root), config=str(home.config), watch_batches=[str(batch)], labels=[str(labels)]
    )
    assert result["status"] == "aborted"
    assert any(r.startswith("missed: realized AUC v1") for r in result["reasons"])
    aliases = home.registry.aliases(MODEL)
    assert aliases["production"] == "v0" and "canary" not in aliases and "previous-production" not in aliases


def _paused_flow_run(timeout: float = 120.0) -> UUID:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType

    paused = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED])))
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(flow_run_filter=paused)
            if runs:
                return runs[0].id
            time.sleep(0.5)
    raise AssertionError("no promotion paused for approval")


@pytest.mark.parametrize("approved", [True, False])
def test_promotion_pauses_for_typed_approval_and_the_approver_lands_in_the_ledger(
    tmp_path: Path, texts: dict[str, str], approved: bool
) -> None:
    from flows.promote import promote_flow

    home = _home(tmp_path / "home", texts, "good2", promotion={"auto_approve": False, "approval_poll_seconds": 1})
    start = len(home.registry.ledger(MODEL))
    outcome: dict[str, Any] = {}

    def run() -> None:
        outcome.update(promote_flow(version="v1", actor="release-bot", home=str(home.root), config=str(home.config)))

    flow_thread = threading.Thread(target=run)
    flow_thread.start()
    run_id = _paused_flow_run()
    if approved:  # through the command line, as an approver would
        from driftgate.cli import main

        cli = CliRunner().invoke(main, ["approve", str(run_id), "--approver", "alice", "--comment", "ship it"])
        assert cli.exit_code == 0 and "approved by alice" in cli.output, cli.output
    else:
        from prefect.flow_runs import resume_flow_run

        resume_flow_run(run_id, run_input={"approver": "alice", "comment": "not this week", "approved": False})
    flow_thread.join(timeout=120)
    assert not flow_thread.is_alive()
    actions = _actions(home, start)
    assert actions[:2] == [("lease", "release-bot", ""), ("move", "release-bot", "staging:v1")]
    if approved:
        assert outcome["status"] == "promoted" and outcome["approver"] == "alice"
        assert actions[2] == ("approve", "alice", "")
        assert ("promote", "alice", "production:v1,previous-production:v0,staging:None,canary:None") in actions
        note = home.registry.ledger(MODEL)[start + 2]
        assert note.reason == "approved v1 for canary: ship it"
    else:
        assert outcome["status"] == "rejected"
        assert actions[2:] == [("reject", "alice", ""), ("withdraw", "alice", "staging:None")]
        assert home.registry.aliases(MODEL)["production"] == "v0"


def test_watch_window_score_watch_drill_and_rollback(tmp_path: Path, texts: dict[str, str]) -> None:
    from driftgate.cli import main
    from flows.drill import drill_flow
    from flows.promote import promote_flow
    from flows.score import score_flow
    from flows.watch import watch_flow

    window_hours = 3.0 / 3600
    home = _home(tmp_path / "home", texts, "good2", canary_share=0.3, promotion={"watch_hours": window_hours})
    args = {"home": str(home.root), "config": str(home.config)}
    result = promote_flow(version="v1", **args)
    assert result["status"] == "watching" and home.registry.aliases(MODEL)["canary"] == "v1"
    assert home.registry.open_lease(MODEL).holder == "watch"  # handed over: watch ends it
    batch, labels = home.batch("day-1", 2000, seed=33, first_id=9_000_000)
    (scored,) = score_flow(batches=[str(batch)], labels=[str(labels)], **args)
    assert set(scored["routed"]) == {"v0", "v1"} and abs(scored["routed"]["v1"] / 2000 - 0.3) < 0.04
    time.sleep(3.2)  # let the watch window pass
    watched = watch_flow(**args)
    assert watched["action"] == "promoted", watched["reasons"]
    assert home.registry.aliases(MODEL)["production"] == "v1"
    assert home.registry.open_lease(MODEL) is None
    drilled = drill_flow(**args)
    assert drilled["ok"] and [s["to_version"] for s in drilled["steps"]] == ["v0", "v1"]
    assert home.registry.aliases(MODEL)["production"] == "v1"
    # `driftgate rollback` without a Prefect API URL runs directly (no ephemeral server to wait for).
    cli = CliRunner().invoke(main, ["rollback", "--home", args["home"], "--config", args["config"], "--no-flow"])
    assert cli.exit_code == 0, cli.output
    assert "production: v1 → v0" in cli.output
    assert home.registry.aliases(MODEL)["production"] == "v0"


def test_an_unanswered_approval_times_out_as_a_refusal(tmp_path: Path, texts: dict[str, str]) -> None:
    from prefect.exceptions import FlowPauseTimeout

    from flows.promote import promote_flow

    settings = {"auto_approve": False, "approval_timeout_seconds": 2, "approval_poll_seconds": 1}
    home = _home(tmp_path / "home", texts, "good2", promotion=settings)
    start = len(home.registry.ledger(MODEL))
    with pytest.raises(FlowPauseTimeout):
        promote_flow(version="v1", home=str(home.root), config=str(home.config))
    assert _actions(home, start) == [
        ("lease", "driftgate", ""),
        ("move", "driftgate", "staging:v1"),
        ("reject", "approval-timeout", ""),
        ("withdraw", "approval-timeout", "staging:None"),  # ends the promotion lease
    ]
    assert home.registry.open_lease(MODEL) is None
    assert home.registry.aliases(MODEL)["production"] == "v0"


def test_a_paused_promotion_names_its_run_and_commands_carries_its_evidence_and_is_pending(
    tmp_path: Path, texts: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`driftgate promote --require-approval` blocks while paused: it must print the run id and the exact commands
    (from the run's WARNING log line), the run must carry the gate report, and `driftgate pending` must list it."""
    import os
    import re
    import subprocess
    import sys

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.settings import PREFECT_API_URL

    from driftgate.cli import main

    home = _home(tmp_path / "home", texts, "good2", promotion={"approval_poll_seconds": 1})
    gate = home.settings.reports_dir / "gate"  # v1's gate report, as a retrain leaves it
    gate.mkdir(parents=True, exist_ok=True)
    (gate / "v1-slices.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 16)
    report = "# Gate report: toy v1\n\n![per-slice intervals](v1-slices.png)\n"
    (gate / "v1.md").write_text(report)
    home.registry.annotate(MODEL, "v1", "gate_report", "reports/gate/v1.md")
    home.registry.annotate(MODEL, "v1", "gate_report_markdown", report)
    api = str(PREFECT_API_URL.value())
    monkeypatch.setenv("PREFECT_API_URL", api)
    args = ["--home", str(home.root), "--config", str(home.config)]
    command = [sys.executable, "-c", "from driftgate.cli import main; main()", "promote", "v1", "--require-approval"]
    process = subprocess.Popen(
        [*command, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ}
    )
    seen: list[str] = []
    hint = re.compile(r"driftgate approve ([0-9a-f-]{36}) --approver NAME")

    def read_stderr() -> None:
        assert process.stderr is not None
        seen.extend(iter(process.stderr.readline, ""))

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 180
        while not any(hint.search(line) for line in seen):
            assert process.poll() is None and time.monotonic() < deadline, "".join(seen)
            time.sleep(0.5)
        run_id = next(m[1] for line in seen if (m := hint.search(line)))
        text = "".join(seen)
        assert "needs an approver" in text  # said by the command before it blocks
        assert f"driftgate approve {run_id} --reject --approver NAME" in text
        pending = CliRunner().invoke(main, ["pending", *args])
        assert pending.exit_code == 0, pending.output
        (line,) = [row for row in pending.output.splitlines() if run_id in row]
        assert line.startswith(f"{MODEL}:v1  waiting ") or line.startswith("-:v1  waiting "), line
        assert f"driftgate approve {run_id} --approver NAME" in line
        with get_client(sync_client=True) as client:
            artifacts = client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(run_id)]))
            )
        (request,) = [a for a in artifacts if a.key == f"approval-{MODEL}-v1"]
        assert "](data:image/png;base64," in str(request.data) and f"driftgate approve {run_id}" in str(request.data)
        approved = CliRunner().invoke(main, ["approve", run_id, "--approver", "alice", "--comment", "looked at it"])
        assert approved.exit_code == 0, approved.output
        out, _ = process.communicate(timeout=180)
        assert process.returncode == 0 and "PROMOTED" in out, (out, "".join(seen))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert home.registry.aliases(MODEL)["production"] == "v1"
    none_left = CliRunner().invoke(main, ["pending", *args])
    assert run_id not in none_left.output
