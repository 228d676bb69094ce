"""Canary exposure: stable routing by entity id, scoring by alias, per-version evidence and its judgement.

Routing. A row goes to the canary when ``hash_unit(entity_id) < canary_share``, where
``hash_unit`` maps ``blake2b(salt, id)`` to [0, 1). The salt is ``<model>:<canary version>``: an
entity sees the same version on every batch and in every process while one canary runs, and each
new canary draws a fresh set of entities (no customer is always the guinea pig).

Prediction store. Every scored row lands in ``<home>/predictions/<model>/<batch>.parquet`` with the
version that *made* its prediction (``model_version``, what monitoring reads), the version it was
*routed* to (``routed_to``; it differs when a failing canary was answered by production) and per
batch and version the scoring time. Delayed labels are joined in by entity id.

Evidence and judgement. Per-version serving statistics (error rate, latency) come from what each
version served. Performance is compared on the *same* rows: every row of the watch period is
scored by both versions (shadow scoring), so the comparison is paired: CBPE-estimated AUC (each
version with its own reference) and realized AUC with DeLong's paired test once labels arrive.
:func:`judge_canary` and :func:`judge_audit` decide in pure functions.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from tasks.core.errors import DataError, DriftgateError, EstimationError
from tasks.core.records import FromDict
from tasks.training.scoring import VERSION_COLUMN

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

    from tasks.core.settings import PromotionSettings
    from tasks.performance.estimation import PerformanceEstimator
    from tasks.performance.fitted import FittedCBPE
    from tasks.performance.label_free import LabelFreeComparison
    from tasks.registry.model import ModelVersion
    from tasks.resources.workspace import Workspace

ROUTE_COLUMN: Final = "route"  # "production" or "canary": which alias the row was routed to
ROUTED_TO_COLUMN: Final = "routed_to"  # the version behind that alias
SCORED_AT_COLUMN: Final = "scored_at"
BATCH_COLUMN: Final = "scored_batch"
LATENCY_COLUMN: Final = "score_ms_per_1k"  # scoring time of the routed version on this batch
ERROR_COLUMN: Final = "score_error"  # the routed version failed on this row and production answered
PRODUCTION_ROUTE: Final = "production"
CANARY_ROUTE: Final = "canary"
# Parts smaller than this are timed as if they had this many rows, so a canary's 10 % slice is not
# charged the fixed per-call overhead ten times over.
_LATENCY_FLOOR_ROWS: Final = 1000
_UNIT: Final = float(1 << 53)

Verdict = Literal["promote", "abort", "wait"]


# --- routing -------------------------------------------------------------------------------------


def canary_salt(model: str, canary_version: str) -> str:
    return f"{model}:{canary_version}"


def hash_unit(entity_ids: Iterable[Any], salt: str) -> np.ndarray:
    """A uniform [0, 1) value per id from blake2b(salt, str(id)): the same in every process and run."""
    import numpy as np

    prefix = salt.encode() + b"\x1f"
    values = [
        (int.from_bytes(hashlib.blake2b(prefix + str(ident).encode(), digest_size=8).digest(), "big") >> 11) / _UNIT
        for ident in entity_ids
    ]
    return np.asarray(values, dtype=np.float64)


def canary_mask(entity_ids: Iterable[Any], share: float, salt: str) -> np.ndarray:
    """True for the rows routed to the canary: ``hash_unit < share``."""
    if not 0.0 <= share <= 1.0:
        raise DataError(f"canary share must lie in [0, 1], got {share}", source="DRIFTGATE_CANARY_SHARE")
    return hash_unit(entity_ids, salt) < share


@dataclass(frozen=True)
class Routing:
    production: ModelVersion
    canary: ModelVersion | None
    share: float

    @property
    def salt(self) -> str | None:
        return canary_salt(self.canary.model, self.canary.version) if self.canary else None


def resolve_routing(ws: Workspace) -> Routing:
    """Production and canary resolved by alias now (a canary equal to production routes nothing)."""
    from tasks.registry.model import CANARY

    production = ws.production()
    canary = ws.registry.resolve(ws.model, CANARY)
    if canary is not None and canary.version == production.version:
        canary = None
    return Routing(production=production, canary=canary, share=ws.settings.canary_share)


# --- scoring -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoredBatch(FromDict):
    batch_id: str
    source: str
    path: str
    rows: int
    production: str
    canary: str | None
    routed: dict[str, int]  # version -> rows routed to it
    served: dict[str, int]  # version -> rows it answered
    errors: dict[str, int]  # version -> routed rows it failed on
    latency_ms_per_1k: dict[str, float]
    failure: str | None  # why the canary failed on this batch, if it did


def _time_scores(ws: Workspace, version: ModelVersion, part: pl.DataFrame) -> tuple[np.ndarray, float]:
    from tasks.training.train import predict_proba

    text = ws.model_text(version)
    predict_proba(text, part.head(0), ws.contract, num_threads=ws.settings.num_threads)  # load outside the clock
    started = time.perf_counter()
    proba = predict_proba(text, part, ws.contract, num_threads=ws.settings.num_threads)
    elapsed = time.perf_counter() - started
    return proba, elapsed * 1e6 / max(part.height, _LATENCY_FLOOR_ROWS)


def score_routed(ws: Workspace, frame: pl.DataFrame, routing: Routing, *, now: datetime | None = None) -> pl.DataFrame:
    """Score a validated frame: canary rows by the canary (production answers where it fails), others by production."""
    import numpy as np
    import polars as pl

    contract = ws.contract
    now = now or datetime.now(UTC)
    frame = frame.drop([c for c in (contract.probability, contract.prediction, VERSION_COLUMN) if c in frame.columns])
    if routing.canary is not None and routing.salt is not None:
        mask = canary_mask(frame.get_column(contract.entity_id).to_list(), routing.share, routing.salt)
    else:
        mask = np.zeros(frame.height, dtype=bool)
    production = routing.production.version
    proba = np.full(frame.height, np.nan)
    made_by = np.full(frame.height, production, dtype=object)
    routed_to = np.full(frame.height, production, dtype=object)
    latency = np.zeros(frame.height)
    errors = np.zeros(frame.height, dtype=bool)

    rest = ~mask
    if rest.any():
        scores, ms = _time_scores(ws, routing.production, frame.filter(pl.Series(rest)))
        proba[rest], latency[rest] = scores, ms
    if mask.any() and routing.canary is not None:
        canary = routing.canary.version
        routed_to[mask] = canary
        made_by[mask] = canary
        try:
            scores, ms = _time_scores(ws, routing.canary, frame.filter(pl.Series(mask)))
            proba[mask], latency[mask] = scores, ms
        except Exception:  # whatever a broken canary raises, its rows are answered by production and counted
            latency[mask] = math.nan
        failed = mask & ~np.isfinite(proba)
        if failed.any():
            errors[failed] = True
            made_by[failed] = production
            fallback, _ = _time_scores(ws, routing.production, frame.filter(pl.Series(failed)))
            proba[failed] = fallback
    return frame.with_columns(
        pl.Series(contract.probability, proba, dtype=pl.Float64),
        pl.Series(contract.prediction, (proba >= ws.settings.gate.decision_threshold).astype("int8")),
        pl.Series(VERSION_COLUMN, made_by.tolist(), dtype=pl.String),
        pl.Series(ROUTED_TO_COLUMN, routed_to.tolist(), dtype=pl.String),
        pl.Series(ROUTE_COLUMN, np.where(mask, CANARY_ROUTE, PRODUCTION_ROUTE).tolist(), dtype=pl.String),
        pl.Series(LATENCY_COLUMN, latency, dtype=pl.Float64),
        pl.Series(ERROR_COLUMN, errors, dtype=pl.Boolean),
        pl.lit(now).cast(pl.Datetime("us", "UTC")).alias(SCORED_AT_COLUMN),
    )


def predictions_dir(ws: Workspace) -> Path:
    return ws.settings.predictions_dir / ws.model


def score_file(ws: Workspace, path: str, *, routing: Routing | None = None, now: datetime | None = None) -> ScoredBatch:
    """Validate a batch file, score it by alias with the canary split, and store every prediction with its version."""
    import polars as pl

    from tasks.data.contract import validate_batch
    from tasks.data.files import read_file, write_frame
    from tasks.resources.lake import batch_id_for

    routing = routing or resolve_routing(ws)
    frame = validate_batch(read_file(path), ws.contract, source=path, min_rows=1)
    batch_id = batch_id_for(path)
    scored = score_routed(ws, frame, routing, now=now).with_columns(pl.lit(batch_id).alias(BATCH_COLUMN))
    out = write_frame(scored, predictions_dir(ws) / f"{batch_id}.parquet")
    by_routed = scored.group_by(ROUTED_TO_COLUMN).agg(
        pl.len().alias("rows"), pl.col(ERROR_COLUMN).sum().alias("errors"), pl.col(LATENCY_COLUMN).first()
    )
    served = scored.group_by(VERSION_COLUMN).len()
    canary = routing.canary.version if routing.canary else None
    canary_errors = int(scored.filter(pl.col(ROUTE_COLUMN) == CANARY_ROUTE).get_column(ERROR_COLUMN).sum())
    return ScoredBatch(
        batch_id=batch_id,
        source=path,
        path=str(out),
        rows=scored.height,
        production=routing.production.version,
        canary=canary,
        routed={r[ROUTED_TO_COLUMN]: int(r["rows"]) for r in by_routed.iter_rows(named=True)},
        served={r[VERSION_COLUMN]: int(r["len"]) for r in served.iter_rows(named=True)},
        errors={r[ROUTED_TO_COLUMN]: int(r["errors"]) for r in by_routed.iter_rows(named=True)},
        latency_ms_per_1k={
            r[ROUTED_TO_COLUMN]: float(r[LATENCY_COLUMN])
            for r in by_routed.iter_rows(named=True)
            if r[LATENCY_COLUMN] is not None and not math.isnan(r[LATENCY_COLUMN])
        },
        failure=f"canary {canary} failed on {canary_errors} rows of {batch_id}" if canary_errors else None,
    )


def attach_labels(ws: Workspace, label_paths: Sequence[str]) -> dict[str, int]:
    """Join delayed labels (keyed by entity id) into the stored predictions; returns labelled rows per batch."""
    import polars as pl

    from tasks.data.files import expand_paths, read_file, write_frame
    from tasks.data.labels import validate_label_file

    contract = ws.contract
    folder = predictions_dir(ws)
    labelled: dict[str, int] = {}
    for label_file in expand_paths(list(label_paths)) if label_paths else []:
        labels = validate_label_file(read_file(label_file), contract, source=str(label_file))
        keys = labels.select(contract.entity_id, pl.col(contract.target).alias("__label"))
        for path in sorted(folder.glob("*.parquet")) if folder.is_dir() else []:
            frame = pl.read_parquet(path)
            joined = frame.join(keys, on=contract.entity_id, how="left")
            hits = int(joined.get_column("__label").is_not_null().sum())
            if not hits:
                continue
            if contract.target in joined.columns:
                joined = joined.with_columns(pl.coalesce("__label", contract.target).alias(contract.target))
            else:
                joined = joined.rename({"__label": contract.target})
            write_frame(joined.drop("__label", strict=False), path)
            labelled[path.stem] = labelled.get(path.stem, 0) + hits
    return labelled


def load_predictions(
    ws: Workspace, *, since: datetime | None = None, until: datetime | None = None
) -> pl.DataFrame | None:
    """Every stored prediction scored in [since, until], or None when there is none."""
    import polars as pl

    folder = predictions_dir(ws)
    files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    if not files:
        return None
    frame = pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed")
    if since is not None:
        frame = frame.filter(pl.col(SCORED_AT_COLUMN) >= since)
    if until is not None:
        frame = frame.filter(pl.col(SCORED_AT_COLUMN) <= until)
    return frame if frame.height else None


# --- evidence ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServingStats:
    """What one version served in a period: rows routed to it, its failures and its scoring time."""

    version: str
    routed_rows: int
    errors: int
    latency_ms_per_1k: float | None  # median over batches

    @property
    def error_rate(self) -> float:
        return self.errors / self.routed_rows if self.routed_rows else 0.0


def serving_stats(frame: pl.DataFrame | None, version: str) -> ServingStats:
    import polars as pl

    if frame is None:
        return ServingStats(version, 0, 0, None)
    mine = frame.filter(pl.col(ROUTED_TO_COLUMN) == version)
    if mine.height == 0:
        return ServingStats(version, 0, 0, None)
    per_batch = (
        mine.group_by(BATCH_COLUMN if BATCH_COLUMN in mine.columns else SCORED_AT_COLUMN)
        .agg(pl.col(LATENCY_COLUMN).first())
        .get_column(LATENCY_COLUMN)
    )
    finite = per_batch.filter(per_batch.is_finite())
    return ServingStats(
        version=version,
        routed_rows=mine.height,
        errors=int(mine.get_column(ERROR_COLUMN).sum()),
        latency_ms_per_1k=float(finite.median()) if finite.len() else None,  # type: ignore[arg-type]
    )


@dataclass(frozen=True)
class PairedComparison:
    """Two versions scored on the same rows: estimated (CBPE) and realized (labels) AUC, DeLong's paired test."""

    new_version: str
    old_version: str
    rows: int
    labelled_rows: int
    new_estimated: float | None
    old_estimated: float | None
    new_realized: float | None
    old_realized: float | None
    realized_diff_se: float | None  # standard error of new - old (DeLong)
    p_worse: float | None  # one-sided p of H1: the new version's realized AUC is lower
    notes: tuple[str, ...] = ()
    failure: str | None = None  # a version could not score the rows at all
    # The paired, label-free comparison of the estimates (tasks/performance/label_free.py): interval, disagreement
    label_free: LabelFreeComparison | None = None

    @property
    def estimated_drop(self) -> float | None:
        if self.new_estimated is None or self.old_estimated is None:
            return None
        return self.old_estimated - self.new_estimated

    @property
    def realized_drop(self) -> float | None:
        if self.new_realized is None or self.old_realized is None:
            return None
        return self.old_realized - self.new_realized


