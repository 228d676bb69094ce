"""Event → flow run latency of the retrain trigger on a real local Prefect server with a process worker.

    uv run python benchmarks/event_latency.py [--requests 5] [--query-seconds 1]

Starts a server on 127.0.0.1 (temporary PREFECT_HOME, SQLite), the `driftgate` work pool and queues, deploys
prefect.yaml and starts one process worker. Then it emits `driftgate.retrain.requested` N times, one at a time,
each with a new idempotency key that the prepared home has already claimed, so every run is the retrain flow's
duplicate no-op and the figures measure orchestration, not training. For each request:

- emit → created: the trigger's flow run exists (server's `created` time),
- emit → picked up: the worker has claimed it (its Pending state; bounded below by the worker's poll),
- emit → running: the flow has started in the worker's subprocess (server's `start_time`, after the
  subprocess has imported Prefect and the flow).

Everything it started is stopped when it ends.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from devkit.local_server import LocalPrefect, client_settings
from tasks.core.telemetry import disable_telemetry

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun

POOL = "driftgate"
QUEUES = {"urgent": 1, "normal": 2, "low": 3}
MODEL = "car-loan"
RETRAIN_FLOW = "driftgate-retrain"
REPO = Path(__file__).resolve().parents[1]


def prepare_home(home: Path, keys: list[str]) -> Path:
    """A driftgate home whose audit store has already claimed `keys` (each retrain run will be a no-op)."""
    from tasks.core.settings import load_settings
    from tasks.resources.workspace import open_workspace

    home.mkdir(parents=True, exist_ok=True)
    config = home / "driftgate.yaml"
    config.write_text(f"home: {home}\nmodel_name: {MODEL}\n")
    ws = open_workspace(load_settings(config))
    try:
        for key in keys:
            ws.store.claim(key, purpose="retrain")
    finally:
        ws.close()
    return config


def run_for(key: str) -> FlowRun | None:
    """The retrain deployments' flow run for `key` (prefect.yaml deploys the flow once per priority class)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[RETRAIN_FLOW])))
    return next((r for r in runs if r.deployment_id and r.parameters.get("idempotency_key") == key), None)


def pending_at(run_id: uuid.UUID) -> datetime | None:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        states = client.read_flow_run_states(run_id)
    return next((s.timestamp for s in states if s.type.value == "PENDING"), None)


def wait(key: str, timeout: float, *, final: bool) -> FlowRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = run_for(key)
        if run is not None and (not final or (run.state is not None and run.state.is_final())):
            return run
        time.sleep(0.05)
    raise TimeoutError(f"no {'finished ' if final else ''}retrain run for {key} within {timeout:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5, help="retrain requests to emit (one at a time)")
    parser.add_argument("--query-seconds", type=float, default=1.0, help="worker poll interval")
    parser.add_argument("--prefetch-seconds", type=float, default=2.0, help="worker prefetch window")
    args = parser.parse_args(argv)
    disable_telemetry()  # before prefect is imported

    from tasks.resources import events

    root = Path(tempfile.mkdtemp(prefix="driftgate-event-latency-"))
    keys = [f"retrain-bench-{uuid.uuid4().hex[:12]}" for _ in range(args.requests)]
    started = time.monotonic()
    local = LocalPrefect.launch(root / "prefect-home")
    try:
        config = prepare_home(root / "home", keys)
        healthy = local.wait_healthy(timeout=180)
        local.create_pool(POOL, queues=QUEUES)
        local.start_worker(
            POOL,
            env={"DRIFTGATE_HOME": str(root / "home"), "DRIFTGATE_CONFIG": str(config)},
            cwd=REPO,
            query_seconds=args.query_seconds,
            prefetch_seconds=args.prefetch_seconds,
        )
        deploy_started = time.monotonic()
        local.deploy_all(REPO)
        deployed = time.monotonic() - deploy_started
        joined = local.wait_for_worker(POOL, timeout=90)
        print(
            f"server healthy after {healthy:.1f} s; deploy --all took {deployed:.1f} s; worker joined in {joined:.1f} s"
        )
        print(f"setup {time.monotonic() - started:.1f} s; the worker polls every {args.query_seconds:g} s")

        created: list[float] = []
        picked: list[float] = []
        running: list[float] = []
        with client_settings(local.api_url):
            for number, key in enumerate(keys, start=1):
                payload = {
                    "model": MODEL,
                    "batch_id": f"bench-{number}",
                    "window_start": None,
                    "window_end": None,
                    "priority": 1.0,
                    "priority_class": "normal",
                    "idempotency_key": key,
                }
                emitted_at = datetime.now(UTC)
                events.emit(events.RETRAIN_REQUESTED, MODEL, payload, idempotency_key=key)
                wait(key, 30, final=False)
                run = wait(key, 120, final=True)
                if run.state is None or not run.state.is_completed() or run.start_time is None:
                    raise RuntimeError(f"retrain run {run.name} for {key} ended {run.state}\n{local.logs()}")
                if run.parameters.get("window_start") is not None:
                    raise RuntimeError(f"a null window arrived as {run.parameters['window_start']!r}")
                created.append((run.created - emitted_at).total_seconds() if run.created else float("nan"))
                pending = pending_at(run.id)
                picked.append((pending - emitted_at).total_seconds() if pending else float("nan"))
                running.append((run.start_time - emitted_at).total_seconds())
                print(
                    f"  request {number}: emit→created {created[-1]:.3f} s, emit→picked up {picked[-1]:.2f} s, "
                    f"emit→running {running[-1]:.2f} s"
                )
        print(
            f"median of {len(keys)}: emit→flow-run-created {statistics.median(created):.3f} s "
            f"(min {min(created):.3f}, max {max(created):.3f}); emit→picked up {statistics.median(picked):.2f} s; "
            f"emit→running {statistics.median(running):.2f} s (min {min(running):.2f}, max {max(running):.2f})"
        )
    finally:
        local.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
