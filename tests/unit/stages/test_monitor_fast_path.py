"""The per-batch monitor path applies what NannyML and LightGBM fitted, without importing them: the CBPE of
each production version is cached as JSON under <home>/cache/estimators (rebuilt when corrupt), and
prepare_context -> load_batch -> estimate imports neither nannyml, lightgbm, sklearn nor pandas."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from devkit.promotion_home import MODEL, Home, good_and_bad_models, make_home
from tasks.performance.estimation import estimate_performance, fit_estimator
from tasks.performance.fitted import FittedCBPE
from tasks.resources.workspace import open_home
from tasks.stages import monitor_caches, monitoring

HEAVY = ("nannyml", "lightgbm", "sklearn", "pandas")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    home = make_home(tmp_path_factory.mktemp("fast") / "home", emit_events=False)
    home.register(good_and_bad_models()["good"], reference_rows=3000)
    with open_home(home.settings) as ws:
        ws.registry.promote(MODEL, "v0", actor="test", reason="champion", expected_production=None)
    return home


def cache_files(home: Home) -> list[Path]:
    return sorted((home.settings.home / "cache" / "estimators" / MODEL).glob("*.json"))


def test_estimator_is_cached_per_version_and_equals_nannyml(home: Home) -> None:
    batch, _ = home.batch("day-1", 1500, seed=5, first_id=2_000_000)
    with open_home(home.settings) as ws:
        first = monitoring.prepare_context(ws)
        assert isinstance(first.estimator, FittedCBPE)
        files = cache_files(home)
        assert len(files) == 1
        stamp = files[0].stat().st_mtime_ns
        again = monitoring.prepare_context(ws)
        assert again.estimator == first.estimator and files[0].stat().st_mtime_ns == stamp  # read, not refitted
        loaded = monitoring.load_batch(ws, first, str(batch))
        ours, _ = monitoring.estimate(ws, first, loaded)
        reference = ws.reference_of(first.version)
        nannyml = fit_estimator(
            reference,
            ws.contract,
            chunk_size=monitor_caches.estimator_chunk_size(ws, reference.height),
            threshold=ws.settings.gate.decision_threshold,
        )
        theirs = estimate_performance(nannyml, loaded.frame, ws.contract)
    assert abs(ours.value - theirs.value) <= 1e-9 and ours.alert == theirs.alert
    assert ours.lower is not None and theirs.lower is not None and abs(ours.lower - theirs.lower) <= 1e-9
    assert [(s.value, s.rows) for s in ours.slices] == [(s.value, s.rows) for s in theirs.slices]


def test_corrupt_cache_is_rebuilt(home: Home) -> None:
    with open_home(home.settings) as ws:
        monitoring.prepare_context(ws)
        (path,) = cache_files(home)
        good = path.read_text()
        path.write_text(good[: len(good) // 2])  # a torn write
        ctx = monitoring.prepare_context(ws)
    assert isinstance(ctx.estimator, FittedCBPE)
    assert json.loads(path.read_text()) == json.loads(good)
    assert not list(path.parent.glob(".*.tmp"))


def test_reference_profile_is_cached_per_version_and_profiles_batches_identically(home: Home) -> None:
    from tasks.drift.profiling import profile_batch
    from tasks.drift.reference import fit_reference_profile

    batch, _ = home.batch("day-3", 1500, seed=9, first_id=4_000_000)
    folder = home.settings.home / "cache" / "references" / MODEL
    with open_home(home.settings) as ws:
        ctx = monitoring.prepare_context(ws)
        (path,) = sorted(folder.glob("*.json"))
        stamp = path.stat().st_mtime_ns
        again = monitoring.prepare_context(ws)  # read back, not refitted
        assert path.stat().st_mtime_ns == stamp
        loaded = monitoring.load_batch(ws, ctx, str(batch))
        fresh = fit_reference_profile(ws.reference_of(ctx.version), ws.contract, ws.settings.profiling)
        cached = profile_batch(again.reference_profile, loaded.frame, ws.contract, ws.settings.profiling)
        assert cached.drift == profile_batch(fresh, loaded.frame, ws.contract, ws.settings.profiling).drift
        path.write_text(path.read_text()[:100])  # torn: refitted, not fatal
        monitoring.prepare_context(ws)
        assert json.loads(path.read_text())  # whole again


def test_monitor_path_imports_no_heavy_library(home: Home) -> None:
    unscored, labels = home.batch("day-2", 2000, seed=7, first_id=3_000_000)
    with open_home(home.settings) as ws:
        ctx = monitoring.prepare_context(ws)  # the cache is built (NannyML imported) here, not in the child
        scored = monitoring.load_batch(ws, ctx, str(unscored)).frame
    supplied = unscored.with_name("day-2-scored.parquet")
    scored.join(pl.read_parquet(labels), on="id").drop("model_version").write_parquet(supplied)
    code = f"""