def paired_realized(
    labels: Sequence[int] | np.ndarray,
    new_scores: Sequence[float] | np.ndarray,
    old_scores: Sequence[float] | np.ndarray,
) -> tuple[float, float, float, float]:
    """(new AUC, old AUC, SE of new - old, one-sided p that new is worse), by DeLong's paired test."""
    from tasks.gate.paired_tests import delong_roc_test, one_sided_p

    new_auc, old_auc, variance, _z, _p = delong_roc_test(labels, new_scores, old_scores)
    _, p_worse = one_sided_p(old_auc - new_auc, 0.0, variance)
    return new_auc, old_auc, math.sqrt(variance), p_worse


def _estimator(ws: Workspace, version: ModelVersion) -> PerformanceEstimator | FittedCBPE:
    """The version's CBPE: the per-version cache the monitor uses (fitted once, applied in numpy)."""
    from tasks.stages.monitor_caches import production_estimator

    return production_estimator(ws, version, ws.reference_of(version))


def _estimate(
    ws: Workspace, estimator: PerformanceEstimator | FittedCBPE, frame: pl.DataFrame, scores: np.ndarray
) -> float:
    import polars as pl

    from tasks.performance.fitted import FittedCBPE, estimate_fitted

    scored = frame.with_columns(pl.Series(ws.contract.probability, scores, dtype=pl.Float64))
    if isinstance(estimator, FittedCBPE):
        return estimate_fitted(estimator, scored, ws.contract).value
    from tasks.performance.estimation import estimate_performance

    return estimate_performance(estimator, scored, ws.contract).value


