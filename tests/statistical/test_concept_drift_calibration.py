"""What the mean_shift concept-drift detector claims, measured on seeded simulations and on real data.

* False alarms per batch on stationary labelled streams stay at or below alpha (bound: alpha + 3 Monte-Carlo
  standard errors) for batches of 1k to 100k rows, on calibrated binormal score models at prevalence 0.30
  and 0.05, an overconfident (miscalibrated but stationary) one, and a bootstrap of NannyML's US-census
  employment reference; with the default floor, with the pure z test (floor 0), and unstratified.
* It does not alarm on NannyML's later employment years (2016-2018: same model, stationary), in batches of
  10k, 50k or a whole year, where Page-Hinkley raised the false RETRAIN reported in issue 11.
* Power: 5 % of the labels flipped, or one segment's labels flipped, is found in a 4000-row batch with
  probability >= 0.9 (against a reference of 5000 rows).
* Its verdict, statistic, threshold and message agree, for mean_shift, Page-Hinkley and ADWIN.

The slow tests print the measured table; reproduce it with
    uv run --frozen pytest tests/statistical/test_concept_drift_calibration.py -m slow -s -q
"""

from __future__ import annotations

import functools
import importlib.util
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tasks.drift.concept import (
    DetectorConfig,
    DetectorResult,
    ErrorBaseline,
    MeanShiftParams,
    error_stream,
    update,
)
from tasks.drift.error_moments import ErrorKind

ALPHA = MeanShiftParams().alpha
SIZES = (1_000, 10_000, 50_000, 100_000)
REFERENCE_ROWS = 5_000  # labelled holdout the baseline comes from
POWER_BATCH = 4_000
Draw = Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]]

# Variants judged on the same draws: (name, config, stratified: pass the batch's probabilities).
NO_FLOOR = DetectorConfig(mean_shift=MeanShiftParams(min_increase=0.0))
VARIANTS: tuple[tuple[str, DetectorConfig, bool], ...] = (
    ("default", DetectorConfig(), True),
    ("z test (no floor)", NO_FLOOR, True),
    ("z test, unstratified", NO_FLOOR, False),
)


def binormal(prevalence: float, separation: float = 1.5, sharpen: float = 1.0) -> Draw:
    """Labels and a model's probabilities: score ~ N(separation * y, 1), p = P(y = 1 | score) (calibrated);
    ``sharpen`` > 1 multiplies the logit (an overconfident, miscalibrated model). AUC ~0.86 at 1.5."""
    base = math.log(prevalence / (1 - prevalence)) - separation**2 / 2

    def draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        y = (rng.random(n) < prevalence).astype(np.float64)
        score = rng.standard_normal(n) + separation * y
        return y, 1.0 / (1.0 + np.exp(-sharpen * (base + separation * score)))

    return draw


# --- NannyML's US-census employment data (Massachusetts, 2015 reference, 2016-2018 analysis) ----------------
def _employment_dir() -> Path | None:
    spec = importlib.util.find_spec("nannyml")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "datasets" / "data"
    return folder if (folder / "employment_MA_reference.pq").exists() else None


@functools.cache
def employment() -> dict[str, np.ndarray]:
    """Reference and analysis rows (analysis in file order), as arrays; skips when NannyML's data is absent."""
    folder = _employment_dir()
    if folder is None:
        pytest.skip("NannyML's employment data set is not installed")
    import polars as pl

    reference = pl.read_parquet(folder / "employment_MA_reference.pq")
    analysis = (
        pl.read_parquet(folder / "employment_MA_analysis.pq")
        .join(pl.read_parquet(folder / "employment_MA_analysis_target.pq"), on="id")
        .sort("id")
    )
    return {
        "y_ref": reference["employed"].to_numpy().astype(np.float64),
        "p_ref": reference["predicted_probability"].to_numpy(),
        "age_ref": reference["AGEP"].to_numpy(),
        "y": analysis["employed"].to_numpy().astype(np.float64),
        "p": analysis["predicted_probability"].to_numpy(),
        "year": analysis["year"].to_numpy(),
    }


