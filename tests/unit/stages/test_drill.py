"""The rollback drill: rehearsed on a sandbox copy, digests verified, time-to-restore measured."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devkit.promotion_home import MODEL, Home, good_and_bad_models, make_home
from tasks.core.errors import IntegrityError
from tasks.registry.local import LocalRegistry
from tasks.registry.model import LEDGER_NAME
from tasks.resources.workspace import open_workspace
from tasks.stages.drill import copy_collection, rehearse, run_drill, serve_once


@pytest.fixture(scope="module")
def texts() -> dict[str, str]:
    return good_and_bad_models()


def _home_with_two_productions(root: Path, texts: dict[str, str]) -> Home:
    home = make_home(root)
    home.register(texts["good"])
    home.register(texts["good2"])
    home.registry.promote(MODEL, "v0", actor="gate", reason="first", expected_production=None)
    home.registry.promote(MODEL, "v1", actor="gate", reason="second")
    return home


def test_drill_rehearses_rollback_and_roll_forward_on_a_copy(tmp_path: Path, texts: dict[str, str]) -> None:
    home = _home_with_two_productions(tmp_path / "home", texts)
    real = home.registry
    ledger_before = real.ledger(MODEL)
    ws = open_workspace(home.settings)
    try:
        result = run_drill(ws)
    finally:
        ws.close()
    assert result.ok, result.problems
    assert (result.production, result.previous_production) == ("v1", "v0")
    assert [(s.name, s.from_version, s.to_version) for s in result.steps] == [
        ("rollback", "v1", "v0"),
        ("roll-forward", "v0", "v1"),
    ]
    assert all(0 < s.seconds_to_restore < 10 and s.probability is not None for s in result.steps)
    assert result.versions_verified == 2
    # The real registry did not move: only a drill note was appended, linking the report.
    assert real.aliases(MODEL) == {"latest": "v1", "candidate": "v1", "production": "v1", "previous-production": "v0"}
    after = real.ledger(MODEL)
    assert after[: len(ledger_before)] == ledger_before and len(after) == len(ledger_before) + 1
    assert after[-1].action == "drill" and after[-1].moves == ()
    assert after[-1].evidence == home.settings.shareable(result.report_path)
    report = Path(str(result.report_path)).read_text()
    assert "PASSED" in report and "| rollback | v1 | v0 | v0 |" in report
    assert not Path(result.sandbox).exists()


def test_drill_finds_a_tampered_known_good_version(tmp_path: Path, texts: dict[str, str]) -> None:
    home = _home_with_two_productions(tmp_path / "home", texts)
    model_file = home.settings.registry_dir / MODEL / "v0" / "model.txt"
    os.chmod(model_file, 0o644)
    model_file.write_text(model_file.read_text().replace("num_leaves=7", "num_leaves=8", 1))
    ws = open_workspace(home.settings)
    try:
        result = run_drill(ws, keep_sandbox=True)
    finally:
        ws.close()
    assert not result.ok
    assert any("v0" in p and "tampered or truncated" in p for p in result.problems)
    assert result.versions_verified == 1
    assert Path(result.sandbox).is_dir()  # kept for inspection
    assert home.registry.aliases(MODEL)["production"] == "v1"
    assert "FAILED" in home.registry.ledger(MODEL)[-1].reason


def test_sandbox_copy_is_consistent_and_served_like_production(tmp_path: Path, texts: dict[str, str]) -> None:
    home = _home_with_two_productions(tmp_path / "home", texts)
    target = copy_collection(home.settings.registry_dir, MODEL, tmp_path / "sandbox")
    assert (target / LEDGER_NAME).read_bytes() == (home.settings.registry_dir / MODEL / LEDGER_NAME).read_bytes()
    sandbox = LocalRegistry(tmp_path / "sandbox")
    version, probability = serve_once(sandbox, MODEL)
    assert version.version == "v1" and 0.0 <= probability <= 1.0
    steps, problems = rehearse(sandbox, MODEL)
    assert not problems and [s.ok for s in steps] == [True, True]
    lone = make_home(tmp_path / "lone")
    lone.register(texts["good"])
    lone.registry.promote(MODEL, "v0", actor="gate", reason="only", expected_production=None)
    steps, problems = rehearse(lone.registry, MODEL)
    assert steps == [] and "nothing to rehearse" in problems[0]
    model_file = lone.settings.registry_dir / MODEL / "v0" / "model.txt"
    os.chmod(model_file, 0o644)
    model_file.write_text("tree\n")
    with pytest.raises(IntegrityError, match="toy:v0"):
        serve_once(lone.registry, MODEL)


def test_drill_on_the_sql_registry_rehearses_on_a_sandbox_database(tmp_path: Path, texts: dict[str, str]) -> None:
    from tasks.resources.registry_sql import SqlRegistry

    home = make_home(tmp_path / "home", registry_storage="sql")
    home.register(texts["good"])
    home.register(texts["good2"])
    real = home.registry
    assert isinstance(real, SqlRegistry)
    real.promote(MODEL, "v0", actor="gate", reason="first", expected_production=None)
    real.promote(MODEL, "v1", actor="gate", reason="second")
    before = real.aliases(MODEL)
    ws = open_workspace(home.settings)
    try:
        result = run_drill(ws)
    finally:
        ws.close()
    assert result.ok, result.problems
    assert [(s.name, s.from_version, s.to_version) for s in result.steps] == [
        ("rollback", "v1", "v0"),
        ("roll-forward", "v0", "v1"),
    ]
    assert result.versions_verified == 2
    assert real.aliases(MODEL) == before and real.ledger(MODEL)[-1].action == "drill"
    assert real.check(MODEL) == []
    assert not Path(result.sandbox).exists()
    real.close()
