"""Data quality and drift of a batch (or of each chunk of a lazy source) against a reference profile.

This module profiles one batch (:func:`profile_batch`); the pieces live next to it: :mod:`tasks.drift.results`
(what is reported, and the methods and limits), :mod:`tasks.drift.reference` (fitting the reference profile and
calibrating its thresholds), :mod:`tasks.drift.statistics` (the formulas), :mod:`tasks.drift.quality` (data
quality) and :mod:`tasks.drift.chunked` (a lazy source chunk by chunk).

Statistics (unit tests compare each with scipy and with NannyML 0.13's ``UnivariateDriftCalculator``):

- numeric features and the prediction probability, on non-null values:
  ``ks``: two-sample Kolmogorov-Smirnov statistic, sup |ECDF_batch - ECDF_reference|, computed exactly
  on the merged samples (equals ``scipy.stats.ks_2samp(...).statistic``); p-value from Kolmogorov's
  limiting distribution at the effective size nm/(n+m) (within a few percent of ``ks_2samp(...,
  method="asymp")``, which costs milliseconds per call at these sizes);
  ``wasserstein``: earth mover's distance between the raw samples, in the feature's units
  (equals ``scipy.stats.wasserstein_distance``);
  ``jensen_shannon``: Jensen-Shannon *distance* (square root of the divergence, base 2, in [0, 1]) and
  ``hellinger``: Hellinger distance sqrt(sum((sqrt p - sqrt q)^2) / 2), both on NannyML's binning:
  ``numpy.histogram_bin_edges(reference, "doane")``, plus one bin for batch values outside the
  reference's range;
  ``psi``: population stability index sum((a - r) * ln(a / r)) on the reference's decile bins, with
  empty proportions replaced by ``PSI_EPSILON`` (NannyML has no PSI).
- categorical and boolean features and the label, on non-null values over the union of categories:
  ``jensen_shannon`` and ``hellinger`` (as above; NannyML pools categories unseen in the reference into
  one bin, which gives the same value because a bin empty in the reference adds linearly),
  ``chi2``: statistic and p-value of the 2 x k contingency table reference vs batch (equals
  ``scipy.stats.chi2_contingency``, Yates-corrected when dof = 1), ``l_infinity``: max |proportion_batch
  - proportion_reference|,
  ``head_tail``: -log10 of an exact two-sample p-value (the L-infinity distance's union-bound p-value over
  per-category hypergeometric laws for the head, the most surprising category's Fisher test for the tail,
  twice the smaller; :mod:`tasks.drift.categorical`), no NannyML counterpart.

Where driftgate and NannyML differ (binning choices, documented and tested):
- NannyML computes KS and Wasserstein *exactly* only for references under 10,000 rows (or with
  ``computation_params={"kolmogorov_smirnov": {"calculation_method": "exact"}}``); above that it bins the
  reference into 10,000 equal-width bins. driftgate is exact at every size: its values equal NannyML's
  exact mode and differ from the binned default by less than the bin resolution.
- References above ``MAX_REFERENCE_SAMPLE`` non-null values keep that many evenly spaced order
  statistics for KS and Wasserstein (ECDF within 1/MAX_REFERENCE_SAMPLE of the full one);
  the histograms, deciles, counts and ranges always use every reference value.

The primary (alerting) method is ``ks`` for numeric features and the prediction, ``head_tail`` for
categorical and boolean features and the label (it sees a few points' shift of a large category, which
Jensen-Shannon mostly misses, as well as a rare category's rise; :mod:`tasks.drift.categorical`). Every
method gets its own calibrated threshold and its own ``alert`` flag; a feature *alerts* when its primary
method alerts, and *drifts* (what the policy acts on) when that alert also survives the batch-level control
(:mod:`tasks.drift.batch_control`: Holm across the features' primary tests and the multivariate test at
``profiling.batch_alpha``, so a stationary batch gives any drift evidence at most that often).
A multivariate row (PCA reconstruction error, :mod:`tasks.drift.multivariate`) is added when the profile
has one; it is reported and recorded but not counted among the drifted features.

Threshold calibration. The spread of a drift statistic under "no drift" depends on both sample
sizes (about sqrt(1/m + 1/n) for a batch of m and a reference of n values), so thresholds are
calibrated at the size of the batch being judged, on the null hypothesis that the batch and the
reference are two samples of the reference's distribution; the threshold is the
``false_alarm_quantile`` of the statistic under that null (floored at a tiny positive value):

- binned and categorical statistics (JS, Hellinger, PSI, chi2, L-infinity): ``replicates`` pairs of a
  bootstrap chunk of m rows and a bootstrap replicate of the reference's n rows (categorical: both from the
  reference's shares smoothed for unseen categories, ``tasks.drift.categorical.two_sample_null_shares``), drawn as
  multinomial counts over the bins or categories (conditional binomials; those with a variance of
  ``NORMAL_DRAW_VARIANCE`` or more from their normal approximation, the others exact; cost independent of m);
- KS and Wasserstein: the ECDF gap of such a pair is sqrt(1/m + 1/n) times a Brownian bridge in the
  reference's CDF scale (Donsker), so the fit simulates that bridge on the reference's distinct values
  (ties respected; merged into at most ``CALIBRATION_ATOMS`` equal-mass atoms; columns with the same
  atom masses share one simulation) and scales its quantile to each batch size;
- ``head_tail``: its p-value is exact, so its threshold is -log10(1 - ``false_alarm_quantile``).

Why not literal reference chunks compared with the full reference: a chunk is part of the
reference, so its distance to it has variance ~(1/m - 1/n) instead of (1/m + 1/n) for a new batch
(at m = n/4 the KS threshold comes out 22% too low: 8% false alarms instead of 1%); the 0.99
quantile of 20 chunks is about their maximum (~5.7% false alarms even with perfect chunks); and a 1M-row batch
cannot be chunked out of a 50k-row reference. ``settings.reference_chunks`` is therefore the
*minimum* number of null replicates; at least ``ceil(20 / (1 - false_alarm_quantile))`` are used
(2000 at 0.99), so the quantile rests on about twenty exceedances. Draws are seeded, so calibration
is reproducible. Sizes are each column's non-null count in the batch, rounded down to two significant
figures so similar batches share a calibration (rounding down errs towards fewer false alarms). The
fit calibrates ``settings.chunk_size`` eagerly; other sizes are calibrated on first use (a few ms per
column) and cached in the profile, which ``to_dict`` keeps. The iid null models sampling noise only:
slow, genuine variation inside the reference period is not treated as normal, so a reference that
itself drifts will make later batches alert.

The multinomial null draws the batch from the reference's bin shares smoothed for the outside bin and for
bins the reference left empty (``tasks.drift.reference._smoothed_shares``). Numeric columns whose reference
holds at most ``NULL_REFERENCE_RATIO`` times the batch's values (``NULL_SMALL_BATCH_RATIO`` times a batch of
at most ``NULL_MAX_SIDE`` values) also get the resampled null (:mod:`tasks.drift.null`, all five methods):
reference/chunk pairs drawn from the reference sample, extended by exponential tails beyond its continuous
ends, and binned as batches are (edges fitted on the simulated reference, the outside bin and empty bins
reached), simulated once at the fit and scaled to other sizes; each threshold is the larger of the two
nulls' (with a reference as small as the chunk, the multinomial null alone let Hellinger alert on 9 % of
stationary heavy-tailed chunks at a nominal 1 %).

Data quality (a failing check blocks retraining in the policy): schema against the reference
(extra columns, missing optional columns, dtype changes: a change of dtype family of a feature fails,
a width/precision change warns), missingness (fails above both ``max_missing_rate`` and what the
reference's own missing rate explains at the batch size; warns when only the latter), out-of-range
numerics, unseen categories, duplicate entity ids, too few rows, all-null features, and, in chunked
profiling, NaN/inf values (counted, then treated as missing). Missing required columns and
incompatible dtypes raise typed errors instead.

Chunked profiling (:func:`profile_chunks`) reads a ``pl.LazyFrame`` (``scan_parquet``/``scan_csv``)
one chunk at a time with polars' streaming engine (:mod:`tasks.data.chunking`). Chunks up to
``PARALLEL_CHUNK_BYTES`` are profiled in parallel, one per core (that many in memory); bigger ones one
at a time with their columns in parallel, so peak memory is the reference profile plus one chunk.
:func:`fit_reference_profile` accepts a LazyFrame too: up to ``READ_AT_ONCE_CELLS`` it is read in one
pass, beyond that one column at a time.

Speed. Sorting each numeric column of each chunk and merging it with the reference sample is most of
the work; both run compiled (:mod:`tasks.drift.kernels`: an LSD radix sort on the float bits and a merge
that walks four parts of the merge path at once, releasing the GIL), the reference's columns are
read, profiled and calibrated in one parallel pass, calibration draws its multinomials bin by bin
(see ``multinomial_draws``) and computes the null statistics compiled, and the continuous columns'
Brownian bridge is simulated in a background thread while the reference is still being read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tasks.core.errors import (
    ConfigError,
    ContractError,
    DtypeError,
    MissingColumnError,
)
from tasks.core.parallel import parallel_map
from tasks.core.settings import ProfilingSettings
from tasks.core.timeutil import time_span
from tasks.data.contract import ModelContract
from tasks.drift.batch_control import control_batch
from tasks.drift.categorical import head_tail_p_value, surprise
from tasks.drift.quality import _widened_range, check_quality, check_schema, far_range, non_finite_statistics
from tasks.drift.reference import (
    CategoricalReference,
    ColumnReference,
    NumericReference,
    ReferenceProfile,
    _category_counts,
    replicates_for,
)
from tasks.drift.results import (
    PRIMARY_METHOD,
    BatchProfile,
    FeatureDrift,
    Histogram,
    QualityIssue,
)
from tasks.drift.statistics import (
    _bin_counts,
    _histogram_counts,
    chi2_p_value,
    chi2_statistic,
    hellinger,
    jensen_shannon,
    jensen_shannon_p_value,
    ks_p_value,
    population_stability_index,
)

if TYPE_CHECKING:
    import numpy as np
    import polars as pl


# --- batch profiling -----------------------------------------------------------------


def numeric_drift(ref: NumericReference, batch_sorted: np.ndarray) -> dict[str, tuple[float, float | None]]:
    """Statistic and p-value of every numeric method; ``batch_sorted`` holds the sorted non-null values."""
    import numpy as np

    from tasks.drift.kernels import ks_wasserstein

    ks, wasserstein = ks_wasserstein(ref.sample, batch_sorted)
    size = batch_sorted.size
    deciles = _bin_counts(batch_sorted, np.asarray(ref.bin_edges)) / size
    reference_histogram, histogram = _histograms(ref, batch_sorted)
    return {
        "ks": (ks, ks_p_value(ks, ref.sample.size, size)),
        "wasserstein": (wasserstein, None),
        "jensen_shannon": (float(jensen_shannon(reference_histogram, histogram)), None),
        "hellinger": (float(hellinger(reference_histogram, histogram)), None),
        "psi": (float(population_stability_index(np.asarray(ref.bin_proportions), deciles)), None),
    }


def _histograms(ref: NumericReference, batch_sorted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(reference, batch) proportions on the reference's histogram, plus the outside bin when the batch uses it."""
    import numpy as np

    counts = _histogram_counts(batch_sorted, ref.histogram_edges)
    reference = np.asarray(ref.histogram_proportions)
    if counts[-1] == 0:
        return reference, counts[:-1] / batch_sorted.size
    return np.append(reference, 0.0), counts / batch_sorted.size


