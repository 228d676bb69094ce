from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tasks.core.settings import PolicySettings
from tasks.policy.decide import (
    Action,
    ConceptDriftEvidence,
    PendingJudgement,
    PolicyDecision,
    PolicyEvidence,
    PolicyState,
    SliceEvidence,
    decide,
    degraded_slices,
    priority_of,
)

NOW = datetime(2026, 1, 10, 12, tzinfo=UTC)
EVIDENCE_RULES = {"drift", "performance", "concept_drift", "slices"}  # evidence may "fail"; guards may not on RETRAIN
ALARM = ConceptDriftEvidence(method="page_hinkley", detected=True, statistic=130.0, threshold=100.0, rows=4000)
QUIET = ConceptDriftEvidence(method="page_hinkley", detected=False, statistic=12.0, threshold=100.0, rows=4000)


def band(value: str, rows: int = 1000, est: float | None = None, real: float | None = None, se: float = 0.01):
    return SliceEvidence(
        column="region",
        value=value,
        rows=rows,
        estimated_drop=est,
        realized_drop=real,
        sampling_error=se,
        labelled_rows=rows if real is not None else 0,
    )


def evidence(**kw: object) -> PolicyEvidence:
    base: dict[str, object] = dict(batch_id="b", rows=5000, quality_passed=True, labelled_rows=5000)
    base.update(kw)
    return PolicyEvidence(**base)  # type: ignore[arg-type]


# 2,000 + 5,000 labelled rows since the inconclusive retrain are short of 20,000; 15,000 + 5,000 are not.
WAITING = PendingJudgement(version="v3", labelled_rows_needed=20_000)

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
    # concept drift on the error stream (labels arrived)
    ("concept drift retrains", {"concept_drift": ALARM}, {}, {}, Action.RETRAIN, "concept_drift"),
    ("quiet detector", {"concept_drift": QUIET}, {}, {}, Action.NONE, None),
    (
        "concept drift configured to alert",
        {"concept_drift": ALARM},
        {},
        {"concept_drift": {"action": "alert"}},
        Action.ALERT,
        "concept_drift",
    ),
    (
        "detector off ignores an alarm",
        {"concept_drift": ALARM},
        {},
        {"concept_drift": {"method": "off"}},
        Action.NONE,
        None,
    ),
    ("late labels raised the alarm", {}, {"pending_concept_drift": ALARM}, {}, Action.RETRAIN, "concept_drift"),
    (
        "concept drift still obeys persistence",
        {"concept_drift": ALARM},
        {},
        {"persistence": 2},
        Action.ALERT,
        "persistence",
    ),
    (
        "bad data blocks despite concept drift",
        {"quality_passed": False, "concept_drift": ALARM},
        {},
        {},
        Action.BLOCK,
        "data_quality",
    ),
    # slices of the contract
    (
        "degraded slice retrains",
        {"slices": (band("north", est=0.08), band("south", est=0.0))},
        {},
        {},
        Action.RETRAIN,
        "slices",
    ),
    ("slice drop within its noise", {"slices": (band("north", est=0.06, se=0.03),)}, {}, {}, Action.NONE, None),
    ("small slice is not judged", {"slices": (band("north", rows=100, est=0.3),)}, {}, {}, Action.NONE, None),
    ("realized slice drop retrains", {"slices": (band("north", real=0.09),)}, {}, {}, Action.RETRAIN, "slices"),
    (
        "degraded slice configured to alert",
        {"slices": (band("north", est=0.08),)},
        {},
        {"slice_action": "alert"},
        Action.ALERT,
        "slices",
    ),
    ("slice evaluation off", {"slices": (band("north", est=0.08),)}, {}, {"slice_action": "off"}, Action.NONE, None),
    # a retrain whose gate could not tell: wait for the labels it asked for, then judge again
    (
        "inconclusive gate waits for labels",
        {"estimated_drop": 0.05},
        {"inconclusive": WAITING, "labelled_rows_since_retrain": 2000},
        {},
        Action.ALERT,
        "inconclusive_gate",
    ),
    (
        "inconclusive gate retrains once its labels arrived",
        {"estimated_drop": 0.05},
        {"inconclusive": WAITING, "labelled_rows_since_retrain": 15000},
        {},
        Action.RETRAIN,
        None,
    ),
    (
        "waiting after an inconclusive gate is configurable",
        {"estimated_drop": 0.05},
        {"inconclusive": WAITING, "labelled_rows_since_retrain": 2000},
        {"wait_after_inconclusive": False},
        Action.RETRAIN,
        None,
    ),
    ("a clean batch does not wait", {}, {"inconclusive": WAITING}, {}, Action.NONE, None),
]


