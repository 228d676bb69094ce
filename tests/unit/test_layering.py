"""The layering of ``tasks/``, read from the code: every import (module level, function level and
``TYPE_CHECKING``) is an edge. See the README's "Where things are" for what each package holds.

    ground         core, data                                      import nothing above them
    capabilities   drift, performance, policy, training, gate,    never resources, stages, report, Prefect
                   registry
    resources      workspace, store, tracking, lake, events       never stages
    report         markdown, plots, publish                        never stages
    stages         everything that takes a Workspace               never the CLI, flows or deployments

No import cycle among ``tasks`` modules, and Prefect only in the event emitter and the artifact publisher.
No module of ``tasks`` over ``LINE_LIMIT`` lines (generated or compiled kernels aside): a longer one holds
several concerns, and the folders stop showing where each one lives.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TASKS = ROOT / "tasks"

GROUND = {"core", "data"}
CAPABILITIES = {"drift", "performance", "policy", "training", "gate", "registry"}
PACKAGES = GROUND | CAPABILITIES | {"resources", "report", "stages"}
FORBIDDEN: dict[str, set[str]] = {
    **{package: PACKAGES - GROUND for package in GROUND},
    **{package: {"resources", "stages", "report"} for package in CAPABILITIES},
    "resources": {"stages"},
    "report": {"stages"},
}
ABOVE_TASKS = {"flows", "driftgate", "deployments", "devkit", "tests", "benchmarks"}
PREFECT_ALLOWED = {"tasks.resources.events", "tasks.report.publish"}
LINE_LIMIT = 700
# Compiled kernels: long by nature, read by the compiler rather than by people.
LONG_BY_NATURE = {"tasks.drift._compiled_kernels"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(TASKS.rglob("*.py"))}


def imported(path: Path) -> Iterator[tuple[str, int]]:
    """Every module ``path`` imports (``from a.b import c`` yields ``a.b.c`` when that is a module of ``tasks``)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                yield (candidate if candidate in MODULES else target), node.lineno


@functools.cache  # parsed once: four tests read it
def edges() -> tuple[tuple[str, str, int], ...]:
    return tuple((name, target, line) for name, path in MODULES.items() for target, line in imported(path))


def package_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "tasks" and parts[1] in PACKAGES else None


def test_every_module_lives_in_a_package() -> None:
    loose = [name for name in MODULES if name != "tasks" and package_of(name) is None]
    assert not loose, f"modules outside the capability packages: {loose}"


def test_no_forbidden_direction() -> None:
    broken = []
    for source, target, line in edges():
        src, dst = package_of(source), package_of(target)
        if src and dst and dst != src and dst in FORBIDDEN.get(src, set()):
            broken.append(f"{source}:{line} imports {target} ({src} -> {dst})")
        if target.split(".")[0] in ABOVE_TASKS:
            broken.append(f"{source}:{line} imports {target} (tasks -> {target.split('.')[0]})")
    assert not broken, "forbidden imports:\n" + "\n".join(broken)


def test_prefect_only_in_the_event_emitter_and_the_artifact_publisher() -> None:
    users = sorted(
        {f"{source}:{line}" for source, target, line in edges() if target.split(".")[0] == "prefect"}
        - {f"{source}:{line}" for source, target, line in edges() if source in PREFECT_ALLOWED}
    )
    assert not users, f"Prefect imported outside {sorted(PREFECT_ALLOWED)}: {users}"
    assert set(MODULES) >= PREFECT_ALLOWED


def test_no_module_over_the_line_limit() -> None:
    lines = {name: len(path.read_text().splitlines()) for name, path in MODULES.items()}
    long = {name: n for name, n in lines.items() if n > LINE_LIMIT and name not in LONG_BY_NATURE}
    assert not long, f"modules over {LINE_LIMIT} lines (split them by concern): {long}"
    assert set(MODULES) >= LONG_BY_NATURE


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycle() -> None:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for source, target, _ in edges():
        if target in MODULES and target != source:
            graph[source].add(target)
    assert cycles(graph) == []


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ],
)
def test_cycle_finder(graph: dict[str, set[str]], expected: list[list[str]]) -> None:
    assert cycles(graph) == expected