def categorical_drift(
    ref: CategoricalReference, categories: list[str], counts: list[int]
) -> dict[str, tuple[float, float | None]]:
    """Statistic and p-value of every categorical method, over the union of reference and batch categories."""
    import numpy as np

    union = sorted(set(ref.categories) | set(categories))
    position = {c: i for i, c in enumerate(union)}
    reference_counts = np.zeros(len(union))
    batch_counts = np.zeros(len(union))
    reference_counts[[position[c] for c in ref.categories]] = ref.counts
    batch_counts[[position[c] for c in categories]] = counts
    reference_share = reference_counts / reference_counts.sum()
    batch_share = batch_counts / batch_counts.sum()
    statistic, dof = chi2_statistic(reference_counts, batch_counts)
    distance = float(jensen_shannon(reference_share, batch_share))
    n_reference, n_batch = int(reference_counts.sum()), int(batch_counts.sum())
    head_tail = head_tail_p_value(reference_counts, batch_counts)
    return {
        "jensen_shannon": (distance, jensen_shannon_p_value(distance, n_reference, n_batch, len(union))),
        "hellinger": (float(hellinger(reference_share, batch_share)), None),
        "chi2": (float(statistic), chi2_p_value(float(statistic), int(dof))),
        "l_infinity": (float(np.abs(batch_share - reference_share).max()), None),
        "head_tail": (surprise(head_tail), head_tail),
    }


