"""The verdict of one rule, shared by the promotion gate and the retraining policy."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

Number = float | int | str | bool | None


class Verdict(StrEnum):
    """What a rule concluded. ``reported``: computed and shown, not a criterion; ``skipped``: not applicable."""

    PASS = "pass"
    FAIL = "fail"
    REPORTED = "reported"
    SKIPPED = "skipped"

    @classmethod
    def of(cls, ok: bool) -> Verdict:
        return cls.PASS if ok else cls.FAIL


@dataclass(frozen=True)
class RuleResult:
    """One rule's verdict, with its reason. A failing rule stops what it guards (a promotion, a retrain) only
    when ``blocking``; ``numbers`` are the figures behind it, for reports and the audit store."""

    rule: str
    verdict: Verdict
    detail: str
    blocking: bool = True
    numbers: dict[str, Number] = field(default_factory=dict)

    @classmethod
    def reported(cls, rule: str, detail: str, numbers: dict[str, Number] | None = None) -> RuleResult:
        """A figure computed and shown that decides nothing (not the primary criterion, or not applicable)."""
        return cls(rule=rule, verdict=Verdict.REPORTED, detail=detail, blocking=False, numbers=numbers or {})
