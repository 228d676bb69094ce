"""A promotion or rollback killed at every named fault point (``DRIFTGATE_FAULT``, exit code 137) leaves a
registry that `driftgate verify` accepts; the next write settles a half-finished promotion by the rule in
``tasks.registry.local`` and the next promotion succeeds."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from driftgate.cli import main
from tasks.core.faults import FAULT_ENV, FAULT_POINTS, KILLED_EXIT_CODE
from tasks.core.settings import load_settings
from tasks.registry.local import LocalRegistry
from tasks.registry.model import CANARY, PREVIOUS_PRODUCTION, PRODUCTION, STAGING, AliasMove
from tasks.resources.workspace import open_workspace
from tasks.stages import promotion
from tests.reliability.homes import MODEL, add_versions, audited, fake_home, settled


def _doomed(config: str, fault: str, step: str) -> None:
    """Child process: run the step with the fault armed; reaching the end means the fault never fired."""
    os.environ[FAULT_ENV] = fault
    ws = open_workspace(load_settings(config))
    if step == "promote":
        promotion.promote(ws, "v2", actor="doomed", reason="crash test", evidence=None)
    else:
        promotion.rollback(ws, actor="doomed", reason="crash test")
    os._exit(0)


# One kill point per kind in the inner loop (a lease left open, production moved, a rollback's ledger line, an
# anchor); every point in the slow tier.
KEPT_FAST = {"promote:after_lease", "promote:after_production", "rollback:after_ledger", "lease:after_anchor"}
assert set(FAULT_POINTS) >= KEPT_FAST, KEPT_FAST - set(FAULT_POINTS)


@pytest.mark.parametrize(
    "fault", [fault if fault in KEPT_FAST else pytest.param(fault, marks=pytest.mark.slow) for fault in FAULT_POINTS]
)
def test_kill_at_every_fault_point_leaves_a_verifiable_registry_and_the_next_promote_succeeds(
    tmp_path: Path, fault: str
) -> None:
    home = fake_home(tmp_path / "home", 4)
    reg = home.registry
    reg.promote(MODEL, "v0", actor="setup", reason="first")
    reg.promote(MODEL, "v1", actor="setup", reason="second")
    step = "rollback" if fault.startswith("rollback") else "promote"
    # fork: the child starts with the modules already imported (a spawned interpreter needs seconds)
    child = multiprocessing.get_context("fork").Process(target=_doomed, args=(str(home.config), fault, step))
    child.start()
    child.join(timeout=120)
    assert child.exitcode == KILLED_EXIT_CODE, f"{fault}: exit code {child.exitcode}"

    verified = CliRunner().invoke(main, ["verify", "--config", str(home.config)])
    assert verified.exit_code == 0, verified.output
    assert verified.stdout.startswith("ok: ")  # a repaired audit row is said on stderr

    production = reg.aliases(MODEL)[PRODUCTION]
    assert production == _production_after(fault), fault  # one of the whole outcomes, never a half-moved one
    ws = open_workspace(home.settings)
    try:
        promotion.promote(ws, "v3", actor="next", reason="after the crash", evidence=None, expected=production)
    finally:
        ws.close()
    assert reg.aliases(MODEL)[PRODUCTION] == "v3"
    assert reg.aliases(MODEL)["previous-production"] == production
    settled(reg)
    # Every promote/rollback/withdraw entry has exactly one audit row: the killed process's missing row, the
    # settlement's and the setup's (straight to the registry) were derived from the ledger by the next stage call.
    assert audited(home) >= 1
    recovered = [e.action for e in reg.ledger(MODEL) if e.actor == "driftgate-recovery"]
    # A lease left open by the dead promotion is withdrawn (production never held v2) before the next one begins.
    assert recovered == (["withdraw"] if fault in LEASE_LEFT_OPEN else []), (fault, recovered)


# Kill points at which the promotion's lease entry is durable but its production entry is not.
LEASE_LEFT_OPEN = frozenset(
    {
        "lease:after_ledger",
        "lease:after_anchor",
        "promote:after_lease",
        "promote:after_staging",
        "promote:after_canary",
        "promote:before_ledger",
    }
)


def _production_after(fault: str) -> str:
    if fault.startswith("rollback"):
        return "v1" if fault == "rollback:before_ledger" else "v0"
    return "v1" if fault in LEASE_LEFT_OPEN or fault == "lease:before_ledger" else "v2"


def _die_holding_a_lease(reg: LocalRegistry, *, production_moved: bool) -> None:
    """In a forked child: lease v1, put it on staging and canary, maybe move production, then die."""

    def child() -> None:
        reg.begin_promotion(MODEL, "v1", actor="doomed", reason="crash test", expected_production="v0")
        reg.move_alias(MODEL, STAGING, "v1", expected=None, actor="doomed", reason="staged")
        reg.move_alias(MODEL, CANARY, "v1", expected=None, actor="doomed", reason="canary")
        if production_moved:  # a writer that moved production without ending the lease (an older driftgate)
            model_dir = reg.root / MODEL
            with reg._locked(model_dir) as state:
                moves = [AliasMove(PRODUCTION, "v0", "v1"), AliasMove(PREVIOUS_PRODUCTION, None, "v0")]
                reg._append(
                    model_dir,
                    state,
                    model=MODEL,
                    action="promote",
                    moves=moves,
                    actor="doomed",
                    reason="old",
                    evidence=None,
                )
        os._exit(KILLED_EXIT_CODE)

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(timeout=60)
    assert process.exitcode == KILLED_EXIT_CODE


@pytest.mark.parametrize(("production_moved", "settlement"), [(False, "withdraw"), (True, "complete")])
def test_a_dead_holders_promotion_is_settled_by_the_documented_rule_on_the_next_write(
    tmp_path: Path, production_moved: bool, settlement: str
) -> None:
    reg = LocalRegistry(tmp_path / "registry")
    add_versions(reg, 2)
    reg.promote(MODEL, "v0", actor="setup", reason="first")
    _die_holding_a_lease(reg, production_moved=production_moved)
    held = reg.open_lease(MODEL)
    assert held is not None and held.version == "v1" and held.pid is not None  # reads never settle
    assert reg.check(MODEL) == []
    reg.note(MODEL, "audit", actor="test", reason="any write settles first")
    entry = next(e for e in reversed(reg.ledger(MODEL)) if e.actor == "driftgate-recovery")
    assert entry.action == settlement
    assert sorted(m.alias for m in entry.moves) == [CANARY, STAGING]
    assert reg.aliases(MODEL)[PRODUCTION] == ("v1" if production_moved else "v0")
    settled(reg)


@pytest.mark.slow
def test_cli_rollback_killed_after_the_ledger_line_leaves_a_verifiable_registry(tmp_path: Path) -> None:
    """The real command in a fresh process: `driftgate rollback --no-flow` with DRIFTGATE_FAULT armed."""
    home = fake_home(tmp_path / "home", 3)
    reg = home.registry
    for version in ("v0", "v1", "v2"):
        reg.promote(MODEL, version, actor="setup", reason="setup")
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env[FAULT_ENV] = "rollback:after_ledger"
    driftgate = str(Path(sys.executable).parent / "driftgate")
    killed = subprocess.run(
        [driftgate, "rollback", "--no-flow", "--config", str(home.config)], env=env, capture_output=True, timeout=300
    )
    assert killed.returncode == KILLED_EXIT_CODE, killed.stderr.decode()
    assert reg.aliases(MODEL)[PRODUCTION] == "v1"  # the line is durable; the anchor lags by one
    del env[FAULT_ENV]
    verified = subprocess.run(
        [driftgate, "verify", "--config", str(home.config)], env=env, capture_output=True, timeout=300
    )
    assert verified.returncode == 0, verified.stdout.decode() + verified.stderr.decode()
    reg.promote(MODEL, "v2", actor="next", reason="after the crash", expected_production="v1")
    settled(reg)


def test_a_move_killed_before_its_audit_row_is_repaired_by_the_next_read(tmp_path: Path) -> None:
    """`history` (and `verify`) derive the missing rows from the ledger: no promotion or rollback has to come
    first for the audit store to show a move the ledger holds."""
    home = fake_home(tmp_path / "home", 2)
    home.registry.promote(MODEL, "v0", actor="setup", reason="first")  # straight to the registry: no audit row
    home.registry.promote(MODEL, "v1", actor="setup", reason="second")
    child = multiprocessing.get_context("fork").Process(
        target=_doomed, args=(str(home.config), "rollback:after_production", "rollback")
    )
    child.start()
    child.join(timeout=120)
    assert child.exitcode == KILLED_EXIT_CODE

    def rollbacks() -> list[dict[str, object]]:
        ws = open_workspace(home.settings)
        try:
            return ws.store.decisions(MODEL, kind="rollback")
        finally:
            ws.close()

    assert rollbacks() == []  # the ledger has the rollback, the audit store does not
    shown = CliRunner().invoke(main, ["history", "--config", str(home.config)])
    assert shown.exit_code == 0, shown.output
    assert "repaired 1 audit row(s) from the ledger" in shown.stderr  # the setup rows: by the rollback itself
    assert len(rollbacks()) == 1
    assert audited(home) == 3
    again = CliRunner().invoke(main, ["history", "--config", str(home.config)])
    assert "repaired" not in again.stderr and "rolled_back" in again.stdout
