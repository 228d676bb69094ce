"""Typed results travel to the edge: the CLI renders typed objects, never dict keys, and rendering knows no stage.

- ``driftgate/cli.py`` reads no string key of anything (``x["key"]``, ``x.get("key")``) apart from the click
  context, the environment and the Prefect profiles file; a flow's dict is rebuilt once with ``from_dict``.
- ``driftgate/render.py`` imports, at run time, click and the standard library alone; the types it renders are
  imported for type checking only, and each is a result dataclass, never a stage function or a flow.
- every result type rebuilds itself from its ``asdict`` form (what a flow returns), nested results included.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import subprocess
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[3]
CLI = ROOT / "driftgate" / "cli.py"
RENDER = ROOT / "driftgate" / "render.py"

# Mappings the CLI may read by key: not results. ``ctx.obj`` is click's, ``os.environ`` the process's.
ALLOWED_TARGETS = {"ctx.obj", "os.environ"}
# Functions that read a file that is no result: Prefect's profiles.toml.
ALLOWED_FUNCTIONS = {"_prefect_api_configured"}


def _string_key_reads(tree: ast.AST) -> list[str]:
    """``x["key"]`` and ``x.get("key", ...)`` with a literal string key, outside the allowed targets/functions."""
    found: list[str] = []

    def visit(node: ast.AST, function: str | None) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            function = node.name
        if function not in ALLOWED_FUNCTIONS:
            target, key = None, None
            if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
                target, key = node.value, node.slice
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "get"
                and node.args
            ):
                target, key = node.func.value, node.args[0]
            if (
                target is not None
                and isinstance(key, ast.Constant)
                and isinstance(key.value, str)
                and ast.unparse(target) not in ALLOWED_TARGETS
            ):
                found.append(f"cli.py:{node.lineno}: {ast.unparse(node)}")
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(tree, None)
    return found


def test_the_cli_reads_no_result_by_string_key() -> None:
    found = _string_key_reads(ast.parse(CLI.read_text()))
    assert not found, "render typed results (Outcome.from_dict at the boundary), not dict keys:\n" + "\n".join(found)


def test_the_rule_catches_what_it_forbids() -> None:
    code = (
        "def f(result, ctx, os):\n"
        "    a = result['status']\n"
        "    b = result.get('report_path')\n"
        "    c = ctx.obj['verbose']\n"
        "    d = os.environ.get('USER', 'cli')\n"
        "    e = result[0]\n"
        "    result['written'] = 1\n"
        "def _prefect_api_configured(data):\n"
        "    return data.get('active')\n"
    )
    assert [line.split(": ", 1)[1] for line in _string_key_reads(ast.parse(code))] == [
        "result['status']",
        "result.get('report_path')",
    ]


def _render_imports() -> tuple[set[str], list[tuple[str, str]]]:
    """(modules render.py imports at run time, (module, name) pairs it imports under ``if TYPE_CHECKING:``)."""
    tree = ast.parse(RENDER.read_text())
    typing_only: list[tuple[str, str]] = []
    runtime: set[str] = set()
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for child in ast.walk(node):
                if isinstance(child, ast.ImportFrom):
                    guarded.add(id(child))
                    typing_only += [(child.module or "", alias.name) for alias in child.names]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            runtime |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and id(node) not in guarded:
            runtime.add(node.module or "")
    return runtime, typing_only


def test_render_imports_click_and_the_standard_library_only() -> None:
    runtime, _ = _render_imports()
    outside = {m for m in runtime if m.split(".")[0] not in sys.stdlib_module_names | {"click", "__future__"}}
    assert not outside, f"render.py imports {sorted(outside)} at run time (rendering knows no stage)"


def test_render_knows_result_types_not_stages() -> None:
    _, typing_only = _render_imports()
    assert typing_only
    for module, name in typing_only:
        assert module.split(".")[0] == "tasks" or module == "flows.results", f"render.py names {module}"
        value = getattr(importlib.import_module(module), name)
        record = dataclasses.is_dataclass(value) or hasattr(value, "model_fields")  # a dataclass or a pydantic model
        assert isinstance(value, type) and record, f"{module}.{name} is no result type (rendering knows no stage)"


def test_rendering_imports_nothing_heavy() -> None:
    heavy = ("prefect", "polars", "numba", "matplotlib", "nannyml", "lightgbm", "pandas", "sqlalchemy")
    heavy += ("tasks", "flows")  # not even the result types: they are named for type checking only
    code = f"import sys\nimport driftgate.render\nprint(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


# --- the results rebuild themselves from what a flow returns ---------------------------------------------------


def _samples() -> list[object]:
    from flows.results import CycleRun, DemoRun, LabelsRun, MonitorRun, ReplayRun
    from tasks.policy.replay import Episode, ReplayReport, ReplayScore, ReplayStep
    from tasks.stages.arrivals import ArrivalOutcome, LabelOutcome
    from tasks.stages.canary import ScoredBatch
    from tasks.stages.demo import Check
    from tasks.stages.drill import DrillResult, DrillStep
    from tasks.stages.monitoring import MonitorOutcome
    from tasks.stages.promotion import PromotionOutcome, RollbackOutcome, WatchOutcome
    from tasks.stages.retraining import RetrainOutcome

    at = datetime(2026, 11, 2, tzinfo=UTC)
    outcome = MonitorOutcome(
        "day-1", "day-1.parquet", 100, "v0", "RETRAIN", ("drift", "persisted 2"), "urgent", ("age",), 0.71, None,
        True, "key-1", "reports/day-1.md", at, at,
    )  # fmt: skip
    label = LabelOutcome("day-0", 50, 100, 0.6, 0.8, "RETRAIN", ("realized drop",), "key-0", "normal", at, at)
    arrival = ArrivalOutcome("50 rows", ("l.parquet",), 50, 50, 0, 0, 0, (label,))
    retrained = RetrainOutcome("v1", "v0", True, ("better",), "r.md", "key-1", candidate_metric=0.8)
    score = ReplayScore(3, 3, 1, 1, 1, 0, 0, 0, 1, 0.0, 0)
    step = ReplayStep("day-1", "RETRAIN", True, True, "urgent", ("persistence",), "why")
    report = ReplayReport({"persistence": 2}, (step,), (Episode(0, 0, 0, 0),), score)
    return [
        outcome,
        arrival,
        retrained,
        PromotionOutcome("v1", "promoted", ("staging", "canary", "production"), "v0", "ann", ("ok",), "c.md"),
        WatchOutcome("idle", None, (), labelled={"v1": 3}),
        ScoredBatch("b", "b.parquet", "p", 10, "v0", "v1", {"v0": 8, "v1": 2}, {"v0": 8}, {"v1": 0}, {}, None),
        DrillResult("m", True, at, "s", "v1", "v0", (DrillStep("rollback", "v1", "v0", "v0", 0.1, 0.4),), 2, ()),
        MonitorRun((outcome,), arrival),
        MonitorRun((), None),
        LabelsRun(arrival, None),
        CycleRun((outcome,), None, retrained),
        DemoRun("h", "c", retrained, (CycleRun((), arrival, None),), retrained, RollbackOutcome("v1", "v0"),
                (Check("one", True, "fine"),)),
        ReplayRun("r.md", report, report, home="h", config="c", truth="t", label_delay=1),
    ]  # fmt: skip


@pytest.mark.parametrize("index", range(13))
def test_a_result_rebuilds_from_its_asdict_form(index: int) -> None:
    result = _samples()[index]
    data = result.to_dict() if hasattr(result, "to_dict") else asdict(result)  # type: ignore[call-overload]
    assert type(result).from_dict(data) == result  # type: ignore[attr-defined]
    as_lists = {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}  # a dict that went through JSON
    assert type(result).from_dict(as_lists) == result  # type: ignore[attr-defined]


def test_a_replay_and_a_rollback_rebuild_from_what_their_flows_return() -> None:
    from flows.results import ReplayRun
    from tasks.policy.replay import Episode, ReplayReport, ReplayScore, report_dict
    from tasks.stages.promotion import RollbackOutcome

    report = ReplayReport({}, (), (Episode(0, 1, 1, None),), ReplayScore(2, 2, 2, 1, 0, 1, 0, 0, 0, None, None))
    plain = ReplayRun("r.md", report, None)
    assert plain.to_dict() == {"report": "r.md", "current": report_dict(report), "candidate": None}
    assert ReplayRun.from_dict(plain.to_dict()) == plain
    scenario = dataclasses.replace(plain, candidate=report, home="h", config="c", truth="t", label_delay=2)
    assert ReplayRun.from_dict(scenario.to_dict()) == scenario
    assert RollbackOutcome.from_dict({"from": "v2", "to": "v1"}) == RollbackOutcome("v2", "v1")


def test_a_shape_changed_on_one_side_is_refused() -> None:
    from tasks.stages.retraining import RetrainOutcome

    data = asdict(RetrainOutcome("v1", None, True, (), None, None))
    with pytest.raises(TypeError, match=r"no field.*surprise"):
        RetrainOutcome.from_dict({**data, "surprise": 1})


# --- what the console shows --------------------------------------------------------------------------------


def _shown(fn: object, *args: object, **kwargs: object) -> str:
    import click

    @click.command()
    def show() -> None:
        fn(*args, **kwargs)  # type: ignore[operator]

    result = CliRunner().invoke(show, [])
    assert result.exit_code == 0, result.output
    return result.output


def test_a_monitor_run_renders_as_before() -> None:
    from driftgate import render

    outcome, arrival, retrained = _samples()[:3]
    assert _shown(render.monitored, [outcome], arrival, retrained).splitlines() == [
        "day-1: RETRAIN est. AUC 0.7100 realized n/a drifted ['age'] — persisted 2",
        "    report: reports/day-1.md",
        "labels: 50 rows",
        "day-0: +50 labelled rows (100 in all), realized AUC 0.6000 (reference 0.8000); judged again: RETRAIN — "
        "realized drop",
        "candidate v1 vs champion v0: gate PASSED",
        "  - better",
        "  report: r.md",
    ]


def test_a_promotion_a_watch_and_a_drill_render_as_before() -> None:
    from driftgate import render

    samples = _samples()
    assert _shown(render.promotion, "v1", samples[3]).splitlines() == [
        "v1: PROMOTED (moved staging → canary → production)",
        "  - ok",
        "  canary report: c.md",
    ]
    assert _shown(render.watched, samples[4]) == "idle: -\n"
    assert _shown(render.drill, samples[6]).splitlines() == [
        "rollback drill PASSED: 2 versions verified",
        "  rollback: v1 → v0 in 0.100 s",
        "  report: None",
    ]
