from __future__ import annotations

from pathlib import Path

import yaml

from deployments.validate import validate

ROOT = Path(__file__).resolve().parents[2]


def test_prefect_yaml_matches_the_flows() -> None:
    assert [str(p) for p in validate(ROOT / "prefect.yaml")] == []


def test_prefect_yaml_declares_the_loop() -> None:
    deployments = {d["name"]: d for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]}
    assert {"monitor", "retrain", "promote", "rollback", "cycle"} <= set(deployments)
    assert deployments["monitor"]["schedules"][0]["cron"]
    [trigger] = deployments["retrain"]["triggers"]
    assert trigger["expect"] == ["driftgate.retrain.requested"]
    assert trigger["parameters"]["idempotency_key"] == "{{ event.payload.idempotency_key }}"


def test_broken_deployment_is_reported(tmp_path: Path) -> None:
    data = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    retrain = next(d for d in data["deployments"] if d["name"] == "retrain")
    retrain["triggers"][0]["parameters"]["no_such_param"] = "{{ event.payload.x }}"
    retrain["triggers"][0]["expect"] = ["driftgate.retrain.requestd"]
    retrain["parameters"] = {"window": "x"}
    broken = ROOT / "prefect.broken-test.yaml"
    broken.write_text(yaml.safe_dump(data))
    try:
        problems = [str(p) for p in validate(broken)]
    finally:
        broken.unlink()
    assert any("no_such_param" in p for p in problems)
    assert any("requestd" in p for p in problems)
    assert any("'window'" in p for p in problems)
