"""Time from `driftgate rollback` (the CLI, a fresh process) to the restored version being served.

"Served" means what a scoring process does after an alias move: a fresh resolve of `production`
returns the restored version, its digests verify, its LightGBM text loads and scores a row. The
benchmark polls for that from its own process while the CLI runs, and also records when the CLI
exits (after the audit row, the W&B offline run and the event).

Two ways of running the same command on the same registry, in the same run:
  direct  `driftgate rollback` without a Prefect API configured: the rollback runs in-process;
  flow    `driftgate rollback --flow`: a Prefect flow run on an ephemeral API (what a deployment
          or a configured PREFECT_API_URL gives, minus the worker).
After each rollback the benchmark rolls production forward again, so every run starts equal.

    uv run python benchmarks/rollback.py              # 5 direct runs, 3 flow runs
    uv run python benchmarks/rollback.py --flow-runs 0
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devkit.promotion_home import MODEL, make_home, rows, train_text  # noqa: E402
from tasks.registry.local import LocalRegistry  # noqa: E402
from tasks.registry.model import LEDGER_NAME  # noqa: E402
from tasks.stages.drill import serve_once  # noqa: E402

TARGET_SECONDS = 2.0
POLL_SECONDS = 0.002


def build_home(root: Path) -> tuple[Path, Path]:
    """Two production-sized-ish models (200 trees) promoted in turn: production v1, previous-production v0."""
    home = make_home(root, tracking_mode="offline")
    for seed in (3, 4):
        home.register(train_text(rows(5000, seed=seed, first_id=seed * 100_000), rounds=200), reference_rows=2000)
    registry = home.registry
    registry.promote(MODEL, "v0", actor="benchmark", reason="setup", expected_production=None)
    registry.promote(MODEL, "v1", actor="benchmark", reason="setup")
    return home.root, home.config


def one_rollback(home: Path, config: Path, *, flow: bool) -> tuple[float, float]:
    """(seconds until the restored version is served, seconds until the CLI exits)."""
    registry = LocalRegistry(home / "registry")
    expected = registry.aliases(MODEL)["previous-production"]
    command = [str(Path(sys.executable).parent / "driftgate"), "rollback", "--home", str(home), "--config", str(config)]
    command.append("--flow" if flow else "--no-flow")
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(home / "prefect")  # the ephemeral API's database, private to this benchmark
    # On a busy machine the ephemeral API can take longer than Prefect's default 20 s to answer.
    env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "120"
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ledger = home / "registry" / MODEL / LEDGER_NAME
    seen_size = ledger.stat().st_size
    served_at = None
    while served_at is None:
        # A stat per poll, a parse only when the ledger grew: the poller must not steal the CLI's CPU.
        size = ledger.stat().st_size
        if size != seen_size:
            seen_size = size
            if LocalRegistry(home / "registry").aliases(MODEL).get("production") == expected:
                version, _probability = serve_once(LocalRegistry(home / "registry"), MODEL)
                if version.version == expected:
                    served_at = time.perf_counter() - started
                    break
        if process.poll() is not None and process.returncode != 0:
            raise SystemExit(f"driftgate rollback failed:\n{process.stderr.read()}")
        time.sleep(POLL_SECONDS)
    _out, err = process.communicate(timeout=300)
    exited_at = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"driftgate rollback failed:\n{err}")
    rolled_back_from = registry.ledger(MODEL)[-1].moves[0].from_version
    assert rolled_back_from is not None
    registry.promote(MODEL, rolled_back_from, actor="benchmark", reason="roll forward for the next run")
    return served_at, exited_at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="direct rollbacks (median reported)")
    parser.add_argument("--flow-runs", type=int, default=3, help="rollbacks through a Prefect flow (0 to skip)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="driftgate-rollback-bench-"))
    try:
        home, config = build_home(root / "home")
        results: dict[str, list[tuple[float, float]]] = {"direct": [], "flow": []}
        if args.flow_runs:
            warm = one_rollback(home, config, flow=True)
            print(f"flow   warm-up (creates the Prefect database, not counted): served after {warm[0]:.3f} s")
        for mode, count in (("direct", args.runs), ("flow", args.flow_runs)):
            for run in range(count):
                served, exited = one_rollback(home, config, flow=mode == "flow")
                results[mode].append((served, exited))
                print(f"{mode:<6} run {run + 1}: served after {served:6.3f} s, CLI exited after {exited:6.3f} s")
        print()
        print(f"{'mode':<8}{'runs':>5}{'median served (s)':>20}{'median CLI exit (s)':>22}")
        medians: dict[str, tuple[float, float]] = {}
        for mode, values in results.items():
            if not values:
                continue
            medians[mode] = (statistics.median(v[0] for v in values), statistics.median(v[1] for v in values))
            print(f"{mode:<8}{len(values):>5}{medians[mode][0]:>20.3f}{medians[mode][1]:>22.3f}")
        served = medians["direct"][0]
        verdict = "MET" if served < TARGET_SECONDS else "MISSED"
        print(f"\ntarget: restored version served in < {TARGET_SECONDS} s (direct) → {verdict}")
        if "flow" in medians:
            print(f"ratio flow / direct (served): {medians['flow'][0] / served:.1f}x")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
