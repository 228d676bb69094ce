"""The registry's durable files: files written and fsync'd before they count, the ledger's JSON lines,
their hash chain and anchor, and their replay into state. Used by :class:`tasks.registry.local.LocalRegistry`
under its lock.

The hash chain. Every entry written by this code carries ``prev``: the sha256 of the previous entry's line
exactly as it was written (compact JSON without its newline; lines are written once and never
re-serialized, so the bytes *are* the canonical form), or :data:`GENESIS` for the first line of a new
ledger, and a ``seq`` one above its predecessor's. ``ledger-anchor.json`` beside the ledger records the last
seq and its line's digest; it is rewritten atomically (temporary file, fsync, rename) after each append.
Reading checks, entry by entry: seq contiguous from 1, ``prev`` matching, no unchained entry after the
first chained one; then the anchor: it may name the last entry, or the one before (a crash between the
append and the anchor rewrite; the next write rewrites it), nothing else. So an edit, deletion,
reordering, duplicate or insertion anywhere breaks the chain at the entry after it, an edit of the last
entry or a cut tail disagrees with the anchor. Each is a :class:`LedgerIntegrityError` naming the seq.
This is tamper *evidence* against edits, not a signature: whoever can write both files can forge a
consistent chain.

Legacy ledgers (written before the chain) have no ``prev``: they are read as before, and the chain starts
at the first chained entry (``chain_start``), whose ``prev`` digests the last legacy line.

Torn tails. A last line that does not end in a newline but is a complete JSON object is an entry (an
editor dropped the final newline): it is read, its seq is never reused, and the next append first writes
the missing newline. A last line that is not valid JSON is a write torn by a crash: readers ignore it and
the next locked writer truncates it; it is the only thing ever repaired.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from tasks.core.errors import (
    LedgerIntegrityError,
    RegistryError,
)
from tasks.core.timeutil import parse_utc
from tasks.registry.model import (
    ANCHOR_NAME,
    GENESIS,
    AliasMove,
    Lease,
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
    digest: str = ""  # sha256 of the line as written (without its newline): the next entry's ``prev``
    prev: str | None = None  # None: a legacy (unchained) entry
    lease: Mapping[str, Any] | None = None  # a ``lease`` entry's holder, version and start
    ends_lease: int | None = None  # the seq of the lease this entry ends


@dataclass(frozen=True)
class Anchor:
    seq: int
    digest: str


@dataclass(frozen=True)
class LedgerProblem:
    seq: int | None
    problem: str

    def __str__(self) -> str:
        return f"entry #{self.seq}: {self.problem}" if self.seq is not None else self.problem


@dataclass(frozen=True)
class LedgerState:
    records: list[Record]
    valid_bytes: int  # offset just past the last complete entry; a torn tail starts here
    file_bytes: int
    missing_newline: bool = False  # the last entry is complete but has no newline: the next append writes one
    chain_start: int | None = None  # seq of the first chained entry (None: legacy or empty ledger)
    anchor: Anchor | None = None
    problems: tuple[LedgerProblem, ...] = ()

    @property
    def last_digest(self) -> str:
        return self.records[-1].digest if self.records else GENESIS

    @property
    def open_lease(self) -> Lease | None:
        return open_lease(self.records)

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


def line_digest(line: bytes) -> str:
    """The digest a successor's ``prev`` carries: sha256 of the line as written, without its newline."""
    return hashlib.sha256(line.rstrip(b"\r\n")).hexdigest()


def open_lease(records: list[Record]) -> Lease | None:
    """The promotion lease still open after these entries (see :class:`Lease`), if any."""
    lease: Lease | None = None
    for record in records:
        if lease is not None and record.ends_lease == lease.seq:
            lease = None
        if record.lease is not None and record.entry.outcome == "applied":
            data = record.lease
            pid = data.get("pid")
            lease = Lease(
                model=record.entry.model,
                version=str(data["version"]),
                seq=record.entry.seq,
                holder=str(data["holder"]),
                host=data.get("host"),
                pid=int(pid) if pid is not None else None,
                started=record.entry.at,
            )
    return lease


def record_from_json(data: dict[str, Any], digest: str = "") -> Record:
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
        digest=digest,
        chained="prev" in data,
    )
    ends = data.get("ends_lease")
    lease = data.get("lease")
    return Record(
        entry,
        data.get("version"),
        data.get("manifest_sha256"),
        digest=digest,
        prev=data.get("prev"),
        lease=dict(lease) if isinstance(lease, dict) else None,
        ends_lease=int(ends) if ends is not None else None,
    )


