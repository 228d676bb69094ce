"""Render prefect.yaml for workers that do not share this checkout: Prefect Cloud, or a Prefect server whose
workers run on other machines or in containers.

    python -m deployments.remote --repository https://github.com/org/driftgate.git > prefect.remote.yaml
    python -m deployments.remote --repository ... --pool-type docker --image registry/driftgate:1.0 > ...
    prefect --no-prompt deploy --all --prefect-file prefect.remote.yaml   # after `python -m deployments.setup`

What changes against prefect.yaml, and why (everything else — deployments, queues, triggers, schedules — is
read from prefect.yaml, so the two files cannot drift apart; `tests/unit/deployments/test_remote.py` validates
the rendered file with deployments.validate and checks it keeps prefect.yaml's topology):

- **pull**: ``git_clone`` of the repository at ``--branch`` instead of the deploy-time folder, which exists only
  on the machine that deployed. A private repository takes its token from the Prefect Secret block
  ``github-access-token`` (``--private``).
- **the locked install**: a flow run executes in its worker's Python, so the environment must be locked before
  the run starts, not by a pull step. A docker pool runs the image the repository's ``Dockerfile`` builds
  (``uv sync --frozen`` from ``uv.lock``); a process worker is started from a locked checkout
  (``uv sync --frozen --extra s3 && uv run prefect worker start --pool driftgate``).
- **secrets**: ``WANDB_API_KEY`` and the audit store's URL (it may hold a password) come from the Prefect Secret
  blocks ``wandb-api-key`` and ``driftgate-store-url``, resolved when a run starts and never written in a file.
- **shared state**: ``DRIFTGATE_STORE_URL`` (PostgreSQL: audit store and Optuna studies), ``DRIFTGATE_ARTIFACT_STORE``
  (the Prefect variable ``driftgate_artifact_store``: the batch lake at an object-store URL) and
  ``DRIFTGATE_HOME`` (the variable ``driftgate_home``: the contract, the kept reference and reports, on a volume
  every worker mounts). ``DRIFTGATE_REGISTRY_STORAGE=sql`` keeps the registry in the store's database and its
  model files in the artifact store.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

import yaml

DEFAULT_FILE = Path(__file__).resolve().parent.parent / "prefect.yaml"
WANDB_KEY = "{{ prefect.blocks.secret.wandb-api-key }}"
STORE_URL = "{{ prefect.blocks.secret.driftgate-store-url }}"
ARTIFACT_STORE = "{{ prefect.variables.driftgate_artifact_store }}"
HOME = "{{ prefect.variables.driftgate_home }}"
GIT_TOKEN = "{{ prefect.blocks.secret.github-access-token }}"


def render(
    source: dict[str, Any],
    *,
    repository: str,
    branch: str = "main",
    private: bool = False,
    pool_type: str = "process",
    image: str | None = None,
) -> dict[str, Any]:
    """prefect.yaml's content (as loaded) made fit for remote workers; see the module docstring."""
    if pool_type not in ("process", "docker"):
        raise ValueError(f"pool type {pool_type!r} is not process or docker")
    if pool_type == "docker" and not image:
        raise ValueError("a docker pool needs --image (built from the repository's Dockerfile)")
    data = copy.deepcopy(source)
    clone: dict[str, Any] = {"id": "clone", "repository": repository, "branch": branch}
    if private:
        clone["access_token"] = GIT_TOKEN
    data["pull"] = [
        {"prefect.deployments.steps.git_clone": clone},
        {"prefect.deployments.steps.set_working_directory": {"directory": "{{ clone.directory }}"}},
    ]
    env = {"WANDB_API_KEY": WANDB_KEY, "DRIFTGATE_STORE_URL": STORE_URL, "DRIFTGATE_ARTIFACT_STORE": ARTIFACT_STORE}
    env["DRIFTGATE_HOME"] = HOME
    # Versions, aliases and the ledger in the store's database, model files in the artifact store: workers on
    # several machines share the registry without a shared folder (tasks/resources/registry_sql.py).
    env["DRIFTGATE_REGISTRY_STORAGE"] = "sql"
    pools = [dep.get("work_pool") or {} for dep in data["deployments"]]
    pools.append(((data.get("definitions") or {}).get("work_pool")) or {})
    for pool in pools:
        variables = pool.setdefault("job_variables", {})
        variables["env"] = {**(variables.get("env") or {}), **env}
        if image:
            variables["image"] = image
            variables["image_pull_policy"] = "IfNotPresent"
    data["prefect-version"] = source.get("prefect-version")
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deployments.remote", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repository", required=True, help="git URL the workers clone")
    parser.add_argument("--branch", default="main", help="branch (or tag) the workers clone")
    parser.add_argument("--private", action="store_true", help="clone with the Secret block github-access-token")
    parser.add_argument("--pool-type", choices=("process", "docker"), default="process")
    parser.add_argument("--image", default=None, help="docker pools: the image built from the Dockerfile")
    parser.add_argument("--source", type=Path, default=DEFAULT_FILE, help="the prefect.yaml to start from")
    args = parser.parse_args(argv)
    from deployments.validate import load

    try:
        rendered = render(
            load(args.source),
            repository=args.repository,
            branch=args.branch,
            private=args.private,
            pool_type=args.pool_type,
            image=args.image,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    header = (
        f"# Rendered by `python -m deployments.remote` from {args.source.name} for remote workers "
        f"({args.pool_type} pool); edit prefect.yaml and render again rather than editing this file.\n"
    )
    sys.stdout.write(header + yaml.safe_dump(rendered, sort_keys=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
