"""The typed results of the bodies that compose others (monitor, labels, cycle, replay, demo).

A flow returns its result as plain data (``asdict``: a dict crosses Prefect); the edge (the CLI, a body that
composes another) rebuilds it once with ``from_dict``. The outcomes these hold live with the stage that makes
them (``tasks/stages``: MonitorOutcome, ArrivalOutcome, RetrainOutcome, ...; ``tasks/policy/replay``:
ReplayReport); a flow whose body returns one of those returns its ``asdict`` directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from tasks.core.records import from_fields, many
from tasks.policy.replay import ReplayReport, report_dict
from tasks.stages.arrivals import ArrivalOutcome
from tasks.stages.demo import Check
from tasks.stages.monitoring import MonitorOutcome
from tasks.stages.promotion import RollbackOutcome
from tasks.stages.retraining import RetrainOutcome


@dataclass(frozen=True)
class MonitorRun:
    """flows.monitor: every batch's outcome, and the label arrival of the call (None without labels)."""

    batches: tuple[MonitorOutcome, ...]
    labels: ArrivalOutcome | None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MonitorRun:
        return from_fields(cls, data, batches=many(MonitorOutcome.from_dict), labels=ArrivalOutcome.from_dict)


@dataclass(frozen=True)
class LabelsRun:
    """flows.labels: the label arrival, and the retrain it started (None: no RETRAIN, or not acted on)."""

    labels: ArrivalOutcome
    retrain: RetrainOutcome | None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LabelsRun:
        return from_fields(cls, data, labels=ArrivalOutcome.from_dict, retrain=RetrainOutcome.from_dict)


@dataclass(frozen=True)
class CycleRun:
    """flows.cycle: the monitor's outcomes and label arrival, and the retrain the first RETRAIN started."""

    monitor: tuple[MonitorOutcome, ...]
    labels: ArrivalOutcome | None
    retrain: RetrainOutcome | None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CycleRun:
        return from_fields(
            cls,
            data,
            monitor=many(MonitorOutcome.from_dict),
            labels=ArrivalOutcome.from_dict,
            retrain=RetrainOutcome.from_dict,
        )


@dataclass(frozen=True)
class ReplayRun:
    """flows.replay: the report file and the replay under the current (and the candidate) policy; a replayed
    scenario also names its home, settings file, truth file and label delay."""

    report: str
    current: ReplayReport
    candidate: ReplayReport | None
    home: str | None = None
    config: str | None = None
    truth: str | None = None
    label_delay: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data (episodes with their delay, as ``replay.report_dict``); the scenario keys only for a
        scenario."""
        data: dict[str, Any] = {
            "report": self.report,
            "current": report_dict(self.current),
            "candidate": report_dict(self.candidate) if self.candidate else None,
        }
        if self.home is not None:
            data.update(home=self.home, config=self.config, truth=self.truth, label_delay=self.label_delay)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReplayRun:
        return from_fields(cls, data, current=ReplayReport.from_dict, candidate=ReplayReport.from_dict)


@dataclass(frozen=True)
class DemoRun:
    """flows.demo: the demo's home and settings file, the result of each step, and the checks of its outcomes."""

    home: str
    config: str
    bootstrap: RetrainOutcome
    cycles: tuple[CycleRun, ...]
    operator_retrain: RetrainOutcome
    rollback: RollbackOutcome
    checks: tuple[Check, ...]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rollback": self.rollback.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DemoRun:
        return from_fields(
            cls,
            data,
            bootstrap=RetrainOutcome.from_dict,
            cycles=many(CycleRun.from_dict),
            operator_retrain=RetrainOutcome.from_dict,
            rollback=RollbackOutcome.from_dict,
            checks=many(Check.from_dict),
        )
