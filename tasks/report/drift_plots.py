"""Pictures of drift: each feature's statistic against its threshold, a features x chunks heat map and
reference-vs-batch distribution overlays, drawn as SVG (:mod:`tasks.report.svg`: no matplotlib on the
monitor's path; hovering a bar or cell in a browser shows its numbers).

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

import math
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks.core.errors import DataError

if TYPE_CHECKING:
    import polars as pl

    from tasks.drift.results import BatchProfile, FeatureDrift, Histogram

MULTIVARIATE_FEATURE = "__multivariate__"
HEATMAP_COLUMNS = ("chunk_index", "chunk_key", "feature", "method", "statistic", "threshold", "alert")
MAX_RATIO = 10.0


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
    from tasks.report import svg

    features, keys, ratio, alert = heatmap_matrix(results, max_features=max_features)
    if not features or not keys:
        return None
    step = max(1, len(keys) // 24)
    shown_keys = keys[::step]
    left = max(svg.text_width(f, 10) for f in features) + 14
    cell_w = max(10.0, min(28.0, 900.0 / len(keys)))
    cell_h = 18.0
    top = 40.0
    grid_w, grid_h = cell_w * len(keys), cell_h * len(features)
    below = max(svg.text_width(k, 9) for k in shown_keys) * 0.87 + 34
    width = max(left + grid_w + 110, left + svg.text_width(title, 13) + 20)
    canvas = svg.Canvas(width, top + max(grid_h, 120.0) + below)
    canvas.text(left, 22, title, size=13, bold=True)
    for i, feature in enumerate(features):
        y = top + i * cell_h
        canvas.text(left - 6, y + cell_h * 0.7, feature, size=10, anchor="end")
        for j, key in enumerate(keys):
            value = float(ratio[i, j])
            position = math.log10(value) / math.log10(MAX_RATIO) if value > 0 else math.nan
            tip = f"{feature} @ {key}: statistic / threshold " + (f"{value:.3g}" if math.isfinite(value) else "n/a")
            tip += " (alert)" if alert[i, j] else ""
            x = left + j * cell_w
            canvas.rect(x, y, cell_w, cell_h, fill=svg.diverging(position), stroke="white", stroke_width=0.5, tip=tip)
            if alert[i, j]:
                canvas.rect(x + 0.7, y + 0.7, cell_w - 1.4, cell_h - 1.4, stroke=svg.INK, stroke_width=1.4)
                canvas.text(x + cell_w / 2, y + cell_h * 0.72, "!", size=10, anchor="middle", bold=True)
    for j in range(0, len(keys), step):
        x, y = left + (j + 0.5) * cell_w, top + grid_h + 10
        canvas.text(x, y, keys[j], size=9, anchor="end", rotate=-60)
    canvas.text(left + grid_w / 2, top + max(grid_h, 120.0) + below - 6, xlabel, size=11, anchor="middle")
    _colour_bar(canvas, left + grid_w + 18, top, max(grid_h, 120.0))
    return canvas.save(path)


def _colour_bar(canvas: Any, x: float, top: float, height: float) -> None:
    """The heat map's scale: statistic / threshold from 1/MAX_RATIO (blue) through 1 (white) to MAX_RATIO (red)."""
    from tasks.report import svg

    steps = 40
    for k in range(steps):
        position = 1.0 - 2.0 * (k + 0.5) / steps
        canvas.rect(x, top + k * height / steps, 12, height / steps + 0.5, fill=svg.diverging(position))
    for value in (MAX_RATIO, math.sqrt(MAX_RATIO), 1.0, 1.0 / math.sqrt(MAX_RATIO), 1.0 / MAX_RATIO):
        y = top + (1.0 - math.log10(value) / math.log10(MAX_RATIO)) / 2.0 * height
        canvas.line(x + 12, y, x + 16, y)
        canvas.text(x + 19, y + 3.5, svg.label(value), size=9)
    caption = "statistic / threshold (log; > 1 alerts)"
    canvas.text(x + 56, top + height / 2, caption, size=9, anchor="middle", rotate=90)


def drift_bars(profile: BatchProfile, path: Path, *, title: str) -> Path:
    """Each feature's primary statistic relative to its calibrated threshold, as bars (1.0 = alert line)."""
    from tasks.report import svg

    # The deciding method per feature, so colours agree with drifted_features.
    rows = [d for d in profile.drift if d.primary]
    names = [d.feature for d in rows]
    ratios = [d.statistic / d.threshold if d.threshold > 0 else 0.0 for d in rows]
    left = max((svg.text_width(n, 10) for n in names), default=40.0) + 14
    width, bar_h, top = 460.0, 20.0, 40.0
    finite = [r for r in ratios if math.isfinite(r)]
    axis = svg.Axis(0.0, max([1.2, *finite]) * 1.08, left, left + width)
    canvas = svg.Canvas(max(left + width + 30, left + svg.text_width(title, 13) + 20), top + bar_h * len(rows) + 50)
    canvas.text(left, 22, title, size=13, bold=True)
    bottom = top + bar_h * len(rows)
    for tick in svg.nice_ticks(axis.low, axis.high, 5):
        canvas.line(axis(tick), top, axis(tick), bottom, stroke=svg.GRID)
        canvas.text(axis(tick), bottom + 14, svg.label(tick), size=9, anchor="middle")
    for i, (d, ratio) in enumerate(zip(rows, ratios, strict=True)):
        y = top + i * bar_h
        canvas.text(left - 6, y + bar_h * 0.68, d.feature, size=10, anchor="end")
        tip = f"{d.feature}: {d.method} {d.statistic:.4g} vs threshold {d.threshold:.4g}{_verdict(d)}"
        shown = ratio if math.isfinite(ratio) else axis.high
        # Red: drift the policy acts on; orange: the test's own alert, not surviving the batch-level control.
        fill = svg.RED if d.alert and d.drifts else svg.ORANGE if d.alert else svg.BLUE
        canvas.rect(left, y + 3, axis(shown) - left, bar_h - 6, fill=fill, tip=tip)
    canvas.line(axis(1.0), top - 4, axis(1.0), bottom, stroke=svg.INK, dash="5 3")
    canvas.text(
        left + width / 2, bottom + 34, "statistic / calibrated threshold (> 1 = drift)", size=11, anchor="middle"
    )
    return canvas.save(path)


