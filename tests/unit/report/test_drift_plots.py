"""Drift bars, heat map and distribution overlays: the right cells, the right features, well-formed SVG files."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import polars as pl
import pytest

from tasks.core.errors import DataError
from tasks.core.settings import ProfilingSettings
from tasks.data.chunking import Chunking
from tasks.data.contract import FeatureSpec, ModelContract
from tasks.drift.chunked import iter_chunk_profiles, profile_chunks
from tasks.drift.reference import fit_reference_profile
from tasks.report.drift_plots import (
    distribution_overlays,
    drift_bars,
    drift_heatmap,
    heatmap_matrix,
    history_frame,
    most_drifted,
)

SETTINGS = ProfilingSettings(chunk_size=1_000)
CONTRACT = ModelContract(
    name="plots",
    features=[FeatureSpec(name=n, kind="numeric") for n in ("a", "b", "c")]
    + [FeatureSpec(name="colour", kind="categorical")],
    target="y",
    entity_id="id",
)


def data(rows: int, seed: int, shift: float = 0.0, first_id: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    late = np.arange(rows) >= rows // 2
    return pl.DataFrame(
        {
            "id": np.arange(first_id, first_id + rows),
            "a": rng.normal(size=rows) + shift * late,
            "b": rng.lognormal(size=rows),
            "c": rng.uniform(size=rows),
            "colour": np.where(late & (rng.random(rows) < shift / 2), "blue", rng.choice(["red", "green"], rows)),
        }
    )


@pytest.fixture(scope="module")
def results() -> pl.DataFrame:
    profile = fit_reference_profile(data(10_000, 1), CONTRACT, SETTINGS)
    return profile_chunks(profile, data(6_000, 2, shift=0.5, first_id=10**6), CONTRACT, SETTINGS, Chunking.by_number(6))


def test_heatmap_matrix_holds_primary_ratios_with_drifted_features_first(results: pl.DataFrame) -> None:
    features, keys, ratio, alert = heatmap_matrix(results)
    assert keys == ["[0:999]", "[1000:1999]", "[2000:2999]", "[3000:3999]", "[4000:4999]", "[5000:5999]"]
    assert set(features[:2]) == {"a", "colour"} and set(features) == {"a", "b", "c", "colour"}
    row = features.index("a")
    ks = results.filter((pl.col("feature") == "a") & (pl.col("method") == "ks")).sort("chunk_index")
    np.testing.assert_allclose(ratio[row], (ks["statistic"] / ks["threshold"]).to_numpy())
    assert alert[row].tolist() == [False, False, False, True, True, True]
    assert not alert[2:].any()


def _svg(path: Path | None) -> ElementTree.Element:
    """The chart parsed as XML: a well-formed SVG document with its size set (a browser's natural size)."""
    assert path is not None and path.suffix == ".svg"
    root = ElementTree.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg" and float(root.get("width", 0)) > 0
    return root


def _tips(root: ElementTree.Element) -> list[str]:
    return [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}title")]


def test_heatmap_and_overlays_are_svgs_with_their_numbers_on_hover(tmp_path: Path, results: pl.DataFrame) -> None:
    heat = _svg(drift_heatmap(results, tmp_path / "heat.svg", title="heat <&> map"))
    tips = _tips(heat)
    assert sum("(alert)" in tip for tip in tips) == int(heatmap_matrix(results)[3].sum()) > 0
    assert any(tip.startswith("a @ ") for tip in tips)

    profile = fit_reference_profile(data(10_000, 1), CONTRACT, SETTINGS)
    chunks = list(iter_chunk_profiles(profile, data(2_000, 3, shift=0.5), CONTRACT, SETTINGS, Chunking.by_number(1)))
    last = chunks[-1][1]
    assert set(most_drifted(last, 2)) == {"a", "colour"}
    histogram = next(h for h in last.histograms if h.feature == "a")
    assert sum(histogram.batch) == pytest.approx(1.0) and sum(histogram.reference) == pytest.approx(1.0)
    assert len(histogram.reference) == len(histogram.edges)  # bins plus the "outside the reference" bin
    colours = next(h for h in last.histograms if h.feature == "colour")
    assert colours.labels == ("blue", "green", "red") and colours.reference[0] == 0.0
    overlay = _svg(distribution_overlays(last, tmp_path / "over.svg", title="overlay"))
    assert any(tip.startswith("blue: batch") for tip in _tips(overlay))
    assert distribution_overlays(last, tmp_path / "none.svg", title="x", features=["nope"]) is None
    bars = _svg(drift_bars(last, tmp_path / "bars.svg", title="bars"))
    assert {tip.split(":")[0] for tip in _tips(bars)} == {d.feature for d in last.drift if d.primary}


def test_history_frame_turns_audit_signals_into_heatmap_rows(results: pl.DataFrame) -> None:
    profile = fit_reference_profile(data(10_000, 1), CONTRACT, SETTINGS)
    batch = next(iter_chunk_profiles(profile, data(1_000, 4), CONTRACT, SETTINGS, Chunking.by_number(1)))[1]
    signals = [
        {
            "batch_id": f"day-{day}",
            "name": d.feature,
            "method": d.method,
            "value": d.statistic * (1 + day),
            "threshold": d.threshold,
            "alert": d.statistic * (1 + day) > d.threshold,
            "window_start": datetime(2025, 1, day + 1),
        }
        for day in range(3)
        for d in batch.drift
    ]
    frame = history_frame(signals, batch, last=2)
    assert frame.get_column("chunk_key").unique(maintain_order=True).to_list() == ["day-1", "day-2"]
    # The primary method of each feature only (and the multivariate row, which the heat map leaves out).
    assert frame.filter(pl.col("chunk_key") == "day-1").height == 5
    # Categorical features' primary is head_tail (tasks/drift/categorical.py).
    assert set(frame.get_column("method")) == {"ks", "head_tail", "pca_reconstruction"}
    assert len(heatmap_matrix(frame)[0]) == 4
    with pytest.raises(DataError, match="lack columns"):
        heatmap_matrix(frame.drop("threshold"))
