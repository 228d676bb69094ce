"""Data-generating processes shared by the calibration benchmarks and the statistical tests: one home, so a
benchmark's table and the test that pins it measure the same thing.

Each draw takes a seeded ``numpy`` generator and a row count. Shifts are stated in the units a reviewer
reads: a numeric mean shift in standard deviations, a categorical shift in points of share.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Column = Callable[[np.random.Generator, int], np.ndarray]

LONG_TAIL_LEVELS = 100
LONG_TAIL_EXPONENT = 1.2  # Zipf-like: the top level holds ~27 %, the 100th ~0.1 %
TAIL_RANK = 30  # the tail shift moves the 30th level (~0.5 %)
RARE_SHARES = (0.4, 0.3, 0.2, 0.09, 0.01)  # a 5-level categorical with a 1 % level


def long_tailed_shares(levels: int = LONG_TAIL_LEVELS, exponent: float = LONG_TAIL_EXPONENT) -> np.ndarray:
    """Shares of a long-tailed categorical: proportional to rank^-exponent, largest first."""
    weights = np.arange(1, levels + 1, dtype=np.float64) ** -exponent
    return weights / weights.sum()


def shifted_shares(shares: np.ndarray, rank: int, points: float) -> np.ndarray:
    """``shares`` with the level at 0-based ``rank`` raised by ``points`` (0.02 = two points), the others scaled
    down in proportion so the shares still sum to one."""
    out = np.asarray(shares, dtype=np.float64) * (1.0 - shares[rank] - points) / (1.0 - shares[rank])
    out[rank] = shares[rank] + points
    return out / out.sum()  # exact to rounding: numpy's multinomial rejects shares summing above one


def head_shift(points: float = 0.02) -> np.ndarray:
    """The long-tailed categorical with its top level ``points`` larger."""
    return shifted_shares(long_tailed_shares(), 0, points)


def tail_shift(points: float = 0.01) -> np.ndarray:
    """The long-tailed categorical with its ``TAIL_RANK``-th level ``points`` larger (0.5 % -> 1.5 %)."""
    return shifted_shares(long_tailed_shares(), TAIL_RANK - 1, points)


def categorical(shares: np.ndarray | tuple[float, ...], labels: np.ndarray | None = None) -> Column:
    """A categorical column drawn with these shares; labels "c000", "c001", ... unless given."""
    shares = np.asarray(shares, dtype=np.float64)
    names = labels if labels is not None else np.array([f"c{i:03d}" for i in range(shares.size)])

    def draw(rng: np.random.Generator, n: int) -> np.ndarray:
        return np.asarray(names[rng.choice(shares.size, n, p=shares / shares.sum())])

    return draw


def long_tailed(rng: np.random.Generator, n: int) -> np.ndarray:
    return categorical(long_tailed_shares())(rng, n)


def rare_level(rng: np.random.Generator, n: int) -> np.ndarray:
    """Five levels, one of them at 1 %."""
    return rng.choice(np.array(["a", "b", "c", "d", "rare"]), n, p=list(RARE_SHARES))


def normal(rng: np.random.Generator, n: int, shift: float = 0.0) -> np.ndarray:
    return rng.standard_normal(n) + shift


def t3(rng: np.random.Generator, n: int, shift: float = 0.0) -> np.ndarray:
    """Student t with 3 degrees of freedom (heavy tails; sd sqrt 3), shifted by ``shift`` of its sd."""
    return rng.standard_t(3, n) + shift * np.sqrt(3.0)


def zero_inflated(rng: np.random.Generator, n: int) -> np.ndarray:
    """60 % zeros, the rest lognormal(0, 1)."""
    return np.where(rng.random(n) < 0.6, 0.0, rng.lognormal(0.0, 1.0, n))


def poisson(rng: np.random.Generator, n: int) -> np.ndarray:
    """Integer counts, Poisson(2), as floats."""
    return rng.poisson(2.0, n).astype(np.float64)


def boolean(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.random(n) < 0.3


NUMERIC: dict[str, Column] = {"t3": t3, "zero_inflated": zero_inflated, "poisson": poisson}
CATEGORICAL: dict[str, Column] = {"long_tailed": long_tailed}


def mixed(rng: np.random.Generator, n: int, k: int) -> dict[str, np.ndarray]:
    """``k`` features cycling through t3, zero-inflated lognormal, Poisson counts, a 5-level categorical with a 1 %
    level, and booleans: the mixed process of the batch-level false-alert checks."""
    cycle: tuple[Column, ...] = (t3, zero_inflated, poisson, rare_level, boolean)
    return {f"x{j}": cycle[j % len(cycle)](rng, n) for j in range(k)}
