"""Named scenarios with known truth, to judge the monitoring loop (drift, estimation, policy, gate) under
delayed labels.

A :class:`Scenario` is a frozen value: the population it draws from, the contract's key columns, and its
phases (a count of batches and the :class:`~tasks.data.files.Shift` applied to them), each phase carrying the truth
of its batches: whether the production model is really, materially worse on them (``degraded``), whether a
retrained model could beat it (``retrain_helps``), and the ideal policy outcome (``expected``).

Seven scenarios are registered (:data:`SCENARIOS`, :func:`scenario`):

- ``concept``: P(y|x) changes, features do not (labels of one segment flipped): visible only through labels.
- ``covariate``: the population moves towards short driver tenures, where the model is less accurate:
  visible to drift and CBPE before any label; P(y|x) is unchanged, so retraining cannot beat the champion.
- ``benign``: a pure-noise feature shifts strongly: detectable drift, unchanged performance.
- ``broken``: a unit change (×1000) then a mostly-null feature: bad data, to be blocked, never trained on.
- ``noise``: 15 % of all labels flipped at random: realized performance drops, retraining cannot help.
- ``employment``: real, stationary US-census data (NannyML's Massachusetts employment set), year by year.
- ``wide``: the concept change of ``concept`` in a wide table: 30 added stationary, irrelevant features of
  awkward shapes, where uncontrolled per-feature drift tests alert on many quiet batches.

:func:`prepare` writes one scenario as files a driver (or ``driftgate monitor``/``labels``) consumes: the
contract, the reference, every batch without its target and its labels apart, the settings, the truth file
(the replay harness's ``batches:`` form) and ``scenario.yaml``, the machine-readable :class:`ScenarioPlan`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, get_args

from tasks.core.errors import ConfigError
from tasks.data.files import STATIONARY, Shift
from tasks.data.populations import Population

Expected = Literal["NONE", "ALERT", "RETRAIN", "BLOCK"]

_NAME = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
CAR_LOAN_SLICES = ("salary_range", "repaid_loan_on_prev_car")
EMPLOYMENT_SLICES = ("SEX", "DIS")
NOISE_FEATURE = "noise"
EMPLOYMENT_START = datetime(2016, 1, 1)

# The demo's scenario (tasks/stages/demo.py) and `driftgate replay --scenario demo`.
DEMO_SLICES = list(CAR_LOAN_SLICES)
# Concept drift: applicants with no down payment now mostly default where they used to repay (and vice versa).
CONCEPT_FLIP = ("size_of_downpayment", "0%", 0.9)
# The replay scenario's drift: covariate shift towards expensive cars and indebted drivers, plus the concept flip.
DRIFT = Shift(covariate={"car_value": 0.5, "debt_to_income_ratio": 0.4}, concept_flip=CONCEPT_FLIP)
# The demo's drift: the concept flip alone. The features do not move, so neither drift checks nor CBPE can see
# it: it is caught when the labels of the drifted days arrive, one day late.
CONCEPT = Shift(concept_flip=CONCEPT_FLIP)
LABEL_DELAY = 1  # days between a batch and its labels


# --- phases and scenarios ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Phase:
    """A run of ``batches`` consecutive batches under one shift, with their truth.

    degraded: the production model's real performance on these batches is materially worse (in the retrain
    sense: bad data is not "degraded", it is blocked). retrain_helps: a model retrained on these batches can
    beat the champion (False for covariate shift without concept change and for pure label noise).
    expected: the ideal policy outcome; NONE and ALERT both mean "no retraining", RETRAIN exactly when degraded.
    """

    name: str
    batches: int
    shift: Shift = STATIONARY
    degraded: bool = False
    retrain_helps: bool = False
    expected: Expected = "NONE"

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ConfigError(f"phase name {self.name!r} must be lower-case words joined by '-' (file-name safe)")
        if self.batches < 1:
            raise ConfigError(f"phase {self.name!r} needs at least one batch, got {self.batches}")
        if self.expected not in get_args(Expected):
            raise ConfigError(f"phase {self.name!r}: expected must be one of {list(get_args(Expected))}")
        if self.degraded != (self.expected == "RETRAIN"):
            raise ConfigError(f"phase {self.name!r}: RETRAIN is expected exactly when the batches are degraded")
        if self.retrain_helps and not self.degraded:
            raise ConfigError(f"phase {self.name!r}: retraining can only help where the model is degraded")
        if self.shift.is_stationary and self.expected != "NONE":
            raise ConfigError(f"phase {self.name!r}: unchanged data cannot call for {self.expected}")
        if self.expected == "BLOCK" and not (self.shift.scale or self.shift.null_rate):
            raise ConfigError(f"phase {self.name!r}: BLOCK needs broken data (a unit change or nulls)")

    @classmethod
    def stationary(cls, batches: int) -> Phase:
        return cls("stationary", batches)

    def describe(self) -> str:
        if self.degraded:
            truth = "degraded, " + ("retraining helps" if self.retrain_helps else "retraining cannot help")
        else:
            truth = "not degraded"
        return f"{self.shift.describe()} — truth: {truth}; expected {self.expected}"


@dataclass(frozen=True)
class BatchSpec:
    """One batch of a scenario: its position (from 1), its id (the file stem) and its phase."""

    index: int
    batch_id: str
    phase: Phase


@dataclass(frozen=True)
class Scenario:
    """A named sequence of phases over one population, with the contract's key columns."""

    name: str
    description: str
    population: Population
    target: str
    entity_id: str
    timestamp: str
    slices: tuple[str, ...]
    phases: tuple[Phase, ...]

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ConfigError(f"scenario name {self.name!r} must be lower-case words joined by '-'")
        if not self.phases:
            raise ConfigError(f"scenario {self.name!r} has no batches")
        features = set(self.population.features)
        unknown = [s for s in self.slices if s not in features]
        if unknown:
            raise ConfigError(f"scenario {self.name!r}: slices {unknown} are not features of {self.population.source}")
        for phase in self.phases:
            shift = phase.shift
            named = {*shift.covariate, *shift.scale, *shift.offset, *shift.null_rate}
            if shift.concept_flip is not None:
                named.add(shift.concept_flip[0])
            if named - features:
                raise ConfigError(
                    f"scenario {self.name!r}, phase {phase.name!r}: shifts {sorted(named - features)}, "
                    f"not features of {self.population.source}"
                )
            if shift.resamples and not self.population.resampled:
                raise ConfigError(
                    f"scenario {self.name!r}, phase {phase.name!r}: a covariate tilt resamples rows; "
                    f"{self.population.source} is taken in order"
                )

    # --- the registered scenarios ---
    @classmethod
    def concept(cls, stationary: int = 20, changed: int = 10) -> Scenario:
        return cls._car_loan(
            "concept",
            "Concept change, features unchanged: applicants earning 60K+ € (about 10 % of rows, a slice) who used "
            "to repay mostly default and vice versa (labels flipped with p = 0.9). P(y|x) changes, P(x) does not: "
            "neither drift nor CBPE can see it; only labels (late ones, under a delay) reveal it.",
            stationary,
            _salary_concept_flip(changed),
        )

    @classmethod
    def covariate(cls, stationary: int = 20, changed: int = 10) -> Scenario:
        return cls._car_loan(
            "covariate",
            "Covariate shift that degrades: the population moves towards short driver tenures (rows resampled "
            "with weight exp(-1.25 z)), where the model separates the classes less well (ROC AUC about 0.93 "
            "instead of 0.97). P(y|x) is unchanged: drift and CBPE see it before any label, and a model retrained "
            "on the shifted rows does not beat the champion trained on the whole reference.",
            stationary,
            Phase(
                "covariate",
                changed,
                Shift(covariate={"driver_tenure": -1.25}),
                degraded=True,
                retrain_helps=False,
                expected="RETRAIN",
            ),
        )

    @classmethod
    def benign(cls, stationary: int = 20, changed: int = 10) -> Scenario:
        return cls._car_loan(
            "benign",
            f"Benign shift of an irrelevant feature: {NOISE_FEATURE!r} (N(0, 1), independent of the label and of "
            "every other feature, present in the reference) moves by +2 standard deviations. Its drift is "
            "unmistakable; the model's performance does not change. Drift alone may alert, never retrain.",
            stationary,
            Phase("benign", changed, Shift(offset={NOISE_FEATURE: 2.0}), expected="ALERT"),
            noise_feature=NOISE_FEATURE,
        )

    @classmethod
    def broken(cls, stationary: int = 20, changed: int = 10) -> Scenario:
        units, nulls = math.ceil(changed / 2), changed // 2
        return cls._car_loan(
            "broken",
            "Broken data: car_value arrives in another unit (×1000: every value far outside the reference range), "
            "then debt_to_income_ratio is 85 % null. Performance on such rows is meaningless; retraining on them "
            "would be harmful: the batches are to be blocked (not 'degraded' in the retrain sense).",
            stationary,
            *(
                [Phase("units", units, Shift(scale={"car_value": 1000.0}), expected="BLOCK")]
                + (
                    [Phase("nulls", nulls, Shift(null_rate={"debt_to_income_ratio": 0.85}), expected="BLOCK")]
                    if nulls
                    else []
                )
            ),
        )

    @classmethod
    def noise(cls, stationary: int = 20, changed: int = 10) -> Scenario:
        return cls._car_loan(
            "noise",
            "Label noise: every label flipped with p = 0.15, features unchanged. Realized ROC AUC falls (about "
            "0.97 to 0.83) but the best possible ranking is the champion's: a retrained model cannot beat it, so "
            "the policy may retrain (the drop is real) and the gate should reject the candidate.",
            stationary,
            Phase("noise", changed, Shift(label_noise=0.15), degraded=True, retrain_helps=False, expected="RETRAIN"),
        )

    @classmethod
    def employment(cls, stationary: int = 20, changed: int = 10) -> Scenario:
        """Real and stationary: no change point, so ``stationary + changed`` stationary batches."""
        return cls(
            name="employment",
            description=(
                "Real, stationary data: US-census employment in Massachusetts, a model trained on 2015 monitoring "
                "2016-2018 (realized ROC AUC about 0.90 in every year). No change point: every batch is stationary "
                "(stationary + changed of them), so any RETRAIN is a false alarm."
            ),
            population=Population.employment(),
            target="employed",
            entity_id="id",
            timestamp="timestamp",
            slices=EMPLOYMENT_SLICES,
            phases=_phases(Phase.stationary, stationary + changed),
        )

    @classmethod
    def wide(cls, stationary: int = 20, changed: int = 10) -> Scenario:
        return cls._car_loan(
            "wide",
            "The concept change of 'concept' in a wide table: 30 added stationary features that the model ignores "
            "(heavy-tailed, zero-inflated, counts, normal). Every per-feature drift test holds its ~1 % false-alert "
            "rate, so 'any feature drifts' fires on many quiet batches unless it is controlled per batch "
            "(profiling.batch_correction); the degraded stretch must still be caught from labels.",
            stationary,
            _salary_concept_flip(changed),
            extra_features=30,
        )

    @classmethod
    def _car_loan(
        cls,
        name: str,
        description: str,
        stationary: int,
        *changed: Phase,
        noise_feature: str | None = None,
        extra_features: int = 0,
    ) -> Scenario:
        return cls(
            name=name,
            description=description,
            population=Population.car_loan(noise_feature=noise_feature, extra_features=extra_features),
            target="repaid",
            entity_id="id",
            timestamp="timestamp",
            slices=CAR_LOAN_SLICES,
            phases=(*_phases(Phase.stationary, stationary), *changed),
        )

    # --- reading it ---
    @property
    def n_batches(self) -> int:
        return sum(p.batches for p in self.phases)

    def batches(self) -> tuple[BatchSpec, ...]:
        """Every batch in order; ids are ``<NN>-<phase>`` (zero-padded so they sort in order)."""
        width = max(2, len(str(self.n_batches)))
        specs: list[BatchSpec] = []
        for phase in self.phases:
            for _ in range(phase.batches):
                index = len(specs) + 1
                specs.append(BatchSpec(index, f"{index:0{width}d}-{phase.name}", phase))
        return tuple(specs)

    def describe(self) -> str:
        """Several lines for humans: what it is, where the rows come from, each phase with its truth."""
        lines = [
            f"{self.name}: {self.description}",
            f"  population: {self.population.describe()}",
            f"  contract: target {self.target!r}, entity id {self.entity_id!r}, timestamp {self.timestamp!r}, "
            f"slices {list(self.slices)}",
        ]
        first = 1
        for phase in self.phases:
            last = first + phase.batches - 1
            span = f"batch {first}" if first == last else f"batches {first}-{last}"
            lines.append(f"  {span} ({phase.name}): {phase.describe()}")
            first = last + 1
        return "\n".join(lines)


