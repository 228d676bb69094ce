"""Multivariate drift: PCA reconstruction error, the method of NannyML's DataReconstructionDriftCalculator.

A per-feature test compares marginals, so it misses a shift that only changes how features move
together (two features whose correlation flips keep their marginals). Fit on the reference:

1. encode: numeric features as they are (missing values imputed with the reference mean), boolean
   features as 0/1 (same imputation), categorical features as the category's share in the reference
   (NannyML's ``CountEncoder(normalize=True)``; a missing value takes the most frequent category, also
   when the shares are counted, and a category unseen in the reference encodes as 0);
2. standardise each column with the reference mean and population standard deviation;
3. keep the principal components that together explain more than ``variance`` (65% by default) of
   the reference's variance (scikit-learn's rule for a fractional ``n_components``).

A row's reconstruction error is the Euclidean norm of its standardised vector minus its projection
on those components; a chunk's statistic is the mean error of its rows. The values equal NannyML's
for numeric and text categorical features (a unit test runs both); NannyML count-encodes booleans
as categories, driftgate keeps them 0/1.

Threshold. Under "no drift" the chunk mean of m row errors differs from the reference mean by
sampling noise of standard deviation s * sqrt(1/m + 1/n) (s: the reference rows' error spread, n:
reference rows used); the threshold is the ``quantile`` point of that difference, with a
Cornish-Fisher term for the errors' skewness (row errors are norms, so right-skewed), above the
reference mean. It is one-sided: an error *above* the reference says the rows no longer fit its
correlation structure.

Fit rows. Rows a PCA was fitted on fit it better than new rows do, and when eigenvalues are close the
kept subspace itself is noise, so an in-sample baseline sits below the error of new data from the same
distribution (0.5% here at 25 independent features: enough to alert on every large chunk). Hence the
encoder, scaler and PCA are fitted on every other reference row (even positions) and the baseline is
measured on the rows in between, which the fit never saw. NannyML fits on every reference row; fitted
on the same rows, the two agree. At most ``MAX_PCA_ROWS`` evenly spaced reference rows are used, so
fitting stays bounded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from tasks.core.errors import DataError
from tasks.data.contract import ModelContract

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

MULTIVARIATE_FEATURE = "__multivariate__"
MULTIVARIATE_KIND = "multivariate"
MULTIVARIATE_METHOD = "pca_reconstruction"
DEFAULT_VARIANCE = 0.65
MAX_PCA_ROWS = 100_000
MIN_PCA_ROWS = 20


@dataclass(frozen=True, eq=False)
class PcaReference:
    """Encoder, scaler and principal components fitted on the reference, with its reconstruction errors' moments."""

    columns: tuple[str, ...]  # contract features, in contract order
    kinds: tuple[str, ...]
    fill: tuple[float, ...]  # imputed (encoded) value of a missing entry, per column
    encodings: dict[str, dict[str, float]]  # categorical column -> category -> reference share
    mean: np.ndarray  # of the encoded columns
    scale: np.ndarray  # population standard deviation; 1 where a column is constant
    components: np.ndarray  # (k, d) orthonormal rows
    explained_variance: float  # share of variance the kept components explain
    rows: int  # held-out reference rows the baseline error was measured on
    error_mean: float
    error_std: float
    error_skew: float
    quantile: float

    def threshold_at(self, size: int) -> float:
        """Upper threshold of a chunk's mean reconstruction error for a chunk of ``size`` rows."""
        from scipy.special import ndtri

        z = float(ndtri(self.quantile))
        skew_of_mean = self.error_skew / math.sqrt(max(size, 1))
        z_corrected = z + (z * z - 1.0) * skew_of_mean / 6.0
        return self.error_mean + z_corrected * self.error_std * math.sqrt(1.0 / max(size, 1) + 1.0 / self.rows)

    def p_value(self, statistic: float, size: int) -> float:
        """One-sided normal-approximation p-value of a chunk mean at least this far above the reference mean."""
        from scipy.special import ndtr

        spread = self.error_std * math.sqrt(1.0 / max(size, 1) + 1.0 / self.rows)
        if spread <= 0:
            return 0.0 if statistic > self.error_mean else 1.0
        return float(ndtr(-(statistic - self.error_mean) / spread))

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": list(self.columns),
            "kinds": list(self.kinds),
            "fill": list(self.fill),
            "encodings": {name: dict(mapping) for name, mapping in self.encodings.items()},
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "components": self.components.tolist(),
            "explained_variance": self.explained_variance,
            "rows": self.rows,
            "error_mean": self.error_mean,
            "error_std": self.error_std,
            "error_skew": self.error_skew,
            "quantile": self.quantile,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PcaReference:
        import numpy as np

        return cls(
            columns=tuple(str(c) for c in data["columns"]),
            kinds=tuple(str(k) for k in data["kinds"]),
            fill=tuple(float(v) for v in data["fill"]),
            encodings={
                str(name): {str(k): float(v) for k, v in mapping.items()} for name, mapping in data["encodings"].items()
            },
            mean=np.asarray(data["mean"], dtype=np.float64),
            scale=np.asarray(data["scale"], dtype=np.float64),
            components=np.asarray(data["components"], dtype=np.float64).reshape(-1, len(data["columns"])),
            explained_variance=float(data["explained_variance"]),
            rows=int(data["rows"]),
            error_mean=float(data["error_mean"]),
            error_std=float(data["error_std"]),
            error_skew=float(data["error_skew"]),
            quantile=float(data["quantile"]),
        )


