"""The scheduled monitor deployment reads the inbox under the worker's configured home.

The worker runs in the repository (its working directory), its home is elsewhere: a batch dropped in
``<home>/inbox`` is monitored by a run of the `monitor` deployment made with exactly the parameters its daily
schedule uses (the deployment's own), and a decoy in the repository-relative ``.driftgate/inbox`` is not.
"""

from __future__ import annotations

from typing import Any

import pytest

from tasks.data.files import STATIONARY, ScenarioGenerator, split_labels, write_frame
from tests.integration.conftest import REPO, Stack

pytestmark = pytest.mark.integration

RUN_FINISHED_TIMEOUT = 180.0  # worker poll + subprocess start + one monitored batch on 2 shared cores


def _store_batches(stack: Stack) -> set[str]:
    import re

    import psycopg

    url = re.sub(r"^postgresql\+\w+://", "postgresql://", stack.store_database)
    with psycopg.connect(url) as connection:
        return {row[0] for row in connection.execute("SELECT batch_id FROM driftgate_batch").fetchall()}


def test_a_batch_dropped_in_the_homes_inbox_is_monitored_by_the_scheduled_deployment(stack: Stack) -> None:
    from prefect.client.orchestration import get_client

    from devkit.local_server import client_settings

    features, _ = split_labels(
        ScenarioGenerator(stack.analysis.tail(10_000), seed=23).batch(2000, STATIONARY),
        entity_id="id",
        target="repaid",
    )
    dropped = write_frame(features, stack.home / "inbox" / "2031-01-05.parquet")
    assert not (REPO / ".driftgate" / "inbox" / dropped.name).exists()

    with client_settings(stack.prefect.api_url), get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("driftgate-monitor/monitor")
        crons = [getattr(s.schedule, "cron", None) for s in deployment.schedules if s.active]
        assert crons, "the monitor deployment has no active schedule"
        parameters: dict[str, Any] = dict(deployment.parameters)
        assert "batches" not in parameters, parameters  # the schedule names no files: the home's inbox
        # What the scheduler does at 06:00: a run of the deployment with its own parameters.
        run = client.create_flow_run_from_deployment(deployment.id)
    final = stack.wait_until_final(run.id, RUN_FINISHED_TIMEOUT)
    assert final.state is not None and final.state.is_completed(), (final.state, stack.prefect.logs())
    assert "2031-01-05" in _store_batches(stack), stack.prefect.logs()