def _salary_concept_flip(changed: int) -> Phase:
    """The concept change of ``concept`` and ``wide``: labels of the 60K+ € slice flipped with p = 0.9."""
    return Phase(
        "concept",
        changed,
        Shift(concept_flip=("salary_range", "60K+ €", 0.9)),
        degraded=True,
        retrain_helps=True,
        expected="RETRAIN",
    )


def _phases(make: Callable[[int], Phase], batches: int) -> tuple[Phase, ...]:
    if batches < 0:
        raise ConfigError(f"a batch count cannot be negative, got {batches}")
    return (make(batches),) if batches else ()


SCENARIOS: dict[str, Callable[[int, int], Scenario]] = {
    "concept": Scenario.concept,
    "covariate": Scenario.covariate,
    "benign": Scenario.benign,
    "broken": Scenario.broken,
    "noise": Scenario.noise,
    "employment": Scenario.employment,
    "wide": Scenario.wide,
}


def scenario_names() -> tuple[str, ...]:
    return tuple(SCENARIOS)


def scenario(name: str, *, stationary: int = 20, changed: int = 10) -> Scenario:
    """A registered scenario with ``stationary`` batches before the change and ``changed`` after it."""
    make = SCENARIOS.get(name)
    if make is None:
        raise ConfigError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
    if stationary < 0 or changed < 0:
        raise ConfigError(f"batch counts cannot be negative, got stationary={stationary}, changed={changed}")
    return make(stationary, changed)


