"""Concept-drift detectors: false-alarm rate and detection delay on seeded streams, and state that survives JSON.

The mean_shift detector's calibration across batch sizes is measured in tests/statistical/.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, log_loss

from tasks.core.errors import ConfigError, DataError
from tasks.core.settings import ConceptDriftSettings
from tasks.drift.concept import (
    DetectorConfig,
    ErrorBaseline,
    MeanShiftParams,
    MeanShiftState,
    config_from_settings,
    dump_state,
    error_stream,
    load_state,
    mean_shift_test,
    update,
)
from tasks.drift.error_moments import ErrorMoments
from tasks.drift.sequential import (
    AdwinParams,
    AdwinState,
    PageHinkleyParams,
    PageHinkleyState,
    adwin_update,
    page_hinkley_update,
)

BATCH = 4000  # rows per monitored batch in the demo


def labelled_scores(rng: np.random.Generator, n: int, flip: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """A calibrated classifier's probabilities and labels; ``flip`` of the labels inverted (concept drift)."""
    p = rng.beta(0.5, 0.5, size=n)
    y = (rng.random(n) < p).astype(np.float64)
    y = np.where(rng.random(n) < flip, 1.0 - y, y)
    return y, p


def brier(rng: np.random.Generator, n: int, flip: float = 0.0) -> np.ndarray:
    y, p = labelled_scores(rng, n, flip)
    return error_stream(y, p, "brier")


def test_error_streams_average_to_sklearn_losses() -> None:
    y, p = labelled_scores(np.random.default_rng(0), 5000)
    assert error_stream(y, p, "brier").mean() == pytest.approx(brier_score_loss(y, p))
    assert error_stream(y, p, "log_loss").mean() == pytest.approx(log_loss(y, np.clip(p, 1e-6, 1 - 1e-6)))
    assert error_stream(y, p, "zero_one").mean() == pytest.approx(np.mean((p >= 0.5) != y))
    with pytest.raises(DataError, match="differ in length"):
        error_stream(y[:10], p[:11])
    with pytest.raises(ConfigError, match="hinge"):
        error_stream(y, p, "hinge")  # type: ignore[arg-type]


# --- Page-Hinkley -----------------------------------------------------------------------------------------
DEFAULT_PH = PageHinkleyParams()  # the defaults of policy.concept_drift


@pytest.mark.parametrize("kind", ["brier", "zero_one"])
@pytest.mark.slow
def test_page_hinkley_false_alarm_rate_on_stationary_streams(kind: str) -> None:
    # 100 streams of 10 batches each; the defaults were chosen for ~0.4 % false alarms per 4000-row batch
    # (measured on 300 streams: 0.4 % for Brier and for 0/1 errors).
    alarms = 0
    for seed in range(100):
        rng = np.random.default_rng(seed)
        y, p = labelled_scores(rng, 10 * BATCH)
        state = PageHinkleyState()
        for batch in np.split(error_stream(y, p, kind), 10):  # type: ignore[arg-type]
            state, fired = page_hinkley_update(state, batch, DEFAULT_PH)
            alarms += len(fired)
    assert alarms / 1000 <= 0.01


def test_page_hinkley_detects_an_error_increase_within_a_batch() -> None:
    delays, early = [], 0
    for seed in range(100):
        rng = np.random.default_rng(1000 + seed)
        state, fired = page_hinkley_update(PageHinkleyState(), brier(rng, 2 * BATCH), DEFAULT_PH)
        early += len(fired)
        state, fired = page_hinkley_update(state, brier(rng, BATCH, flip=0.05), DEFAULT_PH)
        delays.append(fired[0] if fired else BATCH)
    assert early <= 5  # false alarms on 100 x 2 stationary batches
    delays_arr = np.asarray(delays)
    assert np.mean(delays_arr < BATCH) >= 0.95  # detected within one batch in >= 95 of 100 streams
    assert np.median(delays_arr) < 1600  # measured ~1150 rows (90th percentile ~2000) for 5 % of labels flipped


