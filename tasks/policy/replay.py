"""The replay harness: run the policy over a recorded sequence of batches and score it against known truth.

A threshold change can be judged before it ships: the same evidence (drift, estimated and realized drops,
concept-drift alarms, slices) is decided again under other settings, with the policy's memory (persistence,
cooldown, budget, new labelled rows) rebuilt exactly as the monitor rebuilds it, and every RETRAIN taken as a
retrain at that moment. The score counts false alarms (RETRAIN on a batch that was not degraded), missed
degradations (a degraded stretch that never got a RETRAIN) and the detection delay (batches from the start of
a degraded stretch to its first RETRAIN).

Labels arrive late in production, so a batch is judged more than once: when it is monitored, and again when
its labels land (trigger ``labels``). A replay step is one such judgement, in the order they happened; the
policy's memory holds the latest verdict of each batch. Delays are counted in *monitored batches*: a RETRAIN
decided on the labels of batch i while batch i+1 is the newest counts at position i+1.

Replaying recorded evidence cannot undo what happened after a real retrain: batches monitored after a new
model went into production carry that model's evidence. Truth should describe the model that scored them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from tasks.core.errors import ConfigError
from tasks.core.records import FromDict, from_fields, many
from tasks.core.settings import PolicySettings
from tasks.core.verdicts import Verdict
from tasks.policy.decide import Action, PastDecision, PolicyEvidence, decide, policy_clock, state_for_batch


@dataclass(frozen=True)
class ReplayBatch:
    """One judgement of a batch: when it was monitored, or again when its labels arrived."""

    batch_id: str
    evidence: PolicyEvidence
    at: datetime  # the policy clock of the judgement (its batch's window end, or when it was decided)
    truly_degraded: bool | None = None  # None: truth unknown, left out of the score
    position: int | None = None  # index of the newest monitored batch at this judgement (None: its own index)


@dataclass(frozen=True)
class ReplayStep(FromDict):
    batch_id: str
    action: str
    degraded: bool  # what the policy concluded from the evidence
    truly_degraded: bool | None
    priority_class: str
    failing_rules: tuple[str, ...]
    reason: str  # the decision's last reason
    trigger: str = "monitor"  # "monitor" or "labels" (judged again when its labels arrived)
    position: int = 0  # index of the newest monitored batch at this judgement


@dataclass(frozen=True)
class Episode:
    """A maximal run of consecutive truly degraded batches (by their position among monitored batches)."""

    start: int
    end: int  # inclusive
    first_alert: int | None  # position at the first ALERT or RETRAIN on a batch of the episode
    first_retrain: int | None  # position at the first RETRAIN on a batch of the episode

    @property
    def delay(self) -> int | None:
        """Batches from the first degraded batch to the first RETRAIN (0: on the first one); None if missed."""
        return None if self.first_retrain is None else self.first_retrain - self.start

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Episode:
        """Rebuilt from its :func:`report_dict` form (a flow's result)."""
        return from_fields(cls, data, ignore=("delay",))


@dataclass(frozen=True)
class ReplayScore(FromDict):
    batches: int
    judged: int  # batches with known truth
    degraded_batches: int
    episodes: int
    detected: int
    missed: int
    false_alarms: int  # RETRAIN on a batch that was not degraded
    false_alerts: int  # ALERT on a batch that was not degraded
    retrains: int
    mean_delay: float | None  # over detected episodes, in batches
    max_delay: int | None


@dataclass(frozen=True)
class ReplayReport:
    settings: dict[str, Any]
    steps: tuple[ReplayStep, ...]
    episodes: tuple[Episode, ...]
    score: ReplayScore

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReplayReport:
        """Rebuilt from its :func:`report_dict` form (a flow's result)."""
        return from_fields(
            cls, data, steps=many(ReplayStep.from_dict), episodes=many(Episode.from_dict), score=ReplayScore.from_dict
        )


def replay(batches: Sequence[ReplayBatch], settings: PolicySettings) -> ReplayReport:
    """Decide every judgement in order under ``settings``; a RETRAIN counts as a retrain at that judgement's time.

    The memory is the latest verdict of each batch, in the order batches were first monitored, as the monitor
    keeps it (``state_for_batch``).
    """
    verdicts: dict[str, PastDecision] = {}
    retrains: list[datetime] = []
    steps: list[ReplayStep] = []
    seen: dict[str, int] = {}
    for batch in batches:
        seen.setdefault(batch.batch_id, len(seen))
        state = state_for_batch(
            list(verdicts.values()), batch.batch_id, retrains, batch.at, model_version=batch.evidence.model_version
        )
        decision = decide(batch.evidence, state, settings, batch.at)
        steps.append(
            ReplayStep(
                batch_id=batch.batch_id,
                action=decision.action.value,
                degraded=decision.degraded,
                truly_degraded=batch.truly_degraded,
                priority_class=decision.priority_class,
                failing_rules=tuple(r.rule for r in decision.rules if r.verdict == Verdict.FAIL),
                reason=decision.reasons[-1] if decision.reasons else "",
                trigger=batch.evidence.trigger,
                position=batch.position if batch.position is not None else len(seen) - 1,
            )
        )
        # Assigning to an existing key keeps its place: the order stays the order batches were first monitored.
        verdicts[batch.batch_id] = PastDecision(
            decided_at=batch.at,
            degraded=decision.degraded,
            window_start=decision.window_start,
            labelled_rows=batch.evidence.labelled_rows,
            batch_id=batch.batch_id,
            model_version=batch.evidence.model_version,
        )
        if decision.action == Action.RETRAIN:
            retrains.append(batch.at)
    episodes = _episodes(steps)
    return ReplayReport(
        settings=settings.model_dump(mode="json"), steps=tuple(steps), episodes=episodes, score=_score(steps, episodes)
    )


def _episodes(steps: Sequence[ReplayStep]) -> tuple[Episode, ...]:
    batches = list(dict.fromkeys(s.batch_id for s in steps))
    truth = {s.batch_id: s.truly_degraded for s in steps}
    found: list[Episode] = []
    start: int | None = None
    for index, batch_id in enumerate([*batches, None]):
        degraded = batch_id is not None and truth[batch_id] is True
        if degraded and start is None:
            start = index
        elif not degraded and start is not None:
            members = set(batches[start:index])
            judged = [s for s in steps if s.batch_id in members]
            alert = next((s.position for s in judged if s.action in (Action.ALERT, Action.RETRAIN)), None)
            retrain = next((s.position for s in judged if s.action == Action.RETRAIN), None)
            found.append(Episode(start=start, end=index - 1, first_alert=alert, first_retrain=retrain))
            start = None
    return tuple(found)


def _score(steps: Sequence[ReplayStep], episodes: Sequence[Episode]) -> ReplayScore:
    """Counts per batch (a batch judged twice, on arrival and on its labels, is one batch)."""
    delays = [e.delay for e in episodes if e.delay is not None]
    truth = {s.batch_id: s.truly_degraded for s in steps}
    clean = [s for s in steps if s.truly_degraded is False]
    return ReplayScore(
        batches=len(truth),
        judged=sum(1 for t in truth.values() if t is not None),
        degraded_batches=sum(1 for t in truth.values() if t is True),
        episodes=len(episodes),
        detected=len(delays),
        missed=len(episodes) - len(delays),
        false_alarms=len({s.batch_id for s in clean if s.action == Action.RETRAIN}),
        false_alerts=len({s.batch_id for s in clean if s.action == Action.ALERT}),
        retrains=sum(1 for s in steps if s.action == Action.RETRAIN),
        mean_delay=sum(delays) / len(delays) if delays else None,
        max_delay=max(delays) if delays else None,
    )


# --- inputs: recorded decisions, truth, candidate settings ---------------------------------------------------
Clock = Literal["decided", "window"]


def batches_from_decisions(
    rows: Sequence[dict[str, Any]], truth: dict[str, bool] | None = None, *, clock: Clock = "window"
) -> list[ReplayBatch]:
    """Replay judgements from the store's policy decisions, oldest first: each batch when monitored and again
    when its labels arrived. Refusals at the boundary carry no evidence and are left out.

    clock: the time the replayed policy sees (cooldown, budget): the end of the batch's data window, as the
    monitor judges (``policy_clock``), or when the decision was taken.
    """
    batches: list[ReplayBatch] = []
    seen: dict[str, int] = {}
    for row in rows:
        evidence = (row.get("payload") or {}).get("evidence")
        if not evidence:
            continue
        batch_id = str(row["batch_id"])
        seen.setdefault(batch_id, len(seen))
        parsed = PolicyEvidence.from_dict(evidence)
        at = policy_clock(parsed, row["decided_at"]) if clock == "window" else row["decided_at"]
        batches.append(
            ReplayBatch(
                batch_id=batch_id,
                evidence=parsed,
                at=at,
                truly_degraded=(truth or {}).get(batch_id),
                position=len(seen) - 1,
            )
        )
    return batches


def resolve_truth(batch_ids: Sequence[str], truth_file: Path | None, pattern: str | None) -> dict[str, bool]:
    """Truth from a file or a batch-id pattern; one of them is required."""
    if not batch_ids:
        raise ConfigError("the audit store holds no policy decision to replay; monitor some batches first")
    if truth_file is not None:
        return load_truth(truth_file, batch_ids)
    if pattern:
        return truth_from_pattern(batch_ids, pattern)
    raise ConfigError("replay needs the truth: a truth file (--truth) or a batch-id pattern (--degraded)")


def truth_from_pattern(batch_ids: Sequence[str], pattern: str) -> dict[str, bool]:
    """Every batch id is judged: degraded when the regular expression matches it (e.g. 'drifted|shift')."""
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"--degraded pattern {pattern!r} is not a regular expression: {exc}") from exc
    return {batch_id: bool(compiled.search(batch_id)) for batch_id in batch_ids}