# --- writing one to disk ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class PlannedBatch:
    """A written batch with its truth (``truly_degraded`` is what truth.yaml holds for ``batch_id``)."""

    index: int
    batch_id: str
    phase: str
    batch: Path  # features, entity id and timestamp; no target
    labels: Path  # entity id and target
    rows: int
    truly_degraded: bool
    retrain_helps: bool
    expected: Expected
    shift: str  # the shift, for humans
    origin: str  # where the rows came from

    @property
    def gate_should_pass(self) -> bool | None:
        """Where a retrain is expected: whether its candidate should pass the gate (None: no retrain due)."""
        return self.retrain_helps if self.expected == "RETRAIN" else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "batch_id": self.batch_id,
            "phase": self.phase,
            "batch": str(self.batch),
            "labels": str(self.labels),
            "rows": self.rows,
            "truly_degraded": self.truly_degraded,
            "retrain_helps": self.retrain_helps,
            "expected": self.expected,
            "gate_should_pass": self.gate_should_pass,
            "shift": self.shift,
            "origin": self.origin,
        }


@dataclass(frozen=True)
class ScheduleStep:
    """One step of a delayed-label run: monitor ``batch``, then feed the ``labels`` that have arrived."""

    batch: PlannedBatch
    labels: tuple[PlannedBatch, ...]