def profile_batch(
    profile: ReferenceProfile,
    batch: pl.DataFrame,
    contract: ModelContract,
    settings: ProfilingSettings,
    *,
    source: str = "batch",
    raw_schema: Mapping[str, Any] | None = None,
    extra_issues: tuple[QualityIssue, ...] = (),
) -> BatchProfile:
    """Data quality and drift of one batch (the contract-validated frame) against the reference profile.

    ``raw_schema`` is the batch's schema as read, before validation cast it (dtype changes are only
    visible there); without it only extra and missing columns are compared with the reference.
    """
    from tasks.drift.multivariate import (
        MULTIVARIATE_FEATURE,
        MULTIVARIATE_KIND,
        MULTIVARIATE_METHOD,
        multivariate_drift,
    )

    _check_compatible(profile, contract, settings)
    _check_columns(batch, contract, source)
    schema_issues = check_schema(
        profile, raw_schema if raw_schema is not None else batch.schema, contract, compare_dtypes=raw_schema is not None
    )
    references = [profile.column(name) for name in contract.feature_names]
    # Counted once: the unseen-category check and the categorical drift statistics both use these.
    category_counts = {
        ref.name: _category_counts(batch.get_column(ref.name), ref.kind)
        for ref in references
        if isinstance(ref, CategoricalReference) and batch.height > 0
    }
    drift: list[FeatureDrift] = []
    histograms: list[Histogram] = []
    # Out-of-range counts come from the drift step's sorted columns: the quality check needs no scan for them.
    out_of_range: dict[str, int] = {}
    if batch.height > 0:
        drifting = list(references)
        if profile.prediction is not None and contract.probability in batch.columns:
            drifting.append(profile.prediction)
        if profile.label is not None and contract.target in batch.columns:
            drifting.append(profile.label)
        rows, found = _drift_rows(
            profile, drifting, batch, category_counts, out_of_range, far_multiple=settings.block_range_multiple
        )
        drift.extend(rows)
        histograms.extend(found)
        if profile.multivariate is not None:
            joint = multivariate_drift(profile.multivariate, batch)
            if joint is not None:
                drift.append(
                    FeatureDrift(
                        feature=MULTIVARIATE_FEATURE,
                        kind=MULTIVARIATE_KIND,
                        method=MULTIVARIATE_METHOD,
                        statistic=joint.statistic,
                        threshold=joint.threshold,
                        alert=joint.alert,
                        p_value=joint.p_value,
                        primary=True,
                        sample_size=joint.rows,
                    )
                )
    quality = check_quality(
        profile,
        batch,
        contract,
        settings,
        extra_issues=schema_issues + extra_issues + non_finite_statistics(drift),
        category_counts=category_counts,
        out_of_range=out_of_range,
    )
    drift = control_batch(drift, contract.feature_names, settings.batch_alpha, settings.batch_correction)
    window_start, window_end = time_span(batch, contract.timestamp)
    return BatchProfile(
        rows=batch.height,
        window_start=window_start,
        window_end=window_end,
        quality=quality,
        drift=tuple(drift),
        features=tuple(contract.feature_names),
        histograms=tuple(histograms),
        batch_control=settings.batch_correction,
        batch_alpha=settings.batch_alpha if settings.batch_correction != "none" else None,
    )