def compare_versions(ws: Workspace, frame: pl.DataFrame, new: ModelVersion, old: ModelVersion) -> PairedComparison:
    """Score every row of ``frame`` with both versions and compare them on the same rows."""
    import numpy as np

    from tasks.training.train import predict_proba

    contract = ws.contract
    rows = frame.drop([c for c in (contract.probability, contract.prediction) if c in frame.columns])
    threads = ws.settings.num_threads
    scores: dict[str, np.ndarray] = {}
    for version in (new, old):
        try:
            scores[version.version] = predict_proba(ws.model_text(version), rows, contract, num_threads=threads)
        except DriftgateError as exc:
            failure = f"{version.version} cannot score the period's rows: {exc}"
            empty = PairedComparison(new.version, old.version, rows.height, 0, None, None, None, None, None, None)
            return replace(empty, failure=failure)
    new_scores, old_scores = scores[new.version], scores[old.version]
    notes: list[str] = []
    estimates: dict[str, float | None] = {}
    estimators: dict[str, PerformanceEstimator | FittedCBPE] = {}
    for version in (new, old):
        try:
            estimators[version.version] = _estimator(ws, version)
            estimates[version.version] = _estimate(ws, estimators[version.version], rows, scores[version.version])
        except (EstimationError, DataError) as exc:
            estimates[version.version] = None
            notes.append(f"no CBPE estimate for {version.version}: {exc}")
    label_free = _label_free(ws, estimators, new, old, new_scores, old_scores)
    labelled = 0
    realized: tuple[float, float, float, float] | None = None
    if contract.target in rows.columns:
        has_label = rows.get_column(contract.target).is_not_null().to_numpy()
        labelled = int(has_label.sum())
        labels = rows.get_column(contract.target).to_numpy()[has_label].astype(np.int64)
        if labelled and np.unique(labels).size == 2:
            realized = paired_realized(labels, new_scores[has_label], old_scores[has_label])
        elif labelled:
            notes.append(f"the {labelled} labelled rows hold a single class: no realized AUC")
    return PairedComparison(
        new_version=new.version,
        old_version=old.version,
        rows=rows.height,
        labelled_rows=labelled,
        new_estimated=estimates.get(new.version),
        old_estimated=estimates.get(old.version),
        new_realized=realized[0] if realized else None,
        old_realized=realized[1] if realized else None,
        realized_diff_se=realized[2] if realized else None,
        p_worse=realized[3] if realized else None,
        notes=tuple(notes),
        label_free=label_free,
    )


