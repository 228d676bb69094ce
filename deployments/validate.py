"""Validate prefect.yaml against the code: entrypoints exist, parameters and trigger templates name real
flow parameters, triggers listen to driftgate events, queues are the ones driftgate uses, and every priority
class of a retrain request is routed to exactly one deployment, on the queue of its name, with a concurrency limit.

    python -m deployments.validate [prefect.yaml]            # the file against the code
    python -m deployments.validate --server [prefect.yaml]   # and a live server (PREFECT_API_URL) against the file

With --server it also fails on a server whose queues are missing or inverted, whose retrain slot (global
concurrency limit) is missing, or where a deployment is missing or on another queue: what a bare
`prefect deploy --all` leaves behind. `python -m deployments.setup` puts a server right.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

QUEUES = {"urgent", "normal", "low"}
_BARE_TEMPLATE = re.compile(r"\{\{\s*[\w.]+\s*\}\}")


@dataclass(frozen=True)
class Problem:
    deployment: str
    detail: str

    def __str__(self) -> str:
        return f"{self.deployment}: {self.detail}"


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict) or "deployments" not in data:
        raise ValueError(f"{path} has no 'deployments' list")
    return data


def validate(path: Path, root: Path | None = None) -> list[Problem]:
    """Problems of the deployments file ``path``; entrypoints are relative to ``root`` (default: its folder)."""
    from tasks.resources.events import ALL_EVENTS

    root = root or path.parent
    problems: list[Problem] = []
    deployments = load(path)["deployments"]
    problems += _retrain_routing(deployments)
    for dep in deployments:
        name = dep.get("name", "<unnamed>")
        entrypoint = dep.get("entrypoint", "")
        file_part, _, func = entrypoint.partition(":")
        if not (root / file_part).is_file() or not func:
            problems.append(Problem(name, f"entrypoint {entrypoint!r} does not name a file:function"))
            continue
        module = importlib.import_module(file_part.removesuffix(".py").replace("/", "."))
        flow = getattr(module, func, None)
        if flow is None or not hasattr(flow, "fn"):
            problems.append(Problem(name, f"{entrypoint!r} is not a Prefect flow"))
            continue
        accepted = set(inspect.signature(flow.fn).parameters)
        for key in dep.get("parameters") or {}:
            if key not in accepted:
                problems.append(Problem(name, f"parameter {key!r} is not a parameter of {func}"))
        for trigger in dep.get("triggers") or []:
            if not trigger.get("name"):
                # unnamed, the automation shows in the Prefect UI as "A custom trigger"
                problems.append(Problem(name, "a trigger needs a name (its automation's name in the Prefect UI)"))
            for key in trigger.get("parameters") or {}:
                if key not in accepted:
                    problems.append(Problem(name, f"trigger parameter {key!r} is not a parameter of {func}"))
            for event in trigger.get("expect") or []:
                if event not in ALL_EVENTS:
                    problems.append(Problem(name, f"trigger expects unknown event {event!r}"))
            for key, value in (trigger.get("parameters") or {}).items():
                # Prefect keeps the type only of a bare "{{ x }}"; anything else is rendered via tojson and may fail.
                if isinstance(value, str) and "{{" in value and not _BARE_TEMPLATE.fullmatch(value.strip()):
                    problems.append(
                        Problem(name, f"trigger parameter {key!r} mixes text and a template; use __prefect_kind: jinja")
                    )
        queue = (dep.get("work_pool") or {}).get("work_queue_name")
        if queue is not None and queue not in QUEUES:
            problems.append(Problem(name, f"work queue {queue!r} is not one of {sorted(QUEUES)}"))
    return problems


def _retrain_routing(deployments: list[dict[str, Any]]) -> list[Problem]:
    """Each priority class reaches one retrain deployment whose queue bears its name; none is left unrouted."""
    from tasks.resources.events import PRIORITY_CLASSES, PRIORITY_LABEL, RETRAIN_REQUESTED

    problems: list[Problem] = []
    routed: dict[str, list[str]] = {klass: [] for klass in PRIORITY_CLASSES}
    for dep in deployments:
        name = dep.get("name", "<unnamed>")
        for trigger in dep.get("triggers") or []:
            if RETRAIN_REQUESTED not in (trigger.get("expect") or []):
                continue
            wanted = (trigger.get("match") or {}).get(PRIORITY_LABEL)
            classes = [wanted] if isinstance(wanted, str) else list(wanted or [])
            if not classes:
                problems.append(Problem(name, f"retrain trigger does not match on the {PRIORITY_LABEL!r} label"))
                continue
            queue = (dep.get("work_pool") or {}).get("work_queue_name")
            for klass in classes:
                if klass not in routed:
                    problems.append(Problem(name, f"unknown priority class {klass!r}; one of {list(PRIORITY_CLASSES)}"))
                    continue
                routed[klass].append(name)
                if queue != klass:
                    problems.append(Problem(name, f"priority {klass!r} runs on queue {queue!r}, not on {klass!r}"))
            if not dep.get("concurrency_limit"):
                problems.append(Problem(name, "a retrain deployment needs a concurrency_limit"))
    for klass, names in routed.items():
        if len(names) != 1:
            where = f"deployments {names}" if names else "no deployment"
            problems.append(Problem("retrain routing", f"priority {klass!r} reaches {where}; exactly one is needed"))
    return problems


def main(argv: list[str] | None = None) -> int:
    args = list(argv if argv is not None else sys.argv[1:])
    server = "--server" in args
    args = [a for a in args if a != "--server"]
    path = Path(args[0]) if args else Path(__file__).resolve().parent.parent / "prefect.yaml"
    problems = validate(path)
    for problem in problems:
        print(f"problem: {problem}")
    print(f"{path}: {'ok' if not problems else f'{len(problems)} problem(s)'}")
    if not server:
        return 1 if problems else 0
    from prefect.client.orchestration import get_client

    from deployments.setup import Topology, check

    with get_client(sync_client=True) as client:
        live = check(client, Topology.of(path))
    for line in live:
        print(f"problem: server: {line}")
    print(f"server: {'ok' if not live else f'{len(live)} problem(s)'}")
    return 1 if problems or live else 0


if __name__ == "__main__":
    raise SystemExit(main())
