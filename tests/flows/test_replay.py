"""Monitor a seeded stream (stationary, then the demo's drift) in shadow mode, then replay the recorded decisions.

Also checks what monitoring now stores for the policy: the concept-drift detector's state, the estimate's error
once labels arrive (with the batch, or later through the labels flow), slice evidence, and the performance chart.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flows.labels import labels_flow
from flows.monitor import monitor_flow
from flows.replay import replay_flow
from tasks.core.settings import load_settings
from tasks.data.files import STATIONARY, ScenarioGenerator, split_labels, write_frame
from tasks.data.scenarios import DRIFT
from tasks.resources.workspace import open_workspace

pytestmark = pytest.mark.slow  # every flow test runs Prefect flows (and trains)

ROWS = 2000


@pytest.fixture(scope="module")
def shadow(champion_template: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    import shutil

    from tasks.data.files import load_car_loan

    home = tmp_path_factory.mktemp("replay") / "home"
    shutil.copytree(champion_template, home)
    config = home / "driftgate.yaml"
    config.write_text(config.read_text().replace(str(champion_template), str(home)) + "emit_events: false\n")
    _, analysis = load_car_loan()
    days = ScenarioGenerator(analysis.head(20_000), seed=5)
    outcomes = []
    for day, (phase, shift) in enumerate([("stationary", STATIONARY)] * 2 + [("drifted", DRIFT)] * 2, start=1):
        features, labels = split_labels(days.batch(ROWS, shift), entity_id="id", target="repaid")
        batch = write_frame(features, home / "inputs" / f"day-{day:02d}-{phase}.parquet")
        label_file = write_frame(labels, home / "inputs" / f"day-{day:02d}-{phase}-labels.parquet")
        (outcome,) = monitor_flow(batches=[str(batch)], labels=[str(label_file)], home=str(home), config=str(config))[
            "batches"
        ]
        outcomes.append(outcome)
    return {"home": home, "config": config, "outcomes": outcomes, "days": days}


def test_monitoring_records_what_the_policy_and_the_chart_need(shadow: dict[str, Any]) -> None:
    actions = [o["action"] for o in shadow["outcomes"]]
    assert all(a != "RETRAIN" for a in actions[:2]), actions
    assert actions[2] == "RETRAIN"  # persistence 1 in the champion's settings
    ws = open_workspace(load_settings(shadow["config"]))
    try:
        decisions = ws.store.decisions(ws.model, kind="policy")
        drifted = decisions[2]["payload"]
        rules = {r["rule"]: r["verdict"] for r in drifted["rules"]}
        assert rules["concept_drift"] in {"pass", "fail"} and rules["slices"] in {"pass", "fail"}
        assert drifted["evidence"]["slices"] and "state_json" not in drifted["evidence"]["concept_drift"]
        concept = [s for s in ws.store.signals(ws.model, kind="drift") if s["name"] == "concept_drift"]
        assert len(concept) == 4 and all(s["payload"]["state"] for s in concept)
        assert {s["payload"]["version"] for s in concept} == {"v0"}
        # The label flips of the drifted days raise the error stream's alarm.
        assert any(s["alert"] for s in concept[2:]) and not any(s["alert"] for s in concept[:2])
        realized = ws.store.signals(ws.model, kind="realized")
        assert len(realized) == 4 and all("error" in s["payload"] for s in realized)
        assert (ws.settings.reports_dir / "performance" / f"{ws.model}.svg").is_file()
    finally:
        ws.close()


def test_replay_reproduces_the_decisions_and_scores_a_candidate(shadow: dict[str, Any]) -> None:
    result = replay_flow(
        degraded="drifted", overrides=["persistence=2"], home=str(shadow["home"]), config=str(shadow["config"])
    )
    current, candidate = result["current"], result["candidate"]
    assert [s["action"] for s in current["steps"]] == [o["action"] for o in shadow["outcomes"]]
    assert current["score"]["episodes"] == 1 and current["score"]["detected"] == 1
    assert current["score"]["false_alarms"] == 0 and current["episodes"][0]["delay"] == 0
    assert candidate["score"]["detected"] == 1 and candidate["episodes"][0]["delay"] == 1
    assert candidate["steps"][2]["action"] == "ALERT" and "persistence" in candidate["steps"][2]["failing_rules"]
    text = Path(result["report"]).read_text()
    assert "| mean detection delay (batches) | 0.00 | 1.00 |" in text and "persistence: 1 → 2" in text


def test_late_labels_feed_the_detector_and_the_estimate_error(
    shadow: dict[str, Any], champion_home: Callable[[], Path]
) -> None:
    home = champion_home()
    config = str(home / "driftgate.yaml")
    days: ScenarioGenerator = shadow["days"]
    features, labels = split_labels(days.batch(ROWS, DRIFT), entity_id="id", target="repaid")
    batch = write_frame(features, home / "late.parquet")
    label_file = write_frame(labels, home / "late-labels.parquet")
    (outcome,) = monitor_flow(batches=[str(batch)], home=str(home), config=config)["batches"]
    assert outcome["realized"] is None
    arrival = labels_flow(labels=[str(label_file)], home=str(home), config=config)["labels"]
    (judged,) = arrival["batches"]
    assert judged["batch_id"] == "late" and judged["new_rows"] == ROWS and judged["action"] is not None
    ws = open_workspace(load_settings(Path(config)))
    try:
        (concept,) = [s for s in ws.store.signals(ws.model, kind="drift") if s["name"] == "concept_drift"]
        assert concept["payload"]["source"] == "labels" and concept["payload"]["rows"] == ROWS
        (realized,) = ws.store.signals(ws.model, kind="realized")
        assert realized["payload"]["delayed"] and realized["payload"]["estimated"] == pytest.approx(
            outcome["estimated"]
        )
        # The batch is judged again on its labels: the newest policy decision of the batch says so.
        last = ws.store.decisions(ws.model, kind="policy")[-1]
        assert last["batch_id"] == "late" and last["payload"]["evidence"]["trigger"] == "labels"
        assert last["payload"]["evidence"]["realized_drop"] is not None
    finally:
        ws.close()


def test_replay_command_prints_the_scores(shadow: dict[str, Any]) -> None:
    import json

    from click.testing import CliRunner

    from driftgate.cli import main

    args = ["replay", "--home", str(shadow["home"]), "--config", str(shadow["config"]), "--degraded", "drifted"]
    table = CliRunner().invoke(main, [*args, "--set", "persistence=2"])
    assert table.exit_code == 0, table.output
    assert "mean delay (batches)" in table.output and "candidate" in table.output
    as_json = CliRunner().invoke(main, [*args, "--json"])
    assert json.loads(as_json.output)["candidate"] is None
    missing = CliRunner().invoke(main, ["replay", "--home", str(shadow["home"]), "--config", str(shadow["config"])])
    assert missing.exit_code == 2 and "--degraded" in missing.output
    bad = CliRunner().invoke(main, [*args, "--set", "persistence=zero"])
    assert bad.exit_code == 2 and "policy.persistence" in bad.output
