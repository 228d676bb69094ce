from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tasks.policy import Action, PolicyEvidence, PolicyState, decide, priority_of
from tasks.settings import PolicySettings

NOW = datetime(2026, 1, 10, 12, tzinfo=UTC)


def evidence(**kw: object) -> PolicyEvidence:
    base: dict[str, object] = dict(batch_id="b", rows=5000, quality_passed=True, labelled_rows=5000)
    base.update(kw)
    return PolicyEvidence(**base)  # type: ignore[arg-type]


CASES = [
    # (name, evidence kwargs, state kwargs, settings kwargs, expected action, failing rule)
    ("clean batch", {}, {}, {}, Action.NONE, None),
    (
        "bad data blocks",
        {"quality_passed": False, "quality_failures": ("missing_rate:x",), "estimated_drop": 0.2},
        {},
        {},
        Action.BLOCK,
        "data_quality",
    ),
    ("drift alone alerts", {"drifted_features": ("a",), "drift_share": 0.5}, {}, {}, Action.ALERT, None),
    (
        "drift alone retrains when configured",
        {"drifted_features": ("a", "b"), "drift_share": 0.5},
        {},
        {"retrain_on_drift_alone": True},
        Action.RETRAIN,
        None,
    ),
    ("estimated drop retrains", {"estimated_drop": 0.05}, {}, {}, Action.RETRAIN, None),
    ("realized drop retrains", {"realized_drop": 0.05}, {}, {}, Action.RETRAIN, None),
    ("small drop is not degradation", {"estimated_drop": 0.01, "realized_drop": 0.0}, {}, {}, Action.NONE, None),
    (
        "estimate alert alone is not degradation",
        {"estimate_alert": True, "estimated_drop": 0.005},
        {},
        {},
        Action.NONE,
        None,
    ),
    ("persistence not reached", {"estimated_drop": 0.05}, {}, {"persistence": 2}, Action.ALERT, "persistence"),
    (
        "persistence reached",
        {"estimated_drop": 0.05},
        {"consecutive_degraded": 1},
        {"persistence": 2},
        Action.RETRAIN,
        None,
    ),
    (
        "cooldown",
        {"estimated_drop": 0.05},
        {"last_retrain_at": NOW - timedelta(hours=1)},
        {"cooldown_hours": 6},
        Action.ALERT,
        "cooldown",
    ),
    (
        "cooldown over",
        {"estimated_drop": 0.05},
        {"last_retrain_at": NOW - timedelta(hours=7)},
        {"cooldown_hours": 6},
        Action.RETRAIN,
        None,
    ),
    (
        "budget spent",
        {"estimated_drop": 0.05},
        {"retrains_last_24h": 4},
        {"max_retrains_per_day": 4},
        Action.ALERT,
        "budget",
    ),
    (
        "too few labelled rows",
        {"estimated_drop": 0.05, "labelled_rows": 100},
        {},
        {"min_new_rows": 1000},
        Action.ALERT,
        "min_new_rows",
    ),
    (
        "labelled rows accumulate",
        {"estimated_drop": 0.05, "labelled_rows": 100},
        {"labelled_rows_since_retrain": 900},
        {"min_new_rows": 1000},
        Action.RETRAIN,
        None,
    ),
]


@pytest.mark.parametrize(("name", "ev", "state", "cfg", "expected", "failing"), CASES, ids=[c[0] for c in CASES])
def test_policy_rules(name: str, ev: dict, state: dict, cfg: dict, expected: Action, failing: str | None) -> None:
    decision = decide(evidence(**ev), PolicyState(**state), PolicySettings(**cfg), NOW)
    assert decision.action == expected, decision.reasons
    assert decision.reasons
    if failing is not None:
        assert any(r.rule == failing and r.outcome == "fail" for r in decision.rules)
    if expected == Action.RETRAIN:
        assert all(r.outcome != "fail" for r in decision.rules if r.rule not in {"drift", "performance"})


def test_decision_is_reproducible_and_serialisable() -> None:
    ev = evidence(estimated_drop=0.05, window_start=NOW - timedelta(days=1), window_end=NOW)
    a = decide(ev, PolicyState(), PolicySettings(), NOW)
    b = decide(ev, PolicyState(), PolicySettings(), NOW)
    assert a == b
    data = a.to_dict()
    assert data["action"] == "RETRAIN"
    assert data["window_end"] == NOW.isoformat()
    assert {r["rule"] for r in data["rules"]} >= {"data_quality", "performance", "persistence", "budget"}


def test_retrain_window_spans_the_degraded_stretch() -> None:
    stretch = NOW - timedelta(days=3)
    ev = evidence(estimated_drop=0.05, window_start=NOW - timedelta(days=1), window_end=NOW)
    decision = decide(ev, PolicyState(consecutive_degraded=2, degraded_window_start=stretch), PolicySettings(), NOW)
    assert decision.window_start == stretch
    assert decision.window_end == NOW


def test_priority_grows_with_impact_and_traffic() -> None:
    settings = PolicySettings(business_weight=1.0)
    low, low_class = priority_of(0.005, 5000, settings)
    mid, _ = priority_of(0.03, 5000, settings)
    high, high_class = priority_of(0.10, 50_000, settings)
    assert low < mid < high
    assert low_class == "low"
    assert high_class == "urgent"
    assert priority_of(0.03, 5000, PolicySettings(business_weight=3.0))[0] == pytest.approx(3 * mid)
