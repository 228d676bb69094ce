"""The label-free comparison holds what it claims: with two equally good models the paired test finds a drop in
at most alpha of batches (+ Monte-Carlo error), a clearly worse candidate is found in most batches, on two
data-generating processes; disagreement is the plain share of changed decisions."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from tasks.performance.fitted import FittedCBPE, IsotonicMap
from tasks.performance.label_free import compare_label_free

ALPHA = 0.05
REPLICATES = 160
REFERENCE_ROWS = 10_000


def _normal(rng: np.random.Generator, size: int) -> np.ndarray:
    return rng.normal(0.0, 1.0, size)


def _heavy(rng: np.random.Generator, size: int) -> np.ndarray:
    return rng.standard_t(3, size) / math.sqrt(3.0)  # Student-t(3), unit variance


Process = Callable[[np.random.Generator, int], np.ndarray]


def _draw(rng: np.random.Generator, rows: int, noise: Process, noise_sd: tuple[float, float]) -> tuple[np.ndarray, ...]:
    """Latent risk z, labels from it, and two models that see z through their own noise (raw, uncalibrated)."""
    z = rng.normal(0.0, 1.5, rows) - 1.0
    y = (rng.random(rows) < 1.0 / (1.0 + np.exp(-z))).astype(float)
    scores = [1.0 / (1.0 + np.exp(-(0.6 * (z + sd * noise(rng, rows))))) for sd in noise_sd]  # under-confident
    return y, scores[0], scores[1]


def _fitted(y: np.ndarray, scores: np.ndarray) -> FittedCBPE:
    """A CBPE whose calibrator is sklearn's isotonic fit on a labelled reference (as NannyML fits it), with the
    sampling spread of the AUC measured on the reference's chunks (as NannyML measures it)."""
    from sklearn.isotonic import IsotonicRegression
    from sklearn.metrics import roc_auc_score

    iso = IsotonicRegression(out_of_bounds="clip", increasing=True).fit(scores, y)
    chunk = 1000
    spread = np.std([roc_auc_score(y[i : i + chunk], scores[i : i + chunk]) for i in range(0, y.size, chunk)])
    return FittedCBPE(
        metric="roc_auc",
        reference_value=0.8,
        reference_rows=y.size,
        chunk_size=1000,
        lower_threshold=None,
        upper_threshold=None,
        calibrator=IsotonicMap(
            tuple(map(float, iso.X_thresholds_)),
            tuple(map(float, iso.y_thresholds_)),
            float(iso.X_min_),
            float(iso.X_max_),
        ),
        sampling_std=float(spread * math.sqrt(chunk)),
        sampling_fraction=1.0,
    )


def _rejection_rate(noise: Process, noise_sd: tuple[float, float], rows: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    found = 0
    for replicate in range(REPLICATES):
        # Each version's reference is its own holdout: drawn anew, so the claim covers the calibrators' error too.
        y_new, new_ref, _ = _draw(rng, REFERENCE_ROWS, noise, noise_sd)
        y_old, _, old_ref = _draw(rng, REFERENCE_ROWS, noise, noise_sd)
        new_cbpe, old_cbpe = _fitted(y_new, new_ref), _fitted(y_old, old_ref)
        _y, new, old = _draw(rng, rows, noise, noise_sd)
        result = compare_label_free(new_cbpe, old_cbpe, new, old, threshold=0.5, alpha=ALPHA, seed=replicate)
        found += result.p_drop is not None and result.p_drop < ALPHA
    return found / REPLICATES


@pytest.mark.slow  # ~30 s each: 160 batches, each with two references fitted and 200 paired resamples
@pytest.mark.parametrize("noise", [_normal, _heavy], ids=["normal", "student-t3"])
def test_two_equally_good_models_are_found_apart_in_at_most_alpha_of_batches(noise: Process) -> None:
    rate = _rejection_rate(noise, (0.8, 0.8), rows=2_000, seed=11)
    mc = math.sqrt(ALPHA * (1 - ALPHA) / REPLICATES)
    assert rate <= ALPHA + 3 * mc, rate


@pytest.mark.slow
@pytest.mark.parametrize("noise", [_normal, _heavy], ids=["normal", "student-t3"])
def test_a_clearly_worse_candidate_is_found_in_most_batches(noise: Process) -> None:
    rate = _rejection_rate(noise, (1.6, 0.8), rows=2_000, seed=12)  # the candidate sees the risk through more noise
    assert rate >= 0.8, rate


def test_disagreement_is_the_share_of_changed_decisions_and_identical_models_show_no_drop() -> None:
    rng = np.random.default_rng(3)
    y, new, old = _draw(rng, 5_000, _normal, (0.8, 0.8))
    cbpe = _fitted(y, new)
    same = compare_label_free(cbpe, cbpe, new, new, threshold=0.3)
    assert same.drop == 0.0 and same.disagreement == 0.0
    assert same.p_drop is not None and same.p_drop > 0.3  # only the calibrators' error: no evidence of a drop
    other = compare_label_free(cbpe, _fitted(y, old), new, old, threshold=0.3)
    assert other.disagreement == pytest.approx(np.mean((new >= 0.3) != (old >= 0.3)))
    assert other.ci_low is not None and other.ci_high is not None and other.ci_low <= other.drop <= other.ci_high
    assert "decisions differ on" in other.describe()
    nan_rows = new.copy()
    nan_rows[:10] = np.nan
    assert compare_label_free(cbpe, cbpe, nan_rows, new, threshold=0.3).rows == 4_990
    tiny = compare_label_free(cbpe, cbpe, new[:5], old[:5], threshold=0.3)
    assert tiny.drop is None and tiny.p_drop is None
