"""The W&B-mirrored registry: what the adapter guarantees when the mirror diverges, fails, or lags.

The contract suite in test_registry.py runs every implementation (the W&B one when WANDB_API_KEY is
set). Here the mirror is the in-memory one, so the ledger-side logic runs for real without a server.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tasks.core.errors import AliasConflictError, ConfigError, RegistryError
from tasks.core.settings import load_settings
from tasks.registry.local import LocalRegistry
from tasks.registry.wandb_mirror import WandbMirror, WandbRegistry, aliases_by_version, registry_path
from tasks.resources.workspace import make_registry
from tests.support.mirror import BOOSTER_TEXT, MODEL, MemoryMirror


@pytest.fixture
def mirrored(tmp_path: Path) -> tuple[LocalRegistry, MemoryMirror]:
    mirror = MemoryMirror()
    reg = LocalRegistry(tmp_path / "registry", mirror=mirror)
    for tag in range(3):
        reg.register(MODEL, {"model.txt": BOOSTER_TEXT + bytes([tag])}, {}, actor="t", reason=f"r{tag}")
    reg.promote(MODEL, "v0", actor="gate", reason="first", expected_production=None)
    return reg, mirror


def test_registry_path_and_alias_map_from_artifacts() -> None:
    assert registry_path("model", "car-loan") == "wandb-registry-model/car-loan"
    pairs = [("v0", ["previous-production"]), ("v1", ["production", "latest"]), (None, ["production"])]
    # Artifacts without a registry_version were not logged by driftgate and are ignored.
    assert aliases_by_version(pairs) == {"previous-production": "v0", "production": "v1", "latest": "v1"}
    with pytest.raises(RegistryError, match="'production' on two registry versions: v0 and v1"):
        aliases_by_version([("v0", ["production"]), ("v1", ["production"])])


def test_every_move_reaches_the_mirror_before_the_ledger(mirrored: tuple[LocalRegistry, MemoryMirror]) -> None:
    reg, mirror = mirrored
    assert mirror.versions(MODEL) == {"v0", "v1", "v2"}
    reg.move_alias(MODEL, "canary", "v1", expected=None, actor="ops", reason="canary")
    reg.promote(MODEL, "v1", actor="gate", reason="better")
    reg.rollback(MODEL, actor="ops", reason="worse")
    local = {a: v for a, v in reg.aliases(MODEL).items() if a != "latest"}
    assert mirror.aliases(MODEL) == local == {"candidate": "v2", "canary": "v1", "production": "v0"}
    assert "apply production v1->v0" in mirror.calls


def test_an_alias_moved_outside_driftgate_is_detected_not_overwritten(
    mirrored: tuple[LocalRegistry, MemoryMirror],
) -> None:
    reg, mirror = mirrored
    mirror.move_outside(MODEL, "production", "v2")  # someone used the W&B UI
    before = reg.aliases(MODEL)
    with pytest.raises(AliasConflictError, match=r"'production' is on v2 there, on v0 in the ledger.*reconcile"):
        reg.promote(MODEL, "v1", actor="gate", reason="better")
    assert reg.aliases(MODEL) == before
    assert mirror.aliases(MODEL)["production"] == "v2"  # left as found: a human decides
    last = reg.ledger(MODEL)[-1]
    assert (last.action, last.outcome, last.actor) == ("conflict", "rejected", "gate")
    assert "diverged from the ledger" in last.reason
    # Moves of other aliases are not blocked by it.
    reg.move_alias(MODEL, "staging", "v1", expected=None, actor="ops", reason="stage")
    changes = reg.reconcile(MODEL, actor="ops")
    assert changes == ["production: v2 → v0"]
    assert mirror.aliases(MODEL)["production"] == "v0"
    assert reg.ledger(MODEL)[-1].action == "mirror"
    reg.promote(MODEL, "v1", actor="gate", reason="better, after reconcile")
    assert mirror.aliases(MODEL)["production"] == "v1" == reg.aliases(MODEL)["production"]


def test_a_mirror_failure_moves_nothing_in_the_ledger(mirrored: tuple[LocalRegistry, MemoryMirror]) -> None:
    reg, mirror = mirrored
    reg.promote(MODEL, "v1", actor="gate", reason="better")
    before, remote_before = reg.aliases(MODEL), mirror.aliases(MODEL)
    mirror.fail_apply_after = 1  # production moves on W&B, then previous-production times out
    with pytest.raises(RegistryError, match="failed \\(mirror timed out mid-move\\); the ledger is unchanged"):
        reg.promote(MODEL, "v2", actor="gate", reason="best")
    assert reg.aliases(MODEL) == before
    assert mirror.aliases(MODEL) == remote_before  # the half-done move was undone
    last = reg.ledger(MODEL)[-1]
    assert (last.action, last.outcome) == ("mirror", "rejected")


def test_a_failed_publish_keeps_the_local_version_and_reconcile_catches_up(
    mirrored: tuple[LocalRegistry, MemoryMirror],
) -> None:
    reg, mirror = mirrored
    mirror.fail_publish = True
    with pytest.raises(RegistryError, match="v3 is registered locally but memory mirror refused it"):
        reg.register(MODEL, {"model.txt": b"tree\nv3\n"}, {}, actor="t", reason="r3")
    assert reg.get(MODEL, "v3").version == "v3"
    assert reg.ledger(MODEL)[-1].outcome == "failed"
    # The ledger moved candidate to v3, the mirror did not: the next candidate move is refused until reconciled.
    with pytest.raises(AliasConflictError, match="'candidate' is on v2 there, on v3 in the ledger"):
        reg.move_alias(MODEL, "candidate", "v1", expected="v3", actor="t", reason="r")
    mirror.fail_publish = False
    changes = reg.reconcile(MODEL, actor="ops")
    assert changes == ["published v3 with ['candidate']"]
    assert mirror.aliases(MODEL)["candidate"] == "v3"
    assert reg.reconcile(MODEL, actor="ops") == []


def test_settings_choose_the_wandb_backend_without_touching_the_network(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home", registry_backend="wandb", wandb_project="proj")
    registry = make_registry(settings)
    assert isinstance(registry, WandbRegistry)
    assert isinstance(registry.mirror, WandbMirror)
    assert (registry.mirror.registry, registry.mirror.project) == ("model", "proj")
    assert registry.root == settings.registry_dir
    assert "W&B Registry" in repr(registry)
    assert isinstance(make_registry(load_settings(home=tmp_path / "home")), LocalRegistry)
    with pytest.raises(ConfigError, match="DRIFTGATE_REGISTRY_BACKEND"):
        load_settings(home=tmp_path / "home", registry_backend="mlflow")


@pytest.mark.skipif(bool(os.environ.get("WANDB_API_KEY")), reason="checks the message shown without a W&B key")
def test_wandb_mirror_without_a_key_names_what_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc from `wandb login` either
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    mirror = WandbMirror(registry="model", project="p", entity=None, directory=tmp_path / "wandb")
    with pytest.raises(ConfigError, match="needs a W&B API key"):
        mirror.aliases(MODEL)