def _label_free(
    ws: Workspace,
    estimators: dict[str, PerformanceEstimator | FittedCBPE],
    new: ModelVersion,
    old: ModelVersion,
    new_scores: np.ndarray,
    old_scores: np.ndarray,
) -> LabelFreeComparison | None:
    """The paired comparison when both versions have a numpy CBPE (a NannyML fallback gets point estimates)."""
    from tasks.performance.fitted import FittedCBPE
    from tasks.performance.label_free import compare_label_free

    a, b = estimators.get(new.version), estimators.get(old.version)
    if not (isinstance(a, FittedCBPE) and isinstance(b, FittedCBPE)):
        return None
    return compare_label_free(
        a,
        b,
        new_scores,
        old_scores,
        threshold=ws.settings.gate.decision_threshold,
        alpha=ws.settings.gate.alpha,
        seed=ws.settings.training.seed,
    )


# --- judgement (pure) ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CanaryVerdict:
    action: Verdict
    reasons: tuple[str, ...]
    failures: tuple[str, ...]  # thresholds missed; non-empty exactly when action is "abort" for cause


def _performance_checks(
    comparison: PairedComparison | None, settings: PromotionSettings, alpha: float
) -> tuple[list[str], list[str]]:
    """(failures, observations) of estimated and realized performance, new vs old on the same rows."""
    failures: list[str] = []
    seen: list[str] = []
    if comparison is None:
        return failures, ["no rows were scored in the period: no performance evidence"]
    new, old = comparison.new_version, comparison.old_version
    if comparison.failure is not None:
        failures.append(comparison.failure)
    drop = comparison.estimated_drop
    if drop is not None:
        line = (
            f"estimated AUC {new} {comparison.new_estimated:.4f} vs {old} {comparison.old_estimated:.4f} "
            f"(drop {drop:+.4f}, threshold {settings.max_estimated_drop:.4f}, {comparison.rows} rows)"
        )
        paired = comparison.label_free
        # With the paired bootstrap, a drop past the threshold fails only when it is also a real drop (p < alpha):
        # the two estimates share their rows, so chance alone rarely separates them, but a small canary can.
        real = paired is None or paired.p_drop is None or paired.p_drop < alpha
        if paired is not None:
            line += f"; paired: {paired.describe()}"
        if drop > settings.max_estimated_drop and not real:
            line += f": not distinguishable from no drop at alpha {alpha:g}, not a failure"
        (failures if drop > settings.max_estimated_drop and real else seen).append(line)
    drop = comparison.realized_drop
    if drop is not None and comparison.p_worse is not None:
        line = (
            f"realized AUC {new} {comparison.new_realized:.4f} vs {old} {comparison.old_realized:.4f} "
            f"(drop {drop:+.4f}, threshold {settings.max_realized_drop:.4f}, "
            f"one-sided DeLong p={comparison.p_worse:.3g}, {comparison.labelled_rows} labelled rows)"
        )
        if comparison.labelled_rows < settings.min_labelled_rows:
            seen.append(f"{line}: too few labels to judge (need {settings.min_labelled_rows})")
        elif drop > settings.max_realized_drop and comparison.p_worse < alpha:
            failures.append(line)
        else:
            seen.append(line)
    elif comparison.labelled_rows == 0:
        seen.append("no labels yet: realized performance not judged")
    seen.extend(comparison.notes)
    return failures, seen