def _drift_rows(
    profile: ReferenceProfile,
    references: list[ColumnReference],
    frame: pl.DataFrame,
    category_counts: Mapping[str, tuple[list[str], list[int]]] | None = None,
    out_of_range: dict[str, int] | None = None,
    *,
    far_multiple: float | None = None,
) -> tuple[list[FeatureDrift], list[Histogram]]:
    """Drift rows and histograms of every column, in the order of ``references``; columns run in parallel threads.

    ``category_counts`` holds the categories already counted (column -> sorted categories, counts).
    ``out_of_range``, when given, receives each numeric feature's count of values outside its widened
    reference range (check_quality's rule), read off the sorted values; with ``far_multiple`` also, under
    ``far:<column>``, the count of values beyond the range by more than that many range widths.
    """
    counted = category_counts or {}

    def column_rows(ref: ColumnReference) -> tuple[list[FeatureDrift], Histogram | None]:
        import numpy as np

        from tasks.drift.kernels import sort_column

        if isinstance(ref, NumericReference):
            # Validated frames hold no NaN (validate_batch rejects them; chunks turn them into nulls first).
            values = sort_column(frame.get_column(ref.name))[0]
            size = int(values.size)
            if out_of_range is not None and ref.kind == "numeric":
                low, high = _widened_range(ref)
                inside = np.searchsorted(values, high, side="right") - np.searchsorted(values, low, side="left")
                out_of_range[ref.name] = size - int(inside)
                if far_multiple is not None:
                    low, high = far_range(ref, far_multiple)
                    inside = np.searchsorted(values, high, side="right") - np.searchsorted(values, low, side="left")
                    out_of_range[f"far:{ref.name}"] = size - int(inside)
            if not size:
                return [], None
            stats = numeric_drift(ref, values)
            histogram = Histogram(
                feature=ref.name,
                kind=ref.kind,
                edges=ref.histogram_edges,
                labels=(),
                reference=(*ref.histogram_proportions, 0.0),
                batch=tuple(float(c) for c in _histogram_counts(values, ref.histogram_edges) / size),
            )
        else:
            categories, counts = counted.get(ref.name) or _category_counts(frame.get_column(ref.name), ref.kind)
            size = int(sum(counts))
            if not size:
                return [], None
            stats = categorical_drift(ref, categories, counts)
            union = sorted(set(ref.categories) | set(categories))
            reference_counts = dict(zip(ref.categories, ref.counts, strict=True))
            batch_counts = dict(zip(categories, counts, strict=True))
            histogram = Histogram(
                feature=ref.name,
                kind=ref.kind,
                edges=(),
                labels=tuple(union),
                reference=tuple(float(reference_counts.get(c, 0) / ref.count) for c in union),
                batch=tuple(float(np.float64(batch_counts.get(c, 0)) / size) for c in union),
            )
        thresholds = profile.thresholds_at(ref.name, size)
        primary = PRIMARY_METHOD[ref.kind]
        rows = [
            FeatureDrift(
                feature=ref.name,
                kind=ref.kind,
                method=method,
                statistic=statistic,
                threshold=thresholds[method],
                alert=statistic > thresholds[method],
                p_value=p_value,
                primary=method == primary,
                sample_size=size,
            )
            for method, (statistic, p_value) in stats.items()
        ]
        return rows, histogram

    results = parallel_map(column_rows, references)
    return [row for rows, _ in results for row in rows], [h for _, h in results if h is not None]


