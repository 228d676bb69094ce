"""Canary routing, scoring by alias, per-version evidence, the judgement, automatic rollback and the audit."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from devkit.promotion_home import MODEL, Home, good_and_bad_models, make_home
from tasks.core.errors import DataError, RegistryError
from tasks.core.settings import PromotionSettings
from tasks.resources.workspace import Workspace, open_workspace
from tasks.stages import canary, promotion
from tasks.stages.canary import (
    PairedComparison,
    ServingStats,
    canary_mask,
    hash_unit,
    judge_audit,
    judge_canary,
    paired_realized,
)
from tasks.training.scoring import VERSION_COLUMN

ALPHA = 0.05


@pytest.fixture(scope="module")
def texts() -> dict[str, str]:
    return good_and_bad_models()


def _workspace(home: Home, texts: dict[str, str], canary_model: str) -> Iterator[Workspace]:
    home.register(texts["good"])
    home.register(texts[canary_model])
    ws = open_workspace(home.settings)
    ws.registry.promote(MODEL, "v0", actor="test", reason="champion", expected_production=None)
    promotion.stage(ws, "v1", actor="test", reason="candidate", evidence="gate-v1.md")
    promotion.start_canary(ws, "v1", actor="test", reason="candidate", evidence="gate-v1.md")
    try:
        yield ws
    finally:
        ws.close()


# --- routing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "share", [pytest.param(0.01, marks=pytest.mark.slow), 0.1, pytest.param(0.5, marks=pytest.mark.slow)]
)
def test_canary_share_is_within_one_point_on_100k_ids(share: float) -> None:
    ids = range(100_000)
    routed = canary_mask(ids, share, "toy:v7").mean()
    assert abs(routed - share) < 0.01
    # Uniform, not merely right on average: every decile of hash values holds about a tenth of the ids.
    deciles = np.histogram(hash_unit(range(100_000), "toy:v7"), bins=10, range=(0, 1))[0] / 100_000
    assert np.all(np.abs(deciles - 0.1) < 0.005)


def test_split_is_stable_across_runs_and_processes_and_fresh_per_canary() -> None:
    ids = [f"customer-{i}" for i in range(2000)] + list(range(2000))
    first = canary_mask(ids, 0.2, "toy:v3")
    assert np.array_equal(first, canary_mask(ids, 0.2, "toy:v3"))
    code = (
        "import sys; from tasks.stages.canary import canary_mask; "
        "ids = [f'customer-{i}' for i in range(2000)] + list(range(2000)); "
        "sys.stdout.write(''.join('1' if r else '0' for r in canary_mask(ids, 0.2, 'toy:v3')))"
    )
    other = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
        cwd=Path(__file__).resolve().parents[3],
    ).stdout
    assert other == "".join("1" if r else "0" for r in first)
    # A larger share keeps everyone the smaller one routed (entities never flip back and forth).
    assert np.all(canary_mask(ids, 0.3, "toy:v3")[first])
    # A new canary draws a different set: overlap near share² (0.04), far from share (0.2).
    overlap = (first & canary_mask(ids, 0.2, "toy:v4")).mean()
    assert 0.02 < overlap < 0.07
    with pytest.raises(DataError, match="canary share must lie in"):
        canary_mask(ids, 1.5, "toy:v3")


# --- scoring by alias ------------------------------------------------------------------------------


def test_scoring_routes_by_alias_and_stores_the_version_of_every_prediction(
    tmp_path: Path, texts: dict[str, str]
) -> None:
    home = make_home(tmp_path / "home", canary_share=0.25)
    batch, _labels = home.batch("day-1", 4000, seed=21, first_id=1_000_000)
    for ws in _workspace(home, texts, "good2"):
        scored = canary.score_file(ws, str(batch))
        stored = pl.read_parquet(scored.path)
        assert stored.height == scored.rows == 4000
        assert abs(scored.routed["v1"] / 4000 - 0.25) < 0.03
        assert scored.served == scored.routed and scored.errors == {"v0": 0, "v1": 0}
        expected = canary_mask(stored.get_column("id").to_list(), 0.25, "toy:v1")
        assert np.array_equal(stored.get_column(VERSION_COLUMN).to_numpy() == "v1", expected)
        assert stored.get_column("y_pred_proba").is_between(0, 1).all()
        # The same batch scored again routes every entity the same way.
        again = pl.read_parquet(canary.score_file(ws, str(batch)).path)
        assert again.get_column(VERSION_COLUMN).to_list() == stored.get_column(VERSION_COLUMN).to_list()
        # Without a canary everything goes to production.
        promotion.move(ws, "canary", None, actor="test", reason="done")
        alone = pl.read_parquet(canary.score_file(ws, str(batch)).path)
        assert set(alone.get_column(VERSION_COLUMN).unique()) == {"v0"}


def test_a_canary_that_cannot_score_is_answered_by_production_and_counted(
    tmp_path: Path, texts: dict[str, str]
) -> None:
    home = make_home(tmp_path / "home")
    batch, _ = home.batch("day-1", 2000, seed=22, first_id=2_000_000)
    for ws in _workspace(home, texts, "broken"):
        scored = canary.score_file(ws, str(batch))
        stored = pl.read_parquet(scored.path)
        routed = stored.filter(pl.col(canary.ROUTED_TO_COLUMN) == "v1")
        assert routed.height == scored.routed["v1"] > 100
        assert routed.get_column(canary.ERROR_COLUMN).all()
        assert set(routed.get_column(VERSION_COLUMN)) == {"v0"}  # production answered them
        assert stored.get_column("y_pred_proba").is_not_null().all()
        assert scored.failure is not None and "v1 failed" in scored.failure
        stats = canary.serving_stats(canary.load_predictions(ws), "v1")
        assert stats.error_rate == 1.0 and stats.routed_rows == routed.height
        outcome = promotion.decide_canary(ws, "v1", actor="watch")
        assert outcome.status == "aborted"
        assert any("error rate 100.00%" in r for r in outcome.reasons)
        assert ws.registry.aliases(MODEL)["production"] == "v0"


# --- automatic rollback and the audit -----------------------------------------------------------


@pytest.mark.parametrize("storage", ["files", "sql"])
def test_automatic_rollback_fires_on_a_degraded_canary(tmp_path: Path, texts: dict[str, str], storage: str) -> None:
    home = make_home(tmp_path / "home", registry_storage=storage)
    batch, labels = home.batch("day-1", 3000, seed=23, first_id=3_000_000)
    for ws in _workspace(home, texts, "degraded"):
        canary.score_file(ws, str(batch))
        assert sum(canary.attach_labels(ws, [str(labels)]).values()) == 3000
        ledger_before = len(ws.registry.ledger(MODEL))
        outcome = promotion.decide_canary(ws, "v1", actor="watch")
        assert outcome.status == "aborted"
        aliases = ws.registry.aliases(MODEL)
        assert aliases["production"] == "v0" and "canary" not in aliases and "staging" not in aliases
        # The report says why, with the numbers.
        assert outcome.report_path is not None
        report = Path(outcome.report_path).read_text()
        assert "ABORT" in report and "missed: estimated AUC v1" in report and "missed: realized AUC v1" in report
        # Label-free, before labels: the paired CBPE drop is real (p < alpha) and the decisions that changed
        assert "; paired: estimated drop +" in report and "decisions differ on" in report
        assert "Label-free, on the same rows (before labels): estimated drop" in report
        # The ledger shows the withdrawal (canary and staging cleared in one entry), with the report as evidence.
        withdrawals = ws.registry.ledger(MODEL)[ledger_before:]
        assert [(e.action, [(m.alias, m.to_version) for m in e.moves]) for e in withdrawals] == [
            ("withdraw", [("canary", None), ("staging", None)])
        ]
        shared = ws.settings.shareable(outcome.report_path)
        assert all(e.evidence == shared and "automatic rollback" in e.reason for e in withdrawals)
        # The event (recorded in the audit store; no Prefect API in unit tests) and the decision.
        (event,) = ws.store.events()
        assert event["name"] == "driftgate.model.rolled_back"
        assert event["payload"]["from"] == "v1" and event["payload"]["to"] == "v0"
        assert any("realized AUC" in r for r in event["payload"]["reasons"])
        (decision,) = ws.store.decisions(MODEL, kind="rollback")
        assert decision["outcome"] == "canary_aborted" and decision["version"] == "v1"


@pytest.mark.parametrize("storage", ["files", "sql"])
def test_a_good_canary_is_promoted_and_audited_against_the_previous_production(
    tmp_path: Path, texts: dict[str, str], storage: str
) -> None:
    home = make_home(tmp_path / "home", registry_storage=storage)
    batch, labels = home.batch("day-1", 3000, seed=24, first_id=4_000_000)
    for ws in _workspace(home, texts, "good2"):
        canary.score_file(ws, str(batch))
        canary.attach_labels(ws, [str(labels)])
        promotion.record_approval(ws, "v1", promotion.Approval("alice", "looks fine"), evidence="gate-v1.md")
        outcome = promotion.decide_canary(ws, "v1", actor="watch", expected_production="v0")
        assert outcome.status == "promoted", outcome.reasons
        assert outcome.approver == "alice"
        aliases = ws.registry.aliases(MODEL)
        assert (aliases["production"], aliases["previous-production"]) == ("v1", "v0")
        assert "canary" not in aliases and "staging" not in aliases
        promote_entry = next(
            e for e in ws.registry.ledger(MODEL) if e.action == "promote" and e.moves[0].to_version == "v1"
        )
        assert promote_entry.actor == "alice"
        # The audit: same rows, both versions, linked from the ledger and the version's annotations.
        audit = ws.registry.ledger(MODEL)[-1]
        assert audit.action == "audit" and audit.evidence == ws.settings.shareable(outcome.audit_path)
        audit_note = ws.registry.annotations(MODEL, "v1")["post_deployment_audit"]
        assert audit_note["report"] == ws.settings.shareable(outcome.audit_path)
        text = Path(str(outcome.audit_path)).read_text()
        assert "Rows scored by both versions: 3000 (3000 labelled)" in text
        assert "| realized AUC |" in text and "PASSED" in text


def test_watch_moves_production_back_when_the_audit_fails(tmp_path: Path, texts: dict[str, str]) -> None:
    home = make_home(tmp_path / "home")
    batch, labels = home.batch("day-1", 2000, seed=25, first_id=5_000_000)
    home.register(texts["good"])
    home.register(texts["degraded"])
    ws = open_workspace(home.settings)
    try:
        ws.registry.promote(MODEL, "v0", actor="test", reason="champion", expected_production=None)
        promotion.promote(ws, "v1", actor="operator", reason="pushed without a watch window", evidence=None)
        canary.score_file(ws, str(batch))  # served by the new production
        outcome = promotion.watch(ws, labels=[str(labels)])
        assert outcome.action == "rolled_back", outcome.reasons
        assert ws.registry.aliases(MODEL)["production"] == "v0"
        assert outcome.labelled == {"day-1": 2000}
        rollback = next(e for e in reversed(ws.registry.ledger(MODEL)) if e.action == "rollback")
        assert "audit failed" in rollback.reason and rollback.evidence == ws.settings.shareable(outcome.report_path)
        assert ws.store.events()[-1]["name"] == "driftgate.model.rolled_back"
        # Nothing left to watch: production v0 has no previous-production.
        assert promotion.watch(ws).action == "idle"
    finally:
        ws.close()


def test_only_a_gate_pass_enters_promotion_unless_forced(tmp_path: Path, texts: dict[str, str]) -> None:
    home = make_home(tmp_path / "home")
    home.register(texts["good"])
    home.register(texts["good2"], gate_passed=False)
    ws = open_workspace(home.settings)
    try:
        with pytest.raises(RegistryError, match=r"toy:v1 did not pass the gate.*--force"):
            promotion.check_candidate(ws, "v1")
        assert promotion.check_candidate(ws, "v1", force=True).version == "v1"
        ws.registry.promote(MODEL, "v0", actor="test", reason="champion", expected_production=None)
        with pytest.raises(RegistryError, match="already holds 'production'"):
            promotion.check_candidate(ws, "v0")
    finally:
        ws.close()


# --- the judgement (pure) --------------------------------------------------------------------------


def _comparison(**changes: object) -> PairedComparison:
    base = PairedComparison("v1", "v0", 1000, 1000, 0.80, 0.80, 0.80, 0.80, 0.01, 0.5)
    return replace(base, **changes)  # type: ignore[arg-type]


def test_judge_canary_aborts_on_any_missed_threshold_waits_in_the_window_then_promotes() -> None:
    settings = PromotionSettings(watch_hours=2.0, min_canary_rows=100)
    healthy = ServingStats("v1", 500, 0, 3.0)
    assert judge_canary(healthy, _comparison(), settings, alpha=ALPHA, elapsed_hours=1.0).action == "wait"
    assert judge_canary(healthy, _comparison(), settings, alpha=ALPHA, elapsed_hours=2.5).action == "promote"
    cases = {
        "error rate 2.00%": (ServingStats("v1", 500, 10, 3.0), _comparison()),
        "scoring time 5000.0 ms": (ServingStats("v1", 500, 0, 5000.0), _comparison()),
        "estimated AUC v1 0.7500": (healthy, _comparison(new_estimated=0.75)),
        "realized AUC v1 0.7000": (healthy, _comparison(new_realized=0.70, p_worse=0.001)),
    }
    for needle, (stats, comparison) in cases.items():
        verdict = judge_canary(stats, comparison, settings, alpha=ALPHA, elapsed_hours=0.5)  # fires inside the window
        assert verdict.action == "abort" and len(verdict.failures) == 1 and needle in verdict.failures[0], needle
    # A realized drop that is not significant, or measured on too few labels, does not abort.
    for comparison in (_comparison(new_realized=0.70, p_worse=0.2), _comparison(new_realized=0.7, labelled_rows=50)):
        assert judge_canary(healthy, comparison, settings, alpha=ALPHA, elapsed_hours=3).action == "promote"
    starved = judge_canary(ServingStats("v1", 20, 0, 3.0), _comparison(), settings, alpha=ALPHA, elapsed_hours=3)
    assert starved.action == "abort" and "fewer than 100" in starved.failures[0]
    assert judge_audit(_comparison(new_estimated=0.7), settings, alpha=ALPHA).passed is False
    assert judge_audit(None, settings, alpha=ALPHA).passed is True


@pytest.mark.slow
def test_realized_rule_false_alarm_rate_stays_at_alpha_and_catches_a_real_drop() -> None:
    """Two equally good models on 400 labelled rows: the paired rule aborts in at most alpha of the runs."""
    rng = np.random.default_rng(2024)
    settings = PromotionSettings(max_realized_drop=0.0)  # the strictest margin: only the test protects
    healthy = ServingStats("v1", 400, 0, 1.0)
    false_alarms = caught = 0
    runs = 300
    for _ in range(runs):
        signal = rng.normal(size=400)
        labels = (rng.random(400) < 1 / (1 + np.exp(-1.2 * signal))).astype(int)
        old = signal + rng.normal(scale=0.8, size=400)
        equal = signal + rng.normal(scale=0.8, size=400)
        worse = signal + rng.normal(scale=2.5, size=400)  # AUC about 0.06 lower
        for scores, is_worse in ((equal, False), (worse, True)):
            new_auc, old_auc, se, p_worse = paired_realized(labels, scores, old)
            comparison = PairedComparison("v1", "v0", 400, 400, None, None, new_auc, old_auc, se, p_worse)
            aborted = judge_canary(healthy, comparison, settings, alpha=ALPHA, elapsed_hours=1).action == "abort"
            false_alarms += aborted and not is_worse
            caught += aborted and is_worse
    assert false_alarms / runs <= ALPHA + 0.02  # binomial slack for 300 runs
    assert caught / runs > 0.9


def test_paired_realized_agrees_with_sklearn() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(5)
    labels = rng.integers(0, 2, 500)
    a, b = rng.random(500) + labels * 0.3, rng.random(500) + labels * 0.1
    new_auc, old_auc, se, p_worse = paired_realized(labels, a, b)
    assert new_auc == pytest.approx(roc_auc_score(labels, a)) and old_auc == pytest.approx(roc_auc_score(labels, b))
    assert se > 0 and p_worse > 0.99  # the new model is clearly better here


def test_predictions_outside_the_window_are_ignored(tmp_path: Path, texts: dict[str, str]) -> None:
    home = make_home(tmp_path / "home")
    batch, _ = home.batch("old", 500, seed=26, first_id=6_000_000)
    for ws in _workspace(home, texts, "good2"):
        canary.score_file(ws, str(batch), now=datetime.now(UTC) - timedelta(days=3))
        started = promotion.canary_started_at(ws, "v1")
        assert started is not None
        assert canary.load_predictions(ws, since=started) is None
        assert canary.load_predictions(ws) is not None


def test_a_first_model_is_promoted_without_a_production_to_compare_with(tmp_path: Path, texts: dict[str, str]) -> None:
    home = make_home(tmp_path / "home")
    home.register(texts["good"])
    ws = open_workspace(home.settings)
    try:
        promotion.start_canary(ws, "v0", actor="test", reason="first", evidence=None)
        outcome = promotion.decide_canary(ws, "v0", actor="test", expected_production=None)
        assert outcome.status == "promoted" and outcome.previous is None and outcome.audit_path is None
        assert ws.registry.aliases(MODEL)["production"] == "v0"
        assert "| (none) | production |" in Path(str(outcome.report_path)).read_text()
    finally:
        ws.close()