def fit_pca_reference(
    frame: pl.DataFrame | pl.LazyFrame,
    contract: ModelContract,
    *,
    quantile: float,
    variance: float = DEFAULT_VARIANCE,
    source: str = "reference",
) -> PcaReference:
    """Fit encoder, scaler and PCA on the even rows of the (validated) reference, measure the baseline on the odd ones.

    At most MAX_PCA_ROWS evenly spaced reference rows are read.
    """
    import numpy as np
    import polars as pl

    if not 0.0 < variance < 1.0:
        raise DataError(f"explained variance must be in (0, 1), got {variance}", source=source)
    lazy = frame.lazy()
    rows = int(lazy.select(pl.len()).collect().item())
    step = max(1, math.ceil(rows / MAX_PCA_ROWS))
    sample = lazy.select(contract.feature_names).gather_every(step).collect(engine="streaming")
    if sample.height < MIN_PCA_ROWS:
        raise DataError(
            f"{sample.height} reference rows; the PCA reconstruction needs at least {MIN_PCA_ROWS}", source=source
        )
    # Rows a PCA was fitted on fit it better than new rows do (it keeps their own largest directions,
    # and with near-equal eigenvalues which directions it keeps is itself noise), so everything is
    # fitted on the even rows and the baseline error is measured on the odd rows it never saw.
    held_out = sample.gather_every(2, offset=1)
    sample = sample.gather_every(2)

    fill: list[float] = []
    encodings: dict[str, dict[str, float]] = {}
    for spec in contract.features:
        column = sample.get_column(spec.name)
        if spec.kind == "categorical":
            counts = column.cast(pl.String).drop_nulls().value_counts(name="n")
            if counts.height == 0:
                raise DataError(
                    "categorical feature is entirely null in the reference", source=source, column=spec.name
                )
            tally = dict(zip(counts.get_column(spec.name).to_list(), counts.get_column("n").to_list(), strict=True))
            # Most frequent category (ties: the smallest, as scikit-learn's SimpleImputer picks); as in
            # NannyML, missing values are imputed with it *before* the shares are counted.
            most_frequent = min(tally, key=lambda category: (-tally[category], category))
            tally[most_frequent] += column.null_count()
            shares = {str(category): n / column.len() for category, n in tally.items()}
            encodings[spec.name] = shares
            fill.append(shares[most_frequent])
        else:
            values = column.cast(pl.Float64).drop_nulls()
            if values.len() == 0:
                raise DataError("feature is entirely null in the reference", source=source, column=spec.name)
            fill.append(float(values.mean()))  # type: ignore[arg-type]

    partial = PcaReference(
        columns=tuple(contract.feature_names),
        kinds=tuple(spec.kind for spec in contract.features),
        fill=tuple(fill),
        encodings=encodings,
        mean=np.zeros(0),
        scale=np.ones(0),
        components=np.zeros((0, 0)),
        explained_variance=0.0,
        rows=held_out.height,
        error_mean=0.0,
        error_std=0.0,
        error_skew=0.0,
        quantile=quantile,
    )
    encoded = encode(partial, sample)
    mean = encoded.mean(axis=0)
    scale = encoded.std(axis=0)
    scale[scale == 0.0] = 1.0  # scikit-learn's StandardScaler leaves constant columns unscaled
    standardised = (encoded - mean) / scale
    components, explained_share = _principal_components(standardised, variance)
    errors = _errors_of((encode(partial, held_out) - mean) / scale, components)
    std = float(errors.std(ddof=1)) if errors.size > 1 else 0.0
    skew = float(((errors - errors.mean()) ** 3).mean() / std**3) if std > 0 else 0.0
    return replace(
        partial,
        mean=mean,
        scale=scale,
        components=components,
        explained_variance=explained_share,
        error_mean=float(errors.mean()),
        error_std=std,
        error_skew=skew,
    )


