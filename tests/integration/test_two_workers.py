"""Two process workers on two "machines" (issue 14, item 3): one Prefect server on PostgreSQL, one pool, and two
workers, each started from its own copy of the repository with its own driftgate home (lake cache, reports, W&B
offline runs, registry copies). The two share only the audit store's PostgreSQL URL (audit rows, Optuna studies
and the SQL registry's versions, aliases and ledger) and the artifact store (an S3 stand-in: batch lake and model
files). Each machine receives its own copy of every input batch.

Ten monitor runs (one degraded, so the monitor asks for a retrain) and three retrain requests, two of them racing
for the same window on two deployments at once, then a worker killed with SIGKILL in the middle of a retrain,
whose flow run is retried and completes on the other worker. Checked: exactly one retrain per window, never two
retrains holding the retrain slot at once, every audit row present exactly once, runs on both workers, each
clone scores, promotes and rolls back versions the other registered, and the killed retrain left no
half-registered version. The figures are printed (``-s``) and written to ``two-workers-figures.json``.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

import pytest

from devkit.local_server import LocalPrefect, ManagedProcess, client_settings
from tests.integration.conftest import (
    MODEL,
    POOL,
    QUEUES,
    RETRAIN_FLOW,
    RETRAIN_SLOT,
    RetrainRunReads,
    poll,
    write_home,
)
from tests.support.s3 import S3StandIn, s3_stand_in  # noqa: F401  (the fixture)

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BATCH_ROWS = 3000
MONITOR_RUNS = 10
DEGRADED_DAYS = {3}  # the fourth batch is drawn drifted: its monitor decides RETRAIN and requests it
WORKER_LIMIT = 2  # flow runs per worker at once: ten processes on 2 shared cores would only thrash
RUN_TIMEOUT = 420.0  # polling deadlines on a loaded 2-core machine, never fixed sleeps
AWS = {
    "AWS_ACCESS_KEY_ID": "driftgate-test",
    "AWS_SECRET_ACCESS_KEY": "driftgate-test",
    "AWS_DEFAULT_REGION": "us-east-1",
}
SLOT_HELD = re.compile(r"holding the retrain slot")
SLOT_RELEASED = re.compile(r"releasing the retrain slot")


@dataclass
class Clone:
    """One "machine": a copy of the repository's tracked files, its own home and settings, its worker."""

    name: str
    path: Path
    home: Path
    config: Path
    worker: ManagedProcess | None = None

    def env(self) -> dict[str, str]:
        return {
            **AWS,
            "DRIFTGATE_HOME": str(self.home),
            "DRIFTGATE_CONFIG": str(self.config),
            "WANDB_MODE": "offline",
            # prefect.yaml's pull step moves each run to `{{ $PWD }}`, resolved in the run's environment.
            "PWD": str(self.path),
        }

    def driftgate(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A driftgate CLI command on this machine (direct mode: no Prefect API in its environment)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DRIFTGATE_"))}
        done = subprocess.run(
            [str(Path(sys.executable).with_name("driftgate")), *args],
            cwd=self.path,
            env={**env, **self.env(), "PREFECT_HOME": str(self.home / "prefect")},  # no profile's API either
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if check:
            assert done.returncode == 0, f"{self.name}: driftgate {' '.join(args)}\n{done.stdout}\n{done.stderr}"
        return done

    def ran(self, run: FlowRun) -> bool:
        """Whether this machine's worker started the flow run (a worker that lost the run to the other one logs
        its id too, then that it aborted the submission)."""
        if self.worker is None:
            return False
        log = self.worker.log_path.read_text(errors="replace")
        return f"submitting flow run '{run.id}'" in log and f"Flow run '{run.name}' submitted to infrastructure" in log


@dataclass
class TwoWorkers(RetrainRunReads):
    prefect: LocalPrefect
    clones: dict[str, Clone]
    store_database: str
    days: Any  # ScenarioGenerator
    retrain_deployments: dict[str, UUID]
    figures: dict[str, Any] = field(default_factory=dict)
    root: Path = Path()

    def start_worker(self, clone: Clone) -> None:
        clone.worker = self.prefect.start_worker(
            POOL, env=clone.env(), cwd=clone.path, query_seconds=1, prefetch_seconds=2, name=f"worker-{clone.name}",
            limit=WORKER_LIMIT,
        )  # fmt: skip

    def wait_final(self, run_ids: list[UUID], timeout: float = RUN_TIMEOUT) -> list[Any]:
        def all_final() -> list[Any] | None:
            runs = [self.flow_run(i) for i in run_ids]
            return runs if all(r.state is not None and r.state.is_final() for r in runs) else None

        return poll(all_final, timeout, f"{len(run_ids)} flow run(s) to finish", _Logs(self.prefect))

    def logs(self, run_id: UUID) -> list[Any]:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

        with get_client(sync_client=True) as client:
            return list(client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id]))))

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(re.sub(r"^postgresql\+\w+://", "postgresql://", self.store_database)) as conn:
            return list(conn.execute(query, params).fetchall())

    def aliases(self) -> dict[str, str]:
        from tasks.core.settings import load_settings
        from tasks.resources.workspace import open_workspace

        ws = open_workspace(load_settings(self.clones["a"].config))
        try:
            return dict(ws.registry.aliases(ws.model))
        finally:
            ws.close()


