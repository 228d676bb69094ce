"""The promotion lease across its hand-over to watch, and the commands an operator uses on it:
`promote --expect` and `withdraw` refuse a lost race with exit code 3 and print the state in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from driftgate.cli import main
from tasks.core.errors import PromotionInProgressError
from tasks.registry.model import CANARY, PRODUCTION, STAGING
from tasks.resources.workspace import open_workspace
from tasks.stages import promotion
from tests.reliability.homes import MODEL, audited, fake_home, settled


def test_lease_is_handed_to_watch_and_ended_by_its_promotion(tmp_path: Path) -> None:
    home = fake_home(tmp_path / "home", 3)
    reg = home.registry
    reg.promote(MODEL, "v0", actor="setup", reason="first")
    ws = open_workspace(home.settings)
    try:
        lease, before = promotion.begin(ws, "v1", actor="ops", reason="r", evidence=None)
        assert before == "v0" and lease.pid is not None
        promotion.stage(ws, "v1", actor="ops", reason="r", evidence=None)
        promotion.start_canary(ws, "v1", actor="ops", reason="r", evidence=None)
        with pytest.raises(PromotionInProgressError, match="v1 is being promoted"):
            promotion.promote(ws, "v2", actor="other", reason="second promotion", evidence=None)
        assert reg.aliases(MODEL)[STAGING] == "v1" and reg.aliases(MODEL)[CANARY] == "v1"  # untouched
        watched = promotion.hand_over_to_watch(ws, "v1", actor="ops")
        assert watched is not None and watched.holder == "watch" and watched.pid is None
        assert reg.open_lease(MODEL) == watched
        promotion.finalize(ws, "v1", actor="watch", reason="window passed", evidence=None, expected_production="v0")
    finally:
        ws.close()
    assert reg.aliases(MODEL)[PRODUCTION] == "v1"
    promote_entry = next(e for e in reversed(reg.ledger(MODEL)) if e.action == "promote")
    assert {m.alias for m in promote_entry.moves} == {PRODUCTION, "previous-production", STAGING, CANARY}
    settled(reg)
    assert audited(home) == 2  # the setup promotion (derived from the ledger) and this one


def test_cli_withdraw_and_promote_refuse_a_lost_race_with_exit_3_and_the_state(tmp_path: Path) -> None:
    home = fake_home(tmp_path / "home", 3)
    reg = home.registry
    reg.promote(MODEL, "v0", actor="setup", reason="first")
    ws = open_workspace(home.settings)
    try:
        promotion.begin(ws, "v1", actor="ops", reason="r", evidence=None)
        promotion.stage(ws, "v1", actor="ops", reason="r", evidence=None)
    finally:
        ws.close()
    runner = CliRunner()
    args = ["--config", str(home.config)]
    busy = runner.invoke(main, ["promote", "v2", *args])
    assert busy.exit_code == 3, busy.output
    assert "now: toy production=v0 previous-production=- canary=- staging=v1 lease=v1" in busy.output
    stale = runner.invoke(main, ["promote", "v2", "--expect", "v1", *args])
    assert stale.exit_code == 3 and "production is v0, not v1" in stale.output
    gone = runner.invoke(main, ["withdraw", "v2", *args])
    assert gone.exit_code == 3 and "no longer a candidate" in gone.output
    done = runner.invoke(main, ["withdraw", *args])
    assert done.exit_code == 0 and done.output.startswith("withdrawn: v1 (staging cleared"), done.output
    again = runner.invoke(main, ["withdraw", "v1", *args])
    assert again.exit_code == 3, again.output
    settled(reg)
    assert runner.invoke(main, ["verify", *args]).exit_code == 0
    assert audited(home) == 2  # the setup promotion (derived from the ledger) and the withdrawal