def test_page_hinkley_ignores_an_error_decrease_and_restarts_after_an_alarm() -> None:
    rng = np.random.default_rng(7)
    state, fired = page_hinkley_update(PageHinkleyState(), brier(rng, BATCH, flip=0.1), DEFAULT_PH)
    state, fired = page_hinkley_update(state, brier(rng, BATCH), DEFAULT_PH)  # the model gets better
    assert fired == []
    state, fired = page_hinkley_update(state, brier(rng, BATCH, flip=0.15), DEFAULT_PH)
    assert len(fired) == 1 and state.alarms == 1
    assert state.rows == BATCH - fired[0] - 1  # restarted right after the alarm
    # the new regime is the baseline now: a further, stronger change is a second alarm
    state, fired = page_hinkley_update(state, brier(rng, 2 * BATCH, flip=0.15), DEFAULT_PH)
    assert fired == []
    state, fired = page_hinkley_update(state, brier(rng, BATCH, flip=0.35), DEFAULT_PH)
    assert fired and state.alarms == 2


def test_page_hinkley_in_batches_through_json_equals_one_pass() -> None:
    rng = np.random.default_rng(3)
    stream = np.concatenate([brier(rng, 6000), brier(rng, 6000, flip=0.1), brier(rng, 3000)])
    config = DetectorConfig(method="page_hinkley", page_hinkley=DEFAULT_PH)
    whole = update(config, None, stream)
    state_json: str | None = None
    alarms: list[int] = []
    offset = 0
    for size in (1000, 4321, 5000, 2679, 2000):
        part = update(config, state_json, stream[offset : offset + size])
        alarms += [offset + a for a in part.alarm_rows]
        state_json = part.state_json
        offset += size
    assert alarms == list(whole.alarm_rows) and alarms
    restored = load_state(state_json, "page_hinkley")
    expected = load_state(whole.state_json, "page_hinkley")
    assert isinstance(restored, PageHinkleyState) and isinstance(expected, PageHinkleyState)
    assert (restored.rows, restored.alarms, restored.rows_seen) == (expected.rows, expected.alarms, expected.rows_seen)
    assert restored.cumulative == pytest.approx(expected.cumulative)
    assert restored.total == pytest.approx(expected.total)
    assert json.loads(whole.state_json)["method"] == "page_hinkley"


# --- ADWIN ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_adwin_false_alarm_rate_and_delay() -> None:
    params = AdwinParams()
    alarms = 0
    delays = []
    for seed in range(60):
        rng = np.random.default_rng(seed)
        state = AdwinState()
        for _ in range(10):
            state, fired = adwin_update(state, brier(rng, BATCH), params)
            alarms += len(fired)
        state, fired = adwin_update(state, brier(rng, 2 * BATCH, flip=0.05), params)
        delays.append(fired[0] if fired else 2 * BATCH)
    assert alarms / 600 <= 0.01  # delta=0.002 per test: measured ~0.1 % per 4000 rows
    delays_arr = np.asarray(delays)
    assert np.mean(delays_arr < 2 * BATCH) >= 0.9
    assert np.median(delays_arr) < 3000


def test_adwin_shrinks_its_window_at_the_change_and_survives_json() -> None:
    rng = np.random.default_rng(11)
    params = AdwinParams(bucket_rows=50, max_buckets=200)
    state, _ = adwin_update(AdwinState(), brier(rng, 8000), params)
    assert sum(state.counts) == 8000 - state.pending_rows or sum(state.counts) == 200 * 50
    state, fired = adwin_update(state, brier(rng, 3000, flip=0.2), params)
    assert fired and state.alarms == len(fired)
    assert sum(state.counts) < 5000  # the pre-change rows were dropped
    text = dump_state(state)
    assert load_state(text, "adwin") == state
    assert load_state(text, "page_hinkley") == PageHinkleyState()  # another method's state starts afresh


def test_detector_inputs_and_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="Page-Hinkley"):
        PageHinkleyParams(threshold=0)
    with pytest.raises(ConfigError, match="ADWIN"):
        AdwinParams(delta=1.5)
    with pytest.raises(DataError, match="finite"):
        page_hinkley_update(PageHinkleyState(), np.array([0.1, np.nan]), DEFAULT_PH)
    with pytest.raises(DataError, match="finite"):
        adwin_update(AdwinState(), np.array([[0.1]]), AdwinParams())
    with pytest.raises(DataError, match="not JSON"):
        load_state("{nope", "page_hinkley")
    assert load_state(None, "adwin") == AdwinState()


