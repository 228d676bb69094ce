"""Replay a model's alias ledger onto a mirror (the W&B Registry), removals included.

Offline W&B runs only ever add aliases (an artifact logged with a shorter alias list keeps the old ones),
so ``wandb sync`` alone leaves stale aliases: the old production still "production" next to the new one.
The ledger is the truth; :func:`plan_replay` turns its applied entries, in order, into explicit steps
(publish a version, remove an alias from a version, add it to another) and :func:`apply_replay` performs
them through the :class:`~tasks.registry.model.AliasMirror` interface (the existing W&B adapter), so the
mirror ends exactly where the ledger's final state is, and ``driftgate reconcile`` finds nothing to fix.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from tasks.core.errors import RegistryError
from tasks.registry.model import LATEST, AliasMove, replay_aliases

if TYPE_CHECKING:
    from tasks.registry.model import AliasMirror, LedgerEntry, ModelVersion

# W&B maintains "latest" itself; the local registry never mirrors it either.
UNMIRRORED: Final = frozenset({LATEST})


@dataclass(frozen=True)
class ReplayStep:
    """One change to the mirror: ``publish`` a version, or ``add`` / ``remove`` an alias on a version."""

    seq: int  # the ledger entry it comes from
    action: str  # publish | add | remove
    version: str
    alias: str | None = None

    def describe(self) -> str:
        if self.action == "publish":
            return f"#{self.seq} publish {self.version}"
        return f"#{self.seq} {self.action} {self.alias!r} {'on' if self.action == 'add' else 'from'} {self.version}"


@dataclass(frozen=True)
class ReplayPlan:
    model: str
    steps: tuple[ReplayStep, ...]
    final: dict[str, str]  # alias -> version after the steps (``latest`` left out)
    ledger_final: dict[str, str]  # the ledger's own final state (``latest`` left out)

    @property
    def agrees(self) -> bool:
        return self.final == self.ledger_final


def plan_replay(model: str, entries: Sequence[LedgerEntry]) -> ReplayPlan:
    """The steps that carry an empty mirror through the ledger's history to its final state (pure)."""
    held: dict[str, str] = {}
    published: set[str] = set()
    steps: list[ReplayStep] = []
    for entry in entries:
        if entry.outcome != "applied":
            continue  # refused, failed and conflicting moves changed nothing in the ledger
        for move in entry.moves:
            if move.alias in UNMIRRORED:
                continue
            current = held.get(move.alias)
            if current is not None and current != move.to_version:
                steps.append(ReplayStep(entry.seq, "remove", current, move.alias))
                del held[move.alias]
            if move.to_version is None or current == move.to_version:
                continue
            if move.to_version not in published:
                published.add(move.to_version)
                steps.append(ReplayStep(entry.seq, "publish", move.to_version))
            steps.append(ReplayStep(entry.seq, "add", move.to_version, move.alias))
            held[move.alias] = move.to_version
        if entry.action == "register":
            version = next((m.to_version for m in entry.moves if m.to_version), None)
            if version is not None and version not in published:
                published.add(version)
                steps.append(ReplayStep(entry.seq, "publish", version))
    ledger = {a: v for a, v in replay_aliases(list(entries)).items() if a not in UNMIRRORED}
    return ReplayPlan(model=model, steps=tuple(steps), final=dict(held), ledger_final=ledger)


def apply_replay(plan: ReplayPlan, mirror: AliasMirror, version_of: Callable[[str], ModelVersion]) -> list[str]:
    """Perform the plan on ``mirror``; versions it already holds are not published again. Returns what was done.

    Alias edits go one at a time (``AliasMirror.apply`` with one move each), so a failure names the step.
    """
    if not plan.agrees:
        raise RegistryError(
            f"the replay of {plan.model}'s ledger ends at {plan.final}, the ledger at {plan.ledger_final}; not applied"
        )
    done: list[str] = []
    present = set(mirror.versions(plan.model))
    for step in plan.steps:
        try:
            if step.action == "publish":
                if step.version in present:
                    continue
                mirror.publish(version_of(step.version), [])
                present.add(step.version)
            elif step.action == "remove":
                mirror.apply(plan.model, [AliasMove(str(step.alias), step.version, None)])
            else:
                mirror.apply(plan.model, [AliasMove(str(step.alias), None, step.version)])
        except RegistryError:
            raise
        except Exception as exc:  # the mirror's client raises its own network/HTTP errors
            raise RegistryError(f"replaying {step.describe()} onto {mirror.name} failed: {exc}") from exc
        done.append(step.describe())
    _settle(plan, mirror)
    return done


def _settle(plan: ReplayPlan, mirror: AliasMirror) -> None:
    """A mirror that already held aliases the ledger never gave (moved in the W&B UI) ends like the ledger too."""
    remote = {a: v for a, v in mirror.aliases(plan.model).items() if a not in UNMIRRORED}
    fixes = [
        AliasMove(alias, remote.get(alias), plan.final.get(alias))
        for alias in sorted(set(remote) | set(plan.final))
        if remote.get(alias) != plan.final.get(alias)
    ]
    if fixes:
        mirror.apply(plan.model, fixes)