@dataclass(frozen=True)
class _Logs:
    """What `poll` shows when it times out: the server's and the workers' log tails."""

    prefect: LocalPrefect


def _copy_tracked_files(destination: Path) -> None:
    """A clone of the repository as CI has it: its tracked files (uncommitted edits included), no .venv, no homes."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = REPO / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


@pytest.fixture(scope="module")
def two_workers(
    tmp_path_factory: pytest.TempPathFactory, postgres_cluster: Any, request: pytest.FixtureRequest
) -> Iterator[TwoWorkers]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    from flows.bootstrap import bootstrap_flow
    from tasks.data.files import ScenarioGenerator
    from tests.conftest import fresh_database

    started = time.monotonic()
    s3: S3StandIn = request.getfixturevalue("s3_stand_in")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server logs every request otherwise
    root = tmp_path_factory.mktemp("two-workers")
    prefect_db = fresh_database(postgres_cluster).replace("postgresql+psycopg://", "postgresql+asyncpg://")
    local = LocalPrefect.launch(root / "prefect-home", server_env={"PREFECT_API_DATABASE_CONNECTION_URL": prefect_db})
    with pytest.MonkeyPatch.context() as env:
        for name, value in AWS.items():
            env.setenv(name, value)
        try:
            store_db = fresh_database(postgres_cluster)
            shared = {
                "registry_storage": "sql",
                "artifact_store": f"s3://{s3.bucket()}/driftgate",
                "artifact_store_options": s3.options,
            }
            clones: dict[str, Clone] = {}
            for name in ("a", "b"):
                path = root / f"clone-{name}"
                _copy_tracked_files(path)
                config, _, analysis = write_home(root / f"home-{name}", store_url=store_db, extra=shared)
                clones[name] = Clone(name, path, root / f"home-{name}", config)
            local.wait_healthy(timeout=150)
            local.create_pool(POOL, queues=QUEUES)
            local.create_global_limit(RETRAIN_SLOT, 1)
            setup = TwoWorkers(
                prefect=local,
                clones=clones,
                store_database=store_db,
                days=ScenarioGenerator(analysis.head(25_000), seed=11),
                retrain_deployments={},
                root=root,
            )
            for clone in clones.values():
                setup.start_worker(clone)
            with ThreadPoolExecutor(max_workers=1) as background, client_settings(local.api_url):
                # Deployed once, from machine a; machine a also trains the first champion meanwhile.
                deployed = background.submit(local.deploy_all, clones["a"].path)
                a = clones["a"]
                bootstrap_flow(reference=str(a.home / "reference.parquet"), home=str(a.home), config=str(a.config))
                deployed.result()
                with get_client(sync_client=True) as client:
                    deployments = client.read_deployments(
                        flow_filter=FlowFilter(name=FlowFilterName(any_=[RETRAIN_FLOW]))
                    )
                setup.retrain_deployments.update({d.work_queue_name or "": d.id for d in deployments})
                assert set(QUEUES) <= set(setup.retrain_deployments), setup.retrain_deployments
                poll(lambda: True if len(_workers_of(local)) == 2 else None, 90, "both workers to join", _Logs(local))
                setup.figures["wall_seconds"] = {"setup": round(time.monotonic() - started, 1)}
                yield setup
        finally:
            local.stop()


def _workers_of(local: LocalPrefect) -> list[Any]:
    from prefect.client.orchestration import SyncPrefectClient

    with SyncPrefectClient(local.api_url) as client:
        return list(client.read_workers_for_work_pool(POOL))


def _write_batch(setup: TwoWorkers, day: int, degraded: bool) -> tuple[str, str]:
    """Day `day`'s batch and its labels, delivered to both machines under the same relative path."""
    from tasks.data.files import STATIONARY, split_labels, write_frame
    from tasks.data.scenarios import DRIFT

    features, labels = split_labels(
        setup.days.batch(BATCH_ROWS, DRIFT if degraded else STATIONARY), entity_id="id", target="repaid"
    )
    batch, label_file = f"incoming/day-{day:02d}.parquet", f"incoming/day-{day:02d}-labels.parquet"
    for clone in setup.clones.values():
        write_frame(features, clone.path / batch)
        write_frame(labels, clone.path / label_file)
    return batch, label_file