def test_constant_error_stream_never_alarms() -> None:
    state, fired = page_hinkley_update(PageHinkleyState(), np.zeros(5000), DEFAULT_PH)
    assert fired == [] and state.statistic == 0.0


# --- mean shift against the model's baseline error (the default) ---------------------------------------------
def test_default_is_mean_shift_with_its_settings() -> None:
    settings = ConceptDriftSettings()
    assert (settings.method, settings.alpha, settings.min_increase, settings.min_rows, settings.strata) == (
        "mean_shift",
        0.01,
        0.10,
        100,
        20,
    )
    config = config_from_settings(settings)
    assert config == DetectorConfig() and config.mean_shift == MeanShiftParams()
    assert config.mean_shift.critical == pytest.approx(2.3263, abs=1e-4)
    custom = config_from_settings(ConceptDriftSettings(method="adwin", alpha=0.05, min_increase=0.2, min_rows=50))
    assert custom.method == "adwin" and custom.mean_shift == MeanShiftParams(alpha=0.05, min_increase=0.2, min_rows=50)
    assert config_from_settings(ConceptDriftSettings(method="off")).method == "mean_shift"


def test_mean_shift_alarms_on_flipped_labels_and_says_what_crossed_what() -> None:
    rng = np.random.default_rng(21)
    baseline = ErrorBaseline.from_scores(*labelled_scores(rng, 5000))
    y, p = labelled_scores(rng, BATCH, flip=0.05)
    result = update(DetectorConfig(), None, error_stream(y, p), baseline, p)
    assert result.detected and result.method == "mean_shift" and result.alarm_rows == ()
    assert result.statistic >= result.threshold >= MeanShiftParams().critical
    assert result.increase >= 0.10 and result.rows == BATCH and result.baseline_rows == 5000
    text = result.detail()
    assert text.startswith(f"mean_shift: mean Brier {result.mean_error:.4f} on 4000 labelled rows vs baseline ")
    assert f"({result.increase:+.1%}, floor +10%); z = {result.statistic:.2f} >= {result.threshold:.2f}" in text
    assert text.endswith(": ALARM") and "alpha 0.01" in text
    # stateless across batches: the state only counts
    state = load_state(result.state_json, "mean_shift")
    assert state == MeanShiftState(batches=1, alarms=1, rows_seen=BATCH)
    quiet = update(DetectorConfig(), result.state_json, brier(rng, BATCH), baseline)
    assert not quiet.detected and quiet.detail().endswith(": no alarm")
    assert load_state(quiet.state_json, "mean_shift") == MeanShiftState(batches=2, alarms=1, rows_seen=2 * BATCH)


def test_mean_shift_needs_the_floor_as_well_as_significance() -> None:
    baseline = ErrorBaseline(kind="brier", rows=50_000, mean=0.100, variance=0.02)
    errors = np.full(100_000, 0.104) + np.random.default_rng(0).normal(0, 0.1, 100_000)  # +4 %, z ~ 6
    result = update(DetectorConfig(), None, errors, baseline)
    assert result.statistic >= result.threshold and result.increase < 0.10 and not result.detected
    assert "below the +10% floor" in result.detail()
    assert result.detail().endswith("but the increase is below the floor: no alarm")
    pure = update(DetectorConfig(mean_shift=MeanShiftParams(min_increase=0.0)), None, errors, baseline)
    assert pure.detected and "floor +0%" in pure.detail()


def test_mean_shift_without_baseline_or_rows_does_not_alarm() -> None:
    errors = np.full(500, 0.9)
    missing = update(DetectorConfig(), None, errors)
    assert not missing.detected and math.isnan(missing.statistic)
    assert "no baseline error for this model" in missing.detail()
    log_loss_baseline = ErrorBaseline(kind="log_loss", rows=1000, mean=0.3, variance=0.1)
    other = update(DetectorConfig(), None, errors, log_loss_baseline)  # the detector uses Brier errors
    assert not other.detected and "no baseline error for this model of kind Brier" in other.detail()
    baseline = ErrorBaseline(kind="brier", rows=1000, mean=0.1, variance=0.02)
    few = update(DetectorConfig(), None, errors[:99], baseline)
    assert not few.detected and "not enough rows (needs 100)" in few.detail()
    empty = update(DetectorConfig(), None, np.array([]), baseline)
    assert not empty.detected and empty.rows == 0 and "no labelled rows" in empty.detail()
    assert load_state(empty.state_json, "mean_shift") == MeanShiftState(batches=0, alarms=0, rows_seen=0)