def _check_compatible(profile: ReferenceProfile, contract: ModelContract, settings: ProfilingSettings) -> None:
    if settings.false_alarm_quantile != profile.false_alarm_quantile or replicates_for(settings) != profile.replicates:
        raise ConfigError(
            f"reference profile was calibrated with false_alarm_quantile={profile.false_alarm_quantile} and "
            f"{profile.replicates} replicates, but DRIFTGATE_PROFILING__FALSE_ALARM_QUANTILE="
            f"{settings.false_alarm_quantile} / DRIFTGATE_PROFILING__REFERENCE_CHUNKS={settings.reference_chunks}"
            " ask for another calibration; refit the reference profile"
        )
    kinds = {ref.name: ref.kind for ref in profile.features}
    for spec in contract.features:
        if kinds.get(spec.name) != spec.kind:
            raise ContractError(
                f"feature {spec.name!r} ({spec.kind}) of contract {contract.name!r} is not profiled as such in the "
                f"reference profile of {profile.contract_name!r} (found {kinds.get(spec.name)}); refit the profile"
            )


def _check_columns(batch: pl.DataFrame, contract: ModelContract, source: str) -> None:
    import polars as pl

    schema = batch.schema  # built anew on every access: once per batch, not once per column
    for column in [*contract.feature_names, contract.entity_id]:
        if column not in schema:
            raise MissingColumnError("required column is missing", source=source, column=column)
    for spec in contract.features:
        dtype = schema[spec.name]
        allowed = {
            "numeric": dtype.is_numeric() or dtype in (pl.Boolean, pl.Null),
            "boolean": dtype.is_integer() or dtype in (pl.Boolean, pl.Null),
            "categorical": dtype.is_integer() or dtype in (pl.String, pl.Categorical, pl.Enum, pl.Null),
        }[spec.kind]
        if not allowed:
            raise DtypeError(
                f"{spec.kind} feature has dtype {dtype}; pass the batch through tasks.data.contract.validate_batch",
                source=source,
                column=spec.name,
            )
    for column in (contract.probability, contract.target):
        if column in schema and not (schema[column].is_numeric() or schema[column] in (pl.Boolean, pl.Null)):
            raise DtypeError(f"expected a numeric column, found {schema[column]}", source=source, column=column)