def _request(key: str, window: tuple[datetime, datetime], priority_class: str, batch_id: str) -> None:
    """A retrain request as the monitor sends it, with a fresh event id (a second monitor's request)."""
    from prefect.events import emit_event

    from tasks.resources import events

    payload = {
        "model": MODEL,
        "batch_id": batch_id,
        "window_start": window[0].isoformat(),
        "window_end": window[1].isoformat(),
        "priority": 1.0,
        "priority_class": priority_class,
        "idempotency_key": key,
    }
    emitted = emit_event(
        event=events.RETRAIN_REQUESTED,
        resource=events.resource_of(events.RETRAIN_REQUESTED, MODEL, payload),
        payload=payload,
        id=uuid.uuid4(),
    )
    assert emitted is not None


def _slot_intervals(
    setup: TwoWorkers, run_ids: list[UUID], killed: tuple[UUID, datetime]
) -> list[tuple[datetime, datetime, UUID]]:
    """When each run held the retrain slot, from its own log lines (acquired, released); the killed run's first
    attempt held it until it was killed."""
    intervals = []
    for run_id in run_ids:
        marks = sorted(
            (log.timestamp, "held" if SLOT_HELD.search(log.message) else "released")
            for log in setup.logs(run_id)
            if SLOT_HELD.search(log.message) or SLOT_RELEASED.search(log.message)
        )
        while marks:
            (start, what), marks = marks[0], marks[1:]
            assert what == "held", (run_id, marks)
            if marks and marks[0][1] == "released":
                (end, _), marks = marks[0], marks[1:]
            else:
                assert run_id == killed[0], f"run {run_id} never released the retrain slot"
                end = killed[1]
            intervals.append((start, end, run_id))
    return sorted(intervals)


