"""The registry's durable files: files written and fsync'd before they count, the ledger's JSON lines
and their replay into state. Used by :class:`tasks.registry.local.LocalRegistry` under its lock."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from tasks.core.errors import (
    IntegrityError,
    RegistryError,
)
from tasks.core.timeutil import parse_utc
from tasks.registry.model import (
    AliasMove,
    LedgerEntry,
    replay_aliases,
)

_CHUNK: Final = 1 << 20
_READ_ONLY: Final = 0o444


@dataclass(frozen=True)
class Record:
    """A parsed ledger line plus the fields only register entries carry."""

    entry: LedgerEntry
    version: str | None
    manifest_sha256: str | None


@dataclass(frozen=True)
class LedgerState:
    records: list[Record]
    valid_bytes: int  # offset just past the last complete line; a torn tail starts here
    file_bytes: int

    @property
    def last_seq(self) -> int:
        return self.records[-1].entry.seq if self.records else 0

    @property
    def last_at(self) -> datetime | None:
        return self.records[-1].entry.at if self.records else None

    def aliases(self, until: datetime | None = None) -> dict[str, str]:
        return replay_aliases([r.entry for r in self.records], until)


def json_text(value: Any, what: str) -> str:
    try:
        return json.dumps(value, sort_keys=True, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise RegistryError(f"{what} must be JSON-serializable (no pickles in the registry): {exc}") from exc


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(dest: Path, source: Path | bytes, model: str) -> str:
    """Copy ``source`` to ``dest`` (fsync'd, read-only) and return its sha256."""
    digest = hashlib.sha256()
    with dest.open("xb") as out:
        if isinstance(source, bytes):
            digest.update(source)
            out.write(source)
        else:
            try:
                with Path(source).open("rb") as handle:
                    while chunk := handle.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
            except OSError as exc:
                raise RegistryError(f"cannot read {source} to register it in model {model!r}: {exc}") from exc
        out.flush()
        os.fsync(out.fileno())
    os.chmod(dest, _READ_ONLY)
    return digest.hexdigest()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def entry_to_json(entry: LedgerEntry, extra: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "at": entry.at.isoformat(),
        "model": entry.model,
        "action": entry.action,
        "moves": [{"alias": m.alias, "from": m.from_version, "to": m.to_version} for m in entry.moves],
        "actor": entry.actor,
        "reason": entry.reason,
        "evidence": entry.evidence,
        "outcome": entry.outcome,
        **extra,
    }


def record_from_json(data: dict[str, Any]) -> Record:
    entry = LedgerEntry(
        seq=int(data["seq"]),
        at=parse_utc(data["at"]),
        model=str(data["model"]),
        action=str(data["action"]),
        moves=tuple(AliasMove(str(m["alias"]), m.get("from"), m.get("to")) for m in data["moves"]),
        actor=str(data["actor"]),
        reason=str(data["reason"]),
        evidence=data.get("evidence"),
        outcome=str(data["outcome"]),
    )
    return Record(entry, data.get("version"), data.get("manifest_sha256"))


def read_ledger(path: Path) -> LedgerState:
    """Parse a ledger, ignoring a torn (newline-less) last line; a corrupt complete line is an error."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return LedgerState([], 0, 0)
    valid_bytes = raw.rfind(b"\n") + 1
    records: list[Record] = []
    for number, line in enumerate(raw[:valid_bytes].splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(record_from_json(json.loads(line)))
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"ledger {path} line {number} is corrupt ({exc}); refusing to guess aliases") from exc
    return LedgerState(records, valid_bytes, len(raw))
