"""Multivariate drift: a correlation flip that leaves every marginal unchanged is caught; calm chunks stay calm."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from tasks.core.errors import DataError, MissingColumnError
from tasks.core.settings import ProfilingSettings
from tasks.data.chunking import Chunking
from tasks.data.contract import FeatureSpec, ModelContract
from tasks.drift.chunked import profile_chunks
from tasks.drift.multivariate import (
    MULTIVARIATE_FEATURE,
    PcaReference,
    fit_pca_reference,
    multivariate_drift,
    reconstruction_errors,
)
from tasks.drift.reference import fit_reference_profile

SETTINGS = ProfilingSettings(chunk_size=1_000)
CONTRACT = ModelContract(
    name="correlated",
    features=[FeatureSpec(name=n, kind="numeric") for n in ("x1", "x2", "x3", "x4")]
    + [FeatureSpec(name="tier", kind="categorical"), FeatureSpec(name="flag", kind="boolean")],
    target="y",
    entity_id="id",
)


def correlated(rows: int, rho: float, seed: int, first_id: int = 0) -> pl.DataFrame:
    """x1, x2 standard normal with correlation rho; x3, x4, tier, flag independent of them."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=rows)
    x2 = rho * x1 + np.sqrt(1 - rho**2) * rng.normal(size=rows)
    return pl.DataFrame(
        {
            "id": np.arange(first_id, first_id + rows),
            "x1": x1,
            "x2": x2,
            "x3": rng.exponential(1.0, rows),
            "x4": rng.uniform(-1, 1, rows),
            "tier": rng.choice(["gold", "silver", "bronze"], rows, p=[0.2, 0.3, 0.5]),
            "flag": rng.random(rows) < 0.4,
        }
    )


@pytest.fixture(scope="module")
def reference() -> pl.DataFrame:
    return correlated(20_000, 0.8, seed=1)


@pytest.fixture(scope="module")
def pca(reference: pl.DataFrame) -> PcaReference:
    return fit_pca_reference(reference, CONTRACT, quantile=0.99)


def test_correlation_flip_is_caught_in_the_first_chunk_while_no_marginal_alerts(reference: pl.DataFrame) -> None:
    # Three calm chunks, then x1 and x2 move against each other: both still N(0, 1).
    stream = pl.concat(
        [correlated(3_000, 0.8, seed=2, first_id=10**6), correlated(3_000, -0.8, seed=3, first_id=2 * 10**6)]
    )
    profile = fit_reference_profile(reference, CONTRACT, SETTINGS)
    results = profile_chunks(profile, stream.lazy(), CONTRACT, SETTINGS, Chunking.by_size(1_000))

    joint = results.filter(pl.col("feature") == MULTIVARIATE_FEATURE).sort("chunk_index")
    assert joint.get_column("alert").to_list() == [False, False, False, True, True, True]
    ratio = (joint.get_column("statistic") / joint.get_column("threshold")).to_list()
    assert min(ratio[3:]) > 1.2  # far beyond the threshold, not a borderline call
    univariate = results.filter(pl.col("primary") & (pl.col("feature") != MULTIVARIATE_FEATURE))
    assert univariate.filter(pl.col("feature").is_in(["x1", "x2"])).get_column("alert").sum() == 0
    assert univariate.get_column("alert").sum() <= 1  # 36 calm marginal tests at a 1% false-alarm rate


@pytest.mark.slow
def test_stationary_chunks_rarely_alert(pca: PcaReference) -> None:
    rng_seeds = range(100, 300)
    alerts = [multivariate_drift(pca, correlated(1_000, 0.8, seed=s)) for s in rng_seeds]
    rate = sum(a.alert for a in alerts if a is not None) / len(alerts)
    print(f"\nmultivariate false-alarm rate over {len(alerts)} calm chunks of 1000 rows: {rate:.1%}")
    assert rate < 0.05
    # Large chunks as well: the baseline is measured on held-out rows, so there is no in-sample optimism.
    big = [multivariate_drift(pca, correlated(20_000, 0.8, seed=s)) for s in range(400, 420)]
    assert sum(a.alert for a in big if a is not None) <= 1


def test_fit_keeps_components_for_the_stated_variance_and_round_trips(pca: PcaReference) -> None:
    assert pca.explained_variance > 0.65
    assert pca.components.shape[1] == 6
    np.testing.assert_allclose(pca.components @ pca.components.T, np.eye(pca.components.shape[0]), atol=1e-10)
    assert pca.rows == 10_000  # the held-out half
    assert pca.threshold_at(1_000) > pca.threshold_at(100_000) > pca.error_mean

    restored = PcaReference.from_dict(json.loads(json.dumps(pca.to_dict())))
    calm = correlated(500, 0.8, seed=9)
    np.testing.assert_allclose(reconstruction_errors(restored, calm), reconstruction_errors(pca, calm))
    # Unseen categories encode as 0, missing values are imputed: both still give finite errors.
    odd = calm.with_columns(
        pl.when(pl.col("id") < 5).then(pl.lit("platinum")).otherwise("tier").alias("tier"),
        pl.when(pl.col("id") < 5).then(None).otherwise("x3").alias("x3"),
    )
    assert np.isfinite(reconstruction_errors(pca, odd)).all()
    assert multivariate_drift(pca, calm.head(0)) is None


def test_errors_name_what_is_wrong(reference: pl.DataFrame, pca: PcaReference) -> None:
    with pytest.raises(MissingColumnError, match="x2"):
        reconstruction_errors(pca, reference.drop("x2"))
    with pytest.raises(DataError, match="at least"):
        fit_pca_reference(reference.head(10), CONTRACT, quantile=0.99)
    with pytest.raises(DataError, match="tier"):
        fit_pca_reference(reference.with_columns(pl.lit(None, pl.String).alias("tier")), CONTRACT, quantile=0.99)