def judge_canary(
    canary: ServingStats,
    comparison: PairedComparison | None,
    settings: PromotionSettings,
    *,
    alpha: float,
    elapsed_hours: float,
) -> CanaryVerdict:
    """Abort on any missed threshold (at any time in the window), wait while the window runs, else promote."""
    failures: list[str] = []
    seen: list[str] = []
    if canary.routed_rows:
        line = (
            f"error rate {canary.error_rate:.2%} ({canary.errors} of {canary.routed_rows} routed rows, "
            f"threshold {settings.max_error_rate:.2%})"
        )
        (failures if canary.error_rate > settings.max_error_rate else seen).append(line)
    if canary.latency_ms_per_1k is not None:
        line = (
            f"scoring time {canary.latency_ms_per_1k:.1f} ms per 1k rows "
            f"(threshold {settings.max_latency_ms_per_1k:.1f})"
        )
        (failures if canary.latency_ms_per_1k > settings.max_latency_ms_per_1k else seen).append(line)
    perf_failures, perf_seen = _performance_checks(comparison, settings, alpha)
    failures += perf_failures
    seen += perf_seen
    if failures:
        return CanaryVerdict("abort", tuple(f"missed: {f}" for f in failures) + tuple(seen), tuple(failures))
    if elapsed_hours < settings.watch_hours:
        window = f"watch window: {elapsed_hours:.2f} of {settings.watch_hours:g} h elapsed"
        return CanaryVerdict("wait", (window, *seen), ())
    if canary.routed_rows < settings.min_canary_rows:
        short = f"the canary served {canary.routed_rows} rows, fewer than {settings.min_canary_rows} required"
        return CanaryVerdict("abort", (short, *seen), (short,))
    if canary.routed_rows == 0 and comparison is None:
        return CanaryVerdict("promote", ("no canary traffic in the watch window: promoted on the gate's evidence",), ())
    return CanaryVerdict("promote", ("every threshold met", *seen), ())