def test_mean_shift_compares_at_the_batchs_own_scores() -> None:
    """A batch of harder cases (scores near 0.5) has a higher Brier score with no change of P(y | p)."""
    rng = np.random.default_rng(8)
    baseline = ErrorBaseline.from_scores(*labelled_scores(rng, 20_000))
    assert len(baseline.strata) == 20 and len(baseline.edges) == 19
    p = rng.uniform(0.3, 0.7, BATCH)  # calibrated but uncertain: expected Brier ~0.23 vs ~0.125 overall
    y = (rng.random(BATCH) < p).astype(np.float64)
    errors = error_stream(y, p)
    stratified = update(DetectorConfig(), None, errors, baseline, p)
    plain = update(DetectorConfig(), None, errors, baseline)
    assert plain.detected and plain.increase > 0.5
    assert not stratified.detected and abs(stratified.increase) < 0.05
    assert stratified.baseline_mean == pytest.approx(0.2266, abs=0.01)  # E[p(1 - p)] over U(0.3, 0.7)
    assert "at these scores (20000 reference rows in 20 score strata" in stratified.detail()
    # a concept change at those scores is still seen: P(y = 1 | p) = 1 - p (Brier ~0.29)
    inverted = (rng.random(BATCH) < 1.0 - p).astype(np.float64)
    assert update(DetectorConfig(), None, error_stream(inverted, p), baseline, p).detected


def test_mean_shift_corrects_its_critical_value_for_skewed_errors() -> None:
    # Rare, large errors on the baseline side (a big batch against a small reference): the bar goes up.
    rng = np.random.default_rng(2)
    rare = (rng.random(1000) < 0.03).astype(np.float64)
    baseline = ErrorBaseline.from_errors(rare, "zero_one")
    assert baseline.skewness > 5
    outcome = mean_shift_test(rng.random(100_000) < 0.03, baseline, MeanShiftParams(), "zero_one")
    assert outcome.threshold > outcome.critical + 0.3
    # ... and never comes down below z_(1 - alpha), whatever the skew of the batch
    outcome = mean_shift_test(rare[:200], ErrorBaseline.from_errors(rng.random(50_000)), MeanShiftParams())
    assert outcome.threshold == outcome.critical


def test_error_baseline_round_trips_through_json() -> None:
    rng = np.random.default_rng(4)
    y, p = labelled_scores(rng, 3000)
    for baseline in (
        ErrorBaseline.from_scores(y, p),
        ErrorBaseline.from_scores(y, p, "log_loss", strata=5),
        ErrorBaseline.from_errors(error_stream(y, p, "zero_one"), "zero_one"),
    ):
        restored = ErrorBaseline.from_dict(json.loads(json.dumps(baseline.to_dict())))
        assert restored == baseline
    stratified = ErrorBaseline.from_scores(y, p)
    assert len(stratified.strata) == 20 and sum(s.rows for s in stratified.strata) == 3000
    assert min(s.rows for s in stratified.strata) >= 100
    assert stratified.mean == pytest.approx(brier_score_loss(y, p))
    assert stratified.variance == pytest.approx(np.var((p - y) ** 2, ddof=1))
    assert len(ErrorBaseline.from_scores(y[:450], p[:450]).strata) == 4  # at least 100 rows per stratum
    assert ErrorBaseline.from_scores(y[:150], p[:150]).strata == ()  # too few rows to stratify
    two_values = np.where(p > 0.5, 0.8, 0.2)  # ties: strata only where the score changes
    assert ErrorBaseline.from_scores(y, two_values).edges == (0.8,)


