"""Writing to a model's collection: under its lock, to the mirror first, then one entry appended to the ledger.

:class:`LedgerWriter` is the base of :class:`tasks.registry.local.LocalRegistry`; it holds the write protocol
every registry operation goes through (``_locked``, ``_commit``, ``_append``), so the operations read as
what they decide and this module as how a decision becomes durable.

Each ledger transaction is one JSON line written by a single ``os.write`` on an ``O_APPEND``
descriptor and fsync'd, so a multi-alias move (promote, rollback) is all or nothing. A line
without its terminating newline is a write torn by a crash: readers ignore it and the next
locked writer truncates it. There is no alias cache to drift away from the ledger: replaying
a few thousand lines takes milliseconds, and it answers "what held each alias at T" for free.

The ledger is a hash chain with an anchor (see :mod:`tasks.registry.ledger`): every read checks it, and a
broken chain is a ``LedgerIntegrityError`` naming the entry, so no alias is resolved, moved or rolled back
from a ledger that was edited, cut or reordered. Every write path is checked to resolve inside the
registry root (``UnsafePathError`` otherwise): a symlinked model folder, ledger or version cannot send a
write elsewhere.

Settlement rule for a half-finished promotion. Under the lock, before every write, an open lease whose
holder ran on this host and whose pid is no longer alive is settled by one ledger entry
(actor ``driftgate-recovery``, ``ends_lease`` = the lease):

- production already holds the leased version → ``complete``: the version's staging/canary leftovers are
  cleared and the promotion is recorded as completed;
- otherwise → ``withdraw``: the staging/canary aliases that point at the leased version are removed;
  production is never touched.

A lease held on another host, or by a live pid, is left alone (``driftgate withdraw`` ends it by hand).

A registry may carry a *mirror* (:class:`AliasMirror`, e.g. the W&B Registry in
``tasks.registry.wandb_mirror``): a second place that must show the same aliases. The ledger stays the
source of truth. Under the model's lock, every move first re-reads the mirror and refuses
(``AliasConflictError``, recorded in the ledger) when an alias there no longer matches the ledger,
e.g. after a move in the W&B UI; then the move is applied to the mirror, and only then appended
to the ledger. A mirror failure moves nothing locally; :meth:`LedgerWriter.reconcile` makes the
mirror match the ledger again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import socket
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from tasks.core.errors import (
    AliasConflictError,
    DriftgateError,
    RegistryError,
    UnsafePathError,
    VersionNotFoundError,
)
from tasks.core.faults import fault_point
from tasks.registry.ledger import (
    LedgerState,
    entry_to_json,
    fsync_dir,
    line_digest,
    pid_alive,
    read_ledger,
    write_anchor,
)
from tasks.registry.model import (
    ANCHOR_NAME,
    CANARY,
    LATEST,
    LEDGER_NAME,
    LOCK_NAME,
    PRODUCTION,
    STAGING,
    AliasMirror,
    AliasMove,
    LedgerEntry,
    ModelVersion,
)
from tasks.registry.versions import check_model, scan_versions

# W&B maintains "latest" itself; mirroring it would fight the server.
UNMIRRORED: Final = frozenset({LATEST})


class LedgerWriter:
    """The lock, the ledger append and the mirror of a registry root; see the module docstring."""

    def __init__(self, root: Path, mirror: AliasMirror | None = None) -> None:
        self.root = Path(root).expanduser().resolve()
        self.mirror = mirror

    def __repr__(self) -> str:
        suffix = f", mirror={self.mirror.name!r}" if self.mirror is not None else ""
        return f"{type(self).__name__}({str(self.root)!r}{suffix})"

    # paths ---------------------------------------------------------------------------
    def _model_dir(self, model: str) -> Path:
        check_model(model)
        return self.root / model

    def _inside(self, path: Path) -> Path:
        """``path`` if it resolves inside the registry root; a symlink pointing elsewhere is refused."""
        resolved = path.resolve()
        if resolved != self.root and self.root not in resolved.parents:
            raise UnsafePathError(
                f"registry path {path} resolves to {resolved}, outside the registry home {self.root}: refusing to write"
            )
        return path

    def _existing_model_dir(self, model: str) -> Path:
        model_dir = self._model_dir(model)
        if not model_dir.is_dir():
            raise VersionNotFoundError(f"model {model!r} has no versions in registry {self.root}")
        return model_dir

    @contextlib.contextmanager
    def _locked(self, model_dir: Path) -> Iterator[LedgerState]:
        """Hold the model's lock; yields the ledger as it stands: chain checked (a broken one raises), torn tail
        cut off, a lagging anchor rewritten, a dead holder's promotion lease settled (see the module docstring)."""
        self._inside(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        for name in (LOCK_NAME, LEDGER_NAME, ANCHOR_NAME):
            self._inside(model_dir / name)
        fd = os.open(model_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            ledger_path = model_dir / LEDGER_NAME
            state = read_ledger(ledger_path)
            if state.file_bytes > state.valid_bytes:
                os.truncate(ledger_path, state.valid_bytes)
                state = read_ledger(ledger_path)
            if state.chain_start is not None and (state.anchor is None or state.anchor.seq != state.last_seq):
                write_anchor(model_dir, state.last_seq, state.last_digest)  # a crash came between append and anchor
            yield self._settle(model_dir, state)
        finally:
            os.close(fd)  # closing the descriptor releases the flock

    def _settle(self, model_dir: Path, state: LedgerState) -> LedgerState:
        """Complete or withdraw a promotion whose holder died on this host (the rule in the module docstring)."""
        lease = state.open_lease
        if lease is None or lease.pid is None or lease.host != socket.gethostname() or pid_alive(lease.pid):
            return state
        current = state.aliases()
        leftovers = [AliasMove(a, lease.version, None) for a in (STAGING, CANARY) if current.get(a) == lease.version]
        done = current.get(PRODUCTION) == lease.version
        verdict = (
            "production already holds it, so it is completed"
            if done
            else "production does not hold it, so it is withdrawn"
        )
        self._commit(
            model_dir,
            state,
            model=lease.model,
            action="complete" if done else "withdraw",
            moves=leftovers,
            actor="driftgate-recovery",
            reason=f"settled the promotion of {lease.version} left half-finished by {lease.holder} "
            f"(lease #{lease.seq}, process gone): {verdict}",
            evidence=None,
            extra={"ends_lease": lease.seq, "settled": True},
        )
        return self._read_state(model_dir)

    # storage of the ledger: a file here; subclasses keep it elsewhere (a SQL table) ---------------
    def _read_state(self, model_dir: Path) -> LedgerState:
        """The model's ledger as it stands, chain checked (a broken one raises)."""
        return read_ledger(model_dir / LEDGER_NAME)

    def _scan_versions(self, model_dir: Path) -> list[ModelVersion]:
        """Every version of the model, with its files readable at ``version.path`` (the mirror uploads them)."""
        return scan_versions(model_dir)

    def _append(
        self,
        model_dir: Path,
        state: LedgerState,
        *,
        model: str,
        action: str,
        moves: Sequence[AliasMove],
        actor: str,
        reason: str,
        evidence: str | None,
        outcome: str = "applied",
        extra: Mapping[str, Any] | None = None,
    ) -> LedgerEntry:
        """Append one entry chained to ``state``'s last one, then replace the anchor.

        ``state`` must be the ledger as it stands under the lock (one append per state): a mismatch with the
        file's size is refused rather than chaining to the wrong entry.
        """
        fault_point(action, "before_ledger")
        now = datetime.now(UTC)
        # Keep time monotone in the ledger even if the wall clock steps back, so aliases_at stays a prefix.
        at = max(now, state.last_at) if state.last_at else now
        entry = LedgerEntry(
            seq=state.last_seq + 1,
            at=at,
            model=model,
            action=action,
            moves=tuple(moves),
            actor=actor,
            reason=reason,
            evidence=evidence,
            outcome=outcome,
        )
        body = json.dumps(
            entry_to_json(entry, {**(extra or {}), "prev": state.last_digest}), separators=(",", ":")
        ).encode()
        digest = self._store_entry(model_dir, state, entry, body)
        return dataclasses.replace(entry, digest=digest, chained=True)

    def _store_entry(self, model_dir: Path, state: LedgerState, entry: LedgerEntry, body: bytes) -> str:
        """Make ``body`` (the entry's compact JSON, ``prev`` included) the next line of the ledger, durably, under
        the lock; returns its digest. Here: one O_APPEND write + fsync, then the anchor."""
        action = entry.action
        line = (b"\n" if state.missing_newline else b"") + body + b"\n"
        ledger_path = model_dir / LEDGER_NAME
        is_new = not ledger_path.exists()
        fd = os.open(ledger_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if os.fstat(fd).st_size != state.valid_bytes:
                raise RegistryError(
                    f"ledger {ledger_path} changed under the lock (size {os.fstat(fd).st_size}, expected "
                    f"{state.valid_bytes}); not appending {action} #{entry.seq} to a stale view"
                )
            written = os.write(fd, line)
            # A regular file writes short only when the disk is full; finish or fail, the lock keeps it contiguous.
            while written < len(line):
                written += os.write(fd, line[written:])
            os.fsync(fd)
        finally:
            os.close(fd)
        if is_new:
            fsync_dir(model_dir)
        fault_point(action, "after_ledger")
        digest = line_digest(body)
        write_anchor(model_dir, entry.seq, digest)
        fault_point(action, "after_anchor")
        return digest

    def _commit(
        self,
        model_dir: Path,
        state: LedgerState,
        *,
        model: str,
        action: str,
        moves: Sequence[AliasMove],
        actor: str,
        reason: str,
        evidence: str | None,
        extra: Mapping[str, Any] | None = None,
    ) -> LedgerEntry:
        """Apply checked moves: to the mirror first (if any), then to the ledger, all under the lock."""
        if self.mirror is not None and moves:
            self._check_mirror(
                model_dir, state, model=model, moves=moves, actor=actor, reason=reason, evidence=evidence
            )
            self._apply_to_mirror(model_dir, state, model=model, moves=moves, actor=actor, reason=reason)
        return self._append(
            model_dir,
            state,
            model=model,
            action=action,
            moves=moves,
            actor=actor,
            reason=reason,
            evidence=evidence,
            extra=extra,
        )

    def _mirror_aliases(self, model: str) -> dict[str, str]:
        assert self.mirror is not None
        try:
            return self.mirror.aliases(model)
        except DriftgateError:
            raise
        except Exception as exc:  # the mirror's client raises its own network/HTTP errors
            raise RegistryError(f"cannot read the aliases of {model!r} from {self.mirror.name}: {exc}") from exc

    def _check_mirror(
        self,
        model_dir: Path,
        state: LedgerState,
        *,
        model: str,
        moves: Sequence[AliasMove],
        actor: str,
        reason: str,
        evidence: str | None,
    ) -> None:
        """Refuse a move when the mirror no longer shows what the ledger says (someone moved it outside driftgate)."""
        if self.mirror is None:
            return
        mirrored = [m for m in moves if m.alias not in UNMIRRORED]
        if not mirrored:
            return
        remote = self._mirror_aliases(model)
        local = state.aliases()
        diverged = [m.alias for m in mirrored if remote.get(m.alias) != local.get(m.alias)]
        if not diverged:
            return
        detail = ", ".join(
            f"{alias!r} is on {remote.get(alias) or 'nothing'} there, on {local.get(alias) or 'nothing'} in the ledger"
            for alias in diverged
        )
        self._append(
            model_dir,
            state,
            model=model,
            action="conflict",
            moves=moves,
            actor=actor,
            reason=f"{reason} [rejected: {self.mirror.name} diverged from the ledger: {detail}]",
            evidence=evidence,
            outcome="rejected",
        )
        raise AliasConflictError(
            f"alias move of model {model!r} rejected: {self.mirror.name} diverged from the ledger ({detail}); "
            "an alias was moved outside driftgate: check, then `driftgate reconcile` to make it match the ledger"
        )

    def _apply_to_mirror(
        self,
        model_dir: Path,
        state: LedgerState,
        *,
        model: str,
        moves: Sequence[AliasMove],
        actor: str,
        reason: str,
    ) -> None:
        assert self.mirror is not None
        mirrored = [m for m in moves if m.alias not in UNMIRRORED]
        if not mirrored:
            return
        try:
            self.mirror.apply(model, mirrored)
        except Exception as exc:  # the mirror's client raises its own network/HTTP errors
            undo = [AliasMove(m.alias, m.to_version, m.from_version) for m in reversed(mirrored)]
            with contextlib.suppress(Exception):  # best effort: the move is refused either way
                self.mirror.apply(model, undo)
            self._append(
                model_dir,
                state,
                model=model,
                action="mirror",
                moves=moves,
                actor=actor,
                reason=f"{reason} [rejected: {self.mirror.name} failed to apply the move: {exc}]",
                evidence=None,
                outcome="rejected",
            )
            raise RegistryError(
                f"alias move of model {model!r} not applied: {self.mirror.name} failed ({exc}); the ledger is "
                "unchanged; if the mirror was left half-moved, `driftgate reconcile` makes it match the ledger"
            ) from exc

    def _publish(
        self, model_dir: Path, state: LedgerState, version: ModelVersion, aliases: Sequence[str], *, actor: str
    ) -> None:
        assert self.mirror is not None
        try:
            self.mirror.publish(version, [a for a in aliases if a not in UNMIRRORED])
        except Exception as exc:  # the mirror's client raises its own network/HTTP errors
            self._append(
                model_dir,
                self._read_state(model_dir),
                model=version.model,
                action="mirror",
                moves=(),
                actor=actor,
                reason=f"{version.version} registered locally but not published to {self.mirror.name}: {exc}",
                evidence=None,
                outcome="failed",
            )
            raise RegistryError(
                f"{version.model}:{version.version} is registered locally but {self.mirror.name} refused it ({exc}); "
                "`driftgate reconcile` publishes it and re-applies the aliases"
            ) from exc

    def reconcile(self, model: str, *, actor: str) -> list[str]:
        """Make the mirror match the ledger: publish missing versions, move diverged aliases; returns what changed."""
        if self.mirror is None:
            return []
        model_dir = self._existing_model_dir(model)
        with self._locked(model_dir) as state:
            local = state.aliases()
            changes: list[str] = []
            try:
                published = self.mirror.versions(model)
                for version in self._scan_versions(model_dir):
                    if version.version not in published:
                        held = sorted(a for a, v in local.items() if v == version.version and a not in UNMIRRORED)
                        self.mirror.publish(version, held)
                        changes.append(f"published {version.version} with {held}")
                remote = self.mirror.aliases(model)
                fixes = [
                    AliasMove(alias, remote.get(alias), local.get(alias))
                    for alias in sorted((set(remote) | set(local)) - UNMIRRORED)
                    if remote.get(alias) != local.get(alias)
                ]
                self.mirror.apply(model, fixes)
            except Exception as exc:  # the mirror's client raises its own network/HTTP errors
                raise RegistryError(f"reconciling {model!r} with {self.mirror.name} failed: {exc}") from exc
            changes += [f"{m.alias}: {m.from_version or 'nothing'} → {m.to_version or 'nothing'}" for m in fixes]
            if changes:
                self._append(
                    model_dir,
                    state,
                    model=model,
                    action="mirror",
                    moves=(),
                    actor=actor,
                    reason=f"reconciled {self.mirror.name} with the ledger: {'; '.join(changes)}",
                    evidence=None,
                )
            return changes