@dataclass(frozen=True)
class AuditVerdict:
    passed: bool
    reasons: tuple[str, ...]
    failures: tuple[str, ...]


def judge_audit(comparison: PairedComparison | None, settings: PromotionSettings, *, alpha: float) -> AuditVerdict:
    """The new production against the previous one on the same rows of the period since promotion."""
    failures, seen = _performance_checks(comparison, settings, alpha)
    reasons = tuple(f"missed: {f}" for f in failures) + tuple(seen)
    return AuditVerdict(not failures, reasons, tuple(failures))


# --- reports -------------------------------------------------------------------------------------


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def comparison_table(comparison: PairedComparison | None) -> list[str]:
    if comparison is None:
        return ["No rows were scored in the period."]
    c = comparison
    return [
        f"Rows scored by both versions: {c.rows} ({c.labelled_rows} labelled).",
        "",
        f"| metric | {c.new_version} (new) | {c.old_version} (previous) | drop |",
        "|---|---|---|---|",
        f"| estimated AUC (CBPE) | {_num(c.new_estimated)} | {_num(c.old_estimated)} | {_num(c.estimated_drop)} |",
        f"| realized AUC | {_num(c.new_realized)} | {_num(c.old_realized)} | {_num(c.realized_drop)} |",
        "",
        f"DeLong paired test: SE of the difference {_num(c.realized_diff_se)}, one-sided p(new worse) "
        f"{'n/a' if c.p_worse is None else f'{c.p_worse:.3g}'}.",
        "",
        "Label-free, on the same rows (before labels): "
        + (c.label_free.describe() if c.label_free is not None else "no paired CBPE comparison")
        + ". CBPE cannot see a concept shift, so this never promotes on its own.",
    ]