import sys
from tasks.core.settings import load_settings
from tasks.resources.workspace import open_home
from tasks.stages import monitor_caches, monitoring
with open_home(load_settings({str(home.config)!r})) as ws:
    ctx = monitoring.prepare_context(ws)
    for path in ({str(unscored)!r}, {str(supplied)!r}):
        batch = monitoring.load_batch(ws, ctx, path)
        est, realized = monitoring.estimate(ws, ctx, batch)
        assert est.value > 0.5, est
    assert batch.scored_by == "supplied" and realized is not None and realized.value is not None
print(sorted(m for m in {HEAVY!r} if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path.cwd())
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_prepare_version_fits_the_caches_before_the_first_monitor(tmp_path: Path) -> None:
    home = make_home(tmp_path / "home", emit_events=False)
    home.register(good_and_bad_models()["good"], reference_rows=3000)
    caches = home.settings.home / "cache"
    with open_home(home.settings) as ws:
        ws.registry.promote(MODEL, "v0", actor="test", reason="champion", expected_production=None)
        monitor_caches.prepare_version(ws, ws.production())  # what bootstrap and a passed retrain do
        files = sorted(caches.rglob("*.json"))
        assert [f.parent.parent.name for f in files] == ["estimators", "references"]
        stamps = [f.stat().st_mtime_ns for f in files]
        monitoring.prepare_context(ws)
    assert [f.stat().st_mtime_ns for f in files] == stamps  # the monitor read them


def test_thresholds_calibrated_for_a_new_batch_size_are_kept_in_the_cache(home: Home) -> None:
    batch, _ = home.batch("day-4", 1234, seed=11, first_id=5_000_000)
    folder = home.settings.home / "cache" / "references" / MODEL
    with open_home(home.settings) as ws:
        ctx = monitoring.prepare_context(ws)
        (path,) = sorted(folder.glob("*.json"))
        assert all(1200 not in sizes for sizes in ctx.reference_profile.thresholds.values())
        monitoring.profile(ws, ctx, monitoring.load_batch(ws, ctx, str(batch)))
        kept = json.loads(path.read_text())["thresholds"]
        features = [f.name for f in ctx.reference_profile.features]
        assert all("1200" in kept[name] for name in features)  # 1,234 rows calibrate at 1,200
        again = monitoring.prepare_context(ws)
        assert again.reference_profile.thresholds == ctx.reference_profile.thresholds
        stamp = path.stat().st_mtime_ns
        monitoring.profile(ws, again, monitoring.load_batch(ws, again, str(batch)))
        assert path.stat().st_mtime_ns == stamp, "nothing new calibrated: nothing rewritten"


def test_one_batch_is_monitored_without_numba_matplotlib_or_prefect(home: Home) -> None:
    """The one-batch CLI path (issue 13's 3 s budget), scored or not: small batches take the numpy twins of the
    drift kernels, an unscored batch is scored by lib_lightgbm directly, charts are SVG text, and direct mode
    never imports Prefect."""
    unscored, _ = home.batch("day-5", 2000, seed=13, first_id=6_000_000)
    with open_home(home.settings) as ws:
        ctx = monitoring.prepare_context(ws)
        scored = monitoring.load_batch(ws, ctx, str(unscored)).frame.drop("model_version")
    supplied = unscored.with_name("day-5-scored.parquet")
    scored.write_parquet(supplied)
    code = f"""
import sys
from driftgate.cli import main
try:
    for batch in ({str(unscored)!r}, {str(supplied)!r}):
        main(["monitor", batch, "--no-retrain", "--no-flow", "--config", {str(home.config)!r}], standalone_mode=False)
finally:
    print(sorted(m for m in ("numba", "matplotlib", "prefect", *{HEAVY!r}) if m in sys.modules))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path.cwd(), env=env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
    report = (home.settings.home / "reports" / "monitor" / "day-5-scored.md").read_text()
    assert "](day-5-scored-heatmap.svg)" in report
