"""Scoring batches with registry models, with the version that made each prediction.

Models the text evaluator mirrors (:mod:`tasks.training.tree_text`: binary LightGBM models, equal to
``Booster.predict`` to 1e-12) are scored without importing LightGBM; any other model is scored by LightGBM,
with a log line saying why.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

    from tasks.data.contract import ModelContract

VERSION_COLUMN = "model_version"
log = logging.getLogger(__name__)


def model_probabilities(
    model_text: str, frame: pl.DataFrame, contract: ModelContract, *, num_threads: int = 1
) -> np.ndarray:
    """Positive-class probabilities of a validated frame: the text evaluator when it mirrors the model,
    LightGBM otherwise (same checks and errors: missing columns, a feature count that disagrees)."""
    import numpy as np

    from tasks.core.errors import ContractError, MissingColumnError
    from tasks.data.contract import feature_matrix
    from tasks.training.tree_text import UnsupportedModel, parse_model_text

    try:
        ensemble = parse_model_text(model_text)
    except UnsupportedModel as exc:
        log.info("scoring with LightGBM: the text evaluator does not mirror this model (%s)", exc)
        from tasks.training.train import predict_proba

        return predict_proba(model_text, frame, contract, num_threads=num_threads)
    for column in contract.feature_names:
        if column not in frame.columns:
            raise MissingColumnError("scoring needs every contract feature", source="scoring frame", column=column)
    if ensemble.num_features != len(contract.features):
        raise ContractError(
            f"model sha256:{ensemble.digest[:12]} has {ensemble.num_features} features, "
            f"contract {contract.name!r} has {len(contract.features)}"
        )
    if frame.height == 0:
        return np.empty(0, dtype=np.float64)
    return ensemble.predict_proba(feature_matrix(frame, contract), num_threads=num_threads)


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

    proba = model_probabilities(model_text, frame, contract, num_threads=num_threads)
    return frame.with_columns(
        pl.Series(contract.probability, proba, dtype=pl.Float64),
        pl.Series(contract.prediction, (proba >= threshold).astype("int8")),
        pl.lit(version).alias(VERSION_COLUMN),
    )