def _kill_mid_retrain(setup: TwoWorkers, victim: Clone, survivor: Clone, window: tuple[datetime, datetime]) -> dict:
    """Send a retrain request that only `victim` can take, kill `victim` (SIGKILL, worker and flow-run process)
    while the run trains, and retry the run on `survivor`."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate
    from prefect.states import Crashed, Scheduled

    from tasks.resources import events

    assert survivor.worker is not None and victim.worker is not None
    survivor.worker.stop()  # the request must land on the victim: the survivor stays away until the run trains
    setup.prefect.workers.remove(survivor.worker)
    key = events.retrain_key(MODEL, *window, "kill")
    versions_before = setup.sql("SELECT version FROM driftgate_registry_versions ORDER BY idx")
    _request(key, window, "normal", "kill-drill")
    (run,) = poll(lambda: setup.retrain_runs(key) or None, 120, "the run of the killed request", _Logs(setup.prefect))
    poll(
        lambda: True if any("tune and train" in log.message for log in setup.logs(run.id)) else None,
        RUN_TIMEOUT,
        "the victim's run to start training",
        _Logs(setup.prefect),
    )
    setup.start_worker(survivor)
    killed_at = time.monotonic()
    figures_killed = (run.id, datetime.now(UTC))
    children = victim.worker.kill()
    setup.prefect.workers.remove(victim.worker)
    assert victim.ran(run) and not survivor.ran(run)
    assert children, "the flow-run process was not found under the victim worker"
    # Nothing half-registered: the killed run trained only; no version row, no trained decision for its key.
    assert setup.sql("SELECT version FROM driftgate_registry_versions ORDER BY idx") == versions_before
    trained = "SELECT count(*) FROM driftgate_decision WHERE kind = 'retrain' AND payload->>'idempotency_key' = %s"
    assert setup.sql(trained, key) == [(0,)]
    for clone in setup.clones.values():
        clone.driftgate("verify")
    # What an operator does for a run whose machine died: mark it crashed (which frees its deployment slot),
    # free the retrain slot its dead process still holds under a 5-minute lease, and retry the same run.
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run.id, Crashed(message="worker killed (SIGKILL)"), force=True)
        client.update_global_concurrency_limit(RETRAIN_SLOT, GlobalConcurrencyLimitUpdate(active_slots=0))
        client.set_flow_run_state(run.id, Scheduled(), force=True)
    (final,) = setup.wait_final([run.id])
    assert final.state.is_completed(), (final.state, setup.prefect.logs())
    assert survivor.ran(final)
    assert setup.sql(trained, key) == [(1,)]
    assert not any("duplicate request" in log.message for log in setup.logs(run.id))
    return {"key": key, "run_id": str(run.id), "killed_pids": len(children) + 1, "killed": figures_killed,
            "retry_seconds": round(time.monotonic() - killed_at, 1)}  # fmt: skip


def test_two_workers_on_two_machines(two_workers: TwoWorkers) -> None:
    setup = two_workers
    figures = setup.figures
    walls = figures["wall_seconds"]
    a, b = setup.clones["a"], setup.clones["b"]

    # --- 1. ten monitor runs through the monitor deployment, spread over both workers ---------------------
    from prefect.deployments import run_deployment

    phase = time.monotonic()
    with client_settings(setup.prefect.api_url):
        inputs = [_write_batch(setup, day, day in DEGRADED_DAYS) for day in range(MONITOR_RUNS)]
        monitor_runs = [
            cast(
                "FlowRun",
                run_deployment(
                    "driftgate-monitor/monitor",
                    parameters={"batches": [batch], "labels": [labels], "only_new": False},
                    timeout=0,
                ),
            ).id
            for batch, labels in inputs
        ]
        finished = setup.wait_final(monitor_runs)
        assert all(r.state.is_completed() for r in finished), [(r.name, r.state) for r in finished]
        walls["monitor_runs"] = round(time.monotonic() - phase, 1)

        # --- 2. three retrain requests: the degraded batch's, and two racing for one window ---------------
        phase = time.monotonic()
        batches = setup.sql("SELECT batch_id, source, window_start, window_end FROM driftgate_batch ORDER BY batch_id")
        assert len(batches) == MONITOR_RUNS, batches
        requested = poll(
            lambda: setup.retrain_runs() or None, 120, "the degraded batch's retrain request", _Logs(setup.prefect)
        )
        monitor_keys = {r.parameters["idempotency_key"] for r in requested}
        stationary = [row for row in batches if "day-03" not in str(row[1])]
        race_window = (stationary[0][2], stationary[0][3])
        race_key = f"retrain-race-{uuid.uuid4().hex[:12]}"
        with ThreadPoolExecutor(max_workers=2) as pool:  # same window, two priority classes: two deployments
            list(pool.map(lambda c: _request(race_key, race_window, c, str(stationary[0][0])), ["normal", "low"]))
        keys = monitor_keys | {race_key}
        poll(
            lambda: runs if len(runs := setup.retrain_runs()) >= len(monitor_keys) + 2 else None,
            120,
            "the racing runs",
            _Logs(setup.prefect),
        )
        retrains = setup.wait_final([r.id for r in setup.retrain_runs()])
        assert all(r.state.is_completed() for r in retrains), [(r.name, r.state) for r in retrains]
        walls["retrain_requests"] = round(time.monotonic() - phase, 1)

        # --- exactly one retrain per window; the racers ran at once and one of them was a duplicate --------
        trained = setup.sql(
            "SELECT payload->>'idempotency_key', version FROM driftgate_decision "
            "WHERE kind = 'retrain' AND outcome = 'trained' AND payload->>'idempotency_key' IS NOT NULL"
        )
        per_key = Counter(key for key, _ in trained)
        duplicates = setup.sql(
            "SELECT payload->>'idempotency_key' FROM driftgate_decision "
            "WHERE kind = 'retrain' AND outcome = 'duplicate'"
        )
        assert per_key == Counter(dict.fromkeys(keys, 1)), (per_key, keys)
        assert [k for (k,) in duplicates] == [race_key], duplicates
        assert Counter(
            k for (k,) in setup.sql("SELECT idempotency_key FROM driftgate_claim WHERE purpose = 'retrain'")
        ) == Counter(dict.fromkeys(keys, 1))
        racers = setup.retrain_runs(race_key)
        assert len(racers) == 2 and {r.work_queue_name for r in racers} == {"normal", "low"}, racers
        # Both racers claimed while the other was running: a real race, not one after the other.
        first, second = sorted(racers, key=lambda r: r.start_time)
        overlap = (first.end_time - second.start_time).total_seconds()
        figures["race"] = {
            "racers_on": sorted(c.name for c in setup.clones.values() for r in racers if c.ran(r)),
            "racers_overlap_seconds": round(overlap, 1),
        }

        # --- 3. a worker killed mid-retrain; its run retried on the other worker ---------------------------
        phase = time.monotonic()
        version_worker = {
            version: next(c.name for c in setup.clones.values() if c.ran(run))
            for run in setup.retrain_runs()
            for key, version in trained
            if run.parameters["idempotency_key"] == key
            and not any("duplicate request" in log.message for log in setup.logs(run.id))
        }
        # The survivor is a machine that registered nothing yet (if any), so both have registered afterwards.
        survivor = b if "b" not in version_worker.values() else a
        victim = a if survivor is b else b
        kill_window = (stationary[1][2], stationary[1][3])
        figures["kill"] = _kill_mid_retrain(setup, victim, survivor, kill_window)
        walls["kill_and_retry"] = round(time.monotonic() - phase, 1)

    # --- at most one retrain held the slot at any time (all retrains, the killed one's retry included) -----
    trained = setup.sql(
        "SELECT payload->>'idempotency_key', version FROM driftgate_decision "
        "WHERE kind = 'retrain' AND outcome = 'trained' AND payload->>'idempotency_key' IS NOT NULL"
    )
    training_runs = [
        r.id for r in setup.retrain_runs() if not any("duplicate request" in log.message for log in setup.logs(r.id))
    ]
    intervals = _slot_intervals(setup, training_runs, figures["kill"].pop("killed"))
    for (_, end, one), (start, _, then) in itertools.pairwise(intervals):
        assert end <= start, f"runs {one} and {then} held the retrain slot at once"
    all_keys = keys | {figures["kill"]["key"]}
    figures["duplicate_retrains"] = sum(n - 1 for n in Counter(k for k, _ in trained).values())
    assert figures["duplicate_retrains"] == 0 and {k for k, _ in trained} == all_keys

    # --- every run of both phases ran on one of the two machines, and both machines ran some ---------------
    all_runs = [*(setup.flow_run(i) for i in monitor_runs), *setup.retrain_runs()]
    takers = Counter("+".join(c.name for c in setup.clones.values() if c.ran(r)) or "?" for r in all_runs)
    figures["runs_per_worker"] = dict(takers)
    # Every run on exactly one machine (the killed run's retry on both: started on one, completed on the other).
    assert takers["a"] > 0 and takers["b"] > 0 and set(takers) <= {"a", "b", "a+b"} and takers["a+b"] <= 1, takers

    # --- every audit row present exactly once ----------------------------------------------------------------
    versions = [v for (v,) in setup.sql("SELECT version FROM driftgate_registry_versions ORDER BY idx")]
    assert versions == [f"v{i}" for i in range(1 + len(all_keys))], versions  # bootstrap + one per window
    batch_ids = {str(row[0]) for row in batches}
    policy = Counter(str(b) for (b,) in setup.sql("SELECT batch_id FROM driftgate_decision WHERE kind = 'policy'"))
    # A signal written twice is the same row twice (a batch has several rows per name: one per chunk, ...).
    signals = Counter(
        setup.sql(
            "SELECT batch_id, kind, name, method, value, threshold, alert, window_start, window_end, payload::text "
            "FROM driftgate_signal"
        )
    )
    per_batch_signals = Counter(row[0] for row in signals)
    expected_rows = len(batch_ids) * 2 + sum(per_batch_signals.values()) + len(all_keys) * 2 + 1
    lost = (
        len(batch_ids - set(policy))
        + sum(1 for batch in batch_ids if per_batch_signals[batch] != max(per_batch_signals.values()))
        + len(all_keys - {k for k, _ in trained})
        + len(set(versions) - {v for _, v in trained} - {"v0"})
    )
    repeated = sum(n - 1 for n in policy.values()) + sum(n - 1 for n in signals.values())
    figures["audit_rows"] = {"checked": expected_rows, "lost": lost, "repeated": repeated}
    assert lost == 0 and repeated == 0, (
        figures["audit_rows"],
        sorted((row[:3], n) for row, n in signals.items() if n > 1)[:10],
        sorted((batch, n) for batch, n in policy.items() if n > 1),
    )
    gates = Counter(v for (v,) in setup.sql("SELECT version FROM driftgate_decision WHERE kind = 'gate'"))
    assert gates == Counter(dict.fromkeys(versions, 1)), gates  # the bootstrap too

    # --- 4. each machine scores, promotes and rolls back the versions the other registered ---------------
    phase = time.monotonic()
    kill_version = next(v for k, v in trained if k == figures["kill"]["key"])
    version_worker[kill_version] = survivor.name
    figures["registered_by"] = version_worker
    assert set(version_worker.values()) == {"a", "b"}, version_worker
    score_input = inputs[0][0]
    crossed = []
    for version, registrar in sorted(version_worker.items()):
        other = b if registrar == "a" else a
        if setup.aliases().get("production") == version:  # auto-promoted by its retrain: step back first
            other.driftgate("rollback", "--reason", f"machine {other.name} steps back from {version}")
        before = setup.aliases().get("production")
        assert before is not None and before != version, setup.aliases()
        other.driftgate("promote", version, "--force", "--reason", f"machine {other.name} promotes {version}")
        assert setup.aliases().get("production") == version, (version, setup.aliases())
        scored = other.driftgate("score", score_input)
        assert f"{version}: " in scored.stdout, scored.stdout
        other.driftgate("rollback", "--reason", f"machine {other.name} rolls {version} back")
        assert setup.aliases().get("production") == before, (before, setup.aliases())
        crossed.append(f"{version}: registered on {registrar}, promoted/scored/rolled back on {other.name}")
    for clone in setup.clones.values():
        clone.driftgate("verify")
    figures["cross_worker"] = crossed
    walls["cross_worker"] = round(time.monotonic() - phase, 1)

    figures["rows_lost"] = lost
    figures["load_average"] = [round(x, 2) for x in os.getloadavg()]
    report = setup.root / "two-workers-figures.json"
    report.write_text(json.dumps(figures, indent=2, default=str))
    print(f"\ntwo workers, two machines: {json.dumps(figures, indent=2, default=str)}\nfigures: {report}")
