"""Scoring batches with registry models, with the version that made each prediction.

Models are scored by LightGBM's C library loaded directly (:mod:`tasks.training.native`: LightGBM's own
predictions, without the 3 s import of its Python package); where that library cannot be loaded, by the
Python package, with a log line saying why.
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
    """Positive-class probabilities of a validated frame: LightGBM's C library, or its Python package where the
    library cannot be loaded (same checks and errors: missing columns, a feature count that disagrees)."""
    import numpy as np

    from tasks.core.errors import ContractError, MissingColumnError
    from tasks.data.contract import feature_matrix
    from tasks.training.native import NativeUnavailable, load_native

    try:
        booster = load_native(model_text)
    except NativeUnavailable as exc:
        log.info("scoring with the lightgbm package: %s", exc)
        from tasks.training.train import predict_proba

        return predict_proba(model_text, frame, contract, num_threads=num_threads)
    for column in contract.feature_names:
        if column not in frame.columns:
            raise MissingColumnError("scoring needs every contract feature", source="scoring frame", column=column)
    if booster.num_features != len(contract.features):
        raise ContractError(
            f"model sha256:{booster.digest[:12]} has {booster.num_features} features, "
            f"contract {contract.name!r} has {len(contract.features)}"
        )
    if frame.height == 0:
        return np.empty(0, dtype=np.float64)
    return booster.predict(feature_matrix(frame, contract), num_threads=num_threads)


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
