"""Races between operators, 20 rounds each, started together by a barrier: exactly one applies, the other is
refused (AliasConflictError, exit code 3 on the CLI), no stray staging/canary alias, the ledger chain holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.registry.local import LocalRegistry
from tasks.registry.model import PRODUCTION
from tasks.resources.workspace import open_workspace
from tasks.stages import promotion
from tests.reliability.homes import MODEL, add_versions, fake_home, race, settled

ROUNDS = 20


def test_two_concurrent_rollbacks_apply_exactly_once_per_round(tmp_path: Path) -> None:
    reg = LocalRegistry(tmp_path / "registry")
    add_versions(reg, 3)
    for round_ in range(ROUNDS):
        for version in ("v0", "v1", "v2"):
            reg.promote(MODEL, version, actor="setup", reason=f"round {round_}")
        seen = reg.aliases(MODEL)[PRODUCTION]
        outcomes = race(
            *(
                lambda name=name, seen=seen: reg.rollback(MODEL, actor=name, reason="race", expected_production=seen)
                for name in ("ops-a", "ops-b")
            )
        )
        assert sorted(outcomes) == ["applied", "refused"], (round_, outcomes)
        assert reg.aliases(MODEL)[PRODUCTION] == "v1"  # one step back from v2, never two
    settled(reg)


@pytest.mark.slow
def test_promote_vs_promote_exactly_one_wins_and_never_touches_the_other(tmp_path: Path) -> None:
    home = fake_home(tmp_path / "home", 1)
    reg = home.registry
    reg.promote(MODEL, "v0", actor="setup", reason="first production")
    candidates = ["v0", *add_versions(reg, 3)]  # each round: two versions that are not production race
    operators = [open_workspace(home.settings), open_workspace(home.settings)]
    try:
        for round_ in range(ROUNDS):
            seen = reg.aliases(MODEL)[PRODUCTION]
            pair = [v for v in candidates if v != seen][round_ % 2 : round_ % 2 + 2]
            outcomes = race(
                *(
                    lambda ws=ws, version=version, seen=seen: promotion.promote(
                        ws, version, actor=f"ops-{version}", reason="race", evidence=None, expected=seen
                    )
                    for ws, version in zip(operators, pair, strict=True)
                )
            )
            assert sorted(outcomes) == ["applied", "refused"], (round_, outcomes)
            winner = pair[outcomes.index("applied")]
            assert reg.aliases(MODEL)[PRODUCTION] == winner
            assert reg.aliases(MODEL)["previous-production"] == seen
            settled(reg)
        # The loser never moved an alias of the winner: every alias move of a round names the winner only.
        for entry in reg.ledger(MODEL):
            if entry.action in ("move", "promote") and entry.outcome == "applied":
                assert all(m.to_version in (None, *candidates, "v0") for m in entry.moves)
    finally:
        for ws in operators:
            ws.close()


@pytest.mark.slow
def test_promote_vs_rollback_exactly_one_wins(tmp_path: Path) -> None:
    home = fake_home(tmp_path / "home", 1)
    reg = home.registry
    reg.promote(MODEL, "v0", actor="setup", reason="first production")
    pool = ["v0", *add_versions(reg, 3)]
    operators = [open_workspace(home.settings), open_workspace(home.settings)]
    wins = {"promote": 0, "rollback": 0}
    try:
        for round_ in range(ROUNDS):
            others = [v for v in pool if v != reg.aliases(MODEL)[PRODUCTION]]
            base, candidate = others[round_ % 2], others[2]
            reg.promote(MODEL, base, actor="setup", reason=f"round {round_}")  # previous-production exists
            seen = reg.aliases(MODEL)[PRODUCTION]
            previous = reg.aliases(MODEL)["previous-production"]
            outcomes = race(
                lambda candidate=candidate, seen=seen: promotion.promote(
                    operators[0], candidate, actor="promoter", reason="race", evidence=None, expected=seen
                ),
                lambda seen=seen: promotion.rollback(operators[1], actor="operator", reason="race", expected=seen),
            )
            assert sorted(outcomes) == ["applied", "refused"], (round_, outcomes)
            production = reg.aliases(MODEL)[PRODUCTION]
            if outcomes[0] == "applied":
                wins["promote"] += 1
                assert production == candidate
            else:
                wins["rollback"] += 1
                assert production == previous
            settled(reg)
    finally:
        for ws in operators:
            ws.close()
    assert sum(wins.values()) == ROUNDS
