"""The registry's vocabulary: alias and file names, versions, alias moves, ledger entries, the mirror
protocol, and the pure rules over them (alias replay, last known good). No I/O."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Protocol

from tasks.core.errors import (
    RegistryError,
)

MANIFEST_NAME: Final = "manifest.json"
LEDGER_NAME: Final = "ledger.jsonl"
ANCHOR_NAME: Final = "ledger-anchor.json"
# ``prev`` of the first entry of a ledger that starts chained (nothing before it to digest).
GENESIS: Final = "0" * 64
LOCK_NAME: Final = ".lock"
ANNOTATIONS_DIR: Final = "annotations"
STAGING_PREFIX: Final = ".staging-"
MANIFEST_FORMAT: Final = 1

LATEST: Final = "latest"
CANDIDATE: Final = "candidate"
STAGING: Final = "staging"
CANARY: Final = "canary"
PRODUCTION: Final = "production"
PREVIOUS_PRODUCTION: Final = "previous-production"


# Ledger entries that move nothing but belong to the history: approvals, audits, drills, mirror repairs.
NOTE_ACTIONS: Final = frozenset({"approve", "reject", "audit", "drill", "watch", "mirror"})
_ALIAS_RE: Final = re.compile(r"^[a-z][a-z0-9-]*$")
_VERSION_LIKE_RE: Final = re.compile(r"^v[0-9]+$")


class Unchecked:
    """Type of :data:`ANY`: "do not check what the alias points at"."""

    _instance: Unchecked | None = None

    def __new__(cls) -> Unchecked:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ANY"

    def __reduce__(self) -> str:
        # Unpickling (e.g. in a Prefect worker process) must yield the same singleton.
        return "ANY"


ANY: Final = Unchecked()


@dataclass(frozen=True)
class ModelVersion:
    model: str
    version: str
    index: int
    path: Path
    created_at: datetime
    metadata: dict[str, Any]
    digests: dict[str, str]


@dataclass(frozen=True)
class Lease:
    """The promotion lease: one promotion of a model at a time. Opened by a ``lease`` ledger entry, ended by
    the entry whose ``ends_lease`` names its seq (the promote, withdraw or completion line, or a hand-over)."""

    model: str
    version: str
    seq: int  # the ledger entry that opened it
    holder: str  # "host:pid", or "watch" once handed to `driftgate watch`
    host: str | None
    pid: int | None  # None once handed over: no process to outlive
    started: datetime


@dataclass(frozen=True)
class AliasMove:
    alias: str
    from_version: str | None
    to_version: str | None


@dataclass(frozen=True)
class LedgerEntry:
    seq: int
    at: datetime
    model: str
    action: str
    moves: tuple[AliasMove, ...]
    actor: str
    reason: str
    evidence: str | None
    outcome: str
    # sha256 of the entry's ledger line as written ("" for an entry not yet written); chained entries only
    digest: str = field(default="", compare=False)
    chained: bool = field(default=False, compare=False)


class AliasMirror(Protocol):
    """A second home of versions and aliases (the W&B Registry) that must agree with the ledger."""

    @property
    def name(self) -> str: ...

    def publish(self, version: ModelVersion, aliases: Sequence[str]) -> None: ...

    def versions(self, model: str) -> set[str]: ...

    def aliases(self, model: str) -> dict[str, str]: ...

    def apply(self, model: str, moves: Sequence[AliasMove]) -> None: ...


def replay_aliases(entries: Sequence[LedgerEntry], until: datetime | None = None) -> dict[str, str]:
    """Alias -> version after applying every applied entry (up to ``until`` inclusive) in order."""
    aliases: dict[str, str] = {}
    for entry in entries:
        if until is not None and entry.at > until:
            break
        if entry.outcome != "applied":
            continue
        for move in entry.moves:
            if move.to_version is None:
                aliases.pop(move.alias, None)
            else:
                aliases[move.alias] = move.to_version
    return aliases


def last_known_good(entries: Sequence[LedgerEntry], restored: str, rolled_back_from: str | None) -> str | None:
    """The version that held production before ``restored`` and was never rolled back from.

    Walks the production history backwards from ``restored``'s latest tenure, so that two
    rollbacks in a row step back through two good versions instead of bouncing between two.
    """
    tenures: list[str] = []
    excluded = {restored} | ({rolled_back_from} if rolled_back_from else set())
    for entry in entries:
        if entry.outcome != "applied":
            continue
        for move in entry.moves:
            if move.alias != PRODUCTION:
                continue
            if move.to_version is not None:
                tenures.append(move.to_version)
            if entry.action == "rollback" and move.from_version is not None:
                excluded.add(move.from_version)
    # previous-production set by hand may never have held production: search all history.
    end = len(tenures) - 1 - tenures[::-1].index(restored) if restored in tenures else len(tenures)
    for version in reversed(tenures[:end]):
        if version not in excluded:
            return version
    return None


def check_alias(alias: str) -> None:
    if not _ALIAS_RE.match(alias) or _VERSION_LIKE_RE.match(alias):
        raise RegistryError(
            f"invalid alias {alias!r}: aliases match ^[a-z][a-z0-9-]*$ and must not look like a version (v<N>)"
        )
