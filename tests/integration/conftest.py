"""One real Prefect server, the driftgate work pool and deployments, and a process worker for the session.

Everything runs on 127.0.0.1: the Prefect server keeps its database in the session's PostgreSQL cluster (as a
production server does), and so does the driftgate home's audit store (and with it the Optuna studies), in
another database of the same cluster; the home already holds a production champion. The server and worker are
stopped by their recorded PIDs, even when a test fails.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from uuid import UUID

import pytest
import yaml

from devkit.local_server import LocalPrefect, client_settings

if TYPE_CHECKING:
    import polars as pl
    from prefect.client.schemas.objects import FlowRun

REPO = Path(__file__).resolve().parents[2]
POOL = "driftgate"
QUEUES = {"urgent": 1, "normal": 2, "low": 3}  # prefect.yaml routes rollback to `urgent`, the rest to `normal`
RETRAIN_SLOT = "driftgate-retrain"  # the global concurrency limit every retrain deployment shares
RETRAIN_FLOW = "driftgate-retrain"  # prefect.yaml deploys it once per priority class, each on its own queue
MODEL = "car-loan"
REFERENCE_ROWS = 8000

T = TypeVar("T")


class HasPrefect(Protocol):
    """A fixture holding a LocalPrefect, whose logs a timed-out `poll` shows."""

    @property
    def prefect(self) -> LocalPrefect: ...


class RetrainRunReads:
    """Reads of the retrain deployments' flow runs, for any fixture that knows their ids (the Prefect client
    settings are the caller's)."""

    retrain_deployments: dict[str, UUID]  # work queue (= priority class) → retrain deployment id

    def retrain_runs(self, key: str | None = None) -> list[FlowRun]:
        """Flow runs of the retrain deployments (optionally those whose idempotency_key parameter is `key`)."""
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

        ids = list(self.retrain_deployments.values())
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=ids)))
        return [r for r in runs if key is None or r.parameters.get("idempotency_key") == key]

    def flow_run(self, run_id: UUID) -> FlowRun:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            return client.read_flow_run(run_id)


@dataclass(frozen=True)
class Stack(RetrainRunReads):
    prefect: LocalPrefect
    home: Path
    config: Path
    retrain_deployments: dict[str, UUID]  # work queue (= priority class) → retrain deployment id
    analysis: pl.DataFrame
    prefect_database: str  # SQLAlchemy URLs (PostgreSQL) of the server's database and the home's audit store
    store_database: str

    def wait_until_final(self, run_id: UUID, timeout: float) -> FlowRun:
        return poll(lambda: _final_or_none(self.flow_run(run_id)), timeout, f"flow run {run_id} to finish", self)

    def flow_run_logs(self, run_id: UUID) -> list[str]:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

        with get_client(sync_client=True) as client:
            logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
        return [log.message for log in logs]

    def events(self, name: str) -> list[Any]:
        """Events of `name` about the model that the server has persisted (newest first)."""
        from prefect.client.orchestration import get_client
        from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

        event_filter = EventFilter(
            event=EventNameFilter(name=[name]),
            resource=EventResourceFilter(id=[f"driftgate.model.{MODEL}"]),
        )
        with get_client(sync_client=True) as client:
            return list(client.read_events(event_filter, limit=50).events)

    def registry_versions(self) -> list[str]:
        from tasks.core.settings import load_settings
        from tasks.resources.workspace import open_workspace

        ws = open_workspace(load_settings(self.config))
        try:
            return [v.version for v in ws.registry.versions(ws.model)]
        finally:
            ws.close()


def poll(probe: Callable[[], T | None], timeout: float, what: str, stack: HasPrefect | None = None) -> T:
    """Call `probe` every 0.2 s until it returns something other than None; fail with the server logs."""
    started = time.monotonic()
    probes, slowest = 0, 0.0
    while True:
        probe_started = time.monotonic()
        found = probe()
        probes, slowest = probes + 1, max(slowest, time.monotonic() - probe_started)
        if found is not None:
            return found
        if time.monotonic() - started > timeout:
            logs = stack.prefect.logs() if stack is not None else ""
            pytest.fail(
                f"timed out after {timeout:.0f} s waiting for {what} ({probes} probes, slowest {slowest:.1f} s)\n{logs}"
            )
        time.sleep(0.2)


