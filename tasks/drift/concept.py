"""Concept-drift detectors on the model's error stream, once labels arrive: a mean-shift test against the
model's baseline error (default), Page-Hinkley and ADWIN.

All three watch a per-row loss (Brier score by default) for an *increase* in its mean, i.e. the model getting
worse on the rows it scored, which label-free estimates such as CBPE cannot see when P(y | x) changes.
They are pure numpy and fed one labelled batch at a time; their state round-trips through JSON so it can
live in the audit store between batches (and between processes).

``mean_shift`` (default) compares each batch of newly labelled rows with the **baseline** error: the same
model's per-row loss on its own reference rows (the labelled holdout it was judged on), passed in by the
caller as an :class:`ErrorBaseline`. It is a one-sided Welch z test, z = (mean_b - mean_0) /
sqrt(var_b / n_b + var_0 / n_0), that alarms iff z reaches z_(1 - alpha) (raised for the skewness of the
losses, see :func:`mean_shift_test`) **and** the relative increase (mean_b - mean_0) / mean_0 reaches
``min_increase``, on a batch of at least ``min_rows`` rows. When the baseline was built with the reference's
probabilities and the batch's probabilities are passed too, mean_0 is the reference's error *at the batch's
scores* (the reference's mean error in each of up to 20 score strata, weighted by the batch's share of
them) and the variances are within strata: a batch of harder cases whose labels still follow the scores
(covariate shift, which CBPE already sees) is then no concept change. Under a stationary stream the
false-alarm rate per batch is at most ``alpha`` whatever the batch size (to the accuracy of the normal
approximation; the floor only lowers it), unlike a sequential detector run over all rows of a large batch,
which has more chances to cross with every row. Each batch is judged on its own, so the detector keeps no
statistical state (its JSON state only counts batches, alarms and rows); the baseline does not move, so a
degraded model keeps alarming until it is replaced. Without a baseline it reports "no baseline error for
this model" and does not alarm.

Page-Hinkley (Page 1954; Hinkley 1971) here works on the stream standardised by its own running mean and
standard deviation, so ``delta`` (tolerated drift per row) and ``threshold`` (lambda) are in units of the
stream's standard deviation and the same defaults fit a model with a 5 % or a 30 % error rate. After an
alarm the detector restarts, so it learns the new regime and can flag the next change. Its false-alarm
rate is per row, so per batch it grows with the batch size, and its mean starts on the stream itself, not
on the model's known error: keep it for small batches and within-batch change points.

ADWIN (Bifet & Gavalda 2007) keeps a window of recent rows, compressed into fixed-size buckets (count,
sum, sum of squares), and cuts the window where an older and a newer part differ by more than a Bernstein
bound at confidence ``delta``; an alarm is raised only when the newer part is worse.

Every :class:`DetectorResult` reports the statistic and threshold *of its verdict* (for Page-Hinkley and
ADWIN those at the first alarm of the batch, not after the restart), and its :meth:`DetectorResult.detail`
states what crossed what.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from statistics import NormalDist
from typing import TYPE_CHECKING, Any, Literal

from tasks.core.errors import ConfigError, DataError

if TYPE_CHECKING:
    import numpy as np

    from tasks.core.settings import ConceptDriftSettings

DetectorMethod = Literal["mean_shift", "page_hinkley", "adwin"]
ErrorKind = Literal["brier", "zero_one", "log_loss"]
ERROR_KINDS: tuple[ErrorKind, ...] = ("brier", "zero_one", "log_loss")
_ERROR_NAMES = {"brier": "Brier", "zero_one": "0/1 error", "log_loss": "log loss"}
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


def _finite_stream(values: np.ndarray, what: str = "the error stream") -> np.ndarray:
    import numpy as np

    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or not np.all(np.isfinite(x)):
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise DataError(
            f"{what} must be a one-dimensional array of finite values "
            f"(got {x.ndim} dimension(s), {bad} non-finite value(s))"
        )
    return x


# --- the model's baseline error ----------------------------------------------------------------------------
STRATA = 20  # score strata of the reference the baseline error is kept in, at most
MIN_STRATUM_ROWS = 100  # reference rows per stratum, at least (fewer strata for a small reference)


def _number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


@dataclass(frozen=True)
class ErrorMoments:
    """Rows, mean, sample variance (ddof=1) and skewness of per-row errors: one score stratum of a baseline."""

    rows: int
    mean: float
    variance: float
    skewness: float = 0.0

    def __post_init__(self) -> None:
        _check_moments("error baseline stratum", self.rows, self.mean, self.variance, self.skewness)
        for name in ("mean", "variance", "skewness"):
            object.__setattr__(self, name, float(getattr(self, name)))

    @property
    def third(self) -> float:
        """Third central moment."""
        return self.skewness * self.variance**1.5

    @classmethod
    def of(cls, values: np.ndarray) -> ErrorMoments:
        mean, variance = float(values.mean()), float(values.var(ddof=1))
        return cls(rows=int(values.size), mean=mean, variance=variance, skewness=_skewness(values, mean, variance))

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "mean": self.mean, "variance": self.variance, "skewness": self.skewness}


def _check_moments(what: str, rows: Any, mean: Any, variance: Any, skewness: Any) -> None:
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 2:
        raise DataError(f"{what} needs at least 2 labelled reference rows, got rows={rows!r}")
    for name, value in (("mean", mean), ("variance", variance)):
        if not _number(value) or value < 0:
            raise DataError(f"{what} {name} must be a finite number >= 0, got {value!r}")
    if not _number(skewness):
        raise DataError(f"{what} skewness must be a finite number, got {skewness!r}")


def _skewness(x: np.ndarray, mean: float, variance: float) -> float:
    """Standardised third moment of a sample (0 for a constant one)."""
    import numpy as np

    if not variance > 0:
        return 0.0
    centred = x - mean
    return float(np.dot(centred * centred, centred)) / x.size / variance**1.5


def _score_edges(probability: np.ndarray, strata: int, min_rows: int) -> tuple[float, ...]:
    """Cut points at quantiles of the scores, each stratum (p in [edge_(k-1), edge_k)) holding min_rows rows."""
    import numpy as np

    ordered = np.sort(probability)
    n = ordered.size
    edges: list[float] = []
    below_last = 0  # rows below the last accepted edge
    for j in range(1, strata):
        edge = float(ordered[min(n - 1, (j * n) // strata)])
        below = int(np.searchsorted(ordered, edge, side="left"))
        if below - below_last >= min_rows and n - below >= min_rows:
            edges.append(edge)
            below_last = below
    return tuple(edges)


@dataclass(frozen=True)
class ErrorBaseline:
    """The model's per-row error on its own labelled reference rows: what ``mean_shift`` compares against.

    ``variance`` is the sample variance (ddof=1) of the per-row errors and ``skewness`` their standardised
    third moment (per-row losses are right-skewed; the test corrects its critical value for it). ``edges``
    cut the reference's predicted probabilities into strata and ``strata`` hold the error's moments in each
    (empty: one overall mean), so a batch can be compared with the error the reference had *at the batch's
    own scores*: a batch of harder cases (covariate shift, which CBPE already sees) then does not read as
    a change of P(y | x). Store it with :meth:`to_dict` (plain JSON) and restore it with :meth:`from_dict`;
    build it with :meth:`from_scores` (stratified) or :meth:`from_errors`.
    """

    kind: ErrorKind
    rows: int
    mean: float
    variance: float
    skewness: float = 0.0
    edges: tuple[float, ...] = ()
    strata: tuple[ErrorMoments, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ERROR_KINDS:
            raise ConfigError(f"error baseline: unknown error kind {self.kind!r}; choose brier, zero_one or log_loss")
        _check_moments("error baseline", self.rows, self.mean, self.variance, self.skewness)
        if self.kind != "log_loss" and self.mean > 1:
            raise DataError(f"error baseline mean of {self.kind} errors must lie in [0, 1], got {self.mean!r}")
        for name in ("mean", "variance", "skewness"):
            object.__setattr__(self, name, float(getattr(self, name)))
        edges, strata = tuple(self.edges), tuple(self.strata)
        if not all(_number(e) for e in edges) or any(b <= a for a, b in pairwise(edges)):
            raise DataError(f"error baseline edges must be strictly increasing finite numbers, got {list(edges)}")
        if (strata or edges) and len(strata) != len(edges) + 1:
            raise DataError(
                f"error baseline has {len(edges)} edge(s), so it needs {len(edges) + 1} strata, got {len(strata)}"
            )
        if not all(isinstance(s, ErrorMoments) for s in strata):
            raise DataError("error baseline strata must be ErrorMoments")
        if strata and sum(s.rows for s in strata) != self.rows:
            raise DataError(f"error baseline strata hold {sum(s.rows for s in strata)} rows, the baseline {self.rows}")
        object.__setattr__(self, "edges", tuple(float(e) for e in edges))
        object.__setattr__(self, "strata", strata)

    @classmethod
    def from_errors(
        cls,
        errors: np.ndarray,
        kind: ErrorKind = "brier",
        probability: np.ndarray | None = None,
        strata: int = STRATA,
    ) -> ErrorBaseline:
        """From the per-row errors (``error_stream``) of the model on its labelled reference rows.

        With ``probability`` (the model's scores of the same rows) the errors are also kept in up to
        ``strata`` quantile strata of the score, each of at least MIN_STRATUM_ROWS rows.
        """
        import numpy as np

        x = _finite_stream(errors, f"the reference rows' {kind} errors")
        if x.size < 2:
            raise DataError(f"error baseline needs at least 2 labelled reference rows, got {x.size}")
        if np.any(x < 0):
            raise DataError(f"the reference rows' {kind} errors hold {int(np.sum(x < 0))} negative value(s)")
        whole = ErrorMoments.of(x)
        edges: tuple[float, ...] = ()
        moments: tuple[ErrorMoments, ...] = ()
        if probability is not None:
            p = _finite_stream(probability, "the reference rows' probabilities")
            if p.shape != x.shape:
                raise DataError(f"{p.size} probabilities for {x.size} reference errors")
            edges = _score_edges(p, strata, MIN_STRATUM_ROWS) if strata > 1 else ()
            if edges:
                index = np.searchsorted(np.asarray(edges), p, side="right")
                moments = tuple(ErrorMoments.of(x[index == k]) for k in range(len(edges) + 1))
        return cls(kind, whole.rows, whole.mean, whole.variance, whole.skewness, edges, moments)

    @classmethod
    def from_scores(
        cls, y_true: np.ndarray, probability: np.ndarray, kind: ErrorKind = "brier", strata: int = STRATA
    ) -> ErrorBaseline:
        """From the reference rows' labels and the model's probabilities (drop rows with a null first)."""
        return cls.from_errors(error_stream(y_true, probability, kind), kind, probability, strata)

    @property
    def standard_error(self) -> float:
        return math.sqrt(self.variance / self.rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "rows": self.rows,
            "mean": self.mean,
            "variance": self.variance,
            "skewness": self.skewness,
            "edges": list(self.edges),
            "strata": [s.to_dict() for s in self.strata],
        }

    @classmethod
    def from_dict(cls, data: Any) -> ErrorBaseline:
        if not isinstance(data, dict):
            raise DataError(f"stored error baseline must be a JSON object, got {type(data).__name__}")
        expected = {"kind", "rows", "mean", "variance", "skewness", "edges", "strata"}
        missing, extra = sorted(expected - set(data)), sorted(set(data) - expected)
        if missing or extra:
            raise DataError(f"stored error baseline: missing key(s) {missing}, unexpected key(s) {extra}")
        if not isinstance(data["edges"], list) or not isinstance(data["strata"], list):
            raise DataError("stored error baseline: edges and strata must be lists")
        strata = []
        for item in data["strata"]:
            if not isinstance(item, dict) or set(item) != {"rows", "mean", "variance", "skewness"}:
                raise DataError(f"stored error baseline stratum must hold rows, mean, variance, skewness: {item!r}")
            strata.append(ErrorMoments(**item))
        fields = {k: v for k, v in data.items() if k not in ("edges", "strata")}
        return cls(**fields, edges=tuple(data["edges"]), strata=tuple(strata))


# --- mean shift against the baseline -----------------------------------------------------------------------
@dataclass(frozen=True)
class MeanShiftParams:
    """One-sided Welch z test of the batch's mean error against the baseline, with a practical floor.

    ``alpha`` is the false-alarm rate per batch of the z test on a stationary stream. ``min_increase`` is a
    floor on the *relative* increase of the mean error over the baseline's, required as well: with 100k
    labelled rows the z test alone flags changes of a fraction of a percent (a point of prevalence, a slight
    recalibration between years) that no one would retrain for. The default 10 % is a scale-free "material"
    change of the expected loss, chosen from what a concept change does rather than from any data set: for a
    calibrated model with Brier score B, flipping a share f of the labels raises the expected Brier score by
    f * (1 - 4B) (each flipped row adds (1 - 2p)^2), so the 10 % floor is reached once f >= 0.1 B / (1 - 4B),
    i.e. 2.5 % of the labels at B = 0.125 and 0.5 % at B = 0.04; 5 % of flipped labels clear it for any model
    with B below 1/6. Being relative, the same floor fits a 5 % or a 30 % error rate. Set it to 0 for the
    pure significance test. ``min_rows`` labelled rows are needed before a batch is tested at all.
    """

    alpha: float = 0.01
    min_increase: float = 0.10
    min_rows: int = 100

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 0.5 or not self.min_increase >= 0 or self.min_rows < 2:
            raise ConfigError(
                "mean_shift needs 0 < alpha < 0.5, min_increase >= 0 and min_rows >= 2 "
                f"(policy.concept_drift), got {self}"
            )

    @property
    def critical(self) -> float:
        """The z critical value z_(1 - alpha)."""
        return NormalDist().inv_cdf(1.0 - self.alpha)


@dataclass(frozen=True)
class MeanShiftState:
    batches: int = 0  # batches tested against a baseline
    alarms: int = 0
    rows_seen: int = 0  # rows ever fed, tested or not


MeanShiftReason = Literal["tested", "no_baseline", "kind_mismatch", "too_few_rows"]


@dataclass(frozen=True)
class MeanShiftOutcome:
    """The test of one batch: z, expected and increase are NaN when it was not tested (see ``reason``)."""

    reason: MeanShiftReason
    rows: int
    mean: float
    baseline: ErrorBaseline | None
    expected: float  # the baseline's mean error at this batch's scores (its overall mean when unstratified)
    strata: int  # score strata used (1: the overall mean)
    z: float
    critical: float  # z_(1 - alpha)
    threshold: float  # what z is compared with: the critical value corrected for skewness (never below it)
    increase: float  # (mean - expected) / expected
    min_increase: float

    @property
    def significant(self) -> bool:
        return self.z >= self.threshold

    @property
    def floor_met(self) -> bool:
        return self.increase >= self.min_increase

    @property
    def detected(self) -> bool:
        return self.reason == "tested" and self.significant and self.floor_met


def mean_shift_test(
    errors: np.ndarray,
    baseline: ErrorBaseline | None,
    params: MeanShiftParams,
    kind: ErrorKind = "brier",
    probability: np.ndarray | None = None,
) -> MeanShiftOutcome:
    """Is this batch's mean error higher than the baseline's, significantly (alpha) and materially (floor)?

    With a stratified baseline and the batch's ``probability``, the comparator is the reference's error at
    the batch's scores, sum_k w_k mean_0k (w_k: the batch's share in score stratum k), and the variances are
    the within-stratum ones (Var = sum_k n_bk s_bk^2 / n_b^2 + sum_k w_k^2 s_0k^2 / n_0k): a stratified
    Welch z, conditional on the batch's scores. Otherwise it is the plain Welch z against the overall mean.

    The critical value is corrected for skewness with the first (n^-1/2) Edgeworth term of a studentised
    difference of means (Hall 1992, sec. 2.6; the one-sample case is Johnson 1978): P(z >= x) = 1 - Phi(x)
    - g (2x^2 + 1) / 6 phi(x), g = (k3_b - k3_0) / S^3 with k3 the third cumulants of the two means and S
    the standard error. Per-row losses are right-skewed, so when the baseline's side dominates (a large
    batch against a smaller reference) g < 0 and the plain z test alarms more often than alpha; the
    Cornish-Fisher critical value z_(1-alpha) - g (2 z_(1-alpha)^2 + 1) / 6 fixes that. It is applied only
    when it raises the bar (g < 0): the test never becomes more liberal than the plain z test.
    """
    import numpy as np

    x = _finite_stream(errors)
    n = int(x.size)
    mean = float(x.mean()) if n else math.nan
    critical = params.critical

    def untested(reason: MeanShiftReason) -> MeanShiftOutcome:
        nan = math.nan
        return MeanShiftOutcome(reason, n, mean, baseline, nan, 0, nan, critical, critical, nan, params.min_increase)

    if baseline is None:
        return untested("no_baseline")
    if baseline.kind != kind:
        return untested("kind_mismatch")
    if n < params.min_rows:
        return untested("too_few_rows")
    if baseline.strata and probability is not None:
        p = _finite_stream(probability, "the batch's probabilities")
        if p.shape != x.shape:
            raise DataError(f"{p.size} probabilities for {n} labelled rows' errors")
        index = np.searchsorted(np.asarray(baseline.edges), p, side="right")
        reference = baseline.strata
    else:
        index = np.zeros(n, dtype=np.int64)
        reference = (ErrorMoments(baseline.rows, baseline.mean, baseline.variance, baseline.skewness),)
    k = len(reference)
    rows_0 = np.array([s.rows for s in reference], dtype=np.float64)
    mean_0 = np.array([s.mean for s in reference])
    var_0 = np.array([s.variance for s in reference])
    third_0 = np.array([s.third for s in reference])
    counts = np.bincount(index, minlength=k).astype(np.float64)
    sums = np.bincount(index, weights=x, minlength=k)
    squares = np.bincount(index, weights=x * x, minlength=k)
    cubes = np.bincount(index, weights=x * x * x, minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_b = sums / counts
        var_b = np.maximum(squares - counts * mean_b**2, 0.0) / (counts - 1.0)
        third_b = cubes / counts - 3.0 * mean_b * squares / counts + 2.0 * mean_b**3
    # A stratum with fewer than two of the batch's rows borrows the reference's spread (equal under no change).
    few = counts < 2
    var_b, third_b = np.where(few, var_0, var_b), np.where(few, third_0, third_b)
    weights = counts / n
    expected = float(weights @ mean_0)
    variance = float(counts @ var_b) / n**2 + float(weights**2 @ (var_0 / rows_0))
    spread = math.sqrt(variance)
    diff = mean - expected
    # Both sides constant (no spread): any difference is certain; against a zero baseline any increase is infinite.
    z = diff / spread if spread > 0 else (math.copysign(math.inf, diff) if diff else 0.0)
    increase = diff / expected if expected > 0 else (math.inf if diff > 0 else 0.0)
    threshold = critical
    if spread > 0:
        g = (float(counts @ third_b) / n**3 - float(weights**3 @ (third_0 / rows_0**2))) / spread**3
        threshold += max(0.0, -g * (2.0 * critical**2 + 1.0) / 6.0)
    return MeanShiftOutcome(
        "tested", n, mean, baseline, expected, k, z, critical, threshold, increase, params.min_increase
    )


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


def _page_hinkley_run(
    state: PageHinkleyState, values: np.ndarray, params: PageHinkleyParams
) -> tuple[PageHinkleyState, list[int], list[float]]:
    """Feed values; the new state, the alarm positions and the statistic m_t - M_t at each alarm."""
    import numpy as np

    x = _finite_stream(values)
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
    new_state, alarms, _ = _page_hinkley_run(state, values, params)
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


def _adwin_cut(
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


def _adwin_run(
    state: AdwinState, values: np.ndarray, params: AdwinParams
) -> tuple[AdwinState, list[int], list[tuple[float, float]], int]:
    """Feed values; the new state, alarm positions, (gap, bound) at each alarm, and how many cut tests ran."""
    import numpy as np

    x = _finite_stream(values)
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
        found = _adwin_cut(counts, sums, squares, params)
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
    new_state, alarms, _, _ = _adwin_run(state, values, params)
    return new_state, alarms


# --- one interface for the monitor -------------------------------------------------------------------------
@dataclass(frozen=True)
class DetectorConfig:
    method: DetectorMethod = "mean_shift"
    error: ErrorKind = "brier"
    mean_shift: MeanShiftParams = field(default_factory=MeanShiftParams)
    page_hinkley: PageHinkleyParams = field(default_factory=PageHinkleyParams)
    adwin: AdwinParams = field(default_factory=AdwinParams)


@dataclass(frozen=True)
class DetectorResult:
    """What one batch of labelled rows did to the detector.

    ``statistic`` and ``threshold`` are those of the verdict: ``detected`` is statistic > threshold for
    Page-Hinkley and ADWIN (at the first alarm of the batch when there is one), and statistic >= threshold
    with ``increase >= min_increase`` for mean_shift (statistic NaN when the batch was not tested).
    """

    method: str
    detected: bool
    alarm_rows: tuple[int, ...]  # positions within the batch's error stream where alarms fired
    statistic: float  # mean_shift: Welch z; Page-Hinkley: m_t - M_t; ADWIN: newer minus older mean at a cut
    threshold: float  # mean_shift: z_(1 - alpha); Page-Hinkley: lambda; ADWIN: the Bernstein bound of that cut
    rows: int
    mean_error: float
    state_json: str  # serialised detector state, to be stored and fed back with the next batch
    error: str = "brier"
    baseline_mean: float = math.nan  # mean_shift: the baseline's mean error at the batch's scores (NaN: none)
    baseline_rows: int = 0
    increase: float = math.nan  # mean_shift: relative increase of the mean error over the baseline
    min_increase: float = 0.0  # mean_shift: the floor that increase had to reach
    message: str = ""  # what crossed what, and the verdict

    def detail(self) -> str:
        if self.message:
            return f"{self.method}: {self.message}"
        verdict = f"ALARM at row(s) {list(self.alarm_rows)}" if self.detected else "no alarm"
        return f"{self.method} on {self.rows} labelled rows (mean error {self.mean_error:.4f}): {verdict}"


def config_from_settings(settings: ConceptDriftSettings) -> DetectorConfig:
    return DetectorConfig(
        method=settings.method if settings.method != "off" else "mean_shift",
        error=settings.error,
        mean_shift=MeanShiftParams(
            alpha=settings.alpha, min_increase=settings.min_increase, min_rows=settings.min_rows
        ),
        page_hinkley=PageHinkleyParams(
            delta=settings.ph_delta, threshold=settings.ph_threshold, min_rows=settings.ph_min_rows
        ),
        adwin=AdwinParams(
            delta=settings.adwin_delta,
            bucket_rows=settings.adwin_bucket_rows,
            max_buckets=settings.adwin_max_buckets,
        ),
    )


AnyState = MeanShiftState | PageHinkleyState | AdwinState


def dump_state(state: AnyState) -> str:
    if isinstance(state, MeanShiftState):
        method = "mean_shift"
    elif isinstance(state, PageHinkleyState):
        method = "page_hinkley"
    else:
        method = "adwin"
    return json.dumps({"version": _STATE_VERSION, "method": method, "state": asdict(state)}, sort_keys=True)


def load_state(text: str | None, method: DetectorMethod) -> AnyState:
    """Restore a stored state; a missing state, or one of another method, starts afresh."""
    fresh: AnyState
    if method == "mean_shift":
        fresh = MeanShiftState()
    elif method == "page_hinkley":
        fresh = PageHinkleyState()
    else:
        fresh = AdwinState()
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
        if method == "mean_shift":
            return MeanShiftState(**raw)
        if method == "page_hinkley":
            return PageHinkleyState(**raw)
        fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
        return AdwinState(**fields)
    except TypeError as exc:
        raise DataError(f"stored {method} state has unexpected fields: {exc}") from exc


def _percent(share: float) -> str:
    return f"{share * 100:g}%"


def _mean_shift_message(outcome: MeanShiftOutcome, name: str, params: MeanShiftParams) -> str:
    if outcome.rows == 0:
        rows = "no labelled rows"
    else:
        rows = f"mean {name} {outcome.mean:.4f} on {outcome.rows} labelled rows"
    base = outcome.baseline
    if outcome.reason == "no_baseline" or base is None:
        return f"{rows}: no baseline error for this model, not tested: no alarm"
    if outcome.reason == "kind_mismatch":
        return (
            f"{rows}: no baseline error for this model of kind {name} (the stored baseline holds "
            f"{_ERROR_NAMES[base.kind]} errors), not tested: no alarm"
        )
    if outcome.reason == "too_few_rows":
        return (
            f"{rows} vs baseline {base.mean:.4f} on {base.rows}: not enough rows (needs {params.min_rows}), "
            "not tested: no alarm"
        )
    if outcome.strata > 1:
        against = (
            f"baseline {outcome.expected:.4f} at these scores ({base.rows} reference rows in "
            f"{outcome.strata} score strata, {base.mean:.4f} overall)"
        )
    else:
        against = f"baseline {outcome.expected:.4f} on {base.rows}"
    floor = _percent(outcome.min_increase)
    where = f"floor +{floor}" if outcome.floor_met else f"below the +{floor} floor"
    compare = ">=" if outcome.significant else "<"
    shown = f"{outcome.threshold:.2f}"
    corrected = f", {outcome.critical:.2f} corrected for skewness" if shown != f"{outcome.critical:.2f}" else ""
    text = (
        f"{rows} vs {against} ({outcome.increase:+.1%}, {where}); "
        f"z = {outcome.z:.2f} {compare} {shown} (alpha {params.alpha:g}{corrected})"
    )
    if outcome.detected:
        return f"{text}: ALARM"
    if outcome.significant:
        return f"{text}, but the increase is below the floor: no alarm"
    return f"{text}: no alarm"


def _update_mean_shift(
    config: DetectorConfig,
    state: MeanShiftState,
    values: np.ndarray,
    baseline: ErrorBaseline | None,
    probability: np.ndarray | None,
) -> DetectorResult:
    params = config.mean_shift
    outcome = mean_shift_test(values, baseline, params, config.error, probability)
    tested = outcome.reason == "tested"
    new_state = MeanShiftState(
        batches=state.batches + int(tested),
        alarms=state.alarms + int(outcome.detected),
        rows_seen=state.rows_seen + outcome.rows,
    )
    return DetectorResult(
        method="mean_shift",
        detected=outcome.detected,
        alarm_rows=(),
        statistic=outcome.z,
        threshold=outcome.threshold,
        rows=outcome.rows,
        mean_error=outcome.mean,
        state_json=dump_state(new_state),
        error=config.error,
        baseline_mean=outcome.expected,
        baseline_rows=baseline.rows if tested and baseline is not None else 0,
        increase=outcome.increase,
        min_increase=params.min_increase,
        message=_mean_shift_message(outcome, _ERROR_NAMES[config.error], params),
    )


def update(
    config: DetectorConfig,
    state_json: str | None,
    errors: np.ndarray,
    baseline: ErrorBaseline | None = None,
    probability: np.ndarray | None = None,
) -> DetectorResult:
    """Feed one batch's error stream (rows in time order) to the configured detector.

    ``baseline`` (the model's error on its reference rows, of the same ``config.error`` kind) is what
    mean_shift compares against, at the batch's scores when ``probability`` (the model's probabilities of
    the same rows) is given and the baseline is stratified; Page-Hinkley and ADWIN ignore both.
    """
    import numpy as np

    values = _finite_stream(np.asarray(errors, dtype=np.float64))
    state = load_state(state_json, config.method)
    name = _ERROR_NAMES[config.error]
    if isinstance(state, MeanShiftState):
        return _update_mean_shift(config, state, values, baseline, probability)
    mean = float(values.mean()) if values.size else math.nan
    head = f"{values.size} labelled rows (mean {name} {mean:.4f})"
    if isinstance(state, PageHinkleyState):
        params = config.page_hinkley
        ph_state, alarms, at_alarm = _page_hinkley_run(state, values, params)
        if alarms:
            statistic = at_alarm[0]
            message = (
                f"{head}: statistic {statistic:.2f} > threshold {params.threshold:.2f} "
                f"(m_t - M_t, in std. deviations) at row {alarms[0]}; ALARM at row(s) {alarms} "
                f"(restarted after each alarm; statistic now {ph_state.statistic:.2f})"
            )
        else:
            statistic = ph_state.statistic
            learning = (
                f"; still learning the stream's mean and spread ({ph_state.rows} of {params.min_rows} rows)"
                if ph_state.rows < params.min_rows
                else ""
            )
            message = f"{head}: statistic {statistic:.2f} <= threshold {params.threshold:.2f}{learning}: no alarm"
        threshold, text = params.threshold, dump_state(ph_state)
    else:
        ad_state, alarms, gaps, tests = _adwin_run(state, values, config.adwin)
        if alarms:
            statistic, threshold = gaps[0]
            message = (
                f"{head}: newer minus older mean {statistic:.4f} > Bernstein bound {threshold:.4f} at row "
                f"{alarms[0]}; ALARM at row(s) {alarms} (window cut at each alarm)"
            )
        elif tests:
            statistic, threshold = ad_state.last_gap, ad_state.last_bound
            message = f"{head}: newer minus older mean {statistic:.4f} <= Bernstein bound {threshold:.4f}: no alarm"
        else:
            statistic, threshold = math.nan, math.nan
            window = sum(ad_state.counts) + ad_state.pending_rows
            message = f"{head}: window of {window} rows too short for a cut test: no alarm"
        text = dump_state(ad_state)
    return DetectorResult(
        method=config.method,
        detected=bool(alarms),
        alarm_rows=tuple(alarms),
        statistic=float(statistic),
        threshold=float(threshold),
        rows=int(values.size),
        mean_error=mean,
        state_json=text,
        error=config.error,
        message=message,
    )
