"""What `driftgate history` shows, read from the registry and the audit store as typed records: the aliases (now,
or at a moment), the alias ledger, and the recent decisions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tasks.registry.model import LedgerEntry
    from tasks.resources.store import DecisionRecord
    from tasks.resources.workspace import Workspace


@dataclass(frozen=True)
class Decided:
    """A decision read back from the audit store, with when it was taken."""

    decided_at: datetime
    record: DecisionRecord

    @property
    def trigger(self) -> str | None:
        """``labels`` for a batch judged again when its labels arrived; None otherwise."""
        evidence = (self.record.payload or {}).get("evidence")
        return evidence.get("trigger") if isinstance(evidence, dict) else None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Decided:
        """From a row of ``AuditStore.decisions``."""
        from tasks.resources.store import DecisionRecord

        record = DecisionRecord(
            model=row["model"],
            kind=row["kind"],
            outcome=row["outcome"],
            reasons=tuple(row["reasons"]),
            batch_id=row.get("batch_id"),
            version=row.get("version"),
            payload=row["payload"] or {},
        )
        return cls(row["decided_at"], record)


@dataclass(frozen=True)
class AliasesAt:
    """Which version held each alias of ``model`` at ``at``."""

    model: str
    at: datetime
    aliases: dict[str, str]


@dataclass(frozen=True)
class History:
    """The aliases of ``model`` now, its newest ledger entries and decisions (oldest first)."""

    model: str
    aliases: dict[str, str]
    ledger: tuple[LedgerEntry, ...]
    decisions: tuple[Decided, ...]
    repaired: int = 0  # audit rows written from the ledger first (a move killed before writing its row)


def aliases_at(ws: Workspace, moment: datetime) -> AliasesAt:
    return AliasesAt(ws.model, moment, ws.registry.aliases_at(ws.model, moment))


def history(ws: Workspace, limit: int) -> History:
    """The ``limit`` newest ledger entries and decisions. Audit rows a killed move left unwritten are repaired
    first (``promotion.audit_ledger``), so the decisions shown include every ledger move."""
    from tasks.stages.promotion import audit_ledger

    aliases = ws.registry.aliases(ws.model)
    ledger = tuple(ws.registry.ledger(ws.model)[-limit:])
    repaired = audit_ledger(ws)
    rows = ws.store.decisions(ws.model)[-limit:]
    return History(ws.model, aliases, ledger, tuple(Decided.from_row(row) for row in rows), repaired)
