"""Demo flow: the whole loop on NannyML's car-loan data with a seeded scenario (see tasks/stages/demo.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow

from flows._common import banner
from flows.bootstrap import bootstrap_flow
from flows.cycle import cycle_flow
from flows.labels import labels_flow
from flows.results import CycleRun, DemoRun
from flows.retrain import retrain_flow
from flows.rollback import rollback_flow
from tasks.core import progress
from tasks.report.markdown import write_report
from tasks.stages import demo
from tasks.stages.promotion import RollbackOutcome
from tasks.stages.retraining import RetrainOutcome


@flow(name="driftgate-demo", log_prints=True)
def demo_flow(home: str, seed: int = 7, rows_per_batch: int = 4000, n_trials: int = 5) -> dict[str, Any]:
    banner(f"prepare: contract, reference, seeded batches and their labels ({demo.LABEL_DELAY} day late)")
    plan = demo.prepare(Path(home), seed=seed, rows_per_batch=rows_per_batch, n_trials=n_trials)
    home_dir, config = str(plan.home), str(plan.config)
    total = len(plan.batches) + 3
    progress.report("demo", 0, total, "bootstrap")
    banner("1. champion: first model from the reference, promoted to production")
    first = bootstrap_flow(reference=str(plan.reference), home=home_dir, config=config)
    days, still_to_come = demo.schedule(plan)
    cycles = []
    for day in days:
        banner(f"day {day.number}: {day.item.phase} batch, with the labels of {len(day.labels)} earlier day(s)")
        progress.report("demo", day.number, total, f"day {day.number} ({day.item.phase})")
        cycles.append(
            cycle_flow(batches=[day.item.batch], labels=list(day.labels) or None, home=home_dir, config=config)
        )
    banner("the last day's labels arrive")
    labels_flow(labels=still_to_come, home=home_dir, config=config)
    banner("5. an operator retrains on the newest window: no real improvement is expected")
    progress.report("demo", total - 2, total, "operator retrain")
    operator = retrain_flow(
        reason="operator retrain on the newest window", actor="operator", home=home_dir, config=config
    )
    banner("6. rollback drill: production returns to the last known good version")
    progress.report("demo", total - 1, total, "rollback")
    rolled = rollback_flow(reason="demo rollback drill", actor="operator", home=home_dir, config=config)
    progress.report("demo", total, total, "verify")
    checks = demo.verify(plan.home, plan.config)
    result = DemoRun(
        home=str(plan.home),
        config=str(plan.config),
        bootstrap=RetrainOutcome.from_dict(first),
        cycles=tuple(CycleRun.from_dict(cycle) for cycle in cycles),
        operator_retrain=RetrainOutcome.from_dict(operator),
        rollback=RollbackOutcome.from_dict(rolled),
        checks=tuple(checks),
    ).to_dict()
    write_report(plan.home / "reports" / "demo.md", demo.summary_markdown(result, checks))
    return result
