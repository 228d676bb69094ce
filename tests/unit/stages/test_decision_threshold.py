"""One decision threshold: gate.decision_threshold is what scoring, the canary and estimation predict with."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from devkit.promotion_home import MODEL, good_and_bad_models, make_home
from tasks.resources.workspace import open_workspace
from tasks.stages import canary, monitoring, promotion

THRESHOLD = 0.3


def _predicted_at(frame: pl.DataFrame, threshold: float) -> bool:
    proba = frame.get_column("y_pred_proba").to_numpy()
    return bool(np.array_equal(frame.get_column("y_pred").to_numpy(), (proba >= threshold).astype(np.int8)))


def test_scoring_canary_and_estimation_use_the_configured_threshold(tmp_path: Path) -> None:
    home = make_home(tmp_path / "home", emit_events=False, canary_share=0.5, gate={"decision_threshold": THRESHOLD})
    texts = good_and_bad_models()
    home.register(texts["good"])
    home.register(texts["good2"])
    batch, labels = home.batch("day-1", 2000, seed=31, first_id=3_000_000)
    ws = open_workspace(home.settings)
    try:
        ws.registry.promote(MODEL, "v0", actor="test", reason="champion", expected_production=None)
        # Monitoring scores a batch that arrives without the model's outputs.
        ctx = monitoring.prepare_context(ws)
        loaded = monitoring.load_batch(ws, ctx, str(batch), None)
        assert _predicted_at(loaded.frame, THRESHOLD) and not _predicted_at(loaded.frame, 0.5)
        # Estimation derives its predictions at the same threshold (CBPE's reference and every estimate).
        assert ctx.estimator.threshold == THRESHOLD
        labelled = loaded.frame.drop("y_pred").join(pl.read_parquet(labels), on="id")
        from tasks.performance.estimation import realized_performance

        at_setting = realized_performance(labelled, ws.contract, "accuracy", threshold=THRESHOLD).value
        assert at_setting != realized_performance(labelled, ws.contract, "accuracy", threshold=0.5).value
        # The canary's routed scoring, production and canary rows alike.
        promotion.stage(ws, "v1", actor="test", reason="candidate", evidence="gate-v1.md")
        promotion.start_canary(ws, "v1", actor="test", reason="candidate", evidence="gate-v1.md")
        routed = pl.read_parquet(canary.score_file(ws, str(batch)).path)
        assert set(routed.get_column("model_version").unique()) == {"v0", "v1"}
        assert _predicted_at(routed, THRESHOLD) and not _predicted_at(routed, 0.5)
    finally:
        ws.close()
