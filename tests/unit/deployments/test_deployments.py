from __future__ import annotations

from pathlib import Path

import yaml

from deployments.validate import validate

ROOT = Path(__file__).resolve().parents[3]


def test_prefect_yaml_matches_the_flows() -> None:
    assert [str(p) for p in validate(ROOT / "prefect.yaml")] == []


def test_prefect_yaml_declares_the_loop() -> None:
    deployments = {d["name"]: d for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]}
    assert {"monitor", "retrain", "promote", "rollback", "cycle"} <= set(deployments)
    assert deployments["monitor"]["schedules"][0]["cron"]
    [trigger] = deployments["retrain"]["triggers"]
    assert trigger["expect"] == ["driftgate.retrain.requested"]
    assert trigger["parameters"]["idempotency_key"] == "{{ event.payload.idempotency_key }}"


def test_retrain_requests_are_routed_by_priority_to_their_queue() -> None:
    from tasks.resources.events import PRIORITY_LABEL, RETRAIN_REQUESTED, resource_of

    deployments = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    routes = {}
    for dep in deployments:
        for trigger in dep.get("triggers") or []:
            if RETRAIN_REQUESTED in trigger["expect"]:
                routes[trigger["match"][PRIORITY_LABEL]] = dep
    assert set(routes) == {"urgent", "normal", "low"}
    for klass, dep in routes.items():
        assert dep["work_pool"]["work_queue_name"] == klass
        assert dep["concurrency_limit"] == {"limit": 1, "collision_strategy": "ENQUEUE"}
        assert dep["entrypoint"] == "flows/retrain.py:retrain_flow"
    # The event names its class as a resource label, which is what a trigger's `match` can see.
    assert resource_of(RETRAIN_REQUESTED, "m", {"priority_class": "urgent"})[PRIORITY_LABEL] == "urgent"
    assert resource_of(RETRAIN_REQUESTED, "m", {"priority_class": None})[PRIORITY_LABEL] == "normal"
    assert PRIORITY_LABEL not in resource_of("driftgate.batch.profiled", "m", {"priority_class": "urgent"})


def test_broken_routing_is_reported(tmp_path: Path) -> None:
    data = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    low = next(d for d in data["deployments"] if d["name"] == "retrain-low")
    low["triggers"][0]["match"]["driftgate.priority"] = "urgent"  # two routes for urgent, none for low
    low.pop("concurrency_limit")
    broken = ROOT / "prefect.routing-test.yaml"
    broken.write_text(yaml.safe_dump(data))
    try:
        problems = [str(p) for p in validate(broken)]
    finally:
        broken.unlink()
    assert any("priority 'low' reaches no deployment" in p for p in problems)
    assert any("priority 'urgent' reaches deployments" in p for p in problems)
    assert any("runs on queue 'low', not on 'urgent'" in p for p in problems)
    assert any("needs a concurrency_limit" in p for p in problems)


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
