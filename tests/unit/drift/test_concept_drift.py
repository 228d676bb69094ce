"""Concept-drift detectors: false-alarm rate and detection delay on seeded streams, and state that survives JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, log_loss

from tasks.core.errors import ConfigError, DataError
from tasks.drift.concept import (
    AdwinParams,
    AdwinState,
    DetectorConfig,
    PageHinkleyParams,
    PageHinkleyState,
    adwin_update,
    dump_state,
    error_stream,
    load_state,
    page_hinkley_update,
    update,
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
