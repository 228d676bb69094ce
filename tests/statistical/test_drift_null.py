"""False alerts of the numeric drift methods on stationary streams, with a reference as small as the chunk.

Each stream fits a reference of N values, calibrates every numeric method at the chunk size (as the fit
does) and profiles chunks of the same size drawn from the same distribution: every alert is false. The
streams are the ones that broke the old multinomial null (issue 16): heavy tails (Student-t, 3 dof), a
zero-inflated lognormal (60 % zeros) and tied integers (Poisson). Each reference is judged on several
chunks (clustered trials), so the bound is nominal + 3 Monte-Carlo standard errors of the cluster means.

Measured at N = 2,000, 100 references x 6 chunks (600 trials), nominal 0.01 (print the table with
    uv run --frozen pytest tests/statistical/test_drift_null.py -m slow -s -q):

    stream          null        KS     Wasserstein  JS     Hellinger  PSI
    t3              multinomial 0.008  0.013        0.068  0.092      0.007
                    resampled   0.007  0.012        0.010  0.015      0.007
    zero-inflated   multinomial 0.010  0.020        0.070  0.092      0.013
                    resampled   0.008  0.018        0.012  0.013      0.010
    Poisson(3)      multinomial 0.008  0.005        0.008  0.010      0.010
                    resampled   0.007  0.003        0.008  0.008      0.010

("multinomial": the bridge and multinomial nulls alone, as before tasks/drift/null.py.)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import polars as pl
import pytest

from tasks.drift.null import BridgeNulls
from tasks.drift.profiling import numeric_drift
from tasks.drift.reference import _numeric_reference, attach_nulls, calibrate_column

QUANTILE = 0.99
REPLICATES = 2_000
SIZE = 2_000
REFERENCES = 100
CHUNKS = 6
METHODS = ("ks", "wasserstein", "jensen_shannon", "hellinger", "psi")


def _t3(rng: np.random.Generator, size: int) -> np.ndarray:
    return rng.standard_t(3, size)


def _zero_inflated(rng: np.random.Generator, size: int) -> np.ndarray:
    return np.where(rng.random(size) < 0.6, 0.0, rng.lognormal(0.0, 1.0, size))


def _poisson(rng: np.random.Generator, size: int) -> np.ndarray:
    return rng.poisson(3.0, size).astype(np.float64)


STREAMS: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "t3": _t3,
    "zero_inflated": _zero_inflated,
    "poisson": _poisson,
}


def false_alert_rates(draw: Callable[[np.random.Generator, int], np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """Per reference, the share of its CHUNKS stationary chunks on which each method alerts."""
    rng = np.random.default_rng(seed)
    bridges = BridgeNulls(QUANTILE, REPLICATES)
    rates = {method: np.zeros(REFERENCES) for method in METHODS}
    for r in range(REFERENCES):
        # Each reference gets its own name: calibration is seeded by it, as different columns are.
        # As the fit does it: the bridge and the resampled null at the chunk size.
        ref = attach_nulls(_numeric_reference(pl.Series(draw(rng, SIZE)), f"x{r}", "numeric"), bridges, SIZE)
        thresholds = calibrate_column(ref, SIZE, QUANTILE, REPLICATES)
        for _ in range(CHUNKS):
            drift = numeric_drift(ref, np.sort(draw(rng, SIZE)))
            for method in METHODS:
                rates[method][r] += (drift[method][0] > thresholds[method]) / CHUNKS
    return rates


@pytest.mark.slow
@pytest.mark.parametrize("stream", sorted(STREAMS))
def test_stationary_false_alert_rate_within_nominal(stream: str) -> None:
    rates = false_alert_rates(STREAMS[stream], seed=16_002 + sorted(STREAMS).index(stream))
    nominal = 1.0 - QUANTILE
    trials = REFERENCES * CHUNKS
    binomial_error = math.sqrt(nominal * (1.0 - nominal) / trials)
    failures = []
    for method, per_reference in rates.items():
        rate = float(per_reference.mean())
        # Chunks of one reference share its thresholds: the error is that of the reference means, at least
        # the binomial one.
        error = max(float(per_reference.std(ddof=1)) / math.sqrt(REFERENCES), binomial_error)
        print(f"{stream:14s} {method:15s} false alerts {rate:.3f} (bound {nominal + 3 * error:.3f})")
        if rate > nominal + 3.0 * error:
            failures.append(f"{method} {rate:.3f} > {nominal + 3 * error:.3f}")
    assert not failures, f"{stream}: {failures}"
