"""The demo scenario: NannyML's car-loan data, a champion, stationary days, a drifted stretch, and the checks
that the six promised outcomes happened (read back from the audit store and the registry, not assumed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tasks.core.records import FromDict
from tasks.data.files import STATIONARY
from tasks.data.scenarios import CONCEPT, DEMO_SLICES, LABEL_DELAY, demo_settings


@dataclass(frozen=True)
class DemoBatch:
    phase: str  # "stationary" | "drifted" | "after"
    batch: str
    labels: str


@dataclass(frozen=True)
class DemoDay:
    """What arrives on one day: the day's batch and the labels of the batch LABEL_DELAY days before."""

    number: int
    item: DemoBatch
    labels: tuple[str, ...]


@dataclass(frozen=True)
class DemoPlan:
    home: Path
    config: Path
    reference: Path
    batches: list[DemoBatch] = field(default_factory=list)


def prepare(home: Path, *, seed: int = 7, rows_per_batch: int = 4000, n_trials: int = 5) -> DemoPlan:
    """Write the contract, the reference file, the settings and every batch (with its delayed labels)."""
    from tasks.data.contract import infer_contract
    from tasks.data.files import ScenarioGenerator, load_car_loan, split_labels, write_frame

    home.mkdir(parents=True, exist_ok=True)
    config = home / "driftgate.yaml"
    config.write_text(yaml.safe_dump(demo_settings(home, n_trials), sort_keys=False))
    reference, analysis = load_car_loan()
    contract = infer_contract(
        reference, name="car-loan", target="repaid", entity_id="id", timestamp="timestamp", slices=DEMO_SLICES
    )
    contract.save(home / "contract.yaml")
    reference_path = write_frame(reference, home / "inputs" / "reference.parquet")
    # The first half of NannyML's analysis period is unseen by the model and drawn like the reference.
    generator = ScenarioGenerator(analysis.head(25_000), seed=seed)
    plan = DemoPlan(home=home, config=config, reference=reference_path)
    phases = [("stationary", STATIONARY)] * 3 + [("drifted", CONCEPT)] * 2 + [("after", CONCEPT)]
    for day, (phase, shift) in enumerate(phases, start=1):
        frame = generator.batch(rows_per_batch, shift)
        features, labels = split_labels(frame, entity_id="id", target="repaid")
        batch_path = write_frame(features, home / "inputs" / f"day-{day:02d}-{phase}.parquet")
        labels_path = write_frame(labels, home / "inputs" / f"day-{day:02d}-{phase}-labels.parquet")
        plan.batches.append(DemoBatch(phase, str(batch_path), str(labels_path)))
    return plan


def schedule(plan: DemoPlan) -> tuple[list[DemoDay], list[str]]:
    """The days in order, each with the labels that arrive on it; and the labels still to come after the last day."""
    days = [
        DemoDay(number, item, (plan.batches[number - 1 - LABEL_DELAY].labels,) if number > LABEL_DELAY else ())
        for number, item in enumerate(plan.batches, start=1)
    ]
    return days, [item.labels for item in plan.batches[len(plan.batches) - LABEL_DELAY :]]


@dataclass(frozen=True)
class Check(FromDict):
    outcome: str
    ok: bool
    detail: str


