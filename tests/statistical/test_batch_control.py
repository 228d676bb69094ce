"""What the batch-level control of drift alerts claims (tasks/drift/batch_control.py), on seeded simulations.

* A stationary batch gives *any* drift evidence (a surviving feature or joint PCA drift) on at most
  ``profiling.batch_alpha`` (5 %) of batches, bound: level + 3 Monte-Carlo standard errors, at 25 features and
  1k-row batches against a 5k-row reference, on two data-generating processes: correlated normals (one
  common factor, so the tests are dependent), and a mix of heavy-tailed (t3), zero-inflated lognormal,
  Poisson counts, a categorical with a rare category, and booleans. Uncorrected, the same batches alert on
  about 1 - 0.99^26 of batches (reported, and checked to be well above the level).
* Power: a 0.25 sd mean shift in one numeric feature among 25, or a 10-point share shift in one categorical,
  is still flagged in at least 90 % of 1k-row batches.
* Holm's procedure itself: step-down order, stops at the first acceptance, and ignores missing p-values.

The default tier runs 250 batches per process; the slow tier 1,500 and prints the table:
    uv run --frozen pytest tests/statistical/test_batch_control.py -m slow -s -q
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
import polars as pl
import pytest

from devkit import processes
from tasks.core.settings import ProfilingSettings
from tasks.data.contract import ModelContract, infer_contract, validate_batch
from tasks.drift.batch_control import holm
from tasks.drift.profiling import profile_batch
from tasks.drift.reference import ReferenceProfile, fit_reference_profile

FEATURES = 25
REFERENCE_ROWS = 5_000
BATCH_ROWS = 1_000
SETTINGS = ProfilingSettings(chunk_size=BATCH_ROWS)
LEVEL = SETTINGS.batch_alpha
Draw = Callable[[np.random.Generator, int], dict[str, np.ndarray]]


def correlated_normal(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """25 standard normals sharing one factor (pairwise correlation 0.5)."""
    factor = rng.standard_normal(n)
    return {f"x{j}": math.sqrt(0.5) * factor + math.sqrt(0.5) * rng.standard_normal(n) for j in range(FEATURES)}


def mixed(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """25 features cycling through t3, zero-inflated lognormal, Poisson, a categorical with a 1 % category, boolean."""
    return processes.mixed(rng, n, FEATURES)


PROCESSES: dict[str, Draw] = {"correlated normal": correlated_normal, "mixed": mixed}


def frame(draw: Draw, rng: np.random.Generator, n: int) -> pl.DataFrame:
    return pl.DataFrame({"id": np.arange(n), **draw(rng, n), "y": (rng.random(n) < 0.3).astype(np.int8)})


@functools.cache
def fitted(process: str) -> tuple[ModelContract, ReferenceProfile]:
    reference = frame(PROCESSES[process], np.random.default_rng(2026), REFERENCE_ROWS)
    contract = infer_contract(reference, name="batch-control", target="y", entity_id="id")
    return contract, fit_reference_profile(reference, contract, SETTINGS)


def stationary_rates(process: str, batches: int, seed: int) -> tuple[float, float]:
    """(share of batches with any uncorrected alert, share with any drift evidence after the control)."""
    contract, profile = fitted(process)
    rng = np.random.default_rng(seed)
    stream = frame(PROCESSES[process], rng, batches * BATCH_ROWS)
    uncorrected = controlled = 0
    for index in range(batches):
        batch = validate_batch(stream.slice(index * BATCH_ROWS, BATCH_ROWS), contract, source="stationary")
        result = profile_batch(profile, batch, contract, SETTINGS)
        joint = result.multivariate_drift
        uncorrected += bool(result.alerting_features or (joint is not None and joint.alert))
        controlled += bool(result.drifted_features or (joint is not None and joint.drifts))
    return uncorrected / batches, controlled / batches


def _check_rates(process: str, batches: int, seed: int) -> None:
    uncorrected, controlled = stationary_rates(process, batches, seed)
    error = math.sqrt(LEVEL * (1 - LEVEL) / batches)
    print(
        f"\n{process}: {FEATURES} features, {batches} stationary {BATCH_ROWS}-row batches: any alert uncorrected "
        f"{uncorrected:.3f}, after Holm at {LEVEL} {controlled:.3f} (MC s.e. at the level {error:.4f})"
    )
    assert controlled <= LEVEL + 3 * error
    assert uncorrected > 2 * LEVEL  # the problem the control solves is visible on the same batches


@pytest.mark.parametrize("process", list(PROCESSES))
def test_stationary_batches_give_drift_evidence_at_most_at_the_level(process: str) -> None:
    _check_rates(process, batches=250, seed=11)


@pytest.mark.slow
@pytest.mark.parametrize("process", list(PROCESSES))
def test_stationary_batch_level_rate_over_many_batches(process: str) -> None:
    _check_rates(process, batches=1_500, seed=12)


@pytest.mark.parametrize(("process", "feature", "shift"), [("correlated normal", "x0", 0.25), ("mixed", "x3", 0.10)])
def test_one_clear_shift_among_25_features_is_still_flagged(process: str, feature: str, shift: float) -> None:
    contract, profile = fitted(process)
    rng = np.random.default_rng(5)
    batches, flagged, alone = 40, 0, 0
    for _ in range(batches):
        data = frame(PROCESSES[process], rng, BATCH_ROWS)
        column = data.get_column(feature)
        if column.dtype == pl.String:
            # Move a share of `shift` of the rows from the other categories to "a".
            moved = pl.Series(rng.random(BATCH_ROWS) < shift / 0.6)
            column = pl.select(pl.when(moved).then(pl.lit("a")).otherwise(column)).to_series()
        else:
            column = column + shift
        batch = validate_batch(data.with_columns(column.alias(feature)), contract, source="shifted")
        result = profile_batch(profile, batch, contract, SETTINGS)
        flagged += feature in result.drifted_features
        alone += feature in result.alerting_features
    print(f"\n{process}: shift of {shift} in {feature}: flagged {flagged}/{batches} (uncorrected {alone}/{batches})")
    assert flagged >= 0.9 * batches


def test_holm_steps_down_and_stops_at_the_first_acceptance() -> None:
    # m = 4: thresholds 0.0125, 0.0167, 0.025, 0.05 for the sorted p-values.
    assert holm([0.01, 0.04, 0.015, 0.02], 0.05) == [True, True, True, True]
    assert holm([0.01, 0.04, 0.02, 0.03], 0.05) == [True, False, False, False]
    assert holm([0.2, 0.001, float("nan"), None], 0.05) == [False, True, False, False]  # type: ignore[list-item]
    assert holm([], 0.05) == []


def test_control_off_keeps_every_per_feature_alert() -> None:
    contract, profile = fitted("correlated normal")
    settings = SETTINGS.model_copy(update={"batch_correction": "none"})
    data = frame(correlated_normal, np.random.default_rng(9), BATCH_ROWS)
    batch = validate_batch(data.with_columns(pl.col("x1") + 0.12), contract, source="small shift")
    off = profile_batch(profile, batch, contract, settings)
    on = profile_batch(profile, batch, contract, SETTINGS)
    assert off.drifted_features == off.alerting_features == on.alerting_features
    assert set(on.drifted_features) <= set(on.alerting_features)
    assert on.batch_control == "holm" and off.batch_control == "none"
    primary = [d for d in on.drift if d.primary and d.feature in contract.feature_names]
    assert all(d.batch_alert is not None and d.p_value is not None for d in primary)
