"""driftgate's drift values against NannyML 0.13 on the same data and the same chunks.

Univariate: every method NannyML has (KS, Wasserstein, Jensen-Shannon, Hellinger; chi2, JS, L-infinity,
Hellinger) equals NannyML's exact mode to 1e-9; NannyML's default bins KS and Wasserstein for
references of 10,000 rows or more, and the test bounds that difference. Multivariate: the PCA
reconstruction error equals DataReconstructionDriftCalculator fitted on the same reference rows.
Chunking: keys, boundaries and sizes equal NannyML's chunkers.
"""

from __future__ import annotations

import os
import warnings
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pytest

from tasks.core.settings import ProfilingSettings
from tasks.core.timeutil import utc
from tasks.data.chunking import Chunking, split
from tasks.data.contract import FeatureSpec, ModelContract
from tasks.drift.chunked import profile_chunks
from tasks.drift.multivariate import MULTIVARIATE_FEATURE
from tasks.drift.reference import fit_reference_profile
from tasks.drift.results import NANNYML_METHODS

NUMERIC = ["x_normal", "x_lognormal", "x_count"]
CATEGORICAL = ["colour", "size"]
CHUNK = 3_000
SETTINGS = ProfilingSettings(chunk_size=CHUNK)
CONTINUOUS_METHODS = ["kolmogorov_smirnov", "wasserstein", "jensen_shannon", "hellinger"]
CATEGORICAL_METHODS = ["chi2", "jensen_shannon", "l_infinity", "hellinger"]


@pytest.fixture(scope="module")
def nml() -> Any:
    os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"
    import nannyml

    return nannyml


def frame(rows: int, seed: int, *, shifted: bool) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    late = np.arange(rows) >= rows // 2 if shifted else np.zeros(rows, dtype=bool)
    lognormal = rng.lognormal(0.0, 0.8, rows) * np.where(late, 1.15, 1.0)
    colours = np.array(["red", "green", "blue", "grey"])
    colour = colours[rng.choice(4, rows, p=[0.4, 0.3, 0.2, 0.1])]
    if shifted:  # a category the reference never saw, in the late half
        colour = np.where(late & (rng.random(rows) < 0.02), "violet", colour)
    return pl.DataFrame(
        {
            "id": np.arange(rows),
            "ts": [datetime(2025, 3, 1) + timedelta(minutes=7 * i) for i in range(rows)],
            "x_normal": rng.normal(0.0, 1.0, rows) + 0.15 * late,
            "x_lognormal": np.where(rng.random(rows) < 0.02, np.nan, lognormal),
            "x_count": rng.poisson(3.0, rows).astype(np.float64),
            "colour": colour,
            "size": np.where(rng.random(rows) < 0.01, None, rng.choice(["s", "m", "l"], rows)),
        }
    ).with_columns(pl.col("x_lognormal").fill_nan(None))


@pytest.fixture(scope="module")
def data() -> tuple[pl.DataFrame, pl.DataFrame]:
    return frame(12_000, 1, shifted=False), frame(12_001, 2, shifted=True)


@pytest.fixture(scope="module")
def contract() -> ModelContract:
    return ModelContract(
        name="agreement",
        features=[FeatureSpec(name=n, kind="numeric") for n in NUMERIC]
        + [FeatureSpec(name=n, kind="categorical") for n in CATEGORICAL],
        target="y",
        entity_id="id",
        timestamp="ts",
    )


def pandas(frame: pl.DataFrame) -> pd.DataFrame:
    out = frame.to_pandas()
    for column in CATEGORICAL:
        out[column] = out[column].astype(object)
    return out


def nannyml_values(result: Any) -> dict[tuple[int, str, str], float]:
    table = result.filter(period="analysis").to_df()
    values = {}
    for index, row in table.iterrows():
        for column in (*NUMERIC, *CATEGORICAL):
            methods = CONTINUOUS_METHODS if column in NUMERIC else CATEGORICAL_METHODS
            for method in methods:
                values[(int(index), column, method)] = float(row[(column, method, "value")])  # type: ignore[index]
    return values


@pytest.fixture(scope="module")
def ours(data: tuple[pl.DataFrame, pl.DataFrame], contract: ModelContract) -> pl.DataFrame:
    reference, analysis = data
    profile = fit_reference_profile(reference, contract, SETTINGS)
    return profile_chunks(profile, analysis.lazy(), contract, SETTINGS, Chunking.by_size(CHUNK))


def our_values(ours: pl.DataFrame) -> dict[tuple[int, str, str], float]:
    rename = {method: key for method, key in NANNYML_METHODS.items()}
    return {
        (index, feature, rename[method]): value
        for index, feature, method, value in ours.select("chunk_index", "feature", "method", "statistic").iter_rows()
        if method in rename
    }