@dataclass(frozen=True)
class ScenarioPlan:
    """What :func:`prepare` wrote, with every batch's truth (also written as ``scenario.yaml``)."""

    scenario: Scenario
    home: Path
    config: Path  # driftgate.yaml
    contract: Path
    reference: Path
    truth: Path  # truth.yaml: batches: {batch_id: truly_degraded}
    plan: Path  # scenario.yaml: this plan, machine-readable
    seed: int
    rows_per_batch: int
    label_delay: int  # recorded for the driver: labels of batch i arrive after batch i + label_delay
    batches: tuple[PlannedBatch, ...] = field(default_factory=tuple)

    @property
    def name(self) -> str:
        return self.scenario.name

    def truth_map(self) -> dict[str, bool]:
        return {b.batch_id: b.truly_degraded for b in self.batches}

    def schedule(self) -> tuple[ScheduleStep, ...]:
        """Batches in order, each with the label files that arrive right after it: those of the batch
        ``label_delay`` positions earlier. The last ``label_delay`` batches' labels never arrive in the run."""
        return tuple(
            ScheduleStep(batch, (self.batches[i - self.label_delay],) if i >= self.label_delay else ())
            for i, batch in enumerate(self.batches)
        )

    def to_dict(self) -> dict[str, Any]:
        spec = self.scenario
        return {
            "scenario": spec.name,
            "description": spec.description,
            "population": spec.population.describe(),
            "resampled": spec.population.resampled,
            "contract_columns": {
                "target": spec.target,
                "entity_id": spec.entity_id,
                "timestamp": spec.timestamp,
                "slices": list(spec.slices),
            },
            "phases": [
                {
                    "name": p.name,
                    "batches": p.batches,
                    "shift": p.shift.describe(),
                    "degraded": p.degraded,
                    "retrain_helps": p.retrain_helps,
                    "expected": p.expected,
                }
                for p in spec.phases
            ],
            "home": str(self.home),
            "config": str(self.config),
            "contract": str(self.contract),
            "reference": str(self.reference),
            "truth": str(self.truth),
            "seed": self.seed,
            "rows_per_batch": self.rows_per_batch,
            "label_delay": self.label_delay,
            "batches": [b.to_dict() for b in self.batches],
        }


