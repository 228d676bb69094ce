"""Deployments right by construction, on a real Prefect server: a bare `prefect deploy --all` leaves inverted
queues and no retrain slot, which `deployments.validate --server` names; `deployments.setup` repairs that server,
validates, and a second run changes nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from devkit.local_server import LocalPrefect

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _run(local: LocalPrefect, *args: str) -> subprocess.CompletedProcess[str]:
    env = local.env({"PWD": str(REPO)})
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False
    )


def test_setup_repairs_what_a_bare_deploy_leaves_and_validate_server_tells_them_apart(tmp_path: Path) -> None:
    with LocalPrefect.start(tmp_path / "prefect-home", startup_timeout=180) as local:
        # what following the old README literally did: create the pool, then a bare deploy
        local.create_pool("driftgate")
        local.deploy_all(REPO, timeout=600)
        bare = _run(local, "-m", "deployments.validate", "--server")
        assert bare.returncode == 1, bare.stdout + bare.stderr
        assert "priorities are inverted" in bare.stdout or "not 1" in bare.stdout, bare.stdout
        assert "global concurrency limit 'driftgate-retrain' does not exist" in bare.stdout, bare.stdout

        first = _run(local, "-m", "deployments.setup")
        assert first.returncode == 0, first.stdout + first.stderr
        assert "created global concurrency limit 'driftgate-retrain' = 1" in first.stdout, first.stdout
        assert "server: ok" in first.stdout

        good = _run(local, "-m", "deployments.validate", "--server")
        assert good.returncode == 0 and "server: ok" in good.stdout, good.stdout + good.stderr

        again = _run(local, "-m", "deployments.setup", "--no-deploy")
        assert again.returncode == 0, again.stdout + again.stderr
        actions = [line.strip() for line in again.stdout.splitlines() if line.startswith("  ")]
        assert actions and all(line.startswith("kept") for line in actions), again.stdout

        from prefect.client.orchestration import SyncPrefectClient

        with SyncPrefectClient(local.api_url) as client:
            queues = {q.name: q.priority for q in client.read_work_queues(work_pool_name="driftgate")}
            assert [queues["urgent"], queues["normal"], queues["low"]] == [1, 2, 3], queues
            # the retrain triggers are named automations, not "A custom trigger"
            assert client.read_automations_by_name("driftgate: urgent retrain request starts retrain-urgent")