def load_truth(path: Path, batch_ids: Sequence[str]) -> dict[str, bool]:
    """Truth from a YAML file, one of:

    - ``degraded: [batch ids]`` (every other batch is not degraded);
    - ``degraded_pattern: regex`` (as ``--degraded``);
    - ``batches: {batch_id: true|false}`` (batches not listed are left out of the score).
    """
    from tasks.core.settings import read_yaml_mapping

    data = read_yaml_mapping(path, what="truth file", holds="a mapping (degraded, degraded_pattern or batches)")
    if "batches" in data:
        listed = data["batches"]
        if not isinstance(listed, dict) or not all(isinstance(v, bool) for v in listed.values()):
            raise ConfigError(f"truth file {path}: 'batches' must map batch ids to true/false")
        return {str(k): v for k, v in listed.items()}
    if "degraded_pattern" in data:
        return truth_from_pattern(batch_ids, str(data["degraded_pattern"]))
    if "degraded" in data:
        degraded = {str(b) for b in data["degraded"] or []}
        unknown = sorted(degraded - set(batch_ids))
        if unknown:
            raise ConfigError(f"truth file {path} names batches that were never monitored: {unknown[:5]}")
        return {batch_id: batch_id in degraded for batch_id in batch_ids}
    raise ConfigError(f"truth file {path} needs one of the keys 'degraded', 'degraded_pattern' or 'batches'")


