"""The sequential concept-drift detectors: Page-Hinkley and ADWIN, fed the error stream row by row.

Page-Hinkley (Page 1954; Hinkley 1971) here works on the stream standardised by its own running mean and
standard deviation, so ``delta`` (tolerated drift per row) and ``threshold`` (lambda) are in units of the
stream's standard deviation and the same defaults fit a model with a 5 % or a 30 % error rate. After an
alarm the detector restarts, so it learns the new regime and can flag the next change. Its false-alarm
rate is per row, so per batch it grows with the batch size, and its mean starts on the stream itself, not
on the model's known error: keep it for small batches and within-batch change points.

ADWIN (Bifet & Gavalda 2007) keeps a window of recent rows, compressed into fixed-size buckets (count,
sum, sum of squares), and cuts the window where an older and a newer part differ by more than a Bernstein
bound at confidence ``delta``; an alarm is raised only when the newer part is worse.

Both carry their state between batches (it round-trips through JSON in :mod:`tasks.drift.concept`) and
need no baseline, which is the seam: unlike the default mean-shift test they never see the model's
reference error, so they live apart from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tasks.core.errors import ConfigError
from tasks.drift.error_moments import finite_stream

if TYPE_CHECKING:
    import numpy as np


# --- Page-Hinkley ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PageHinkleyParams:
    delta: float = 0.03  # tolerated increase per row, in standard deviations of the stream
    threshold: float = 120.0  # lambda, in standard deviations
    min_rows: int = 300  # rows needed to estimate the stream's mean and spread before testing

    def __post_init__(self) -> None:
        if self.delta < 0 or self.threshold <= 0 or self.min_rows < 2:
            raise ConfigError(
                f"Page-Hinkley needs delta >= 0, threshold > 0 and min_rows >= 2 (policy.concept_drift), got {self}"
            )


@dataclass(frozen=True)
class PageHinkleyState:
    rows: int = 0  # rows since the last (re)start
    total: float = 0.0  # sum of the stream since the last (re)start
    total_squares: float = 0.0
    cumulative: float = 0.0  # m_t: sum of standardised deviations minus delta
    minimum: float = 0.0  # M_t = min over s <= t of m_s
    alarms: int = 0
    rows_seen: int = 0  # rows ever fed, alarms or not

    @property
    def statistic(self) -> float:
        return self.cumulative - self.minimum


def page_hinkley_run(
    state: PageHinkleyState, values: np.ndarray, params: PageHinkleyParams
) -> tuple[PageHinkleyState, list[int], list[float]]:
    """Feed values; the new state, the alarm positions and the statistic m_t - M_t at each alarm."""
    import numpy as np

    x = finite_stream(values)
    alarms: list[int] = []
    at_alarm: list[float] = []
    offset = 0
    while offset < x.size:
        segment = x[offset:]
        counts = state.rows + np.arange(1, segment.size + 1, dtype=np.float64)
        sums = state.total + np.cumsum(segment)
        squares = state.total_squares + np.cumsum(segment**2)
        means = sums / counts
        with np.errstate(invalid="ignore", divide="ignore"):
            variances = np.maximum(squares - sums**2 / counts, 0.0) / np.maximum(counts - 1.0, 1.0)
            spread = np.sqrt(variances)
            # A constant stream has no spread to standardise by; it cannot drift either.
            steps = np.where((counts >= params.min_rows) & (spread > 0), (segment - means) / spread - params.delta, 0.0)
        cumulative = state.cumulative + np.cumsum(steps)
        minimum = np.minimum(state.minimum, np.minimum.accumulate(cumulative))
        hits = np.flatnonzero(cumulative - minimum > params.threshold)
        if hits.size == 0:
            state = PageHinkleyState(
                rows=state.rows + segment.size,
                total=float(sums[-1]),
                total_squares=float(squares[-1]),
                cumulative=float(cumulative[-1]),
                minimum=float(minimum[-1]),
                alarms=state.alarms,
                rows_seen=state.rows_seen + segment.size,
            )
            break
        first = int(hits[0])
        alarms.append(offset + first)
        at_alarm.append(float(cumulative[first] - minimum[first]))
        # Restart after the alarm: the new regime becomes the baseline for the next change.
        state = PageHinkleyState(alarms=state.alarms + 1, rows_seen=state.rows_seen + first + 1)
        offset += first + 1
    return state, alarms, at_alarm


def page_hinkley_update(
    state: PageHinkleyState, values: np.ndarray, params: PageHinkleyParams
) -> tuple[PageHinkleyState, list[int]]:
    """Feed values; returns the new state and the positions (within ``values``) where an alarm fired."""
    new_state, alarms, _ = page_hinkley_run(state, values, params)
    return new_state, alarms


# --- ADWIN (bucketed) ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AdwinParams:
    delta: float = 0.002  # confidence of each cut test
    bucket_rows: int = 100  # rows per bucket: cut points fall between buckets
    max_buckets: int = 400  # window length cap (bucket_rows * max_buckets rows)
    min_side_buckets: int = 5  # each side of a cut holds at least this many buckets

    def __post_init__(self) -> None:
        if not 0 < self.delta < 1 or self.bucket_rows < 1 or self.max_buckets < 2 * self.min_side_buckets:
            raise ConfigError(
                "ADWIN needs 0 < delta < 1, bucket_rows >= 1 and max_buckets >= 2 * min_side_buckets "
                f"(policy.concept_drift), got {self}"
            )


@dataclass(frozen=True)
class AdwinState:
    counts: tuple[int, ...] = ()
    sums: tuple[float, ...] = ()
    squares: tuple[float, ...] = ()
    pending_rows: int = 0
    pending_sum: float = 0.0
    pending_squares: float = 0.0
    alarms: int = 0
    rows_seen: int = 0
    last_gap: float = 0.0  # newest mean minus oldest mean at the most significant cut, last test
    last_bound: float = 0.0  # the Bernstein bound it was compared with


def adwin_cut(
    counts: np.ndarray, sums: np.ndarray, squares: np.ndarray, params: AdwinParams
) -> tuple[int | None, bool, float, float] | None:
    """Oldest-side bucket index to cut after (None: no cut), whether the newer side is worse, gap, bound.

    None when the window is too short to hold a cut.
    """
    import numpy as np

    n_buckets = counts.size
    if n_buckets < 2 * params.min_side_buckets:
        return None
    n = float(counts.sum())
    mean = float(sums.sum()) / n
    variance = max(float(squares.sum()) / n - mean**2, 0.0)
    cuts = np.arange(params.min_side_buckets, n_buckets - params.min_side_buckets + 1)
    n0 = np.cumsum(counts)[cuts - 1].astype(np.float64)
    s0 = np.cumsum(sums)[cuts - 1]
    n1 = n - n0
    gap = (float(sums.sum()) - s0) / n1 - s0 / n0
    harmonic = 1.0 / (1.0 / n0 + 1.0 / n1)
    log_term = math.log(2.0 * math.log(max(n, math.e)) / params.delta)
    bound = np.sqrt(2.0 / harmonic * variance * log_term) + 2.0 / (3.0 * harmonic) * log_term
    excess = np.abs(gap) - bound
    best = int(np.argmax(gap / np.maximum(bound, 1e-12)))
    violating = np.flatnonzero(excess > 0)
    if violating.size == 0:
        return None, False, float(gap[best]), float(bound[best])
    # Drop everything before the newest violating cut, as ADWIN shrinks until no cut remains.
    cut = int(violating[-1])
    return int(cuts[cut]), bool(gap[cut] > 0), float(gap[cut]), float(bound[cut])


def adwin_run(
    state: AdwinState, values: np.ndarray, params: AdwinParams
) -> tuple[AdwinState, list[int], list[tuple[float, float]], int]:
    """Feed values; the new state, alarm positions, (gap, bound) at each alarm, and how many cut tests ran."""
    import numpy as np

    x = finite_stream(values)
    counts = np.asarray(state.counts, dtype=np.int64)
    sums = np.asarray(state.sums, dtype=np.float64)
    squares = np.asarray(state.squares, dtype=np.float64)
    pending_rows, pending_sum, pending_squares = state.pending_rows, state.pending_sum, state.pending_squares
    alarms: list[int] = []
    at_alarm: list[tuple[float, float]] = []
    tests = 0
    total_alarms, gap, bound = state.alarms, state.last_gap, state.last_bound
    position = 0
    while position < x.size:
        take = min(params.bucket_rows - pending_rows, x.size - position)
        chunk = x[position : position + take]
        pending_rows += take
        pending_sum += float(chunk.sum())
        pending_squares += float((chunk**2).sum())
        position += take
        if pending_rows < params.bucket_rows:
            break
        counts = np.append(counts, pending_rows)
        sums = np.append(sums, pending_sum)
        squares = np.append(squares, pending_squares)
        pending_rows, pending_sum, pending_squares = 0, 0.0, 0.0
        if counts.size > params.max_buckets:
            counts, sums, squares = (
                counts[-params.max_buckets :],
                sums[-params.max_buckets :],
                squares[-params.max_buckets :],
            )
        found = adwin_cut(counts, sums, squares, params)
        if found is None:
            continue
        tests += 1
        cut, worse, gap, bound = found
        if cut is not None:
            counts, sums, squares = counts[cut:], sums[cut:], squares[cut:]
            if worse:
                alarms.append(position - 1)
                at_alarm.append((gap, bound))
                total_alarms += 1
    new_state = AdwinState(
        counts=tuple(int(c) for c in counts),
        sums=tuple(float(s) for s in sums),
        squares=tuple(float(s) for s in squares),
        pending_rows=pending_rows,
        pending_sum=pending_sum,
        pending_squares=pending_squares,
        alarms=total_alarms,
        rows_seen=state.rows_seen + x.size,
        last_gap=gap,
        last_bound=bound,
    )
    return new_state, alarms, at_alarm, tests


def adwin_update(state: AdwinState, values: np.ndarray, params: AdwinParams) -> tuple[AdwinState, list[int]]:
    """Feed values; returns the new state and the positions (within ``values``) where an alarm fired."""
    new_state, alarms, _, _ = adwin_run(state, values, params)
    return new_state, alarms