@pytest.mark.parametrize(("name", "ev", "state", "cfg", "expected", "failing"), CASES, ids=[c[0] for c in CASES])
def test_policy_rules(name: str, ev: dict, state: dict, cfg: dict, expected: Action, failing: str | None) -> None:
    decision = decide(evidence(**ev), PolicyState(**state), PolicySettings(**cfg), NOW)
    assert decision.action == expected, decision.reasons
    assert decision.reasons
    if failing is not None:
        assert any(r.rule == failing and r.verdict == "fail" for r in decision.rules)
    if expected == Action.RETRAIN:
        assert all(r.verdict != "fail" for r in decision.rules if r.rule not in EVIDENCE_RULES)


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


def test_skipped_rules_say_why() -> None:
    decision = decide(evidence(), PolicyState(), PolicySettings(), NOW)
    concept, slices = decision.rule("concept_drift"), decision.rule("slices")
    assert concept is not None and concept.verdict == "skipped" and "no labelled rows" in concept.detail
    assert slices is not None and slices.verdict == "skipped" and "no slice columns" in slices.detail


def test_decision_names_the_degraded_slices_and_the_window() -> None:
    stretch = NOW - timedelta(days=2)
    ev = evidence(
        slices=(band("north", est=0.08), band("south", est=0.01), band("east", rows=50, est=0.5)),
        window_start=NOW - timedelta(days=1),
        window_end=NOW,
    )
    first = decide(ev, PolicyState(), PolicySettings(), NOW)
    assert first.action == Action.RETRAIN and first.degraded_slices == ("region=north",)
    assert first.window_start == ev.window_start and first.window_basis == "this batch, the first degraded one"
    assert any("region=north" in r and "retrain on the labelled rows" in r for r in first.reasons)
    later = decide(ev, PolicyState(consecutive_degraded=2, degraded_window_start=stretch), PolicySettings(), NOW)
    assert later.window_start == stretch and "2 before it" in later.window_basis
    rule = first.rule("slices")
    assert rule is not None and "1 of 2 judged" in rule.detail and "1 below 300 rows not judged" in rule.detail


def test_slice_judgement_scales_the_realized_noise_by_labelled_rows() -> None:
    settings = PolicySettings()
    few_labels = SliceEvidence("region", "north", rows=1000, realized_drop=0.09, sampling_error=0.01, labelled_rows=40)
    many_labels = SliceEvidence(
        "region", "north", rows=1000, realized_drop=0.09, sampling_error=0.01, labelled_rows=900
    )
    assert degraded_slices((few_labels,), settings)[0] == []  # 0.01 * sqrt(1000/40) * 3 = 0.15 > 0.09
    assert degraded_slices((many_labels,), settings)[0] == [many_labels]


def test_priority_follows_the_largest_impact_including_slices() -> None:
    settings = PolicySettings()
    overall = decide(evidence(estimated_drop=0.03), PolicyState(), settings, NOW)
    with_slice = decide(
        evidence(estimated_drop=0.03, slices=(band("north", rows=4000, est=0.2),)), PolicyState(), settings, NOW
    )
    assert overall.priority == pytest.approx(priority_of(0.03, 5000, settings)[0])
    assert with_slice.priority == pytest.approx(priority_of(0.2, 4000, settings)[0])
    assert with_slice.priority_class == "urgent" and overall.priority_class == "normal"
    custom = PolicySettings(urgent_impact=100.0, normal_impact=50.0)
    assert priority_of(0.2, 4000, custom)[1] == "low"


def test_evidence_round_trips_through_its_stored_form() -> None:
    ev = evidence(
        estimated_drop=0.05,
        realized_drop=0.04,
        drifted_features=("a",),
        drift_share=0.5,
        concept_drift=ALARM,
        slices=(band("north", est=0.08, real=0.07),),
        window_start=NOW - timedelta(days=1),
        window_end=NOW,
    )
    decision = decide(ev, PolicyState(), PolicySettings(), NOW)
    stored = decision.to_dict()
    assert PolicyEvidence.from_dict(stored["evidence"]) == ev
    assert stored["concept_drift"] is True and list(stored["degraded_slices"]) == ["region=north"]
    assert isinstance(decision, PolicyDecision)


