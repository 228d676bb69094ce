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

Page-Hinkley and ADWIN, the sequential alternatives that need no baseline, live in
:mod:`tasks.drift.sequential`; the error kinds and moments both families build on in
:mod:`tasks.drift.error_moments`. This module holds what the monitor calls: the error stream, the
model's baseline error, the default mean-shift test against it, and :func:`update`, the one interface that
feeds a batch to whichever detector is configured and keeps its state.

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
from tasks.drift.error_moments import (
    ERROR_KINDS,
    ERROR_NAMES,
    ErrorKind,
    ErrorMoments,
    check_moments,
    finite_stream,
    is_number,
    score_edges,
)
from tasks.drift.sequential import (
    AdwinParams,
    AdwinState,
    PageHinkleyParams,
    PageHinkleyState,
    adwin_run,
    page_hinkley_run,
)

if TYPE_CHECKING:
    import numpy as np

    from tasks.core.settings import ConceptDriftSettings

DetectorMethod = Literal["mean_shift", "page_hinkley", "adwin"]
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


# --- the model's baseline error ----------------------------------------------------------------------------
STRATA = 20  # score strata of the reference the baseline error is kept in, at most
MIN_STRATUM_ROWS = 100  # reference rows per stratum, at least (fewer strata for a small reference)


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
        check_moments("error baseline", self.rows, self.mean, self.variance, self.skewness)
        if self.kind != "log_loss" and self.mean > 1:
            raise DataError(f"error baseline mean of {self.kind} errors must lie in [0, 1], got {self.mean!r}")
        for name in ("mean", "variance", "skewness"):
            object.__setattr__(self, name, float(getattr(self, name)))
        edges, strata = tuple(self.edges), tuple(self.strata)
        if not all(is_number(e) for e in edges) or any(b <= a for a, b in pairwise(edges)):
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

        x = finite_stream(errors, f"the reference rows' {kind} errors")
        if x.size < 2:
            raise DataError(f"error baseline needs at least 2 labelled reference rows, got {x.size}")
        if np.any(x < 0):
            raise DataError(f"the reference rows' {kind} errors hold {int(np.sum(x < 0))} negative value(s)")
        whole = ErrorMoments.of(x)
        edges: tuple[float, ...] = ()
        moments: tuple[ErrorMoments, ...] = ()
        if probability is not None:
            p = finite_stream(probability, "the reference rows' probabilities")
            if p.shape != x.shape:
                raise DataError(f"{p.size} probabilities for {x.size} reference errors")
            edges = score_edges(p, strata, MIN_STRATUM_ROWS) if strata > 1 else ()
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

    x = finite_stream(errors)
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
        p = finite_stream(probability, "the batch's probabilities")
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
            f"{ERROR_NAMES[base.kind]} errors), not tested: no alarm"
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
        message=_mean_shift_message(outcome, ERROR_NAMES[config.error], params),
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

    values = finite_stream(np.asarray(errors, dtype=np.float64))
    state = load_state(state_json, config.method)
    name = ERROR_NAMES[config.error]
    if isinstance(state, MeanShiftState):
        return _update_mean_shift(config, state, values, baseline, probability)
    mean = float(values.mean()) if values.size else math.nan
    head = f"{values.size} labelled rows (mean {name} {mean:.4f})"
    if isinstance(state, PageHinkleyState):
        params = config.page_hinkley
        ph_state, alarms, at_alarm = page_hinkley_run(state, values, params)
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
        ad_state, alarms, gaps, tests = adwin_run(state, values, config.adwin)
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