def test_error_baseline_rejects_bad_inputs_by_name() -> None:
    good = ErrorBaseline(kind="brier", rows=100, mean=0.1, variance=0.02).to_dict()
    with pytest.raises(ConfigError, match="unknown error kind 'hinge'"):
        ErrorBaseline.from_dict({**good, "kind": "hinge"})
    with pytest.raises(DataError, match="missing key\\(s\\) \\['variance'\\]"):
        ErrorBaseline.from_dict({k: v for k, v in good.items() if k != "variance"})
    with pytest.raises(DataError, match="unexpected key\\(s\\) \\['extra'\\]"):
        ErrorBaseline.from_dict({**good, "extra": 1})
    with pytest.raises(DataError, match="JSON object"):
        ErrorBaseline.from_dict([good])
    with pytest.raises(DataError, match="at least 2 labelled reference rows"):
        ErrorBaseline.from_dict({**good, "rows": 1})
    with pytest.raises(DataError, match="variance must be a finite number >= 0"):
        ErrorBaseline.from_dict({**good, "variance": -0.1})
    with pytest.raises(DataError, match="mean must be a finite number"):
        ErrorBaseline.from_dict({**good, "mean": float("nan")})
    with pytest.raises(DataError, match="must lie in \\[0, 1\\]"):
        ErrorBaseline.from_dict({**good, "mean": 1.5})
    with pytest.raises(DataError, match="needs 2 strata, got 0"):
        ErrorBaseline.from_dict({**good, "edges": [0.5]})
    with pytest.raises(DataError, match="strictly increasing"):
        ErrorBaseline(kind="brier", rows=100, mean=0.1, variance=0.02, edges=(0.5, 0.5))
    stratum = ErrorMoments(rows=50, mean=0.1, variance=0.02).to_dict()
    with pytest.raises(DataError, match="strata hold 100 rows, the baseline 101"):
        ErrorBaseline.from_dict({**good, "rows": 101, "edges": [0.5], "strata": [stratum, stratum]})
    with pytest.raises(DataError, match="stratum must hold rows, mean, variance, skewness"):
        ErrorBaseline.from_dict({**good, "edges": [0.5], "strata": [stratum, {"rows": 50}]})
    with pytest.raises(DataError, match="1 non-finite value"):
        ErrorBaseline.from_errors(np.array([0.1, np.nan, 0.2]))
    with pytest.raises(DataError, match="negative"):
        ErrorBaseline.from_errors(np.array([0.1, -0.2, 0.2]))
    with pytest.raises(DataError, match="at least 2 labelled reference rows, got 1"):
        ErrorBaseline.from_errors(np.array([0.1]))
    with pytest.raises(DataError, match="differ in length"):
        ErrorBaseline.from_scores(np.zeros(10), np.zeros(11))
    baseline = ErrorBaseline.from_scores(*labelled_scores(np.random.default_rng(0), 1000))
    with pytest.raises(DataError, match="999 probabilities for 1000"):
        mean_shift_test(np.zeros(1000), baseline, MeanShiftParams(), probability=np.zeros(999))
    with pytest.raises(DataError, match="finite"):
        update(DetectorConfig(), None, np.array([0.1, np.inf]), baseline)
    with pytest.raises(ConfigError, match=r"mean_shift needs 0 < alpha < 0\.5"):
        MeanShiftParams(alpha=0.0)
    with pytest.raises(ConfigError, match="min_increase >= 0"):
        MeanShiftParams(min_increase=-0.1)


def test_page_hinkley_reports_the_statistic_at_its_alarm() -> None:
    rng = np.random.default_rng(3)
    config = DetectorConfig(method="page_hinkley")
    first = update(config, None, brier(rng, 2 * BATCH))
    result = update(config, first.state_json, np.concatenate([brier(rng, BATCH, flip=0.2), brier(rng, 3000)]))
    assert result.detected
    restarted = load_state(result.state_json, "page_hinkley")
    assert isinstance(restarted, PageHinkleyState) and restarted.statistic < result.threshold
    assert result.statistic > result.threshold == 120.0  # at the alarm, not after the restart
    text = result.detail()
    assert f"statistic {result.statistic:.2f} > threshold 120.00" in text
    assert f"ALARM at row(s) {list(result.alarm_rows)}" in text and f"statistic now {restarted.statistic:.2f}" in text
    quiet = update(config, None, brier(rng, 200))
    assert "statistic 0.00 <= threshold 120.00; still learning" in quiet.detail()