def _verdict(row: FeatureDrift) -> str:
    if not row.alert:
        return ""
    return " (drift)" if row.drifts else " (alert, not surviving the batch-level control)"


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
    from tasks.report import svg

    chosen = list(features) if features is not None else most_drifted(profile, count)
    by_feature = {h.feature: h for h in profile.histograms}
    histograms = [by_feature[name] for name in chosen if name in by_feature]
    if not histograms:
        return None
    primary = {d.feature: d for d in profile.drift if d.primary}
    panel_h, top = 210.0, 62.0
    canvas = svg.Canvas(720, top + panel_h * len(histograms))
    canvas.text(60, 22, title, size=13, bold=True)
    canvas.rect(470, 12, 12, 12, fill=svg.BLUE, opacity=0.4)
    canvas.text(487, 22, "reference", size=10)
    canvas.rect(560, 12, 12, 12, fill="none", stroke=svg.RED, stroke_width=1.6)
    canvas.text(577, 22, "batch", size=10)
    for k, histogram in enumerate(histograms):
        row = primary.get(histogram.feature)
        verdict = ""
        if row is not None:
            verdict = f" — {row.method} {row.statistic:.4g} vs threshold {row.threshold:.4g}"
            verdict += _verdict(row)
        y0 = top + k * panel_h
        canvas.text(60, y0, f"{histogram.feature}{verdict}", size=11, bold=bool(row and row.alert))
        _overlay(canvas, histogram, left=60.0, right=700.0, top=y0 + 12, bottom=y0 + panel_h - 62)
    return canvas.save(path)


def _overlay(canvas: Any, histogram: Histogram, *, left: float, right: float, top: float, bottom: float) -> None:
    from tasks.report import svg

    reference = [float(v) for v in histogram.reference]
    batch = [float(v) for v in histogram.batch]
    if histogram.edges:
        edges = [float(e) for e in histogram.edges]
        widths = [b - a for a, b in pairwise(edges)]
        # Proportions per bin are drawn as densities so unequal bins are not misread.
        ref_density = [p / w if w > 0 else 0.0 for p, w in zip(reference, widths, strict=False)]
        batch_density = [p / w if w > 0 else 0.0 for p, w in zip(batch, widths, strict=False)]
        x = (
            svg.Axis(edges[0], edges[-1], left, right)
            if edges[-1] > edges[0]
            else svg.Axis.covering(edges, left, right)
        )
        y = svg.Axis(0.0, max([*ref_density, *batch_density, 1e-12]) * 1.1, bottom, top)
        _y_grid(canvas, y, left, right, "density")
        for a, b, value, share in zip(edges, edges[1:], ref_density, reference, strict=False):
            tip = f"reference: {share:.2%} in [{a:.4g}, {b:.4g}]"
            canvas.rect(x(a), y(value), x(b) - x(a), bottom - y(value), fill=svg.BLUE, opacity=0.35, tip=tip)
        stairs = [(x(edges[0]), bottom)]
        for a, b, value in zip(edges, edges[1:], batch_density, strict=False):
            stairs += [(x(a), y(value)), (x(b), y(value))]
        canvas.polyline([*stairs, (x(edges[-1]), bottom)], stroke=svg.RED, width=1.6)
        for tick in svg.nice_ticks(edges[0], edges[-1], 6):
            canvas.text(x(tick), bottom + 14, svg.label(tick), size=9, anchor="middle")
        if len(batch) > len(widths) and batch[-1] > 0:
            canvas.text(
                left + 6, top + 12, f"{batch[-1]:.1%} of the batch outside the reference range", size=9, fill=svg.RED
            )
        return
    labels = list(histogram.labels)
    x = svg.Axis(-0.6, len(labels) - 0.4, left, right)
    y = svg.Axis(0.0, max([*reference, *batch, 1e-12]) * 1.1, bottom, top)
    _y_grid(canvas, y, left, right, "share")
    slot = (right - left) / max(len(labels), 1)
    bar = min(slot * 0.4, 30.0)
    for i, name in enumerate(labels):
        centre = x(float(i))
        canvas.rect(
            centre - bar,
            y(reference[i]),
            bar,
            bottom - y(reference[i]),
            fill=svg.BLUE,
            opacity=0.6,
            tip=f"{name}: reference {reference[i]:.2%}",
        )
        canvas.rect(
            centre,
            y(batch[i]),
            bar,
            bottom - y(batch[i]),
            fill=svg.RED,
            opacity=0.8,
            tip=f"{name}: batch {batch[i]:.2%}",
        )
        canvas.text(centre, bottom + 12, name, size=9, anchor="end", rotate=-30)


def _y_grid(canvas: Any, y: Any, left: float, right: float, name: str) -> None:
    from tasks.report import svg

    for tick in svg.nice_ticks(y.low, y.high, 4):
        canvas.line(left, y(tick), right, y(tick), stroke=svg.GRID)
        canvas.text(left - 4, y(tick) + 3, svg.label(tick), size=9, anchor="end")
    canvas.line(left, y.start, right, y.start, stroke=svg.INK, width=0.8)
    canvas.text(left - 44, (y.start + y.end) / 2, name, size=9, anchor="middle", rotate=-90)


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
