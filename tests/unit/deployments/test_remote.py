"""The remote variant of prefect.yaml is rendered from it: same deployments, queues, triggers and retrain slot,
a git_clone pull step instead of the deploy-time folder, secrets from Prefect blocks, never in the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from deployments.remote import DEFAULT_FILE, GIT_TOKEN, STORE_URL, WANDB_KEY, main
from deployments.setup import Topology
from deployments.validate import validate

REPO = DEFAULT_FILE.parent


def _render(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[Path, dict]:
    assert main(["--repository", "https://github.com/acme/driftgate.git", *args]) == 0
    path = tmp_path / "prefect.remote.yaml"
    path.write_text(capsys.readouterr().out)
    return path, yaml.safe_load(path.read_text())


@pytest.mark.parametrize("pool", ["process", "docker"])
def test_the_remote_file_keeps_the_topology_and_validates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pool: str
) -> None:
    extra = ["--pool-type", "docker", "--image", "registry.example/driftgate:1.0"] if pool == "docker" else []
    path, data = _render(tmp_path, capsys, "--private", *extra)
    assert validate(path, root=REPO) == []
    assert Topology.of(path, root=REPO) == Topology.of(DEFAULT_FILE)
    clone = data["pull"][0]["prefect.deployments.steps.git_clone"]
    assert clone == {
        "id": "clone",
        "repository": "https://github.com/acme/driftgate.git",
        "branch": "main",
        "access_token": GIT_TOKEN,
    }
    assert "$PWD" not in path.read_text()  # the deploy-time folder exists only where it was deployed
    for dep in data["deployments"]:
        variables = dep["work_pool"]["job_variables"]
        assert variables["env"]["WANDB_API_KEY"] == WANDB_KEY and variables["env"]["DRIFTGATE_STORE_URL"] == STORE_URL
        assert variables["env"]["DRIFTGATE_REGISTRY_STORAGE"] == "sql"
        assert variables["env"]["DO_NOT_TRACK"] == "1"  # prefect.yaml's own settings are kept
        assert (variables.get("image") == "registry.example/driftgate:1.0") == (pool == "docker")


def test_a_docker_pool_without_an_image_is_refused_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--repository", "x", "--pool-type", "docker"]) == 2
    error = capsys.readouterr().err.strip()
    assert error == "error: a docker pool needs --image (built from the repository's Dockerfile)"
