"""What monitoring a production version needs, fitted once and cached on disk: its reference profile (samples,
bins, calibrated thresholds, PCA) and its CBPE estimator. Fitted at bootstrap and retrain (``prepare_version``)
so that the first monitor after a promotion pays nothing; keyed by the reference's digest, the contract and the
settings, so a change of any of them refits; written atomically, so concurrent monitors read old or new, never
half. Split from :mod:`tasks.stages.monitoring`, which reads them through ``prepare_context``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    import polars as pl

    from tasks.drift.reference import ReferenceProfile
    from tasks.performance.estimation import PerformanceEstimator
    from tasks.performance.fitted import FittedCBPE
    from tasks.registry.model import ModelVersion
    from tasks.resources.workspace import Workspace


def prepare_version(ws: Workspace, version: ModelVersion) -> None:
    """Fit what monitoring a version needs (its reference profile and CBPE) now, at bootstrap or retrain, so that
    the first monitor after its promotion pays nothing for it. A failure here is logged, never fatal: the
    monitor fits lazily on a cache miss."""
    import logging

    from tasks.core.errors import DriftgateError

    try:
        reference = ws.reference_of(version)
        production_reference_profile(ws, version, reference)
        production_estimator(ws, version, reference)
    except DriftgateError as exc:
        logging.getLogger(__name__).warning("monitoring caches of %s not prepared: %s", version.version, exc)


REFERENCE_CACHE = ("cache", "references")  # <home>/cache/references/<model>/<key>.json
REFERENCE_CACHE_FORMAT = 1  # bump when ReferenceProfile.to_dict changes shape


def production_reference_profile(ws: Workspace, version: ModelVersion, reference: pl.DataFrame) -> ReferenceProfile:
    """The version's fitted reference profile (samples, bins, thresholds, PCA), fitted once per version and
    profiling settings: ``<home>/cache/references/<model>/<key>.json``, the key a sha256 of the reference file's
    digest, the contract and the profiling settings. ``ReferenceProfile.from_dict(to_dict())`` profiles a batch
    to the same results (tests/unit/drift/test_profiling.py); a file that does not parse is refitted."""
    import json
    import logging

    from tasks.drift.reference import ReferenceProfile, fit_reference_profile

    path = reference_cache_path(ws, version)
    try:
        return ReferenceProfile.from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logging.getLogger(__name__).warning("reference cache %s is unreadable (%s): refitting", path, exc)
    profile = fit_reference_profile(reference, ws.contract, ws.settings.profiling)
    _write_cache(path, json.dumps(profile.to_dict()))
    return profile


def reference_cache_path(ws: Workspace, version: ModelVersion) -> Path:
    """``<home>/cache/references/<model>/<key>.json`` of a version's reference profile under today's contract and
    profiling settings."""
    import hashlib
    import json

    inputs = {
        "format": REFERENCE_CACHE_FORMAT,
        "reference_sha256": _reference_digest(ws, version),
        "contract": ws.contract.model_dump(mode="json"),
        "profiling": ws.settings.profiling.model_dump(mode="json"),
    }
    key = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()
    return ws.settings.home.joinpath(*REFERENCE_CACHE, ws.model, f"{key}.json")


def calibrated_sizes(profile: ReferenceProfile) -> int:
    """How many (column, batch size) threshold calibrations the profile holds."""
    return sum(len(sizes) for sizes in profile.thresholds.values())


def keep_calibrations(ws: Workspace, version: ModelVersion, profile: ReferenceProfile) -> None:
    """Rewrite the cached profile with the thresholds it calibrated for new batch sizes while profiling, so the
    next batch of a similar size (sizes are rounded to two significant figures) reads them instead of simulating
    them again. Calibration is seeded by column and size, so concurrent monitors write the same thresholds; the
    write is atomic, so a reader sees one complete profile or the other."""
    import json

    _write_cache(reference_cache_path(ws, version), json.dumps(profile.to_dict()))


def _reference_digest(ws: Workspace, version: ModelVersion) -> str:
    import hashlib

    from tasks.resources.workspace import REFERENCE_FILE

    return (
        version.digests.get(REFERENCE_FILE)
        or hashlib.sha256(ws.registry.read_file(version, REFERENCE_FILE)).hexdigest()
    )


def _write_cache(path: Path, text: str) -> None:
    """Atomic (tasks.core.atomic): readers see the old file or the new one, never half."""
    from tasks.core.atomic import write_text_atomic

    write_text_atomic(path, text)


ESTIMATOR_CACHE = ("cache", "estimators")  # <home>/cache/estimators/<model>/<key>.json
MONITORED_METRIC = "roc_auc"


def estimator_chunk_size(ws: Workspace, reference_rows: int) -> int:
    """CBPE's thresholds come from the spread across reference chunks; a retrained model's reference (its
    holdout) can be small, so keep at least three chunks."""
    return min(ws.settings.profiling.chunk_size, reference_rows // 3)


def estimator_key(ws: Workspace, version: ModelVersion, reference_rows: int) -> str:
    """sha256 of everything the fitted estimator depends on: the version's reference file (its manifest digest),
    the contract's columns, chunk size, decision threshold, metric, and the versions of the fitter and NannyML."""
    import hashlib
    import json
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    from tasks.performance.estimation import MIN_SLICE_ROWS
    from tasks.performance.fitted import FORMAT

    contract = ws.contract
    try:
        nannyml_version = package_version("nannyml")
    except PackageNotFoundError:  # pragma: no cover - NannyML is a dependency
        nannyml_version = "absent"
    reference_digest = _reference_digest(ws, version)
    inputs = {
        "format": FORMAT,
        "nannyml": nannyml_version,
        "model": version.model,
        "version": version.version,
        "reference_sha256": reference_digest,
        "reference_rows": reference_rows,
        "columns": [contract.target, contract.probability, contract.prediction, contract.timestamp],
        "slices": list(contract.slices),
        "min_slice_rows": MIN_SLICE_ROWS,
        "chunk_size": estimator_chunk_size(ws, reference_rows),
        "threshold": ws.settings.gate.decision_threshold,
        "metric": MONITORED_METRIC,
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def production_estimator(
    ws: Workspace, version: ModelVersion, reference: pl.DataFrame
) -> PerformanceEstimator | FittedCBPE:
    """The version's CBPE, fitted once and applied in numpy (:mod:`tasks.performance.fitted`).

    Read from ``<home>/cache/estimators/<model>/<key>.json`` (:func:`estimator_key`); on a miss, or a file
    that does not parse (torn, edited, another format), NannyML fits on the reference (this imports it, once
    per version) and the extracted estimator is written atomically (temporary file, then ``os.replace``).
    An estimator the numpy CBPE does not mirror is used as fitted, with a log line.
    """
    import logging

    from tasks.performance.estimation import fit_estimator
    from tasks.performance.fitted import FittedCBPE, UnsupportedEstimator, extract

    log = logging.getLogger(__name__)
    key = estimator_key(ws, version, reference.height)
    path = ws.settings.home.joinpath(*ESTIMATOR_CACHE, ws.model, f"{key}.json")
    try:
        return FittedCBPE.from_json(path.read_text())
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        log.warning("estimator cache %s is unreadable (%s): refitting CBPE for %s", path, exc, version.version)
    estimator = fit_estimator(
        reference,
        ws.contract,
        metric=MONITORED_METRIC,
        chunk_size=estimator_chunk_size(ws, reference.height),
        threshold=ws.settings.gate.decision_threshold,
    )
    try:
        fitted = extract(estimator)
    except UnsupportedEstimator as exc:
        log.info("estimating with NannyML for %s: %s", version.version, exc)
        return estimator
    _write_cache(path, fitted.to_json())
    return fitted
