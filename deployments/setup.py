"""Set a Prefect server (or Cloud workspace) up for driftgate, idempotently, then deploy; and check a live one.

A bare `prefect --no-prompt deploy --all` creates each work queue it meets with the next free priority, so
the queues come out in file order (measured: default 1, normal 2, urgent 3, low 4: urgent retrains wait behind
normal ones), and it creates no global concurrency limit, so retrains of the three priority deployments run at
once. This module creates what `prefect.yaml` assumes, before deploying:

- the work pool named in ``prefect.yaml`` (process type unless it exists);
- one queue per priority class, urgent 1 / normal 2 / low 3 (from ``PRIORITY_CLASSES``, in that order), created
  or moved to that priority;
- the global concurrency limit the retrain flow holds (setting ``retrain_slot``), limit 1;
- then `prefect --no-prompt deploy --all` from the folder of ``prefect.yaml``.

Run it again and it changes nothing. ``check`` reads a live server and names every difference (inverted or
missing queues, a missing or zero limit, a deployment missing or on the wrong queue); ``python -m
deployments.validate --server`` runs it after the file checks.

    python -m deployments.setup [--no-deploy] [prefect.yaml]      # against PREFECT_API_URL
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient

DEFAULT_FILE = Path(__file__).resolve().parent.parent / "prefect.yaml"
RETRAIN_SLOT_LIMIT = 1  # one retrain trains at a time across the priority deployments


@dataclass(frozen=True)
class Topology:
    """What the deployments in ``prefect.yaml`` need on the server."""

    pool: str
    queues: dict[str, int]  # queue name -> priority (1 is served first)
    slot: str | None  # global concurrency limit of the retrain flow
    deployments: dict[str, str | None]  # "<flow name>/<deployment name>" -> work queue
    automations: tuple[str, ...] = ()  # the triggers' names: the automations a deploy creates

    @classmethod
    def of(cls, path: Path = DEFAULT_FILE, root: Path | None = None) -> Topology:
        """The topology ``path`` declares; entrypoints are relative to ``root`` (default: the file's folder)."""
        from deployments.validate import load
        from tasks.core.settings import DriftgateSettings
        from tasks.resources.events import PRIORITY_CLASSES

        data = load(path)
        pool = (((data.get("definitions") or {}).get("work_pool")) or {}).get("name")
        deployments: dict[str, str | None] = {}
        automations = tuple(
            t["name"] for dep in data["deployments"] for t in dep.get("triggers") or [] if t.get("name")
        )
        for dep in data["deployments"]:
            work_pool = dep.get("work_pool") or {}
            pool = pool or work_pool.get("name")
            deployments[f"{_flow_name(root or path.parent, dep['entrypoint'])}/{dep['name']}"] = work_pool.get(
                "work_queue_name"
            )
        if not pool:
            raise ValueError(f"{path} names no work pool")
        slot = DriftgateSettings.model_fields["retrain_slot"].default
        return cls(
            pool=pool,
            queues={klass: rank for rank, klass in enumerate(PRIORITY_CLASSES, start=1)},
            slot=slot,
            deployments=deployments,
            automations=automations,
        )

    def describe(self) -> str:
        queues = ", ".join(f"{name} {priority}" for name, priority in self.queues.items())
        slot = f"global concurrency limit {self.slot!r} = {RETRAIN_SLOT_LIMIT}" if self.slot else "no retrain slot"
        return f"work pool {self.pool!r}; queues {queues}; {slot}; {len(self.deployments)} deployments"


def _flow_name(root: Path, entrypoint: str) -> str:
    """The flow's name as Prefect registers it (the `name=` of its @flow), read from the source file."""
    import ast

    file_part, _, func = entrypoint.partition(":")
    tree = ast.parse((root / file_part).read_text())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == func:
            for decorator in node.decorator_list:
                if isinstance(decorator, ast.Call):
                    for keyword in decorator.keywords:
                        if keyword.arg == "name" and isinstance(keyword.value, ast.Constant):
                            return str(keyword.value.value)
            return func.replace("_", "-")
    raise ValueError(f"{entrypoint}: no function {func!r}")


def apply(client: SyncPrefectClient, topology: Topology) -> list[str]:
    """Create or correct the pool, queues and limit; returns one line per action ("kept ..." when nothing moved)."""
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
    from prefect.workers.process import ProcessWorker

    done: list[str] = []
    try:
        client.read_work_pool(topology.pool)
        done.append(f"kept work pool {topology.pool!r}")
    except ObjectNotFound:
        with contextlib.suppress(ObjectAlreadyExists):  # another setup got there first
            client.create_work_pool(
                WorkPoolCreate(
                    name=topology.pool, type="process", base_job_template=ProcessWorker.get_default_base_job_template()
                )
            )
        done.append(f"created work pool {topology.pool!r} (process)")
    # Lowest priority first: the server shifts queues that collide with a priority being set, so setting them in
    # reverse order leaves urgent at 1 after every shift.
    for name, priority in sorted(topology.queues.items(), key=lambda item: -item[1]):
        try:
            queue = client.read_work_queue_by_name(name, work_pool_name=topology.pool)
        except ObjectNotFound:
            client.create_work_queue(name=name, work_pool_name=topology.pool, priority=priority)
            done.append(f"created queue {name!r} priority {priority}")
            continue
        if queue.priority != priority:
            client.update_work_queue(queue.id, priority=priority)
            done.append(f"moved queue {name!r} from priority {queue.priority} to {priority}")
    for name, priority in topology.queues.items():
        queue = client.read_work_queue_by_name(name, work_pool_name=topology.pool)
        if queue.priority != priority:  # a later update shifted an earlier one: set it again
            client.update_work_queue(queue.id, priority=priority)
        if not any(line.startswith(("created queue", "moved queue")) and f"{name!r}" in line for line in done):
            done.append(f"kept queue {name!r} priority {priority}")
    if topology.slot:
        try:
            limit = client.read_global_concurrency_limit_by_name(topology.slot)
            if limit.limit != RETRAIN_SLOT_LIMIT or not limit.active:
                client.upsert_global_concurrency_limit_by_name(topology.slot, RETRAIN_SLOT_LIMIT)
                done.append(f"reset global concurrency limit {topology.slot!r} to {RETRAIN_SLOT_LIMIT}")
            else:
                done.append(f"kept global concurrency limit {topology.slot!r} = {RETRAIN_SLOT_LIMIT}")
        except ObjectNotFound:
            client.upsert_global_concurrency_limit_by_name(topology.slot, RETRAIN_SLOT_LIMIT)
            done.append(f"created global concurrency limit {topology.slot!r} = {RETRAIN_SLOT_LIMIT}")
    return done


def check(client: SyncPrefectClient, topology: Topology, *, deployed: bool = True) -> list[str]:
    """Every way the live server differs from ``topology`` (empty: it matches)."""
    from prefect.exceptions import ObjectNotFound

    problems: list[str] = []
    try:
        client.read_work_pool(topology.pool)
    except ObjectNotFound:
        return [f"work pool {topology.pool!r} does not exist (run: python -m deployments.setup)"]
    live: dict[str, int] = {}
    for name, priority in topology.queues.items():
        try:
            live[name] = client.read_work_queue_by_name(name, work_pool_name=topology.pool).priority
        except ObjectNotFound:
            problems.append(f"queue {name!r} is missing from pool {topology.pool!r}")
            continue
        if live[name] != priority:
            problems.append(f"queue {name!r} has priority {live[name]}, not {priority}")
    ordered = sorted(topology.queues, key=topology.queues.__getitem__)
    present = [name for name in ordered if name in live]
    if [live[name] for name in present] != sorted(live[name] for name in present):
        served = sorted(present, key=live.__getitem__)
        problems.append(f"queues are served in the order {served}, not {present}: priorities are inverted")
    if topology.slot:
        try:
            limit = client.read_global_concurrency_limit_by_name(topology.slot)
            if limit.limit < 1 or not limit.active:
                problems.append(f"global concurrency limit {topology.slot!r} is {limit.limit} (active {limit.active})")
        except ObjectNotFound:
            problems.append(f"global concurrency limit {topology.slot!r} does not exist: retrains would run at once")
    if deployed:
        for name, queue in topology.deployments.items():
            try:
                deployment = client.read_deployment_by_name(name)
            except ObjectNotFound:
                problems.append(f"deployment {name!r} is not deployed")
                continue
            if queue is not None and deployment.work_queue_name != queue:
                problems.append(f"deployment {name!r} runs on queue {deployment.work_queue_name!r}, not {queue!r}")
        for automation in topology.automations:
            if not client.read_automations_by_name(automation):
                problems.append(f"automation {automation!r} does not exist")
    return problems


def deploy(path: Path = DEFAULT_FILE, *, timeout: float = 600.0) -> str:
    """`prefect --no-prompt deploy --all` from the folder of ``path`` (its PWD set, as prefect.yaml reads it)."""
    folder = path.resolve().parent
    env = {**os.environ, "PWD": str(folder)}
    result = subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all", "--prefect-file", str(path)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"prefect deploy failed with code {result.returncode}: {(result.stdout + result.stderr)[-2000:]}"
        )
    return result.stdout


def _client() -> Any:
    from prefect.client.orchestration import get_client

    return get_client(sync_client=True)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m deployments.setup",
        description=__doc__.split("\n\n")[0],
        epilog="Talks to PREFECT_API_URL (or the active Prefect profile). Safe to run again: it changes nothing "
        "that is already right.",
    )
    parser.add_argument("file", nargs="?", type=Path, default=DEFAULT_FILE, help="prefect.yaml (default: the repo's)")
    parser.add_argument("--no-deploy", action="store_true", help="set the server up, do not deploy")
    args = parser.parse_args(argv)
    from tasks.core.telemetry import disable_telemetry

    disable_telemetry()
    topology = Topology.of(args.file)
    print(f"setting up: {topology.describe()}")
    with _client() as client:
        for line in apply(client, topology):
            print(f"  {line}")
    if not args.no_deploy:
        print("deploying: prefect --no-prompt deploy --all")
        deploy(args.file)
    with _client() as client:
        problems = check(client, topology, deployed=not args.no_deploy)
    for problem in problems:
        print(f"problem: {problem}")
    print("server: ok" if not problems else f"server: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
