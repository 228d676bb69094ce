"""Replaying the alias ledger onto the W&B Registry: removals included, the final state is the ledger's, and
``reconcile`` finds nothing left to fix. The W&B adapter runs against the in-process stand-in of its API calls."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.core.errors import RegistryError
from tasks.registry.local import LocalRegistry
from tasks.registry.replay import apply_replay, plan_replay
from tasks.registry.wandb_mirror import WandbMirror, WandbRegistry, registry_path
from tests.support import wandb_api
from tests.support.mirror import BOOSTER_TEXT, MODEL, MemoryMirror


def demo_history(root: Path) -> LocalRegistry:
    """The demo's alias history: v0 promoted, v1 staged, canaried and promoted, v2 registered, rolled back to v0."""
    reg = LocalRegistry(root)
    for tag in range(3):
        reg.register(MODEL, {"model.txt": BOOSTER_TEXT + bytes([tag])}, {}, actor="t", reason=f"r{tag}")
        version = f"v{tag}"
        if tag == 2:
            break
        reg.move_alias(MODEL, "staging", version, expected=None, actor="t", reason="stage")
        reg.move_alias(MODEL, "canary", version, expected=None, actor="t", reason="canary")
        current = reg.aliases(MODEL).get("production")
        reg.promote(MODEL, version, actor="gate", reason="better", expected_production=current)
        for alias in ("staging", "canary"):
            reg.move_alias(MODEL, alias, None, expected=version, actor="t", reason="done")
    reg.rollback(MODEL, actor="ops", reason="drill")
    return reg


def test_the_plan_removes_what_the_ledger_moved_away_and_ends_at_the_ledger(tmp_path: Path) -> None:
    reg = demo_history(tmp_path / "registry")
    plan = plan_replay(MODEL, reg.ledger(MODEL))
    ledger = {a: v for a, v in reg.aliases(MODEL).items() if a != "latest"}
    assert plan.final == plan.ledger_final == ledger == {"candidate": "v2", "production": "v0"}
    assert plan.agrees
    described = [step.describe() for step in plan.steps]
    # The removals an offline `wandb sync` never performs.
    assert any("remove 'canary' from v1" in d for d in described)
    assert any("remove 'previous-production' from v0" in d for d in described)
    assert any("remove 'production' from v1" in d for d in described)
    assert [s.version for s in plan.steps if s.action == "publish"] == ["v0", "v1", "v2"]
    # Every step comes from an applied ledger entry, in ledger order.
    assert [s.seq for s in plan.steps] == sorted(s.seq for s in plan.steps)


def test_replay_onto_the_wandb_adapter_leaves_zero_drift(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reg = demo_history(tmp_path / "registry")
    api = wandb_api.install(monkeypatch)
    mirror = WandbMirror(registry="model", project="p", entity=None, directory=tmp_path / "wandb")
    # What `wandb sync` of the offline runs leaves: aliases only ever added (v1 still canary/staging,
    # v0 production as well as previous-production).
    for version in reg.versions(MODEL):
        mirror.publish(version, [])
    path = registry_path("model", MODEL)
    by_version = {str(a.metadata["registry_version"]): a for a in api.collections[path]}
    by_version["v0"].aliases = ["production", "previous-production"]
    by_version["v0"].save()
    by_version["v1"].aliases = ["canary", "staging"]
    by_version["v1"].save()

    plan = plan_replay(MODEL, reg.ledger(MODEL))
    done = apply_replay(plan, mirror, lambda v: reg.get(MODEL, v))
    assert done and all(d.startswith("#") for d in done)
    remote = {a: v for a, v in api.aliases(path).items() if a != "latest"}
    assert remote == plan.ledger_final
    # `driftgate reconcile` on the same registry finds nothing to change.
    assert WandbRegistry(reg.root, mirror).reconcile(MODEL, actor="test") == []


def test_replay_onto_an_empty_mirror_publishes_every_version(tmp_path: Path) -> None:
    reg = demo_history(tmp_path / "registry")
    mirror = MemoryMirror()
    apply_replay(plan_replay(MODEL, reg.ledger(MODEL)), mirror, lambda v: reg.get(MODEL, v))
    assert mirror.versions(MODEL) == {"v0", "v1", "v2"}
    assert mirror.aliases(MODEL) == {"candidate": "v2", "production": "v0"}
    assert LocalRegistry(reg.root, mirror=mirror).reconcile(MODEL, actor="test") == []


def test_a_plan_that_disagrees_with_the_ledger_is_not_applied(tmp_path: Path) -> None:
    from dataclasses import replace

    reg = demo_history(tmp_path / "registry")
    plan = plan_replay(MODEL, reg.ledger(MODEL))
    broken = replace(plan, final={**plan.final, "production": "v1"})
    with pytest.raises(RegistryError, match="not applied"):
        apply_replay(broken, MemoryMirror(), lambda v: reg.get(MODEL, v))