def candidate_settings(
    base: PolicySettings, overrides: Sequence[str] = (), policy_file: Path | None = None
) -> PolicySettings:
    """Base policy settings changed by a settings file's ``policy:`` section, then by ``key=value`` overrides
    (``persistence=3``, ``policy.concept_drift.action=alert``; values parsed as YAML)."""
    import yaml
    from pydantic import ValidationError

    from tasks.core.settings import read_yaml_mapping

    merged: dict[str, Any] = base.model_dump(mode="json")
    if policy_file is not None:
        section = read_yaml_mapping(policy_file).get("policy")
        if not isinstance(section, dict):
            raise ConfigError(f"settings file {policy_file} has no 'policy:' section to replay with")
        _deep_update(merged, section)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not key=value (e.g. persistence=3)")
        path = key.strip().removeprefix("policy.").split(".")
        target = merged
        for part in path[:-1]:
            nested = target.get(part)
            if not isinstance(nested, dict):
                raise ConfigError(f"override {item!r}: policy has no section {part!r}")
            target = nested
        if path[-1] not in target:
            raise ConfigError(f"override {item!r}: policy has no setting {'.'.join(path)!r}")
        value = yaml.safe_load(raw)
        # YAML 1.1 reads off/on/yes/no as booleans; here they are words (slice_action=off).
        if isinstance(value, bool) and raw.strip().lower() not in ("true", "false"):
            value = raw.strip()
        target[path[-1]] = value
    try:
        return PolicySettings.model_validate(merged)
    except ValidationError as exc:
        problems = "; ".join(f"policy.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid candidate policy: {problems}") from exc


def _deep_update(target: dict[str, Any], changes: dict[str, Any]) -> None:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_update(target[key], value)
        else:
            target[key] = value


def settings_diff(base: dict[str, Any], other: dict[str, Any], prefix: str = "") -> list[str]:
    """``key: old → new`` for every setting that differs (nested keys dotted)."""
    changes: list[str] = []
    for key in sorted(set(base) | set(other)):
        a, b = base.get(key), other.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changes += settings_diff(a, b, f"{prefix}{key}.")
        elif a != b:
            changes.append(f"{prefix}{key}: {a} → {b}")
    return changes


# --- the report ----------------------------------------------------------------------------------------------
def _score_cell(value: float | int | None) -> str:
    if value is None:
        return "–"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


SCORE_ROWS = (
    ("degraded stretches (episodes)", "episodes"),
    ("detected (a RETRAIN within the stretch)", "detected"),
    ("missed degradations", "missed"),
    ("false alarms (RETRAIN, not degraded)", "false_alarms"),
    ("false alerts (ALERT, not degraded)", "false_alerts"),
    ("retrains", "retrains"),
    ("mean detection delay (batches)", "mean_delay"),
    ("max detection delay (batches)", "max_delay"),
)


