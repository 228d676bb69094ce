"""Scoring batches with registry models, with the version that made each prediction."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

    from tasks.data.contract import ModelContract

VERSION_COLUMN = "model_version"


def score_frame(
    frame: pl.DataFrame,
    model_text: str,
    contract: ModelContract,
    *,
    version: str,
    num_threads: int = 1,
    threshold: float,
) -> pl.DataFrame:
    """Add probability, prediction (probability >= ``threshold``, gate.decision_threshold) and the scoring
    version to a validated frame."""
    import polars as pl

    from tasks.training.train import predict_proba

    proba = predict_proba(model_text, frame, contract, num_threads=num_threads)
    return frame.with_columns(
        pl.Series(contract.probability, proba, dtype=pl.Float64),
        pl.Series(contract.prediction, (proba >= threshold).astype("int8")),
        pl.lit(version).alias(VERSION_COLUMN),
    )
