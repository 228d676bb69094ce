"""What a reviewer sees: a paused promotion's run carries the gate evidence and the exact approve/reject
commands; direct-mode promotions left awaiting approval are listed until they are settled."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from devkit.promotion_home import MODEL, Home, make_home
from tasks.report import publish as pub
from tasks.resources.workspace import open_home
from tasks.stages import review
from tasks.stages.promotion import await_approval

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16
RULES = [
    {"rule": "superiority", "verdict": "pass", "detail": "AUC +0.031, p=0.004", "blocking": True, "numbers": {}},
    {"rule": "slices", "verdict": "fail", "detail": "south below margin", "blocking": True, "numbers": {"n": 3}},
]


@pytest.fixture()
def recorder() -> Iterator[pub.Recorder]:
    sink = pub.Recorder()
    previous = pub.install(sink)
    try:
        yield sink
    finally:
        pub.install(previous)


def _home(root: Path, **settings: object) -> Home:
    """A home whose v1 has a gate file and a gate report (markdown, forest plot, HTML) as a retrain leaves them."""
    home = make_home(root, **settings)
    registry = home.registry
    for name in ("v0", "v1"):
        registry.register(
            MODEL,
            {"model.txt": name.encode(), "gate.json": json.dumps({"rules": RULES}).encode()},
            {"gate_passed": True},
            actor="t",
            reason="t",
        )
    gate = home.settings.reports_dir / "gate"
    gate.mkdir(parents=True, exist_ok=True)
    (gate / "v1-slices.png").write_bytes(PNG)
    markdown = "# Gate report: toy v1\n\n![per-slice intervals](v1-slices.png)\n"
    (gate / "v1.md").write_text(markdown)
    (gate / "v1.html").write_text("<html></html>")
    registry.annotate(MODEL, "v1", "gate_report", home.settings.shareable(gate / "v1.md"))
    registry.annotate(MODEL, "v1", "gate_report_markdown", markdown)
    return home


def test_approval_commands_name_the_run_and_the_real_options() -> None:
    commands = review.approval_commands("1234")
    assert commands.approve == 'driftgate approve 1234 --approver NAME --comment "why"'
    assert commands.reject == 'driftgate approve 1234 --reject --approver NAME --comment "why"'
    from driftgate.cli import approve

    options = {opt for param in approve.params for opt in getattr(param, "opts", [])}
    assert {"--approver", "--comment", "--reject"} <= options


def test_a_pausing_promotion_publishes_the_report_inline_the_rule_table_and_the_commands(
    tmp_path: Path, recorder: pub.Recorder
) -> None:
    home = _home(tmp_path / "home")
    with open_home(home.settings) as ws:
        evidence = review.publish_gate_evidence(ws, "v1", flow_run_id="run-42")
    assert evidence.html_report == "reports/gate/v1.html" and evidence.html_url is None
    by_kind = {p.kind: p for p in recorder.published}
    assert set(by_kind) == {"markdown", "table"}  # no file URL is shared without share_absolute_paths
    request = by_kind["markdown"]
    assert request.key == "approval-toy-v1"
    assert 'driftgate approve run-42 --approver NAME --comment "why"' in request.data
    assert "driftgate approve run-42 --reject" in request.data
    assert "`reports/gate/v1.html` under the home" in request.data  # the path as text, not a broken link
    assert "![per-slice intervals](data:image/png;base64," in request.data
    assert not re.search(r"!\[[^\]]*\]\((?![a-z]+:)[^)]*\)", request.data)
    table = by_kind["table"]
    assert table.key == "gate-rules-toy-v1"
    assert [(r["rule"], r["verdict"]) for r in table.data] == [("superiority", "pass"), ("slices", "fail")]


def test_links_to_the_html_report_and_wandb_when_they_may_be_shared(tmp_path: Path, recorder: pub.Recorder) -> None:
    home = _home(tmp_path / "home", share_absolute_paths=True)
    home.registry.annotate(MODEL, "v1", "wandb_run_url", "https://wandb.example/run/abc")
    with open_home(home.settings) as ws:
        review.publish_gate_evidence(ws, "v1")  # a retrain: table and links, its report went out already
    links = {p.key: p.data for p in recorder.published if p.kind == "link"}
    assert [p.kind for p in recorder.published].count("markdown") == 0
    assert links["gate-html-toy-v1"][0] == (home.settings.reports_dir / "gate" / "v1.html").resolve().as_uri()
    assert links["wandb-run-toy-v1"] == ("https://wandb.example/run/abc", "W&B run of v1")


def test_a_version_without_a_gate_report_still_gets_the_commands(tmp_path: Path, recorder: pub.Recorder) -> None:
    home = _home(tmp_path / "home")
    with open_home(home.settings) as ws:
        review.publish_gate_evidence(ws, "v0", flow_run_id="run-7")
    (request,) = (p for p in recorder.published if p.kind == "markdown")
    assert "No gate report is recorded for v0" in request.data and "driftgate approve run-7" in request.data


def test_direct_mode_awaiting_approval_is_pending_until_settled(tmp_path: Path) -> None:
    home = _home(tmp_path / "home")
    with open_home(home.settings) as ws:
        assert review.awaiting_in_store(ws) == []
        await_approval(ws, "v1", why="needs an approver", evidence=None)
        (item,) = review.awaiting_in_store(ws)
        assert (item.model, item.version, item.flow_run_id) == (MODEL, "v1", None)
        assert item.command() == f"driftgate promote v1 --flow --require-approval --model {MODEL}"
        assert item.since is not None
        # promoted (or staged by a flow-mode promotion meanwhile): no longer waiting
        home.registry.promote(MODEL, "v1", actor="t", reason="done", expected_production=None)
        assert review.awaiting_in_store(ws) == []


def test_pending_lists_direct_mode_items_one_line_each_and_says_when_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from driftgate.cli import main

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_PROFILES_PATH", str(tmp_path / "no-profiles.toml"))
    home = _home(tmp_path / "home")
    args = ["pending", "--home", str(home.root), "--config", str(home.config)]
    empty = CliRunner().invoke(main, args)
    assert empty.exit_code == 0 and "nothing waits for approval" in empty.output, empty.output
    with open_home(home.settings) as ws:
        await_approval(ws, "v1", why="needs an approver", evidence=None)
    shown = CliRunner().invoke(main, args)
    assert shown.exit_code == 0, shown.output
    (line,) = shown.output.strip().splitlines()
    assert line.startswith(f"{MODEL}:v1  waiting ") and "driftgate promote v1 --flow --require-approval" in line
    as_json = CliRunner().invoke(main, [*args, "--json"])
    assert json.loads(as_json.output)[0]["version"] == "v1"


def test_direct_mode_promotion_needing_an_approver_moves_nothing_records_it_and_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from flows.bodies import Runner, promote_body

    home = _home(tmp_path / "home")
    home.registry.promote(MODEL, "v0", actor="t", reason="champion", expected_production=None)
    with caplog.at_level("WARNING", logger="driftgate"):
        outcome = promote_body(Runner(), "v1", home=str(home.root), config=str(home.config), auto_approve=False)
    assert outcome["status"] == review.AWAITING_APPROVAL and home.registry.aliases(MODEL)["production"] == "v0"
    assert "driftgate promote v1 --flow --require-approval" in caplog.text and "driftgate pending" in caplog.text
    with open_home(home.settings) as ws:
        assert [p.version for p in review.awaiting_in_store(ws)] == ["v1"]


def test_a_monitor_decision_rule_table_is_keyed_by_model_and_batch(tmp_path: Path, recorder: pub.Recorder) -> None:
    from types import SimpleNamespace

    from tasks.core.verdicts import RuleResult, Verdict

    decision = SimpleNamespace(
        action=SimpleNamespace(value="RETRAIN"),
        rules=(RuleResult("persistence", Verdict.PASS, "2 degraded batches in a row"),),
    )
    home = _home(tmp_path / "home")
    with open_home(home.settings) as ws:
        review.publish_decision_rules(ws, "day_06", decision)  # type: ignore[arg-type]
    (table,) = recorder.published
    assert table.kind == "table" and table.key == "monitor-rules-toy-day-06"
    assert table.data[0]["rule"] == "persistence" and "RETRAIN" in table.description