def employment_bootstrap(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows drawn with replacement from the 2015 reference: a stationary stream with real errors."""
    data = employment()
    index = rng.integers(0, data["y_ref"].size, n)
    return data["y_ref"][index], data["p_ref"][index]


DGPS: dict[str, Draw] = {
    "binormal p=0.30": binormal(0.30),
    "binormal p=0.05": binormal(0.05),
    "overconfident p=0.30": binormal(0.30, sharpen=1.6),
    "employment bootstrap": employment_bootstrap,
}


# --- false alarms -------------------------------------------------------------------------------------------
def false_alarm_rates(draw: Draw, replicates: int, seed: int, kind: ErrorKind = "brier") -> dict[str, np.ndarray]:
    """Share of stationary batches that alarm, per variant and batch size.

    Each replicate draws a reference (the baseline) and a 100k-row batch from the same process; the smaller
    batches are its first rows, so the sizes share a baseline within a replicate but replicates are
    independent, and each size's rate is a binomial proportion over the replicates.
    """
    rng = np.random.default_rng(seed)
    variants = [
        (name, DetectorConfig(error=kind, mean_shift=config.mean_shift), stratified)
        for name, config, stratified in VARIANTS
    ]
    alarms = {name: np.zeros(len(SIZES)) for name, _, _ in variants}
    for _ in range(replicates):
        baseline = ErrorBaseline.from_scores(*draw(rng, REFERENCE_ROWS), kind=kind)
        y, p = draw(rng, SIZES[-1])
        errors = error_stream(y, p, kind)
        for j, size in enumerate(SIZES):
            for name, config, stratified in variants:
                result = update(config, None, errors[:size], baseline, p[:size] if stratified else None)
                alarms[name][j] += result.detected
    return {name: counts / replicates for name, counts in alarms.items()}


def bound(replicates: int) -> float:
    """alpha plus three Monte-Carlo standard errors of a rate of alpha."""
    return ALPHA + 3.0 * math.sqrt(ALPHA * (1.0 - ALPHA) / replicates)


def check_and_print(label: str, rates: dict[str, np.ndarray], replicates: int) -> None:
    se = math.sqrt(ALPHA * (1.0 - ALPHA) / replicates)
    for name, values in rates.items():
        cells = "  ".join(f"{size // 1000:>3}k {rate:.4f}" for size, rate in zip(SIZES, values, strict=True))
        print(f"{label:<32} {name:<22} {cells}   (R={replicates}, MC se {se:.4f})")
    for name, values in rates.items():
        assert np.all(values <= bound(replicates)), f"{label}, {name}: false-alarm rates {values} > {bound(replicates)}"


@pytest.mark.slow
@pytest.mark.parametrize("dgp", ["binormal p=0.05", "employment bootstrap"])
def test_false_alarm_rate_per_batch_quick(dgp: str) -> None:
    replicates = 300
    check_and_print(dgp, false_alarm_rates(DGPS[dgp], replicates, seed=2024), replicates)


@pytest.mark.slow
@pytest.mark.parametrize("dgp", list(DGPS))
def test_false_alarm_rate_per_batch(dgp: str) -> None:
    replicates = 4000
    check_and_print(dgp, false_alarm_rates(DGPS[dgp], replicates, seed=11), replicates)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["zero_one", "log_loss"])
@pytest.mark.parametrize("dgp", ["binormal p=0.30", "binormal p=0.05"])
def test_false_alarm_rate_per_batch_other_losses(dgp: str, kind: ErrorKind) -> None:
    replicates = 2000
    check_and_print(f"{dgp}, {kind}", false_alarm_rates(DGPS[dgp], replicates, seed=12, kind=kind), replicates)


# --- real data: the stream that raised the false RETRAIN -----------------------------------------------------
def test_no_alarm_on_later_employment_years() -> None:
    data = employment()
    baseline = ErrorBaseline.from_scores(data["y_ref"], data["p_ref"])
    errors = error_stream(data["y"], data["p"])
    batches = [slice(start, start + size) for size in (10_000, 50_000) for start in range(0, errors.size, size)]
    years = [np.flatnonzero(data["year"] == year) for year in (2016, 2017, 2018)]
    results = [update(DetectorConfig(), None, errors[b], baseline, data["p"][b]) for b in batches]
    results += [update(DetectorConfig(), None, errors[i], baseline, data["p"][i]) for i in years]
    assert len(results) == 21 + 5 + 3
    assert not any(r.detected for r in results), [r.detail() for r in results if r.detected]
    assert all(r.statistic < 2.6 and r.increase < 0.04 for r in results)  # measured: z <= 2.47, +3.3 % at most
    assert "baseline 0.1228 at these scores" in results[-2].detail() and "no alarm" in results[-2].detail()

    # The 10k batch at rows 130000-140000 is mostly group-quarters residents (PUMS lists them last in a
    # year): harder cases, Brier +12 % over the reference's mean but +3.3 % over the reference's error at
    # those scores. Only the unstratified comparison (no probabilities) calls that a concept change.
    group_quarters = slice(130_000, 140_000)
    plain = update(DetectorConfig(), None, errors[group_quarters], baseline)
    assert plain.detected and plain.increase > 0.10

    # Page-Hinkley, the old default, alarms on 2017 as reported; its message now shows the statistic at the
    # alarm (not the one after its restart) and that it crossed the threshold.
    ph = update(DetectorConfig(method="page_hinkley"), None, errors[years[1]])
    assert ph.detected and ph.statistic > ph.threshold == 120.0
    assert f"statistic {ph.statistic:.2f} > threshold 120.00" in ph.detail()


# --- power --------------------------------------------------------------------------------------------------
def power_of_flips(draw: Draw, share: float, replicates: int, seed: int) -> float:
    """Share of 4000-row batches, with ``share`` of their labels flipped, that alarm."""
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(replicates):
        baseline = ErrorBaseline.from_scores(*draw(rng, REFERENCE_ROWS))
        y, p = draw(rng, POWER_BATCH)
        y = np.where(rng.random(y.size) < share, 1.0 - y, y)
        hits += update(DetectorConfig(), None, error_stream(y, p), baseline, p).detected
    return hits / replicates


@pytest.mark.parametrize("dgp", list(DGPS))
def test_power_five_percent_of_labels_flipped(dgp: str) -> None:
    measured = power_of_flips(DGPS[dgp], 0.05, replicates=400, seed=3)
    print(f"power, 5 % of labels flipped, {dgp}: {measured:.2f}")
    assert measured >= 0.9


def test_power_one_segments_labels_flipped() -> None:
    """Employment of 22-29-year-olds (~10 % of rows) inverted: a concept change in one segment."""
    data = employment()
    rng = np.random.default_rng(4)
    hits, replicates = 0, 400
    for _ in range(replicates):
        ref = rng.integers(0, data["y_ref"].size, REFERENCE_ROWS)
        baseline = ErrorBaseline.from_scores(data["y_ref"][ref], data["p_ref"][ref])
        rows = rng.integers(0, data["y_ref"].size, POWER_BATCH)
        y, p, age = data["y_ref"][rows], data["p_ref"][rows], data["age_ref"][rows]
        y = np.where((age >= 22) & (age < 30), 1.0 - y, y)
        hits += update(DetectorConfig(), None, error_stream(y, p), baseline, p).detected
    assert hits / replicates >= 0.9


# --- verdicts, statistics and messages agree ------------------------------------------------------------------
def consistent_mean_shift(result: DetectorResult) -> None:
    floor_met = result.increase >= result.min_increase  # False when NaN (not tested)
    assert result.detected == (result.statistic >= result.threshold and floor_met), result.detail()
    text = result.detail()
    assert ("ALARM" in text) == result.detected, text
    if math.isfinite(result.statistic):
        assert f"z = {result.statistic:.2f}" in text and f"{result.threshold:.2f}" in text, text
        assert (f"{result.statistic:.2f} >= " in text) == (result.statistic >= result.threshold), text
        assert ("below the" in text) == (not floor_met), text
    else:
        assert "not tested" in text, text


def test_mean_shift_verdict_statistic_and_message_agree() -> None:
    rng = np.random.default_rng(99)
    kinds: tuple[ErrorKind, ...] = ("brier", "zero_one", "log_loss")
    for case in range(400):
        draw = binormal(float(rng.uniform(0.03, 0.5)), float(rng.uniform(0.5, 3.0)))
        kind = kinds[case % 3]
        reference = int(rng.integers(50, 4000))
        baseline = ErrorBaseline.from_scores(*draw(rng, reference), kind=kind, strata=int(rng.integers(1, 25)))
        y, p = draw(rng, int(rng.integers(0, 3000)))
        y = np.where(rng.random(y.size) < rng.uniform(0.0, 0.15), 1.0 - y, y)
        params = MeanShiftParams(
            alpha=float(rng.uniform(0.001, 0.2)),
            min_increase=float(rng.choice([0.0, 0.05, 0.1, 0.3])),
            min_rows=int(rng.integers(2, 300)),
        )
        config = DetectorConfig(error=kind, mean_shift=params)
        result = update(config, None, error_stream(y, p, kind), baseline, p if case % 2 else None)
        consistent_mean_shift(result)
        assert result.threshold >= params.critical
    no_baseline = update(DetectorConfig(), None, np.full(500, 0.2))
    consistent_mean_shift(no_baseline)
    assert not no_baseline.detected and "no baseline error for this model" in no_baseline.detail()


@pytest.mark.parametrize("method", ["page_hinkley", "adwin"])
def test_sequential_verdict_statistic_and_message_agree(method: str) -> None:
    rng = np.random.default_rng(5)
    draw = binormal(0.3)
    state: str | None = None
    seen = {True: 0, False: 0}
    for _ in range(120):
        y, p = draw(rng, int(rng.integers(50, 6000)))
        y = np.where(rng.random(y.size) < rng.choice([0.0, 0.0, 0.1, 0.3]), 1.0 - y, y)
        result = update(DetectorConfig(method=method), state, error_stream(y, p))  # type: ignore[arg-type]
        state = result.state_json
        text = result.detail()
        seen[result.detected] += 1
        assert ("ALARM" in text) == result.detected, text
        if math.isnan(result.statistic):
            assert not result.detected and "too short" in text, text
            continue
        assert result.detected == (result.statistic > result.threshold), text
        digits = 2 if method == "page_hinkley" else 4
        shown = f"{result.statistic:.{digits}f} {'>' if result.detected else '<='} {result.threshold:.{digits}f}"
        assert shown in text.replace("threshold ", "").replace("Bernstein bound ", ""), text
    assert seen[True] and seen[False]
