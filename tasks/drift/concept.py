"""Concept-drift detectors on the model's error stream, once labels arrive: Page-Hinkley and ADWIN.

Both watch a per-row loss (Brier score by default) for an *increase* in its mean, i.e. the model getting
worse on the rows it scored, which label-free estimates such as CBPE cannot see when P(y | x) changes.
They are pure numpy, fed one labelled batch at a time, and keep a small state that round-trips through
JSON so it can live in the audit store between batches (and between processes).

Page-Hinkley (Page 1954; Hinkley 1971) here works on the stream standardised by its own running mean and
standard deviation, so ``delta`` (tolerated drift per row) and ``threshold`` (lambda) are in units of the
stream's standard deviation and the same defaults fit a model with a 5 % or a 30 % error rate. After an
alarm the detector restarts, so it learns the new regime and can flag the next change.

ADWIN (Bifet & Gavalda 2007) keeps a window of recent rows, compressed into fixed-size buckets (count,
sum, sum of squares), and cuts the window where an older and a newer part differ by more than a Bernstein
bound at confidence ``delta``; an alarm is raised only when the newer part is worse.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from tasks.core.errors import ConfigError, DataError

if TYPE_CHECKING:
    import numpy as np

    from tasks.core.settings import ConceptDriftSettings

DetectorMethod = Literal["page_hinkley", "adwin"]
ErrorKind = Literal["brier", "zero_one", "log_loss"]
_STATE_VERSION = 1


# --- the error stream ------------------------------------------------------------------------------------
def error_stream(y_true: np.ndarray, probability: np.ndarray, kind: ErrorKind = "brier") -> np.ndarray:
    """Per-row loss of a binary classifier: Brier score, 0/1 error at 0.5, or log loss (clipped at 1e-6)."""
    import numpy as np

    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(probability, dtype=np.float64)
    if y.shape != p.shape:
        raise DataError(f"labels ({y.shape[0]} rows) and probabilities ({p.shape[0]} rows) differ in length")
    if kind == "brier":
        return np.asarray((p - y) ** 2)
    if kind == "zero_one":
        return np.asarray(((p >= 0.5).astype(np.float64) != y).astype(np.float64))
    if kind == "log_loss":
        clipped = np.clip(p, 1e-6, 1 - 1e-6)
        return np.asarray(-(y * np.log(clipped) + (1 - y) * np.log(1 - clipped)))
    raise ConfigError(f"unknown error kind {kind!r}; choose brier, zero_one or log_loss")


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


def page_hinkley_update(
    state: PageHinkleyState, values: np.ndarray, params: PageHinkleyParams
) -> tuple[PageHinkleyState, list[int]]:
    """Feed values; returns the new state and the positions (within ``values``) where an alarm fired."""
    import numpy as np

    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or not np.all(np.isfinite(x)):
        raise DataError("the error stream must be a one-dimensional array of finite values")
    alarms: list[int] = []
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
        # Restart after the alarm: the new regime becomes the baseline for the next change.
        state = PageHinkleyState(alarms=state.alarms + 1, rows_seen=state.rows_seen + first + 1)
        offset += first + 1
    return state, alarms


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


def _adwin_cut(
    counts: np.ndarray, sums: np.ndarray, squares: np.ndarray, params: AdwinParams
) -> tuple[int | None, bool, float, float]:
    """Oldest-side bucket index to cut after (None: no cut), whether the newer side is worse, gap, bound."""
    import numpy as np

    n_buckets = counts.size
    if n_buckets < 2 * params.min_side_buckets:
        return None, False, 0.0, 0.0
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


def adwin_update(state: AdwinState, values: np.ndarray, params: AdwinParams) -> tuple[AdwinState, list[int]]:
    """Feed values; returns the new state and the positions (within ``values``) where an alarm fired."""
    import numpy as np

    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or not np.all(np.isfinite(x)):
        raise DataError("the error stream must be a one-dimensional array of finite values")
    counts = np.asarray(state.counts, dtype=np.int64)
    sums = np.asarray(state.sums, dtype=np.float64)
    squares = np.asarray(state.squares, dtype=np.float64)
    pending_rows, pending_sum, pending_squares = state.pending_rows, state.pending_sum, state.pending_squares
    alarms: list[int] = []
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
        cut, worse, gap, bound = _adwin_cut(counts, sums, squares, params)
        if cut is not None:
            counts, sums, squares = counts[cut:], sums[cut:], squares[cut:]
            if worse:
                alarms.append(position - 1)
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
    return new_state, alarms


# --- one interface for the monitor -------------------------------------------------------------------------
@dataclass(frozen=True)
class DetectorConfig:
    method: DetectorMethod = "page_hinkley"
    error: ErrorKind = "brier"
    page_hinkley: PageHinkleyParams = field(default_factory=PageHinkleyParams)
    adwin: AdwinParams = field(default_factory=AdwinParams)


@dataclass(frozen=True)
class DetectorResult:
    """What one batch of labelled rows did to the detector."""

    method: str
    detected: bool
    alarm_rows: tuple[int, ...]  # positions within the batch's error stream where alarms fired
    statistic: float  # Page-Hinkley: m_t - M_t; ADWIN: newer minus older mean at the strongest cut
    threshold: float  # Page-Hinkley: lambda; ADWIN: the Bernstein bound of that cut
    rows: int
    mean_error: float
    state_json: str  # serialised detector state, to be stored and fed back with the next batch

    def detail(self) -> str:
        verdict = f"alarm at row(s) {list(self.alarm_rows)}" if self.detected else "no alarm"
        return (
            f"{self.method} on {self.rows} labelled rows (mean error {self.mean_error:.4f}): {verdict}; "
            f"statistic {self.statistic:.3f} vs threshold {self.threshold:.3f}"
        )


def config_from_settings(settings: ConceptDriftSettings) -> DetectorConfig:
    return DetectorConfig(
        method=settings.method if settings.method != "off" else "page_hinkley",
        error=settings.error,
        page_hinkley=PageHinkleyParams(
            delta=settings.ph_delta, threshold=settings.ph_threshold, min_rows=settings.ph_min_rows
        ),
        adwin=AdwinParams(
            delta=settings.adwin_delta,
            bucket_rows=settings.adwin_bucket_rows,
            max_buckets=settings.adwin_max_buckets,
        ),
    )


def dump_state(state: PageHinkleyState | AdwinState) -> str:
    method = "page_hinkley" if isinstance(state, PageHinkleyState) else "adwin"
    return json.dumps({"version": _STATE_VERSION, "method": method, "state": asdict(state)}, sort_keys=True)


def load_state(text: str | None, method: DetectorMethod) -> PageHinkleyState | AdwinState:
    """Restore a stored state; a missing state, or one of another method, starts afresh."""
    fresh: PageHinkleyState | AdwinState = PageHinkleyState() if method == "page_hinkley" else AdwinState()
    if not text:
        return fresh
    try:
        data: dict[str, Any] = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"stored concept-drift state is not JSON: {exc}") from exc
    if data.get("method") != method or data.get("version") != _STATE_VERSION:
        return fresh
    raw = data.get("state") or {}
    try:
        if method == "page_hinkley":
            return PageHinkleyState(**raw)
        fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
        return AdwinState(**fields)
    except TypeError as exc:
        raise DataError(f"stored {method} state has unexpected fields: {exc}") from exc


def update(config: DetectorConfig, state_json: str | None, errors: np.ndarray) -> DetectorResult:
    """Feed one batch's error stream (rows in time order) to the configured detector."""
    import numpy as np

    values = np.asarray(errors, dtype=np.float64)
    state = load_state(state_json, config.method)
    if isinstance(state, PageHinkleyState):
        ph_state, alarms = page_hinkley_update(state, values, config.page_hinkley)
        statistic, threshold = ph_state.statistic, config.page_hinkley.threshold
        text = dump_state(ph_state)
    else:
        ad_state, alarms = adwin_update(state, values, config.adwin)
        statistic, threshold = ad_state.last_gap, ad_state.last_bound
        text = dump_state(ad_state)
    return DetectorResult(
        method=config.method,
        detected=bool(alarms),
        alarm_rows=tuple(alarms),
        statistic=float(statistic),
        threshold=float(threshold),
        rows=int(values.size),
        mean_error=float(values.mean()) if values.size else math.nan,
        state_json=text,
    )


def prefect_tasks() -> dict[str, Any]:
    """Thin Prefect task wrappers of this module's functions (imported lazily)."""
    from prefect import task

    return {"update_concept_drift": task(name="update-concept-drift")(update)}