def verify(home: Path, config: Path) -> list[Check]:
    """Read the audit store and the registry to check the six outcomes the demo promises."""
    from tasks.core.settings import load_settings
    from tasks.resources.workspace import open_home

    with open_home(load_settings(config)) as ws:
        model = ws.model
        policy = ws.store.decisions(model, kind="policy")
        gates = ws.store.decisions(model, kind="gate")
        promotions = ws.store.decisions(model, kind="promotion")
        rollbacks = ws.store.decisions(model, kind="rollback")
        ledger = ws.registry.ledger(model)
        aliases = ws.registry.aliases(model)
        first_promotion = promotions[0] if promotions else None
        stationary = [p for p in policy if "stationary" in (p.get("batch_id") or "")]
        drifted = [p for p in policy if "drifted" in (p.get("batch_id") or "")]
        passed = [g for g in gates if g["outcome"] == "passed" and g["payload"].get("champion")]
        failed = [g for g in gates if g["outcome"] == "failed"]
        promoted_after_pass = [p for p in promotions if passed and p["version"] == passed[0]["version"]]
        failed_versions = {g["version"] for g in failed}
        late = [
            p
            for p in drifted
            if p["outcome"] == "RETRAIN" and (p["payload"].get("evidence") or {}).get("trigger") == "labels"
        ]
        first_look = {p["batch_id"]: p for p in reversed(drifted)}  # each drifted batch's decision when monitored
        checks = [
            Check(
                "champion registered as production",
                first_promotion is not None and first_promotion["version"] == "v0",
                f"v0 promoted: {first_promotion is not None}",
            ),
            Check(
                "stationary batches cause no retraining",
                bool(stationary) and all(p["outcome"] != "RETRAIN" for p in stationary),
                _verdicts(stationary),
            ),
            Check(
                "drifted, degraded stretch triggers RETRAIN",
                any(p["outcome"] == "RETRAIN" for p in drifted),
                _verdicts(drifted),
            ),
            Check(
                "a degradation invisible without labels is caught when its labels arrive, a day late",
                bool(late) and all(first_look[p["batch_id"]]["outcome"] != "RETRAIN" for p in late),
                (
                    f"{late[0]['batch_id']}: {first_look[late[0]['batch_id']]['outcome']} when monitored, RETRAIN on "
                    f"its labels (realized drop {late[0]['payload']['evidence'].get('realized_drop') or 0:+.3f})"
                    if late
                    else "no RETRAIN was decided on the arrival of labels"
                ),
            ),
            Check(
                "candidate passes the gate and is promoted (old champion kept as previous-production)",
                bool(promoted_after_pass) and promoted_after_pass[0]["payload"].get("from") == "v0",
                (
                    f"{passed[0]['version']} promoted over {promoted_after_pass[0]['payload'].get('from')}"
                    if promoted_after_pass
                    else "no passing candidate was promoted"
                ),
            ),
            Check(
                "candidate that fails the gate is not promoted",
                bool(failed_versions) and not any(p["version"] in failed_versions for p in promotions),
                f"failed: {sorted(failed_versions)}; promoted: {[p['version'] for p in promotions]}",
            ),
            Check(
                "rollback restores the previous production version",
                bool(rollbacks) and rollbacks[-1]["payload"].get("to") == "v0" and aliases.get("production") == "v0",
                (
                    f"production {rollbacks[-1]['payload'].get('from')} → {rollbacks[-1]['payload'].get('to')}"
                    if rollbacks
                    else "no rollback"
                ),
            ),
        ]
        checks.append(Check("ledger entries", bool(ledger), f"{len(ledger)} alias transactions"))
        return checks


def _verdicts(decisions: list[dict[str, Any]]) -> str:
    """Each batch's decisions in order: when monitored, then when its labels arrived (``day-04=NONE→ALERT``)."""
    by_batch: dict[str, list[str]] = {}
    for row in decisions:
        by_batch.setdefault(row["batch_id"], []).append(row["outcome"])
    return ", ".join(f"{batch}={'→'.join(outcomes)}" for batch, outcomes in by_batch.items())


def summary_markdown(result: dict[str, Any], checks: list[Check]) -> str:
    """The demo's own report: the outcomes, then every decision with a link to its report."""
    lines = ["# driftgate demo", "", "## Outcomes (read back from the audit store and the registry)", ""]
    lines += [f"{i}. {'✔' if c.ok else '✘'} **{c.outcome}** — {c.detail}" for i, c in enumerate(checks, 1)]
    lines += [
        "",
        "## Daily batches",
        "",
        "| batch | decision | est. AUC | realized AUC | drifted | report |",
        "|---|---|---|---|---|---|",
    ]
    for cycle in result["cycles"]:
        for o in cycle["monitor"]:
            est = "n/a" if o["estimated"] is None else f"{o['estimated']:.4f}"
            real = "n/a" if o["realized"] is None else f"{o['realized']:.4f}"
            report = Path(o["report_path"]).relative_to(Path(result["home"]) / "reports")
            lines.append(
                f"| {o['batch_id']} | {o['action']} | {est} | {real} | {', '.join(o['drifted_features'])} "
                f"| [{report}]({report}) |"
            )
    lines += [
        "",
        "## Labels, one day late",
        "",
        "Each day brings the labels of the day before; every batch that gains labels is judged again on its "
        "realized performance.",
        "",
        "| arrived on day | batch | labelled rows | realized AUC | reference | judged again |",
        "|---|---|---|---|---|---|",
    ]
    for day, cycle in enumerate(result["cycles"], start=1):
        for b in (cycle.get("labels") or {}).get("batches", []):
            real = "n/a" if b["realized"] is None else f"{b['realized']:.4f}"
            ref = "n/a" if b["reference"] is None else f"{b['reference']:.4f}"
            lines.append(f"| {day} | {b['batch_id']} | {b['rows_labelled']} | {real} | {ref} | {b['action']} |")
    lines += ["", "## Retrains", ""]
    retrains = [result["bootstrap"]] + [c["retrain"] for c in result["cycles"] if c["retrain"]]
    retrains.append(result["operator_retrain"])
    for r in retrains:
        report = Path(r["report_path"]).relative_to(Path(result["home"]) / "reports")
        verdict = "passed" if r["gate_passed"] else "failed"
        lines.append(
            f"- {r['candidate_version']} vs {r['champion_version'] or '(none)'}: gate **{verdict}** "
            f"— [{report}]({report})"
        )
    lines += ["", f"Rollback: production {result['rollback']['from']} → {result['rollback']['to']}.", ""]
    return "\n".join(lines)
