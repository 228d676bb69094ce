"""Where a scenario's rows come from (:class:`Population`): NannyML's synthetic car-loan data resampled, or its
real US-census employment data taken in order, optionally widened by added stationary features
(tasks/data/scenarios.py builds its scenarios on these)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, get_args

from tasks.core.errors import ConfigError
from tasks.data.files import CAR_LOAN_FEATURES, EMPLOYMENT_FEATURES

if TYPE_CHECKING:
    import polars as pl

Source = Literal["car-loan", "employment-MA"]
CAR_LOAN_POOL_ROWS = 25_000  # NannyML's analysis period starts like the reference; its second half drifts


@dataclass(frozen=True)
class Population:
    """Where a scenario's reference and batches come from.

    resampled: batches resample a pool with replacement (fresh entity ids; a covariate tilt is possible);
    otherwise real rows are handed out once each, in the data's own order.
    noise_feature: name of an added N(0, 1) feature, independent of everything (reference and batches).
    extra_features: how many stationary, irrelevant features ``extra_01``... to add, cycling through heavy-tailed
    (Student-t, 3 d.f.), zero-inflated lognormal, Poisson counts and standard normal values (a wide table).
    """

    source: Source
    resampled: bool
    noise_feature: str | None = None
    extra_features: int = 0

    def __post_init__(self) -> None:
        if self.source not in get_args(Source):
            raise ConfigError(f"unknown population {self.source!r}; known: {list(get_args(Source))}")
        if self.source == "employment-MA" and self.resampled:
            raise ConfigError("the employment population is real data taken in order, never resampled")
        if self.noise_feature is not None and self.noise_feature in self.base_features:
            raise ConfigError(f"noise feature {self.noise_feature!r} clashes with a feature of {self.source}")

    @classmethod
    def car_loan(cls, *, noise_feature: str | None = None, extra_features: int = 0) -> Population:
        return cls("car-loan", resampled=True, noise_feature=noise_feature, extra_features=extra_features)

    @classmethod
    def employment(cls) -> Population:
        return cls("employment-MA", resampled=False)

    @property
    def base_features(self) -> tuple[str, ...]:
        return tuple(CAR_LOAN_FEATURES if self.source == "car-loan" else EMPLOYMENT_FEATURES)

    @property
    def features(self) -> tuple[str, ...]:
        extra = tuple(f"extra_{i:02d}" for i in range(1, self.extra_features + 1))
        return self.base_features + ((self.noise_feature,) if self.noise_feature else ()) + extra

    def describe(self) -> str:
        if self.source == "car-loan":
            text = (
                "NannyML's synthetic car-loan data: reference = its 50,000-row reference period; batches resample "
                f"the first {CAR_LOAN_POOL_ROWS:,} rows of its analysis period (drawn like the reference) with "
                "replacement, with fresh entity ids"
            )
        else:
            text = (
                "NannyML's real US-census employment data for Massachusetts (ACS): reference = 2015 (68,785 rows); "
                "batches are real 2016-2018 rows, each used at most once, in order year by year (spread evenly over "
                "the three years; shuffled within a year, whose file order is by household serial number, not time), "
                "with their own ids and synthesised daily timestamps"
            )
        if self.noise_feature:
            text += f"; plus {self.noise_feature!r}, an added N(0, 1) feature independent of everything"
        if self.extra_features:
            text += (
                f"; plus {self.extra_features} added stationary features independent of everything (t3, "
                "zero-inflated lognormal, Poisson(2), N(0, 1) in turn)"
            )
        return text

    def load(self, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
        """(labelled reference with a timestamp, pool the batches come from), columns in contract order."""
        import numpy as np
        import polars as pl

        if self.source == "car-loan":
            from tasks.data.files import load_car_loan

            reference, analysis = load_car_loan()
            pool = analysis.head(CAR_LOAN_POOL_ROWS)
            if self.noise_feature is not None:
                rng = np.random.default_rng([seed, 17])
                reference = _with_column_before(
                    reference, pl.Series(self.noise_feature, rng.standard_normal(reference.height)), "repaid"
                )
                pool = _with_column_before(
                    pool, pl.Series(self.noise_feature, rng.standard_normal(pool.height)), "repaid"
                )
            extra = np.random.default_rng([seed, 29])
            for name in self.features[len(self.base_features) + (1 if self.noise_feature else 0) :]:
                reference = _with_column_before(reference, _extra_column(name, extra, reference.height), "repaid")
                pool = _with_column_before(pool, _extra_column(name, extra, pool.height), "repaid")
            return reference, pool
        from tasks.data.files import load_employment

        reference, analysis = load_employment()
        rng = np.random.default_rng([seed, 23])
        # One year's file order is by household serial (group-quarters residents bunch at the end of 2017 and the
        # start of 2018): not time. Shuffled within each year, the years stay in order and every row is used once.
        reference = _shuffled(reference, rng).drop("year")
        offsets = np.sort(rng.uniform(0.0, 365 * 86_400.0, reference.height))
        stamps = [datetime(2015, 1, 1) + timedelta(seconds=float(s)) for s in offsets]
        reference = reference.with_columns(pl.Series("timestamp", stamps, dtype=pl.Datetime("us")))
        pool = pl.concat([_shuffled(part, rng) for part in analysis.partition_by("year", maintain_order=True)])
        return reference, pool


def _extra_column(name: str, rng: Any, n: int) -> pl.Series:
    """One added stationary feature; its shape cycles with its number (see ``Population``)."""
    import numpy as np
    import polars as pl

    kind = int(name.rsplit("_", 1)[1]) % 4
    if kind == 1:
        values = rng.standard_t(3, n)
    elif kind == 2:
        values = np.where(rng.random(n) < 0.6, 0.0, rng.lognormal(0.0, 1.0, n))
    elif kind == 3:
        values = rng.poisson(2.0, n).astype(np.float64)
    else:
        values = rng.standard_normal(n)
    return pl.Series(name, values)


def _with_column_before(frame: pl.DataFrame, column: pl.Series, before: str) -> pl.DataFrame:
    names = frame.columns
    at = names.index(before)
    return frame.with_columns(column).select([*names[:at], column.name, *names[at:]])


def _shuffled(frame: pl.DataFrame, rng: Any) -> pl.DataFrame:
    return frame[rng.permutation(frame.height)]
