"""Data quality of a batch against its reference: schema, missingness, ranges, unseen categories, duplicate
ids, non-finite values; each failure a typed issue with the numbers behind it."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tasks.core.settings import ProfilingSettings
from tasks.data.contract import ModelContract
from tasks.drift.reference import CategoricalReference, NumericReference, ReferenceProfile
from tasks.drift.results import (
    OUT_OF_RANGE_SHARE,
    RANGE_WIDENING,
    UNSEEN_FAIL_SHARE,
    DataQualityReport,
    FeatureDrift,
    QualityIssue,
)

if TYPE_CHECKING:
    import polars as pl


def dtype_family(dtype: str) -> str:
    """Coarse family of a polars dtype name: a change *within* a family is harmless for profiling."""
    name = dtype.split("(")[0].split("[")[0]
    if name in {"Int8", "Int16", "Int32", "Int64", "Int128", "UInt8", "UInt16", "UInt32", "UInt64"}:
        return "integer"
    if name in {"Float32", "Float64", "Decimal"}:
        return "float"
    if name in {"String", "Utf8", "Categorical", "Enum"}:
        return "text"
    if name in {"Datetime", "Date", "Time", "Duration"}:
        return "temporal"
    return name.lower()


def check_schema(
    profile: ReferenceProfile, schema: Mapping[str, Any], contract: ModelContract, *, compare_dtypes: bool = True
) -> tuple[QualityIssue, ...]:
    """Schema of a batch against the reference's: extra columns and dtype changes.

    A feature whose dtype moves to another family (text <-> number <-> boolean; integer <-> float is the
    same for a numeric feature) fails; any other dtype change warns. Null-typed columns (all values
    missing) are left to the missingness checks; columns the contract names (labels, scores) are never
    "extra". Columns of the reference that a batch lacks are not reported here: features, the entity id
    and the timestamp are required (validation refuses a batch without them), while labels and the
    model's scores (probability, prediction) are optional, since labels arrive later and production
    scores a batch that comes without scores. ``compare_dtypes=False`` for a batch that validation has
    already cast.
    """
    if not profile.schema:
        return ()
    issues: list[QualityIssue] = []
    reference = profile.schema
    kinds = {spec.name: spec.kind for spec in contract.features}
    from tasks.training.scoring import VERSION_COLUMN

    # Columns the pipeline itself adds when it scores a batch are expected, not "extra".
    known = {*reference, contract.target, contract.probability, contract.prediction, VERSION_COLUMN}
    for name, dtype in schema.items():
        if name not in known:
            issues.append(QualityIssue("schema", name, f"extra column ({dtype}) not in the reference", "warn"))
            continue
        if not compare_dtypes or name not in reference:
            continue
        was, now = reference[name], str(dtype)
        if was == now or "Null" in (was, now):
            continue
        families = {dtype_family(was), dtype_family(now)}
        if kinds.get(name) == "numeric":
            families = {"number" if f in ("integer", "float") else f for f in families}
        severity = "fail" if name in kinds and len(families) > 1 else "warn"
        issues.append(QualityIssue("schema", name, f"dtype changed from {was} to {now}", severity))
    return tuple(issues)


def check_quality(
    profile: ReferenceProfile,
    batch: pl.DataFrame,
    contract: ModelContract,
    settings: ProfilingSettings,
    *,
    extra_issues: tuple[QualityIssue, ...] = (),
    category_counts: Mapping[str, tuple[list[str], list[int]]] | None = None,
    out_of_range: Mapping[str, int] | None = None,
) -> DataQualityReport:
    """Data-quality checks of a batch against the reference; ``passed`` means no "fail" issue.

    ``category_counts`` (column -> sorted categories and counts, as the drift step counts them) spares
    a scan for unseen categories of the columns it holds; ``out_of_range`` (column -> values outside the
    widened reference range) a scan for out-of-range values.
    """
    import polars as pl

    rows = batch.height
    issues: list[QualityIssue] = list(extra_issues)
    if rows < settings.min_rows:
        issues.append(
            QualityIssue("too_few_rows", None, f"{rows} rows; at least {settings.min_rows} required (min_rows)", "fail")
        )
    if rows == 0:
        return DataQualityReport(False, 0, tuple(issues), dict.fromkeys(contract.feature_names, 0.0))

    features = [profile.column(name) for name in contract.feature_names]
    ranges = {ref.name: _widened_range(ref) for ref in features if isinstance(ref, NumericReference)}
    known = {
        ref.name: list(ref.known)
        for ref in features
        if isinstance(ref, CategoricalReference) and ref.kind == "categorical"
    }
    counted = category_counts or {}
    counted_ranges = {name: count for name, count in (out_of_range or {}).items() if name in ranges}
    far = {
        ref.name: far_range(ref, settings.block_range_multiple) for ref in features if isinstance(ref, NumericReference)
    }
    counted_far = {name: (out_of_range or {})[f"far:{name}"] for name in far if f"far:{name}" in (out_of_range or {})}
    unseen_examples: dict[str, list[str]] = {}
    unseen_counts: dict[str, int] = {}
    for name, (categories, category_sizes) in counted.items():
        if name in known:
            allowed = set(known[name])
            new = [(c, n) for c, n in zip(categories, category_sizes, strict=True) if c not in allowed]
            unseen_counts[name] = sum(n for _, n in new)
            unseen_examples[name] = [c for c, _ in new[:5]]
    # One pass over the batch: polars evaluates these expressions in parallel.
    counts = batch.select(
        *[pl.col(name).null_count().alias(f"null:{name}") for name in contract.feature_names],
        *[
            (~pl.col(name).cast(pl.Float64).is_between(low, high)).sum().alias(f"range:{name}")
            for name, (low, high) in ranges.items()
            if name not in counted_ranges
        ],
        *[
            (~pl.col(name).cast(pl.Float64).is_between(low, high)).sum().alias(f"far:{name}")
            for name, (low, high) in far.items()
            if name not in counted_far
        ],
        *[
            (~pl.col(name).cast(pl.String).is_in(categories)).sum().alias(f"unseen:{name}")
            for name, categories in known.items()
            if name not in unseen_counts
        ],
        pl.col(contract.entity_id).n_unique().alias("ids"),
    ).row(0, named=True)
    counts.update({f"unseen:{name}": count for name, count in unseen_counts.items()})
    counts.update({f"range:{name}": count for name, count in counted_ranges.items()})
    counts.update({f"far:{name}": count for name, count in counted_far.items()})
    missing_rate = {name: counts[f"null:{name}"] / rows for name in contract.feature_names}

    for name in contract.feature_names:
        if counts[f"null:{name}"] == rows:
            issues.append(QualityIssue("all_null", name, f"all {rows} values are null", "fail"))
            continue
        # Nulls under the reference's own rate are binomial: only a rate above its false_alarm_quantile
        # is new missingness; it fails when it also exceeds the absolute limit.
        reference_rate = profile.missing_rate.get(name, 0.0)
        if missing_rate[name] > reference_rate:
            expected_limit = binomial_quantile(settings.false_alarm_quantile, rows, reference_rate) / rows
            if missing_rate[name] > expected_limit:
                fails = missing_rate[name] > settings.max_missing_rate
                issues.append(
                    QualityIssue(
                        "missing_rate",
                        name,
                        f"{missing_rate[name]:.1%} missing; the reference's {reference_rate:.1%} explains up to "
                        f"{expected_limit:.1%} at {rows} rows"
                        + (f"; above max_missing_rate {settings.max_missing_rate:.1%}" if fails else ""),
                        "fail" if fails else "warn",
                    )
                )
        if name in far and counts[f"far:{name}"] / rows > settings.block_range_share:
            low, high = far[name]
            issues.append(
                QualityIssue(
                    "far_out_of_range",
                    name,
                    f"{counts[f'far:{name}'] / rows:.1%} of rows beyond the reference range by more than "
                    f"{settings.block_range_multiple:g} range widths [{low:.6g}, {high:.6g}] "
                    f"(block_range_share {settings.block_range_share:.1%}): a unit change or broken values",
                    "fail",
                )
            )
        elif name in ranges and counts[f"range:{name}"] / rows > OUT_OF_RANGE_SHARE:
            low, high = ranges[name]
            issues.append(
                QualityIssue(
                    "out_of_range",
                    name,
                    f"{counts[f'range:{name}'] / rows:.1%} of rows outside the reference range widened by "
                    f"{RANGE_WIDENING:.0%} [{low:.6g}, {high:.6g}]",
                    "warn",
                )
            )
        if name in known and counts[f"unseen:{name}"]:
            share = counts[f"unseen:{name}"] / rows
            examples = unseen_examples.get(name)
            if examples is None:
                values = batch.get_column(name).cast(pl.String)
                examples = values.filter(~values.is_in(known[name])).unique().sort().head(5).to_list()
            issues.append(
                QualityIssue(
                    "unseen_category",
                    name,
                    f"{share:.1%} of rows hold categories unseen in the reference, e.g. {examples}",
                    "fail" if share > UNSEEN_FAIL_SHARE else "warn",
                )
            )

    repeated = rows - counts["ids"]
    if repeated:
        issues.append(
            QualityIssue(
                "duplicate_id", contract.entity_id, f"{repeated} rows repeat an entity id already in the batch", "fail"
            )
        )
    return DataQualityReport(
        passed=not any(i.severity == "fail" for i in issues),
        rows=rows,
        issues=tuple(issues),
        missing_rate=missing_rate,
    )


def binomial_quantile(quantile: float, trials: int, probability: float) -> int:
    """``scipy.stats.binom.ppf``: the smallest k with P(X <= k) >= quantile (scipy.special only: no 3 s import)."""
    from scipy.special import bdtr, bdtrik

    if probability <= 0.0:
        return 0
    if probability >= 1.0:
        return trials
    k = min(max(math.ceil(float(bdtrik(quantile, trials, probability))), 0), trials)
    while k > 0 and bdtr(k - 1, trials, probability) >= quantile:
        k -= 1
    while k < trials and bdtr(k, trials, probability) < quantile:
        k += 1
    return k


def far_range(ref: NumericReference, multiple: float) -> tuple[float, float]:
    """The reference range stretched by ``multiple`` range widths on each side: values beyond it are broken data
    (a unit change, a sentinel, a corrupted file), not drift. A constant reference stretches by its magnitude."""
    width = (ref.maximum - ref.minimum) or max(abs(ref.minimum), abs(ref.maximum), 1.0)
    return ref.minimum - multiple * width, ref.maximum + multiple * width


def non_finite_statistics(drift: Sequence[FeatureDrift]) -> tuple[QualityIssue, ...]:
    """A drift statistic that came out NaN or infinite is a data-quality failure, never "no alert"."""
    return tuple(
        QualityIssue(
            "non_finite_statistic",
            row.feature,
            f"{row.method} statistic is {row.statistic} (values the statistic cannot use, e.g. near ±1e308)",
            "fail",
        )
        for row in drift
        if row.statistic is not None and not math.isfinite(row.statistic)
    )


def _widened_range(ref: NumericReference) -> tuple[float, float]:
    widen = RANGE_WIDENING * (ref.maximum - ref.minimum)
    return ref.minimum - widen, ref.maximum + widen