def _principal_components(
    standardised: np.ndarray, variance: float = DEFAULT_VARIANCE, *, keep: int | None = None
) -> tuple[np.ndarray, float]:
    """(components, explained share): the fewest explaining more than ``variance``, or exactly ``keep``.

    From the eigen-decomposition of the covariance (d x d), the same subspace as scikit-learn's SVD at a
    fraction of its cost for many rows.
    """
    import numpy as np

    centred = standardised - standardised.mean(axis=0)
    eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred)
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues = np.maximum(eigenvalues[order], 0.0)
    vt = eigenvectors[:, order].T
    explained = eigenvalues / max(float(eigenvalues.sum()), np.finfo(np.float64).tiny)
    if keep is None:
        keep = int(np.searchsorted(np.cumsum(explained), variance, side="right")) + 1
    keep = min(keep, vt.shape[0])
    return _sign_fixed(vt[:keep]), float(explained[:keep].sum())


def _sign_fixed(components: np.ndarray) -> np.ndarray:
    # SVD signs are arbitrary; fixing them makes a fitted profile reproducible byte for byte.
    import numpy as np

    largest = np.argmax(np.abs(components), axis=1)
    signs = np.sign(components[np.arange(components.shape[0]), largest])
    signs[signs == 0] = 1.0
    return np.ascontiguousarray(components * signs[:, None])


def encode(ref: PcaReference, frame: pl.DataFrame) -> np.ndarray:
    """The float matrix (rows x features) the PCA sees: encoded and imputed, not yet standardised."""
    import numpy as np
    import polars as pl

    expressions: list[pl.Expr] = []
    for name, kind, fill in zip(ref.columns, ref.kinds, ref.fill, strict=True):
        column = pl.col(name)
        if kind == "categorical":
            encoded = column.cast(pl.String).replace_strict(ref.encodings[name], default=0.0, return_dtype=pl.Float64)
            expressions.append(pl.when(column.is_null()).then(fill).otherwise(encoded).alias(name))
        else:
            expressions.append(column.cast(pl.Float64).fill_nan(None).fill_null(fill).alias(name))
    return np.asarray(frame.select(expressions).to_numpy(), dtype=np.float64)


def _errors_of(standardised: np.ndarray, components: np.ndarray) -> np.ndarray:
    import numpy as np
    from threadpoolctl import threadpool_limits

    # The components are orthonormal rows, so the squared residual is |x|^2 - |x C^T|^2: one product.
    # A thin product: OpenBLAS's threads only contend with polars' (10x slower on a busy machine).
    with threadpool_limits(1, user_api="blas"):
        scores = standardised @ components.T
    squared = np.einsum("ij,ij->i", standardised, standardised) - np.einsum("ij,ij->i", scores, scores)
    return np.asarray(np.sqrt(np.maximum(squared, 0.0)))


def reconstruction_errors(ref: PcaReference, frame: pl.DataFrame) -> np.ndarray:
    """Reconstruction error of each row of a contract-validated frame."""
    for name in ref.columns:
        if name not in frame.columns:
            from tasks.core.errors import MissingColumnError

            raise MissingColumnError("feature of the multivariate reference is missing", column=name)
    return _errors_of((encode(ref, frame) - ref.mean) / ref.scale, ref.components)


@dataclass(frozen=True)
class MultivariateDrift:
    statistic: float  # mean reconstruction error of the chunk
    threshold: float
    alert: bool
    p_value: float
    rows: int
    reference_mean: float


def multivariate_drift(ref: PcaReference, frame: pl.DataFrame) -> MultivariateDrift | None:
    """Mean reconstruction error of the chunk against its calibrated threshold; None for an empty chunk."""
    if frame.height == 0:
        return None
    errors = reconstruction_errors(ref, frame)
    statistic = float(errors.mean())
    threshold = ref.threshold_at(frame.height)
    return MultivariateDrift(
        statistic=statistic,
        threshold=threshold,
        alert=statistic > threshold,
        p_value=ref.p_value(statistic, frame.height),
        rows=frame.height,
        reference_mean=ref.error_mean,
    )