def test_univariate_values_equal_nannyml_exact_mode(
    nml: Any, data: tuple[pl.DataFrame, pl.DataFrame], ours: pl.DataFrame
) -> None:
    reference, analysis = data
    calculator = nml.UnivariateDriftCalculator(
        column_names=NUMERIC + CATEGORICAL,
        treat_as_numerical=NUMERIC,
        treat_as_categorical=CATEGORICAL,
        continuous_methods=CONTINUOUS_METHODS,
        categorical_methods=CATEGORICAL_METHODS,
        chunk_size=CHUNK,
        # NannyML 0.13 reads calculation_method from the top level of computation_params (its documented
        # per-method form is silently ignored, leaving "auto", i.e. binned at >= 10,000 reference rows).
        computation_params={"kolmogorov_smirnov": {}, "wasserstein": {}, "calculation_method": "exact"},
    ).fit(pandas(reference))
    theirs = nannyml_values(calculator.calculate(pandas(analysis)))
    mine = our_values(ours)
    # 12,001 rows in chunks of 3,000: NannyML keeps the one-row remainder as a fifth chunk, and so do we.
    assert ours.get_column("chunk_index").n_unique() == 5
    assert set(mine) == set(theirs)
    for key, expected in theirs.items():
        assert mine[key] == pytest.approx(expected, rel=1e-9, abs=1e-12), key
    # The shift is there to be measured, not a no-op comparison of zeros.
    assert mine[(3, "x_normal", "kolmogorov_smirnov")] > 0.05
    assert mine[(3, "colour", "chi2")] > 20


def test_binned_default_of_nannyml_differs_only_by_its_bin_resolution(
    nml: Any, data: tuple[pl.DataFrame, pl.DataFrame], ours: pl.DataFrame
) -> None:
    reference, analysis = data
    calculator = nml.UnivariateDriftCalculator(
        column_names=NUMERIC,
        treat_as_numerical=NUMERIC,
        continuous_methods=["kolmogorov_smirnov", "wasserstein"],
        chunk_size=CHUNK,
    ).fit(pandas(reference))
    table = calculator.calculate(pandas(analysis)).filter(period="analysis").to_df()
    mine = our_values(ours)
    for index, row in table.iterrows():
        for column in NUMERIC:
            ks = float(row[(column, "kolmogorov_smirnov", "value")])  # type: ignore[index]
            wasserstein = float(row[(column, "wasserstein", "value")])  # type: ignore[index]
            # 10,000 equal-width bins over the reference's range: the ECDF moves by at most one bin's mass.
            assert abs(mine[(int(index), column, "kolmogorov_smirnov")] - ks) < 2e-3
            assert mine[(int(index), column, "wasserstein")] == pytest.approx(wasserstein, rel=0.02, abs=2e-3)


def test_multivariate_reconstruction_error_equals_nannyml_fitted_on_the_same_rows(
    nml: Any, data: tuple[pl.DataFrame, pl.DataFrame], ours: pl.DataFrame
) -> None:
    reference, analysis = data
    # driftgate fits on every other reference row (the rest measure the baseline out of sample).
    calculator = nml.DataReconstructionDriftCalculator(column_names=NUMERIC + CATEGORICAL, chunk_size=CHUNK).fit(
        pandas(reference[::2])
    )
    table = calculator.calculate(pandas(analysis)).filter(period="analysis").to_df()
    theirs = table[("reconstruction_error", "value")].to_numpy()
    mine = ours.filter(pl.col("feature") == MULTIVARIATE_FEATURE).sort("chunk_index").get_column("statistic").to_numpy()
    np.testing.assert_allclose(mine, theirs, rtol=1e-9)


@pytest.mark.parametrize(
    "chunking",
    [
        Chunking.by_size(2_500),
        Chunking.by_size(2_500, incomplete="append"),
        Chunking.by_size(2_500, incomplete="drop"),
        Chunking.by_number(7),
        Chunking.by_period("day"),
        Chunking.by_period("week"),
        Chunking.by_period("month"),
    ],
)
def test_chunks_equal_nannyml_chunkers(nml: Any, data: tuple[pl.DataFrame, pl.DataFrame], chunking: Chunking) -> None:
    from nannyml.chunk import CountBasedChunker, PeriodBasedChunker, SizeBasedChunker

    analysis = data[1]
    if chunking.size is not None:
        chunker: Any = SizeBasedChunker(
            chunk_size=chunking.size, incomplete=chunking.incomplete, timestamp_column_name="ts"
        )
    elif chunking.number is not None:
        chunker = CountBasedChunker(
            chunk_number=chunking.number, incomplete=chunking.incomplete, timestamp_column_name="ts"
        )
    else:
        offset = {"day": "D", "week": "W", "month": "M"}[str(chunking.period)]
        chunker = PeriodBasedChunker(timestamp_column_name="ts", offset=offset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NannyML warns when there are fewer than six chunks
        theirs = chunker.split(pandas(analysis))
    mine = split(analysis, chunking, timestamp="ts")
    assert [w.key for w, _ in mine] == [c.key for c in theirs]
    assert [(w.start_index, w.end_index, w.rows) for w, _ in mine] == [
        (c.start_index, c.end_index, len(c.data)) for c in theirs
    ]
    # driftgate's windows are UTC-aware; NannyML's naive times are the same instants read as UTC.
    assert [w.start_date for w, _ in mine] == [utc(c.start_datetime.to_pydatetime()) for c in theirs]
    # Period ends: NannyML's are the last nanosecond of the period, driftgate's the last microsecond.
    for (window, rows), chunk in zip(mine, theirs, strict=True):
        assert abs(window.end_date - utc(chunk.end_datetime.to_pydatetime())) < timedelta(microseconds=1)  # type: ignore[operator]
        assert rows.get_column("id").to_list() == chunk.data["id"].tolist()
