"""The batch-level control on hand-built drift rows: who is in the family, what survives, what reports say."""

from __future__ import annotations

import pytest

from tasks.core.errors import ConfigError
from tasks.core.settings import DriftgateSettings
from tasks.drift.batch_control import control_batch
from tasks.drift.results import BatchProfile, DataQualityReport, FeatureDrift
from tasks.drift.statistics import jensen_shannon_p_value
from tasks.report.markdown import _batch_control_line

FEATURES = tuple(f"x{j}" for j in range(25))


def _row(
    feature: str, p_value: float | None, alert: bool, *, kind: str = "numeric", primary: bool = True
) -> FeatureDrift:
    method = "ks" if kind in ("numeric", "prediction") else "pca_reconstruction"
    return FeatureDrift(feature, kind, method, 0.1, 0.05, alert, p_value, primary, 1000)


def _rows() -> list[FeatureDrift]:
    rows = [_row(name, 0.5, False) for name in FEATURES]
    rows[0] = _row("x0", 1e-6, True)  # a clear shift: survives Holm at 0.05 / 26
    rows[1] = _row("x1", 0.005, True)  # a per-feature alert that does not survive
    rows[2] = _row("x2", 1e-9, False)  # a tiny p-value without its own alert: not drift
    rows.append(_row("x0", 1e-12, True, primary=False))  # a secondary method: outside the family
    rows.append(_row("y_pred_proba", 1e-12, True, kind="prediction"))  # reported only
    rows.append(_row("__multivariate__", 0.004, True, kind="multivariate"))  # 0.004 > 0.05 / 25 after x0
    return rows


def _profile(rows: list[FeatureDrift], control: str = "holm") -> BatchProfile:
    quality = DataQualityReport(passed=True, rows=1000, issues=(), missing_rate={})
    alpha = 0.05 if control == "holm" else None
    return BatchProfile(1000, None, None, quality, tuple(rows), FEATURES, (), control, alpha)


def test_holm_family_is_each_feature_primary_test_and_the_joint_test() -> None:
    controlled = control_batch(_rows(), FEATURES, 0.05, "holm")
    profile = _profile(controlled)
    assert profile.drifted_features == ["x0"]
    assert profile.alerting_features == ["x0", "x1"]
    assert profile.multivariate_drift is not None and profile.multivariate_drift.alert
    assert profile.multivariate_drift.drifts is False
    assert [d.batch_alert for d in controlled[-3:]] == [None, None, False]
    line = _batch_control_line(profile)
    assert "['x0']" in line and "not surviving it: ['x1']" in line and "does not survive" in line


def test_control_off_and_rows_without_it_keep_the_per_test_alert() -> None:
    off = _profile(control_batch(_rows(), FEATURES, 0.05, "none"), control="none")
    assert off.drifted_features == off.alerting_features == ["x0", "x1"]
    assert off.multivariate_drift is not None and off.multivariate_drift.drifts
    assert "**off**" in _batch_control_line(off)
    assert _profile(_rows(), control="none").drifted_features == ["x0", "x1"]  # batch_alert None: the alert
    with pytest.raises(ValueError, match="bonferroni"):
        control_batch(_rows(), FEATURES, 0.05, "bonferroni")


def test_settings_default_on_and_refuse_unknown_methods() -> None:
    settings = DriftgateSettings()
    assert settings.profiling.batch_correction == "holm" and settings.profiling.batch_alpha == 0.05
    with pytest.raises((ConfigError, ValueError)):
        DriftgateSettings(profiling={"batch_correction": "bonferroni"})  # type: ignore[arg-type]


def test_jensen_shannon_p_value_is_the_chi_squared_tail_of_its_quadratic_form() -> None:
    # 8 ln2 ne JS^2 = 10 with 3 degrees of freedom: chi2.sf(10, 3) = 0.018566...
    effective = 1000 * 4000 / 5000
    distance = (10 / (8 * 0.6931471805599453 * effective)) ** 0.5
    assert jensen_shannon_p_value(distance, 4000, 1000, 4) == pytest.approx(0.0185661, rel=1e-5)
    assert jensen_shannon_p_value(0.3, 0, 1000, 4) == 1.0