def replay_markdown(title: str, baseline: ReplayReport, candidate: ReplayReport | None = None) -> str:
    """The replay report: scores side by side, the settings that differ, and every batch's decisions."""
    lines = [f"# {title}", ""]
    score = baseline.score
    lines += [
        f"{score.batches} batches replayed, {score.judged} with known truth, {score.degraded_batches} truly degraded.",
        "",
    ]
    header = "| | current |" + (" candidate |" if candidate else "")
    lines += [header, "|---|---|" + ("---|" if candidate else "")]
    for label, key in SCORE_ROWS:
        row = f"| {label} | {_score_cell(getattr(baseline.score, key))} |"
        if candidate:
            row += f" {_score_cell(getattr(candidate.score, key))} |"
        lines.append(row)
    if candidate:
        changes = settings_diff(baseline.settings, candidate.settings)
        lines += ["", "Candidate settings: " + ("; ".join(changes) if changes else "identical to the current ones")]
    lines += ["", "## Batches", ""]
    header = "| # | batch | judged on | truly degraded | current |" + (" candidate |" if candidate else "")
    lines += [header, "|---|---|---|---|---|" + ("---|" if candidate else "")]
    for index, step in enumerate(baseline.steps):
        truth = {True: "yes", False: "no", None: "?"}[step.truly_degraded]
        cell = _step_cell(step)
        on = "arrival" if step.trigger == "monitor" else f"labels (newest batch #{step.position})"
        row = f"| {index} | {step.batch_id} | {on} | {truth} | {cell} |"
        if candidate:
            row += f" {_step_cell(candidate.steps[index])} |"
        lines.append(row)
    lines += ["", "Rules that failed, per decision, are listed in brackets; the last reason is in the JSON output.", ""]
    return "\n".join(lines)


def _step_cell(step: ReplayStep) -> str:
    rules = f" [{', '.join(step.failing_rules)}]" if step.failing_rules else ""
    priority = f" ({step.priority_class})" if step.action == Action.RETRAIN else ""
    return f"**{step.action}**{priority}{rules}"


def report_dict(report: ReplayReport) -> dict[str, Any]:
    data = asdict(report)
    data["episodes"] = [{**asdict(e), "delay": e.delay} for e in report.episodes]
    return data


def scenario_times(start: datetime, count: int, period: timedelta = timedelta(days=1)) -> list[datetime]:
    """Decision times of a synthetic scenario: one batch per period."""
    return [start + i * period for i in range(count)]


# --- a scenario with known shift points, monitored in shadow mode -------------------------------------------
@dataclass(frozen=True)
class ScenarioBatch:
    batch: str
    labels: str
    truly_degraded: bool


@dataclass(frozen=True)
class ScenarioPlan:
    home: Path
    config: Path
    reference: Path
    truth: Path
    batches: tuple[ScenarioBatch, ...]


def prepare_scenario(
    home: Path, *, seed: int = 7, stationary: int = 8, drifted: int = 6, rows_per_batch: int = 4000, n_trials: int = 3
) -> ScenarioPlan:
    """The demo's data and drift (tasks/stages/demo.py) as a longer stream: ``stationary`` days, then ``drifted`` days
    from a known shift point; files, labels, settings (events off: shadow mode) and the truth file are written."""
    import yaml

    from tasks.data.contract import infer_contract
    from tasks.data.files import STATIONARY, ScenarioGenerator, load_car_loan, split_labels, write_frame
    from tasks.data.scenarios import DEMO_SLICES, DRIFT, demo_settings

    if stationary < 1 or drifted < 1:
        raise ConfigError(f"a scenario needs >= 1 stationary and >= 1 drifted batch, got {stationary}/{drifted}")
    home.mkdir(parents=True, exist_ok=True)
    settings = {**demo_settings(home, n_trials), "emit_events": False}
    config = home / "driftgate.yaml"
    config.write_text(yaml.safe_dump(settings, sort_keys=False))
    reference, analysis = load_car_loan()
    infer_contract(
        reference, name="car-loan", target="repaid", entity_id="id", timestamp="timestamp", slices=DEMO_SLICES
    ).save(home / "contract.yaml")
    reference_path = write_frame(reference, home / "inputs" / "reference.parquet")
    generator = ScenarioGenerator(analysis.head(25_000), seed=seed)
    batches = []
    phases = [("stationary", STATIONARY)] * stationary + [("drifted", DRIFT)] * drifted
    for day, (phase, shift) in enumerate(phases, start=1):
        features, labels = split_labels(generator.batch(rows_per_batch, shift), entity_id="id", target="repaid")
        batch = write_frame(features, home / "inputs" / f"day-{day:02d}-{phase}.parquet")
        label_file = write_frame(labels, home / "inputs" / f"day-{day:02d}-{phase}-labels.parquet")
        batches.append(ScenarioBatch(str(batch), str(label_file), phase == "drifted"))
    truth = home / "truth.yaml"
    truth.write_text(yaml.safe_dump({"degraded_pattern": "drifted"}))
    return ScenarioPlan(home, config, reference_path, truth, tuple(batches))