def canary_markdown(
    *,
    model: str,
    canary: ServingStats,
    production: ServingStats | None,
    comparison: PairedComparison | None,
    verdict: CanaryVerdict,
    started_at: datetime | None,
    now: datetime,
) -> str:
    lines = [
        f"# Canary {model}:{canary.version} — {verdict.action.upper()}",
        "",
        f"Watch window from {started_at.isoformat() if started_at else 'n/a'} to {now.isoformat()}.",
        "",
        "## Why",
        "",
        *[f"- {reason}" for reason in verdict.reasons],
        "",
        "## Serving",
        "",
        "| version | route | routed rows | errors | error rate | ms per 1k rows |",
        "|---|---|---|---|---|---|",
    ]
    for stats, route in ((canary, CANARY_ROUTE), (production, PRODUCTION_ROUTE)):
        if stats is None:
            lines.append(f"| (none) | {route} | 0 | 0 | n/a | n/a |")
            continue
        latency = "n/a" if stats.latency_ms_per_1k is None else f"{stats.latency_ms_per_1k:.1f}"
        lines.append(
            f"| {stats.version} | {route} | {stats.routed_rows} | {stats.errors} | {stats.error_rate:.2%} | {latency} |"
        )
    lines += ["", "## Performance on the same rows (shadow-scored by both versions)", "", *comparison_table(comparison)]
    return "\n".join(lines) + "\n"


def audit_markdown(
    *, model: str, comparison: PairedComparison | None, verdict: AuditVerdict, since: datetime, now: datetime
) -> str:
    title = "PASSED" if verdict.passed else "FAILED"
    new = comparison.new_version if comparison else "?"
    old = comparison.old_version if comparison else "?"
    return "\n".join(
        [
            f"# Post-deployment audit {model}:{new} vs {old} — {title}",
            "",
            f"Period: {since.isoformat()} to {now.isoformat()}; the same rows scored by both versions.",
            "",
            *comparison_table(comparison),
            "",
            "## Verdict",
            "",
            *[f"- {reason}" for reason in verdict.reasons],
            "",
        ]
    )