def demo_settings(home: Path, n_trials: int) -> dict[str, Any]:
    """The demo's settings, written to a YAML file a user can read and copy."""
    return {
        "home": str(home),
        "model_name": "car-loan",
        "profiling": {"chunk_size": 4000},
        "policy": {"persistence": 2, "min_new_rows": 2000, "performance_drop": 0.02},
        "training": {"n_trials": n_trials, "timeout_seconds": 30, "window_rows": 12000, "num_boost_round": 200},
        # A model swap must buy at least one AUC point: smaller, merely significant gains are not worth it.
        "gate": {"n_bootstrap": 500, "min_effect": 0.01},
    }


MIN_ROWS_PER_BATCH = 100  # profiling.min_rows: smaller batches fail data quality by themselves


def scenario_settings(spec: Scenario, home: Path, *, rows_per_batch: int, n_trials: int) -> dict[str, Any]:
    """The demo's settings (small training budget) for this scenario: own model name, events off (shadow
    mode), drift thresholds calibrated at the batch size."""
    settings = demo_settings(home, n_trials)
    settings["model_name"] = spec.name
    settings["emit_events"] = False
    settings["profiling"] = {**settings.get("profiling", {}), "chunk_size": rows_per_batch}
    return settings


def prepare(
    name: str | Scenario,
    home: Path,
    *,
    seed: int = 7,
    rows_per_batch: int = 4000,
    stationary: int = 20,
    changed: int = 10,
    label_delay: int = 0,
    n_trials: int = 3,
) -> ScenarioPlan:
    """Write a scenario to ``home``: ``contract.yaml``, ``inputs/reference.parquet``, ``inputs/<NN>-<phase>.parquet``
    (no target) with ``inputs/<NN>-<phase>-labels.parquet`` (entity id + target), ``driftgate.yaml``,
    ``truth.yaml`` and ``scenario.yaml``. A :class:`Scenario` given by value ignores ``stationary``/``changed``.
    Same seed, same files; car-loan scenarios of one seed share their stationary batches."""
    import yaml

    from tasks.data.contract import infer_contract
    from tasks.data.files import ScenarioGenerator, split_labels, write_frame

    spec = name if isinstance(name, Scenario) else scenario(name, stationary=stationary, changed=changed)
    if rows_per_batch < MIN_ROWS_PER_BATCH:
        raise ConfigError(f"rows_per_batch must be at least {MIN_ROWS_PER_BATCH}, got {rows_per_batch}")
    if label_delay < 0:
        raise ConfigError(f"label_delay counts batches and cannot be negative, got {label_delay}")
    if n_trials < 1:
        raise ConfigError(f"n_trials must be at least 1, got {n_trials}")
    reference, pool = spec.population.load(seed)
    if not spec.population.resampled and spec.n_batches * rows_per_batch > pool.height:
        raise ConfigError(
            f"{spec.name}: {spec.n_batches} batches of {rows_per_batch} rows need "
            f"{spec.n_batches * rows_per_batch:,} rows; the data holds {pool.height:,} "
            f"(at most {pool.height // rows_per_batch} batches of that size)"
        )

    home.mkdir(parents=True, exist_ok=True)
    inputs = home / "inputs"
    keep = [spec.entity_id, *spec.population.features, spec.target, spec.timestamp]
    reference = reference.select(keep)
    contract = infer_contract(
        reference,
        name=spec.name,
        target=spec.target,
        entity_id=spec.entity_id,
        timestamp=spec.timestamp,
        slices=list(spec.slices),
    )
    contract_path = contract.save(home / "contract.yaml")
    reference_path = write_frame(reference, inputs / "reference.parquet")
    config = home / "driftgate.yaml"
    settings = scenario_settings(spec, home, rows_per_batch=rows_per_batch, n_trials=n_trials)
    config.write_text(yaml.safe_dump(settings, sort_keys=False, allow_unicode=True))

    generator = ScenarioGenerator(
        pool,
        target=spec.target,
        entity_id=spec.entity_id,
        timestamp=spec.timestamp,
        seed=seed,
        start=None if spec.population.resampled else EMPLOYMENT_START,
    )
    planned: list[PlannedBatch] = []
    for item in spec.batches():
        phase = item.phase
        if spec.population.resampled:
            frame = generator.batch(rows_per_batch, phase.shift)
            origin = f"resampled from the {spec.population.source} pool ({pool.height:,} rows)"
        else:
            # Batches spread evenly over the whole span, in order: a short run still walks from 2016 to 2018.
            first = (item.index - 1) * (pool.height // spec.n_batches)
            generator.skip_to(first)
            frame = generator.take(rows_per_batch, phase.shift)
            years = sorted(set(frame.get_column("year").to_list())) if "year" in frame.columns else []
            origin = f"rows {first:,}-{first + rows_per_batch - 1:,} of {spec.population.source}" + (
                f" (year {', '.join(map(str, years))})" if years else ""
            )
        frame = frame.select(keep)
        features, labels = split_labels(frame, entity_id=spec.entity_id, target=spec.target)
        batch_path = write_frame(features, inputs / f"{item.batch_id}.parquet")
        labels_path = write_frame(labels, inputs / f"{item.batch_id}-labels.parquet")
        planned.append(
            PlannedBatch(
                index=item.index,
                batch_id=item.batch_id,
                phase=phase.name,
                batch=batch_path,
                labels=labels_path,
                rows=frame.height,
                truly_degraded=phase.degraded,
                retrain_helps=phase.retrain_helps,
                expected=phase.expected,
                shift=phase.shift.describe(),
                origin=origin,
            )
        )

    truth = home / "truth.yaml"
    truth.write_text(yaml.safe_dump({"batches": {b.batch_id: b.truly_degraded for b in planned}}, sort_keys=False))
    plan = ScenarioPlan(
        scenario=spec,
        home=home,
        config=config,
        contract=contract_path,
        reference=reference_path,
        truth=truth,
        plan=home / "scenario.yaml",
        seed=seed,
        rows_per_batch=rows_per_batch,
        label_delay=label_delay,
        batches=tuple(planned),
    )
    plan.plan.write_text(yaml.safe_dump(plan.to_dict(), sort_keys=False, allow_unicode=True))
    return plan