def read_anchor(path: Path) -> Anchor | None:
    try:
        data = json.loads(path.read_bytes())
        return Anchor(int(data["seq"]), str(data["digest"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LedgerIntegrityError(f"ledger anchor {path} is unreadable ({exc})", problem="anchor unreadable") from exc


def write_anchor(model_dir: Path, seq: int, digest: str) -> None:
    """Replace the anchor atomically: a reader sees the old one or the new one, never a mix."""
    path = model_dir / ANCHOR_NAME
    tmp = model_dir / f".{ANCHOR_NAME}.{os.getpid()}.tmp"
    data = (json.dumps({"seq": seq, "digest": digest}, sort_keys=True) + "\n").encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(model_dir)


def _check_chain(records: list[Record], anchor: Anchor | None) -> tuple[int | None, list[LedgerProblem]]:
    problems: list[LedgerProblem] = []
    chain_start: int | None = None
    previous: Record | None = None
    for record in records:
        seq = record.entry.seq
        want = previous.entry.seq + 1 if previous is not None else 1
        if seq != want:
            after = f"#{previous.entry.seq}" if previous is not None else "the start"
            problems.append(
                LedgerProblem(
                    seq,
                    f"seq {seq} follows {after} (expected {want}): an entry was deleted, duplicated, "
                    "inserted or reordered",
                )
            )
        if record.prev is not None:
            if chain_start is None:
                chain_start = seq
            expected_prev = previous.digest if previous is not None else GENESIS
            if record.prev != expected_prev:
                what = f"entry #{previous.entry.seq}" if previous is not None else "the start of the ledger"
                problems.append(
                    LedgerProblem(
                        seq,
                        f"prev does not match the digest of {what}: that entry was edited, or entries "
                        "were removed or reordered",
                    )
                )
        elif chain_start is not None:
            problems.append(
                LedgerProblem(seq, f"has no prev although the chain starts at #{chain_start}: inserted or stripped")
            )
        previous = record
    last = records[-1] if records else None
    if anchor is not None:
        by_seq = {r.entry.seq: r for r in records[-2:]}
        if last is None or anchor.seq > last.entry.seq:
            problems.append(
                LedgerProblem(
                    anchor.seq,
                    f"the anchor records #{anchor.seq} but the ledger ends at "
                    f"#{last.entry.seq if last else 0}: the tail was truncated",
                )
            )
        elif anchor.seq not in by_seq:
            problems.append(
                LedgerProblem(
                    anchor.seq,
                    f"the anchor records #{anchor.seq} but the ledger goes on to #{last.entry.seq}: entries were "
                    "appended outside driftgate",
                )
            )
        elif by_seq[anchor.seq].digest != anchor.digest:
            problems.append(
                LedgerProblem(anchor.seq, "differs from the digest the anchor recorded: the entry was edited")
            )
    elif chain_start is not None and last is not None and last.entry.seq > chain_start:
        problems.append(LedgerProblem(None, f"{ANCHOR_NAME} is missing although the ledger is chained"))
    return chain_start, problems


# Parsed prefixes of the ledgers this process read: path -> (the bytes, their records, their line count).
# A later read whose file starts with exactly those bytes (a byte comparison, not a timestamp) parses only
# what was appended; any other change parses the whole file again. The chain is still checked in full.
_PARSED: dict[str, tuple[bytes, tuple[Record, ...], int]] = {}
_PARSED_LOCK = threading.Lock()


def _parse(path: Path, raw: bytes, valid_bytes: int, missing_newline: bool) -> tuple[list[Record], list[LedgerProblem]]:
    key = str(path)
    with _PARSED_LOCK:
        cached = _PARSED.get(key)
    start, records, lines_before = 0, [], 0
    if cached is not None and len(cached[0]) <= valid_bytes and raw.startswith(cached[0]):
        start, records, lines_before = len(cached[0]), list(cached[1]), cached[2]
    problems: list[LedgerProblem] = []
    body = raw[start:valid_bytes]
    for number, line in enumerate(body.split(b"\n"), start=lines_before + 1):
        if not line.strip():
            continue
        try:
            records.append(record_from_json(json.loads(line), line_digest(line)))
        except (ValueError, KeyError, TypeError) as exc:
            problems.append(LedgerProblem(None, f"line {number} is corrupt ({exc})"))
    if not problems and not missing_newline:
        with _PARSED_LOCK:
            _PARSED[key] = (raw[:valid_bytes], tuple(records), lines_before + body.count(b"\n"))
    return records, problems


def check_ledger(path: Path) -> LedgerState:
    """Parse and check a ledger without raising on a broken chain: the problems are in ``state.problems``."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raw = b""
    anchor = read_anchor(path.parent / ANCHOR_NAME)
    valid_bytes = raw.rfind(b"\n") + 1
    missing_newline = False
    tail = raw[valid_bytes:]
    if tail.strip():
        try:
            json.loads(tail)
        except ValueError:
            pass  # torn by a crash: ignored, cut by the next writer
        else:
            valid_bytes = len(raw)
            missing_newline = True
    records, problems = _parse(path, raw, valid_bytes, missing_newline)
    if problems:
        return LedgerState(records, valid_bytes, len(raw), missing_newline, None, anchor, tuple(problems))
    chain_start, chain_problems = _check_chain(records, anchor)
    return LedgerState(records, valid_bytes, len(raw), missing_newline, chain_start, anchor, tuple(chain_problems))


def check_records(records: list[Record], anchor: Anchor | None) -> LedgerState:
    """The state of a ledger kept elsewhere than a file (rows of a table: no bytes, no torn tail), chain checked
    against ``anchor`` as :func:`check_ledger` does; problems in ``state.problems``."""
    chain_start, problems = _check_chain(records, anchor)
    return LedgerState(records, 0, 0, False, chain_start, anchor, tuple(problems))


def refuse_broken(where: str, state: LedgerState) -> LedgerState:
    """``state`` if its chain holds, else a :class:`LedgerIntegrityError` naming the first broken entry."""
    if state.problems:
        first = state.problems[0]
        more = (
            f" (and {len(state.problems) - 1} more problems: `driftgate verify` lists them)"
            if len(state.problems) > 1
            else ""
        )
        raise LedgerIntegrityError(
            f"ledger {where}: {first}{more}; refusing to act on a broken ledger", seq=first.seq, problem=first.problem
        )
    return state


def read_ledger(path: Path) -> LedgerState:
    """Parse and check a ledger; a broken chain or anchor is a :class:`LedgerIntegrityError` naming the entry."""
    return refuse_broken(str(path), check_ledger(path))
