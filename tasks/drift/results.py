"""What drift profiling reports: per-feature drift, data-quality issues, histograms, the batch profile, and
the methods, bins and limits they are computed with."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl


NUMERIC_METHODS = ("ks", "wasserstein", "jensen_shannon", "hellinger", "psi")
CATEGORICAL_METHODS = ("jensen_shannon", "hellinger", "chi2", "l_infinity")
PRIMARY_METHOD = {
    "numeric": "ks",
    "prediction": "ks",
    "categorical": "jensen_shannon",
    "boolean": "jensen_shannon",
    "label": "l_infinity",
}


# driftgate method -> NannyML 0.13 method key (PSI has none).
NANNYML_METHODS = {
    "ks": "kolmogorov_smirnov",
    "wasserstein": "wasserstein",
    "jensen_shannon": "jensen_shannon",
    "hellinger": "hellinger",
    "chi2": "chi2",
    "l_infinity": "l_infinity",
}


N_BINS = 10
HISTOGRAM_BINS = "doane"
PSI_EPSILON = 1e-4
MAX_REFERENCE_SAMPLE = 100_000
CALIBRATION_ATOMS = 1024
TAIL_REPLICATES = 20
THRESHOLD_FLOOR = 1e-6
NORMAL_DRAW_VARIANCE = 1_000.0  # calibration binomials this wide are drawn from their normal approximation
CALIBRATION_SEED = 20_240_601
RANGE_WIDENING = 0.10
OUT_OF_RANGE_SHARE = 0.01
UNSEEN_FAIL_SHARE = 0.05
PROFILE_FORMAT = "driftgate.reference-profile/3"


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    kind: str  # "numeric" | "categorical" | "boolean" | "prediction" | "label" | "multivariate"
    method: str  # NUMERIC_METHODS | CATEGORICAL_METHODS | "pca_reconstruction"
    statistic: float
    threshold: float
    alert: bool  # statistic > threshold for this method
    p_value: float | None = None
    primary: bool = False  # the method that decides whether the feature drifts
    sample_size: int = 0  # non-null batch values the statistic was computed on
    # Survives the batch-level control (tasks/drift/batch_control.py): set on the tests that reach the policy
    # (each feature's primary row, the multivariate row); None elsewhere, and on rows built without it.
    batch_alert: bool | None = None

    @property
    def drifts(self) -> bool:
        """The alert the policy acts on: batch-controlled when the control ran, else the per-test alert."""
        return self.alert if self.batch_alert is None else self.batch_alert


@dataclass(frozen=True)
class QualityIssue:
    # "schema" | "missing_rate" | "out_of_range" | "unseen_category" | "duplicate_id" | "too_few_rows"
    # | "all_null" | "non_finite"
    check: str
    column: str | None
    detail: str
    severity: str  # "fail" | "warn"


@dataclass(frozen=True)
class DataQualityReport:
    passed: bool
    rows: int
    issues: tuple[QualityIssue, ...]
    missing_rate: dict[str, float]


@dataclass(frozen=True)
class Histogram:
    """Reference and batch proportions of one column on the reference's bins, for overlay plots."""

    feature: str
    kind: str
    edges: tuple[float, ...]  # numeric: the reference's histogram edges; the last bin is "outside them"
    labels: tuple[str, ...]  # categorical: the categories of the bins
    reference: tuple[float, ...]
    batch: tuple[float, ...]


@dataclass(frozen=True)
class BatchProfile:
    rows: int
    window_start: datetime | None
    window_end: datetime | None
    quality: DataQualityReport
    drift: tuple[FeatureDrift, ...]
    features: tuple[str, ...] = ()  # the contract's features, the denominator of drift_share
    histograms: tuple[Histogram, ...] = ()  # per profiled column, for plots (not in to_dict)
    batch_control: str = "none"  # "holm" at profiling.batch_alpha, or "none" (per-test alerts uncorrected)
    batch_alpha: float | None = None

    def _feature_rows(self) -> list[FeatureDrift]:
        contract_features = set(self.features)
        return [
            d
            for d in self.drift
            if d.primary and d.kind not in ("prediction", "label") and d.feature in contract_features
        ]

    @property
    def drifted_features(self) -> list[str]:
        """Contract features that drift after the batch-level control: what the policy acts on."""
        return [d.feature for d in self._feature_rows() if d.drifts]

    @property
    def alerting_features(self) -> list[str]:
        """Contract features whose primary statistic exceeds its own calibrated threshold (uncorrected)."""
        return [d.feature for d in self._feature_rows() if d.alert]

    @property
    def drift_share(self) -> float:
        return len(self.drifted_features) / len(self.features) if self.features else 0.0

    @property
    def prediction_drift(self) -> FeatureDrift | None:
        return next((d for d in self.drift if d.kind == "prediction" and d.primary), None)

    @property
    def label_drift(self) -> FeatureDrift | None:
        return next((d for d in self.drift if d.kind == "label" and d.primary), None)

    @property
    def multivariate_drift(self) -> FeatureDrift | None:
        return next((d for d in self.drift if d.kind == "multivariate"), None)

    def to_frame(self) -> pl.DataFrame:
        """One row per (feature, method)."""
        import polars as pl

        return pl.DataFrame([asdict(d) for d in self.drift], schema=_drift_schema())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary for the audit store."""
        return {
            "rows": self.rows,
            "window_start": self.window_start.isoformat() if self.window_start else None,
            "window_end": self.window_end.isoformat() if self.window_end else None,
            "quality": {
                "passed": self.quality.passed,
                "rows": self.quality.rows,
                "issues": [asdict(i) for i in self.quality.issues],
                "missing_rate": dict(self.quality.missing_rate),
            },
            "features": list(self.features),
            "drift": [asdict(d) for d in self.drift],
            "drifted_features": self.drifted_features,
            "alerting_features": self.alerting_features,
            "batch_control": self.batch_control,
            "batch_alpha": self.batch_alpha,
            "drift_share": self.drift_share,
            "prediction_drift": asdict(self.prediction_drift) if self.prediction_drift else None,
            "label_drift": asdict(self.label_drift) if self.label_drift else None,
            "multivariate_drift": asdict(self.multivariate_drift) if self.multivariate_drift else None,
        }


def _drift_schema() -> dict[str, Any]:
    import polars as pl

    return {
        "feature": pl.String,
        "kind": pl.String,
        "method": pl.String,
        "statistic": pl.Float64,
        "threshold": pl.Float64,
        "alert": pl.Boolean,
        "p_value": pl.Float64,
        "primary": pl.Boolean,
        "sample_size": pl.Int64,
        "batch_alert": pl.Boolean,
    }
