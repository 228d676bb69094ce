"""Pictures of drift: a features x chunks heat map and reference-vs-batch distribution overlays (PNG, Agg).

The heat map colours each cell by the *threshold-relative* magnitude of the feature's primary
statistic, statistic / calibrated threshold, on a log scale centred on 1 (the alert line), so a KS of
0.02 and a Jensen-Shannon of 0.02 are comparable; alerting cells are outlined and marked. Its input
is the frame :func:`tasks.drift.profiling.profile_chunks` returns, or the monitored batches' drift signals
from the audit store turned into the same shape by :func:`history_frame`.

The overlays draw, for the most drifted features, the reference's and the batch's proportions on the
reference's own bins (numeric: NannyML's Doane histogram plus a bin for values outside the
reference's range; categorical: the union of categories), from :attr:`BatchProfile.histograms`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks.core.errors import DataError

if TYPE_CHECKING:
    import polars as pl

    from tasks.drift.results import BatchProfile, Histogram

MULTIVARIATE_FEATURE = "__multivariate__"
HEATMAP_COLUMNS = ("chunk_index", "chunk_key", "feature", "method", "statistic", "threshold", "alert")
MAX_RATIO = 10.0


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def heatmap_matrix(results: pl.DataFrame, *, max_features: int = 40) -> tuple[list[str], list[str], Any, Any]:
    """(features, chunk keys, ratio matrix, alert matrix) of the primary rows; features most drifted first."""
    import numpy as np
    import polars as pl

    missing = [c for c in HEATMAP_COLUMNS if c not in results.columns]
    if missing:
        raise DataError(f"drift results lack columns {missing} for a heat map", source="drift results")
    # The multivariate row's statistic / threshold sits near 1 by construction (a mean error against a
    # mean-plus-noise threshold), so it would read as "borderline" in every cell: tables carry it.
    rows = results.filter(pl.col("feature").is_not_null() & (pl.col("feature") != MULTIVARIATE_FEATURE))
    if "primary" in rows.columns:
        rows = rows.filter(pl.col("primary"))
    rows = rows.with_columns(
        (pl.col("statistic") / pl.when(pl.col("threshold") > 0).then(pl.col("threshold"))).alias("ratio")
    )
    chunks = rows.select("chunk_index", "chunk_key").unique().sort("chunk_index")
    order = (
        rows.group_by("feature")
        .agg(pl.col("ratio").max().alias("worst"), pl.col("alert").sum().alias("alerts"))
        .sort(["alerts", "worst", "feature"], descending=[True, True, False])
        .head(max_features)
    )
    features = order.get_column("feature").to_list()
    keys = chunks.get_column("chunk_key").to_list()
    position = {index: i for i, index in enumerate(chunks.get_column("chunk_index").to_list())}
    row_of = {feature: i for i, feature in enumerate(features)}
    ratio = np.full((len(features), len(keys)), np.nan)
    alert = np.zeros((len(features), len(keys)), dtype=bool)
    for feature, index, value, flagged in rows.select("feature", "chunk_index", "ratio", "alert").iter_rows():
        if feature in row_of:
            ratio[row_of[feature], position[index]] = np.nan if value is None else value
            alert[row_of[feature], position[index]] = bool(flagged)
    return features, keys, ratio, alert


def drift_heatmap(
    results: pl.DataFrame, path: Path, *, title: str, max_features: int = 40, xlabel: str = "chunk"
) -> Path | None:
    """Features x chunks, coloured by statistic / threshold (log scale, 1 = alert line); None without rows."""
    import numpy as np
    from matplotlib.colors import LogNorm

    features, keys, ratio, alert = heatmap_matrix(results, max_features=max_features)
    if not features or not keys:
        return None
    plt = _pyplot()
    shown = np.clip(np.where(np.isnan(ratio), np.nan, ratio), 1.0 / MAX_RATIO, MAX_RATIO)
    width = min(4.0 + 0.45 * len(keys), 22.0)
    height = min(1.6 + 0.32 * len(features), 16.0)
    fig, ax = plt.subplots(figsize=(width, height))
    image = ax.imshow(
        np.ma.masked_invalid(shown),
        aspect="auto",
        cmap="RdBu_r",
        norm=LogNorm(vmin=1.0 / MAX_RATIO, vmax=MAX_RATIO),
        interpolation="nearest",
    )
    for i, j in zip(*np.nonzero(alert), strict=True):
        ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=1.4))
        ax.text(j, i, "!", ha="center", va="center", fontsize=8, color="black", fontweight="bold")
    ax.set_yticks(range(len(features)), features, fontsize=8)
    step = max(1, len(keys) // 24)
    ax.set_xticks(range(0, len(keys), step), keys[::step], rotation=60, ha="right", fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    bar = fig.colorbar(image, ax=ax, shrink=0.8)
    bar.set_label("statistic / calibrated threshold (log; > 1 alerts)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def most_drifted(profile: BatchProfile, count: int = 4) -> list[str]:
    """Features (and the prediction) with the largest primary statistic / threshold, alerting ones first."""
    ranked = sorted(
        (d for d in profile.drift if d.primary and d.kind not in ("multivariate",) and d.threshold > 0),
        key=lambda d: (not d.alert, -d.statistic / d.threshold, d.feature),
    )
    return [d.feature for d in ranked[:count]]


def distribution_overlays(
    profile: BatchProfile, path: Path, *, title: str, features: Sequence[str] | None = None, count: int = 4
) -> Path | None:
    """Reference vs batch proportions for ``features`` (default: the ``count`` most drifted); None if none."""
    chosen = list(features) if features is not None else most_drifted(profile, count)
    by_feature = {h.feature: h for h in profile.histograms}
    histograms = [by_feature[name] for name in chosen if name in by_feature]
    if not histograms:
        return None
    primary = {d.feature: d for d in profile.drift if d.primary}
    plt = _pyplot()
    fig, axes = plt.subplots(len(histograms), 1, figsize=(7.5, 2.4 * len(histograms)), squeeze=False)
    for ax, histogram in zip(axes[:, 0], histograms, strict=True):
        _overlay(ax, histogram)
        row = primary.get(histogram.feature)
        verdict = ""
        if row is not None:
            verdict = f" — {row.method} {row.statistic:.4g} vs threshold {row.threshold:.4g}"
            verdict += " (drift)" if row.alert else ""
        ax.set_title(f"{histogram.feature}{verdict}", fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _overlay(ax: Any, histogram: Histogram) -> None:
    import numpy as np

    reference = np.asarray(histogram.reference)
    batch = np.asarray(histogram.batch)
    if histogram.edges:
        edges = np.asarray(histogram.edges)
        widths = np.diff(edges)
        # Proportions per bin are drawn as densities so unequal bins are not misread.
        ax.stairs(reference[:-1] / widths, edges, label="reference", color="#1f77b4", fill=True, alpha=0.35)
        ax.stairs(batch[:-1] / widths, edges, label="batch", color="#d62728", linewidth=1.6)
        if batch[-1] > 0:
            ax.text(
                0.01,
                0.92,
                f"{batch[-1]:.1%} of the batch outside the reference range",
                transform=ax.transAxes,
                fontsize=7,
                color="#d62728",
            )
        ax.set_ylabel("density", fontsize=8)
    else:
        positions = np.arange(len(histogram.labels))
        ax.bar(positions - 0.2, reference, width=0.4, label="reference", color="#1f77b4", alpha=0.6)
        ax.bar(positions + 0.2, batch, width=0.4, label="batch", color="#d62728", alpha=0.8)
        ax.set_xticks(positions, histogram.labels, rotation=30, ha="right", fontsize=7)
        ax.set_ylabel("share", fontsize=8)


def history_frame(signals: Sequence[dict[str, Any]], profile: BatchProfile, *, last: int = 30) -> pl.DataFrame:
    """The audit store's drift signals (``AuditStore.signals(model, kind="drift")``) as heat-map rows.

    Each monitored batch is a chunk (oldest first, the newest ``last``); the primary method of each
    feature is taken from ``profile`` (the batch just profiled).
    """
    import polars as pl

    primary = {d.feature: d.method for d in profile.drift if d.primary}
    order: dict[str, int] = {}
    rows = []
    for signal in signals:
        batch_id = str(signal.get("batch_id"))
        feature = str(signal.get("name"))
        if primary.get(feature) != signal.get("method"):
            continue
        index = order.setdefault(batch_id, len(order))
        rows.append(
            {
                "chunk_index": index,
                "chunk_key": batch_id,
                "feature": feature,
                "method": signal.get("method"),
                "statistic": signal.get("value"),
                "threshold": signal.get("threshold"),
                "alert": bool(signal.get("alert")),
                "primary": True,
            }
        )
    schema = {
        "chunk_index": pl.Int64,
        "chunk_key": pl.String,
        "feature": pl.String,
        "method": pl.String,
        "statistic": pl.Float64,
        "threshold": pl.Float64,
        "alert": pl.Boolean,
        "primary": pl.Boolean,
    }
    frame = pl.DataFrame(rows, schema=schema)
    keep = max(len(order) - last, 0)
    return frame.filter(pl.col("chunk_index") >= keep)
