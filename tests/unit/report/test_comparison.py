"""Champion vs candidate beyond the gate: calibration (Brier, ECE, reliability bins) measured right on calibrated
and overconfident scores, confusion counts at the threshold, importance shares, and the SVG diagram."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest

from tasks.gate.comparison import calibration, compare_models
from tasks.report.comparison import comparison_markdown, reliability_chart


def calibrated(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.beta(2, 3, rows)
    return (rng.random(rows) < p).astype(int), p


def test_calibrated_scores_have_a_small_ece_and_overconfident_ones_a_large_one() -> None:
    y, p = calibrated(50_000, 1)
    good = calibration(y, p, 0.5)
    logit = np.log(p / (1 - p))
    bad = calibration(y, 1 / (1 + np.exp(-3 * logit)), 0.5)  # same ranking, three times too sure
    assert good.ece < 0.01 < 0.05 < bad.ece
    assert good.brier < bad.brier
    assert good.brier == pytest.approx(float(np.mean((p - y) ** 2)))
    assert sum(b.rows for b in good.bins) == 50_000
    assert all(abs(b.mean_predicted - b.observed_rate) < 0.03 for b in good.bins if b.rows > 500)


def test_confusion_counts_follow_the_threshold() -> None:
    y = np.array([1, 1, 0, 0, 1, 0])
    p = np.array([0.9, 0.3, 0.6, 0.1, 0.5, 0.5])
    c = calibration(y, p, 0.5)
    assert (c.true_positives, c.false_positives, c.false_negatives, c.true_negatives) == (2, 2, 1, 1)
    assert c.precision == 0.5 and c.recall == pytest.approx(2 / 3)
    assert calibration(y, p, 0.3).false_negatives == 0


def test_importance_is_compared_as_shares_largest_change_first(tmp_path: Path) -> None:
    y, p = calibrated(2_000, 2)
    comparison = compare_models(
        y,
        p,
        np.clip(p + 0.1, 0, 1),
        threshold=0.5,
        candidate_importance={"a": 30.0, "b": 60.0, "c": 10.0},
        champion_importance={"a": 600.0, "b": 300.0, "d": 100.0},  # a bigger model: shares, not gains
    )
    first = comparison.importance[0]
    assert first.feature == "a" and first.change == pytest.approx(0.3 - 0.6)
    assert {s.feature for s in comparison.importance} == {"a", "b", "c", "d"}
    assert sum(s.candidate_share for s in comparison.importance) == pytest.approx(1.0)
    chart = reliability_chart(comparison, tmp_path / "v1-calibration.svg", title="v1 vs v0")
    root = ElementTree.parse(chart).getroot()
    tips = [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}title")]
    assert any(t.startswith("champion,") for t in tips) and any(t.startswith("candidate,") for t in tips)
    text = "\n".join(comparison_markdown(comparison, chart))
    assert "| champion |" in text and "](v1-calibration.svg)" in text and "| a | 60.0% | 30.0% | -30.0% |" in text


def test_without_a_champion_only_the_candidate_is_described() -> None:
    y, p = calibrated(500, 3)
    comparison = compare_models(y, p, None, threshold=0.5, candidate_importance={"a": 1.0}, champion_importance=None)
    assert comparison.champion is None and comparison.importance[0].change is None
    text = "\n".join(comparison_markdown(comparison))
    assert "| champion |" not in text and "| a | 100.0% |" in text