def _final_or_none(run: FlowRun) -> FlowRun | None:
    return run if run.state is not None and run.state.is_final() else None


def write_home(
    home: Path, store_url: str | None = None, extra: dict[str, Any] | None = None
) -> tuple[Path, Path, pl.DataFrame]:
    """Contract, labelled reference and settings (plus `extra` top-level ones) of a small driftgate home;
    returns (config, reference, analysis)."""
    from tasks.data.contract import infer_contract
    from tasks.data.files import load_car_loan

    home.mkdir(parents=True, exist_ok=True)
    reference, analysis = load_car_loan()
    reference = reference.head(REFERENCE_ROWS)
    infer_contract(reference, name=MODEL, target="repaid", entity_id="id", timestamp="timestamp").save(
        home / "contract.yaml"
    )
    reference_path = home / "reference.parquet"
    reference.write_parquet(reference_path)
    settings = {
        "home": str(home),
        "model_name": MODEL,
        "num_threads": 1,
        # One degraded, labelled batch is enough to ask for a retrain.
        "policy": {"persistence": 1, "min_new_rows": 500, "cooldown_hours": 0},
        "training": {"n_trials": 2, "timeout_seconds": 20, "num_boost_round": 60},
        "gate": {"n_bootstrap": 200},
        # A promotion that paused for a human approval would keep the retrain run from completing.
        "promotion": {"auto_approve": True},
    }
    if store_url is not None:
        settings["store_url"] = store_url
    settings.update(extra or {})
    config = home / "driftgate.yaml"
    config.write_text(yaml.safe_dump(settings, sort_keys=False))
    return config, reference_path, analysis


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, postgres_cluster: Any) -> Iterator[Stack]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    from flows.bootstrap import bootstrap_flow
    from tests.conftest import fresh_database

    root = tmp_path_factory.mktemp("integration")
    home = root / "home"
    # Prefect's server speaks asyncpg to PostgreSQL; driftgate's store psycopg 3.
    prefect_db = fresh_database(postgres_cluster).replace("postgresql+psycopg://", "postgresql+asyncpg://")
    # The server takes ~20 s to become healthy: prepare the driftgate home meanwhile.
    local = LocalPrefect.launch(root / "prefect-home", server_env={"PREFECT_API_DATABASE_CONNECTION_URL": prefect_db})
    try:
        store_db = fresh_database(postgres_cluster)
        config, reference, analysis = write_home(home, store_url=store_db)
        local.wait_healthy(timeout=150)
        local.create_pool(POOL, queues=QUEUES)
        local.create_global_limit(RETRAIN_SLOT, 1)
        local.start_worker(
            POOL,
            env={"DRIFTGATE_HOME": str(home), "DRIFTGATE_CONFIG": str(config), "WANDB_MODE": "offline"},
            cwd=REPO,
            query_seconds=1,
            prefetch_seconds=2,
        )
        with ThreadPoolExecutor(max_workers=1) as background, client_settings(local.api_url):
            # `prefect deploy` is a separate process: let it run while the champion trains here.
            deployed = background.submit(local.deploy_all, REPO)
            bootstrap_flow(reference=str(reference), home=str(home), config=str(config))
            deployed.result()
            with get_client(sync_client=True) as client:
                deployments = client.read_deployments(flow_filter=FlowFilter(name=FlowFilterName(any_=[RETRAIN_FLOW])))
            retrain_deployments = {d.work_queue_name or "": d.id for d in deployments}
            assert set(QUEUES) <= set(retrain_deployments), retrain_deployments
            local.wait_for_worker(POOL, timeout=60)
            yield Stack(
                prefect=local,
                home=home,
                config=config,
                retrain_deployments=retrain_deployments,
                analysis=analysis,
                prefect_database=prefect_db,
                store_database=store_db,
            )
    finally:
        local.stop()