def test_joint_drift_alone_alerts_and_says_so() -> None:
    decision = decide(evidence(multivariate_drift=True), PolicyState(), PolicySettings(), NOW)
    assert decision.action == Action.ALERT
    assert decision.drifted
    assert "joint distribution" in decision.reasons[-1]
    assert PolicyEvidence.from_dict(decision.to_dict()["evidence"]).multivariate_drift


def test_cooldown_and_budget_count_in_batch_time_not_wall_time() -> None:
    """Three degraded daily batches monitored minutes apart (a back-fill, a burst of late labels) are judged on
    their own days: a budget of one retrain a day holds none of them."""
    from datetime import UTC, datetime, timedelta

    from tasks.policy.decide import PastDecision, policy_clock, state_for_batch

    settings = PolicySettings(persistence=1, max_retrains_per_day=1, cooldown_hours=12, min_new_rows=0)
    day = datetime(2026, 5, 1, tzinfo=UTC)
    verdicts: list[PastDecision] = []
    retrains: list[datetime] = []
    actions = []
    for index in range(3):
        evidence = PolicyEvidence(
            batch_id=f"b{index}",
            rows=4000,
            quality_passed=True,
            realized_drop=0.1,
            labelled_rows=4000,
            window_start=(day + timedelta(days=index)).replace(tzinfo=None),
            window_end=(day + timedelta(days=index + 1)).replace(tzinfo=None),  # naive data times
        )
        clock = policy_clock(evidence, datetime(2026, 12, 4, 12, index, tzinfo=UTC))  # minutes apart on the wall
        assert clock == day + timedelta(days=index + 1)
        decision = decide(evidence, state_for_batch(verdicts, evidence.batch_id, retrains, clock), settings, clock)
        actions.append(decision.action)
        verdicts.append(PastDecision(clock, decision.degraded, decision.window_start, 4000, evidence.batch_id))
        if decision.action == Action.RETRAIN:
            retrains.append(clock)
    assert actions == [Action.RETRAIN] * 3


def test_late_labels_count_towards_new_rows_and_a_retired_model_cannot_retrain() -> None:
    from datetime import UTC, datetime

    from tasks.policy.decide import PastDecision, state_for_batch

    at = datetime(2026, 5, 3, tzinfo=UTC)
    # Batches judged when monitored without labels; their labels arrived later (labelled_rows is what is now).
    verdicts = [
        PastDecision(datetime(2026, 5, 1, tzinfo=UTC), True, None, 3000, "b1", "v0"),
        PastDecision(datetime(2026, 5, 2, tzinfo=UTC), False, None, 0, "b2", "v0"),
        PastDecision(datetime(2026, 5, 4, tzinfo=UTC), False, None, 2500, "b3", "v0"),
    ]
    state = state_for_batch(verdicts, "b2", [], at, model_version="v0")
    assert state.consecutive_degraded == 1  # b1, the batch before b2; b3 comes later
    assert state.labelled_rows_since_retrain == 5500  # every other batch's labels, later ones included
    retired = PolicyEvidence(
        batch_id="b2", rows=3000, quality_passed=True, realized_drop=0.2, labelled_rows=3000,
        model_version="v0", serving_version="v1", trigger="labels",
    )  # fmt: skip
    decision = decide(retired, state, PolicySettings(persistence=1), at)
    assert decision.action == Action.ALERT and decision.rule("serving").verdict == "fail"  # type: ignore[union-attr]
    assert "no longer serves" in decision.reasons[-1]
    # A streak stops at a batch judged for another version.
    other = [PastDecision(at, True, None, 10, "a", "v0"), PastDecision(at, True, None, 10, "b", "v1")]
    assert state_for_batch(other, None, [], at, model_version="v1").consecutive_degraded == 1


def test_retrain_keys_follow_the_labelled_rows_of_the_window() -> None:
    from datetime import datetime

    from tasks.resources.events import retrain_key

    start, end = datetime(2026, 5, 1), datetime(2026, 5, 3)
    first = retrain_key("m", start, end, "b1=4000;b2=4000")
    assert first == retrain_key("m", start, end, "b1=4000;b2=4000")  # a re-sent request collapses
    assert first != retrain_key("m", start, end, "b1=4000;b2=4000;b3=2500")  # more labels: a new request
    assert first != retrain_key("m", start, datetime(2026, 5, 4), "b1=4000;b2=4000")  # a grown stretch
