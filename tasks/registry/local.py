"""Local model registry with W&B artifact semantics, built on a ledger that never lies.

One collection per model under the registry root::

    <root>/<model>/
        .lock                   flock target: every write of this model is serialized on it
        ledger.jsonl            append-only transactions, hash-chained; the aliases are their replay
        ledger-anchor.json      last seq + digest of its line, replaced atomically after each append
        v0/ v1/ ...             immutable versions: the files as given + manifest.json (sha256 each)
        annotations/v0.json     mutable side-notes (gate report path, ...) outside the manifest
        .staging-<pid>-<hex>/   a version being written; renamed to v<N> only once complete

Each ledger transaction is one JSON line written by a single ``os.write`` on an ``O_APPEND``
descriptor and fsync'd, so a multi-alias move (promote, rollback) is all or nothing. A line
without its terminating newline is a write torn by a crash: readers ignore it and the next
locked writer truncates it. There is no alias cache to drift away from the ledger: replaying
a few thousand lines takes milliseconds, and it answers "what held each alias at T" for free.
Models are stored byte for byte as given (LightGBM text); nothing is ever pickled.

The ledger is a hash chain with an anchor (see :mod:`tasks.registry.ledger`): every read checks it, and a
broken chain is a ``LedgerIntegrityError`` naming the entry, so no alias is resolved, moved or rolled back
from a ledger that was edited, cut or reordered. Every write path is checked to resolve inside the
registry root (``UnsafePathError`` otherwise): a symlinked model folder, ledger or version cannot send a
write elsewhere.

Promotion lease. :meth:`LocalRegistry.begin_promotion` appends a ``lease`` entry (version, holder
``host:pid``) before any alias of the promotion moves; while it is open a second ``begin_promotion`` (and a
lease-less ``promote``) is refused up front with ``PromotionInProgressError``, so it never touches the first
one's aliases. The lease ends in the entry that names it in ``ends_lease``: the ``promote`` entry (which
also clears the version's staging/canary in the same line), a ``withdraw``, or a hand-over to
`driftgate watch` (a new ``lease`` entry with holder ``watch``, ended by watch's promote or withdraw).

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
to the ledger. A mirror failure moves nothing locally; :meth:`LocalRegistry.reconcile` makes the
mirror match the ledger again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from tasks.core.errors import (
    AliasConflictError,
    DriftgateError,
    IntegrityError,
    PromotionInProgressError,
    RegistryError,
    UnsafePathError,
    VersionNotFoundError,
)
from tasks.core.faults import fault_point
from tasks.core.timeutil import parse_utc
from tasks.registry.ledger import (
    LedgerState,
    check_ledger,
    entry_to_json,
    fsync_dir,
    json_text,
    line_digest,
    pid_alive,
    read_ledger,
    sha256_file,
    write_anchor,
    write_durably,
)
from tasks.registry.model import (
    ANCHOR_NAME,
    ANNOTATIONS_DIR,
    ANY,
    CANARY,
    CANDIDATE,
    LATEST,
    LEDGER_NAME,
    LOCK_NAME,
    MANIFEST_FORMAT,
    MANIFEST_NAME,
    NOTE_ACTIONS,
    PREVIOUS_PRODUCTION,
    PRODUCTION,
    STAGING,
    STAGING_PREFIX,
    AliasMirror,
    AliasMove,
    Lease,
    LedgerEntry,
    ModelVersion,
    Unchecked,
    check_alias,
    last_known_good,
)

# Only promote/rollback may move these two, so the last-known-good bookkeeping stays right.
_PROMOTION_ALIASES: Final = frozenset({PRODUCTION, PREVIOUS_PRODUCTION})
# W&B maintains "latest" itself; mirroring it would fight the server.
_UNMIRRORED: Final = frozenset({LATEST})

_VERSION_RE: Final = re.compile(r"^v(0|[1-9][0-9]*)$")
_NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


# --- pure helpers ----------------------------------------------------------------------


def _check_model(model: str) -> None:
    if not _NAME_RE.match(model):
        raise RegistryError(f"invalid model name {model!r}: use letters, digits, '_', '.', '-' (no path separators)")


def _check_file_name(model: str, name: str) -> None:
    if not _NAME_RE.match(name) or name == MANIFEST_NAME:
        raise RegistryError(
            f"invalid file name {name!r} for model {model!r}: use letters, digits, '_', '.', '-' "
            f"(no directories) and not {MANIFEST_NAME!r}"
        )


def _lease_busy(model: str, version: str, held: Lease) -> str:
    return (
        f"promotion of {model}:{version} refused: {held.version} is being promoted (lease #{held.seq} held by "
        f"{held.holder} since {held.started:%Y-%m-%d %H:%M:%S} UTC); nothing changed — wait for it, or "
        f"`driftgate withdraw {held.version}`"
    )


# --- the registry ----------------------------------------------------------------------


class LocalRegistry:
    """Registry on a local (or shared POSIX) filesystem; safe across processes via flock."""

    def __init__(self, root: Path, mirror: AliasMirror | None = None) -> None:
        self.root = Path(root).expanduser().resolve()
        self.mirror = mirror

    def __repr__(self) -> str:
        suffix = f", mirror={self.mirror.name!r}" if self.mirror is not None else ""
        return f"{type(self).__name__}({str(self.root)!r}{suffix})"

    # paths ---------------------------------------------------------------------------
    def _model_dir(self, model: str) -> Path:
        _check_model(model)
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
        return read_ledger(model_dir / LEDGER_NAME)

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
        return dataclasses.replace(entry, digest=digest, chained=True)

    # versions ------------------------------------------------------------------------
    def register(
        self,
        model: str,
        files: Mapping[str, Path | bytes],
        metadata: Mapping[str, Any],
        *,
        actor: str,
        reason: str,
        aliases: Sequence[str] = (CANDIDATE,),
    ) -> ModelVersion:
        model_dir = self._model_dir(model)
        if not files:
            raise RegistryError(f"register {model!r}: no files given")
        for name in files:
            _check_file_name(model, name)
        requested = list(dict.fromkeys([LATEST, *aliases]))
        for alias in requested:
            check_alias(alias)
        blocked = _PROMOTION_ALIASES.intersection(requested)
        if blocked:
            raise RegistryError(
                f"register {model!r} cannot set {sorted(blocked)}: use promote(), which keeps previous-production"
            )
        metadata_dict = json.loads(json_text(dict(metadata), f"metadata of model {model!r}"))

        self._inside(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        staging = model_dir / f"{STAGING_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
        staging.mkdir()
        try:
            # Heavy copying happens before taking the lock, so concurrent alias moves are not held up.
            digests = {name: write_durably(staging / name, source, model) for name, source in sorted(files.items())}
            with self._locked(model_dir) as state:
                self._remove_abandoned_staging(model_dir, keep=staging)
                index = 1 + max((v.index for v in self._scan_versions(model_dir)), default=-1)
                version = f"v{index}"
                created_at = datetime.now(UTC)
                manifest = {
                    "format": MANIFEST_FORMAT,
                    "model": model,
                    "version": version,
                    "index": index,
                    "created_at": created_at.isoformat(),
                    "files": {name: {"sha256": digests[name]} for name in sorted(digests)},
                    "metadata": metadata_dict,
                }
                manifest_bytes = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
                write_durably(staging / MANIFEST_NAME, manifest_bytes, model)
                fsync_dir(staging)
                current = state.aliases()
                moves = [AliasMove(alias, current.get(alias), version) for alias in requested]
                self._check_mirror(
                    model_dir, state, model=model, moves=moves, actor=actor, reason=reason, evidence=None
                )
                os.rename(staging, self._inside(model_dir / version))
                fsync_dir(model_dir)
                self._append(
                    model_dir,
                    state,
                    model=model,
                    action="register",
                    moves=moves,
                    actor=actor,
                    reason=reason,
                    evidence=None,
                    extra={"version": version, "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest()},
                )
                registered = self.get(model, version)
                if self.mirror is not None:
                    self._publish(model_dir, state, registered, [m.alias for m in moves], actor=actor)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return registered

    def _remove_abandoned_staging(self, model_dir: Path, keep: Path) -> None:
        for path in model_dir.glob(f"{STAGING_PREFIX}*"):
            pid_text = path.name[len(STAGING_PREFIX) :].split("-", 1)[0]
            if path != keep and pid_text.isdigit() and not pid_alive(int(pid_text)):
                shutil.rmtree(path, ignore_errors=True)

    def _scan_versions(self, model_dir: Path) -> list[ModelVersion]:
        found = []
        for path in model_dir.iterdir() if model_dir.is_dir() else ():
            if _VERSION_RE.match(path.name) and (path / MANIFEST_NAME).is_file():
                found.append(self._load_version(model_dir.name, path.name, path))
        return sorted(found, key=lambda v: v.index)

    def _load_version(self, model: str, version: str, path: Path) -> ModelVersion:
        manifest_path = path / MANIFEST_NAME
        try:
            manifest = json.loads(manifest_path.read_bytes())
            loaded = ModelVersion(
                model=model,
                version=version,
                index=int(manifest["index"]),
                path=path,
                created_at=parse_utc(manifest["created_at"]),
                metadata=dict(manifest["metadata"]),
                digests={name: str(spec["sha256"]) for name, spec in manifest["files"].items()},
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"manifest {manifest_path} of {model}:{version} is unreadable: {exc}") from exc
        if manifest.get("model") != model or manifest.get("version") != version or loaded.index != int(version[1:]):
            raise IntegrityError(
                f"manifest {manifest_path} names {manifest.get('model')}:{manifest.get('version')}, "
                f"not {model}:{version}: the version directory was moved or tampered with"
            )
        return loaded

    def versions(self, model: str) -> list[ModelVersion]:
        return self._scan_versions(self._model_dir(model))

    def get(self, model: str, version: str) -> ModelVersion:
        model_dir = self._model_dir(model)
        path = model_dir / version
        if not _VERSION_RE.match(version) or not (path / MANIFEST_NAME).is_file():
            known = [v.version for v in self._scan_versions(model_dir)]
            raise VersionNotFoundError(
                f"model {model!r} has no version {version!r} in registry {self.root} (versions: {known or 'none'})"
            )
        return self._load_version(model, version, path)

    # aliases -------------------------------------------------------------------------
    def aliases(self, model: str) -> dict[str, str]:
        return read_ledger(self._model_dir(model) / LEDGER_NAME).aliases()

    def resolve(self, model: str, alias: str) -> ModelVersion | None:
        version = self.aliases(model).get(alias)
        return None if version is None else self.get(model, version)

    def ledger(self, model: str) -> list[LedgerEntry]:
        return [r.entry for r in read_ledger(self._model_dir(model) / LEDGER_NAME).records]

    def aliases_at(self, model: str, at: datetime) -> dict[str, str]:
        if at.tzinfo is None:
            raise RegistryError(f"aliases_at({model!r}, {at.isoformat()}) needs a timezone-aware datetime")
        return read_ledger(self._model_dir(model) / LEDGER_NAME).aliases(until=at)

    def _reject(
        self,
        model_dir: Path,
        state: LedgerState,
        *,
        model: str,
        attempted: Sequence[AliasMove],
        alias: str,
        expected: str | None,
        actual: str | None,
        actor: str,
        reason: str,
        evidence: str | None,
    ) -> AliasConflictError:
        detail = (
            f"{alias!r} of model {model!r} points at {actual or 'nothing'}, caller expected {expected or 'nothing'}"
        )
        self._append(
            model_dir,
            state,
            model=model,
            action="conflict",
            moves=attempted,
            actor=actor,
            reason=f"{reason} [rejected: {detail}]",
            evidence=evidence,
            outcome="rejected",
        )
        return AliasConflictError(f"alias move rejected: {detail}")

    def move_alias(
        self,
        model: str,
        alias: str,
        to_version: str | None,
        *,
        expected: str | None,
        actor: str,
        reason: str,
        evidence: str | None = None,
    ) -> LedgerEntry:
        check_alias(alias)
        model_dir = self._existing_model_dir(model)
        if to_version is not None:
            self.get(model, to_version)
        with self._locked(model_dir) as state:
            actual = state.aliases().get(alias)
            if actual != expected:
                raise self._reject(
                    model_dir,
                    state,
                    model=model,
                    attempted=[AliasMove(alias, expected, to_version)],
                    alias=alias,
                    expected=expected,
                    actual=actual,
                    actor=actor,
                    reason=reason,
                    evidence=evidence,
                )
            return self._commit(
                model_dir,
                state,
                model=model,
                action="move",
                moves=[AliasMove(alias, actual, to_version)],
                actor=actor,
                reason=reason,
                evidence=evidence,
            )

    def promote(
        self,
        model: str,
        version: str,
        *,
        actor: str,
        reason: str,
        evidence: str | None = None,
        expected_production: str | Unchecked | None = ANY,
        lease: Lease | None = None,
    ) -> LedgerEntry:
        """Move production to ``version`` (the old one becomes previous-production), in one ledger entry.

        With ``lease`` (from :meth:`begin_promotion`) the same entry clears the version's staging/canary and
        ends the lease; without one, a promotion that holds the lease makes this refuse.
        """
        model_dir = self._existing_model_dir(model)
        self.verify(self.get(model, version))  # a tampered version never reaches production
        with self._locked(model_dir) as state:
            current = state.aliases()
            production = current.get(PRODUCTION)
            held = state.open_lease
            if lease is not None and (held is None or held.seq != lease.seq):
                raise AliasConflictError(
                    f"promotion of {model}:{version} refused: its lease #{lease.seq} is no longer open (withdrawn or "
                    f"settled meanwhile); production is {production or 'unset'}; nothing changed"
                )
            if lease is None and held is not None:
                raise PromotionInProgressError(_lease_busy(model, version, held))
            if not isinstance(expected_production, Unchecked) and production != expected_production:
                raise self._reject(
                    model_dir,
                    state,
                    model=model,
                    attempted=[AliasMove(PRODUCTION, expected_production, version)],
                    alias=PRODUCTION,
                    expected=expected_production,
                    actual=production,
                    actor=actor,
                    reason=reason,
                    evidence=evidence,
                )
            if production == version:
                raise RegistryError(f"{model}:{version} already holds 'production'; nothing to promote")
            moves = [AliasMove(PRODUCTION, production, version)]
            if production is not None:
                moves.append(AliasMove(PREVIOUS_PRODUCTION, current.get(PREVIOUS_PRODUCTION), production))
            if lease is not None:
                moves += [AliasMove(a, version, None) for a in (STAGING, CANARY) if current.get(a) == version]
            return self._commit(
                model_dir,
                state,
                model=model,
                action="promote",
                moves=moves,
                actor=actor,
                reason=reason,
                evidence=evidence,
                extra={"ends_lease": lease.seq} if lease is not None else None,
            )

    # promotion lease -----------------------------------------------------------------
    def begin_promotion(
        self,
        model: str,
        version: str,
        *,
        actor: str,
        reason: str,
        evidence: str | None = None,
        expected_production: str | Unchecked | None = ANY,
    ) -> Lease:
        """Open the promotion lease of ``model`` for ``version`` (a ``lease`` ledger entry), before any alias moves.

        Refused up front, with nothing written: ``PromotionInProgressError`` while another promotion holds the
        lease; ``AliasConflictError`` when production is no longer ``expected_production``.
        """
        model_dir = self._existing_model_dir(model)
        self.get(model, version)
        with self._locked(model_dir) as state:
            held = state.open_lease
            if held is not None:
                raise PromotionInProgressError(_lease_busy(model, version, held))
            production = state.aliases().get(PRODUCTION)
            if not isinstance(expected_production, Unchecked) and production != expected_production:
                raise AliasConflictError(
                    f"promotion of {model}:{version} refused: production is {production or 'unset'}, not "
                    f"{expected_production or 'unset'} as expected (someone moved it meanwhile); nothing changed"
                )
            if production == version:
                raise RegistryError(f"{model}:{version} already holds 'production'; nothing to promote")
            host, pid = socket.gethostname(), os.getpid()
            entry = self._append(
                model_dir,
                state,
                model=model,
                action="lease",
                moves=(),
                actor=actor,
                reason=f"promotion of {version} begins: {reason}",
                evidence=evidence,
                extra={"lease": {"version": version, "holder": f"{host}:{pid}", "host": host, "pid": pid}},
            )
            return Lease(model, version, entry.seq, f"{host}:{pid}", host, pid, entry.at)

    def open_lease(self, model: str) -> Lease | None:
        """The promotion lease open now, if any."""
        return read_ledger(self._model_dir(model) / LEDGER_NAME).open_lease

    def hand_over(self, model: str, lease: Lease, *, holder: str = "watch", actor: str, reason: str) -> Lease:
        """Pass an open lease to ``holder`` (no process: it is never settled as dead), e.g. `driftgate watch`."""
        model_dir = self._existing_model_dir(model)
        with self._locked(model_dir) as state:
            held = state.open_lease
            if held is None or held.seq != lease.seq:
                raise AliasConflictError(
                    f"lease #{lease.seq} of {model}:{lease.version} is no longer open; cannot hand it to {holder}"
                )
            entry = self._append(
                model_dir,
                state,
                model=model,
                action="lease",
                moves=(),
                actor=actor,
                reason=f"promotion of {lease.version} handed to {holder}: {reason}",
                evidence=None,
                extra={"lease": {"version": lease.version, "holder": holder}, "ends_lease": lease.seq},
            )
            return Lease(model, lease.version, entry.seq, holder, None, None, entry.at)

    def withdraw(
        self,
        model: str,
        version: str | None = None,
        *,
        actor: str,
        reason: str,
        evidence: str | None = None,
    ) -> LedgerEntry:
        """Withdraw a candidate: clear the canary/staging aliases on ``version`` and end its promotion lease.

        ``version`` is what the operator saw as the candidate (default: canary, else staging, else the leased
        version). Conditional: if it no longer holds canary or staging and holds no open lease, nothing changes
        and ``AliasConflictError`` says what the aliases are now. Production never moves.
        """
        model_dir = self._existing_model_dir(model)
        with self._locked(model_dir) as state:
            current = state.aliases()
            held = state.open_lease
            target = version or current.get(CANARY) or current.get(STAGING) or (held.version if held else None)
            if target is None:
                raise RegistryError(f"nothing to withdraw for model {model!r}: no canary, no staging, no promotion")
            moves = [AliasMove(a, target, None) for a in (CANARY, STAGING) if current.get(a) == target]
            ends = held.seq if held is not None and held.version == target else None
            if not moves and ends is None:
                raise AliasConflictError(
                    f"withdraw of {model}:{target} refused: it is no longer a candidate (canary: "
                    f"{current.get(CANARY) or 'unset'}, staging: {current.get(STAGING) or 'unset'}, production: "
                    f"{current.get(PRODUCTION) or 'unset'}); nothing changed"
                )
            return self._commit(
                model_dir,
                state,
                model=model,
                action="withdraw",
                moves=moves,
                actor=actor,
                reason=reason,
                evidence=evidence,
                extra={"ends_lease": ends} if ends is not None else None,
            )

    def rollback(
        self,
        model: str,
        *,
        actor: str,
        reason: str,
        evidence: str | None = None,
        expected_production: str | None = None,
    ) -> LedgerEntry:
        """Move production back to previous-production. With ``expected_production`` (what the operator saw) the
        move is conditional: if production moved meanwhile (another rollback, a promotion), nothing changes and
        AliasConflictError says what production is now. Two operators rolling back at once: one applies."""
        model_dir = self._existing_model_dir(model)
        with self._locked(model_dir) as state:
            current = state.aliases()
            production = current.get(PRODUCTION)
            if expected_production is not None and production != expected_production:
                raise AliasConflictError(
                    f"rollback of {model!r} refused: production is {production or 'unset'}, not "
                    f"{expected_production} as expected (someone moved it meanwhile); nothing changed — check "
                    "`driftgate history` and roll back again if still needed"
                )
            restored = current.get(PREVIOUS_PRODUCTION)
            if restored is None:
                raise RegistryError(
                    f"cannot roll back model {model!r}: no 'previous-production' version to return to "
                    f"(production is {production or 'unset'}; known-good versions were used up or never existed)"
                )
            moves = [AliasMove(PRODUCTION, production, restored)]
            try:
                self.verify(self.get(model, restored))
            except RegistryError as exc:
                self._append(
                    model_dir,
                    state,
                    model=model,
                    action="rollback",
                    moves=moves,
                    actor=actor,
                    reason=f"{reason} [rejected: {restored} failed verification: {exc}]",
                    evidence=evidence,
                    outcome="rejected",
                )
                raise
            next_previous = last_known_good([r.entry for r in state.records], restored, production)
            return self._commit(
                model_dir,
                state,
                model=model,
                action="rollback",
                moves=[
                    AliasMove(PRODUCTION, production, restored),
                    AliasMove(PREVIOUS_PRODUCTION, restored, next_previous),
                ],
                actor=actor,
                reason=reason,
                evidence=evidence,
            )

    def note(self, model: str, action: str, *, actor: str, reason: str, evidence: str | None = None) -> LedgerEntry:
        """Append an entry that moves nothing (an approval, an audit, a drill) to the model's history."""
        if action not in NOTE_ACTIONS:
            raise RegistryError(f"ledger note {action!r} for model {model!r}: use one of {sorted(NOTE_ACTIONS)}")
        model_dir = self._existing_model_dir(model)
        with self._locked(model_dir) as state:
            return self._append(
                model_dir, state, model=model, action=action, moves=(), actor=actor, reason=reason, evidence=evidence
            )

    # mirror --------------------------------------------------------------------------
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
        mirrored = [m for m in moves if m.alias not in _UNMIRRORED]
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
        mirrored = [m for m in moves if m.alias not in _UNMIRRORED]
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
            self.mirror.publish(version, [a for a in aliases if a not in _UNMIRRORED])
        except Exception as exc:  # the mirror's client raises its own network/HTTP errors
            self._append(
                model_dir,
                read_ledger(model_dir / LEDGER_NAME),
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
                        held = sorted(a for a, v in local.items() if v == version.version and a not in _UNMIRRORED)
                        self.mirror.publish(version, held)
                        changes.append(f"published {version.version} with {held}")
                remote = self.mirror.aliases(model)
                fixes = [
                    AliasMove(alias, remote.get(alias), local.get(alias))
                    for alias in sorted((set(remote) | set(local)) - _UNMIRRORED)
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

    # integrity -----------------------------------------------------------------------
    def read_file(self, version: ModelVersion, name: str) -> bytes:
        expected = version.digests.get(name)
        if expected is None:
            raise RegistryError(
                f"{version.model}:{version.version} has no file {name!r} (files: {sorted(version.digests)})"
            )
        path = version.path / name
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise IntegrityError(f"file {name!r} of {version.model}:{version.version} is missing ({path})") from exc
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            raise IntegrityError(
                f"file {name!r} of {version.model}:{version.version} ({path}) has sha256 {actual}, "
                f"manifest says {expected}: tampered or truncated"
            )
        return data

    def verify(self, version: ModelVersion) -> None:
        recorded = {
            r.version: r.manifest_sha256
            for r in read_ledger(version.path.parent / LEDGER_NAME).records
            if r.entry.action == "register"
        }.get(version.version)
        self._verify(version, recorded)

    def check(self, model: str) -> list[str]:
        """Every problem of the model's collection, one line each: the ledger chain and anchor, then every
        version's manifest and file digests (checked against the ledger's record even when the chain is broken)."""
        model_dir = self._existing_model_dir(model)
        state = check_ledger(model_dir / LEDGER_NAME)
        problems = [f"{model}: {p}" for p in state.problems]
        recorded = {r.version: r.manifest_sha256 for r in state.records if r.entry.action == "register"}
        for path in sorted(model_dir.iterdir()):
            if not _VERSION_RE.match(path.name):
                continue
            try:
                self._inside(path)
                self._verify(self._load_version(model, path.name, path), recorded.get(path.name))
            except RegistryError as exc:
                problems.append(str(exc))
        named = {m.to_version for r in state.records for m in r.entry.moves if m.to_version}
        missing = sorted(named - {p.name for p in model_dir.iterdir()}, key=lambda v: (len(v), v))
        problems += [f"{model}: the ledger names {v} but its directory is missing" for v in missing]
        return problems

    def _verify(self, version: ModelVersion, recorded: str | None) -> None:
        label = f"{version.model}:{version.version}"
        manifest_path = version.path / MANIFEST_NAME
        try:
            manifest_sha = sha256_file(manifest_path)
        except FileNotFoundError as exc:
            raise IntegrityError(f"manifest of {label} is missing ({manifest_path})") from exc
        if recorded is not None and recorded != manifest_sha:
            raise IntegrityError(
                f"manifest {manifest_path} of {label} has sha256 {manifest_sha}, the ledger recorded {recorded} "
                "at registration: the manifest was rewritten"
            )
        on_disk = self._load_version(version.model, version.version, version.path)
        if on_disk.digests != version.digests:
            raise IntegrityError(f"manifest {manifest_path} of {label} no longer lists the digests it was loaded with")
        extra = sorted({p.name for p in version.path.iterdir()} - set(version.digests) - {MANIFEST_NAME})
        if extra:
            raise IntegrityError(f"{label} ({version.path}) holds files its manifest does not list: {extra}")
        for name, expected in sorted(version.digests.items()):
            path = version.path / name
            try:
                actual = sha256_file(path)
            except FileNotFoundError as exc:
                raise IntegrityError(f"file {name!r} of {label} is missing ({path})") from exc
            if actual != expected:
                raise IntegrityError(
                    f"file {name!r} of {label} ({path}) has sha256 {actual}, manifest says {expected}: "
                    "tampered or truncated"
                )

    # annotations -----------------------------------------------------------------------
    def _annotations_path(self, model: str, version: str) -> Path:
        return self._model_dir(model) / ANNOTATIONS_DIR / f"{version}.json"

    def annotate(self, model: str, version: str, key: str, value: Any) -> None:
        self.get(model, version)
        json_text(value, f"annotation {key!r} of {model}:{version}")
        path = self._inside(self._annotations_path(model, version))
        with self._locked(path.parent.parent):
            notes = self.annotations(model, version)
            notes[key] = value
            path.parent.mkdir(exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(notes, indent=2, sort_keys=True) + "\n")
            os.replace(tmp, path)

    def annotations(self, model: str, version: str) -> dict[str, Any]:
        path = self._annotations_path(model, version)
        try:
            notes = json.loads(path.read_text())
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise IntegrityError(f"annotations {path} of {model}:{version} are not valid JSON: {exc}") from exc
        if not isinstance(notes, dict):
            raise IntegrityError(f"annotations {path} of {model}:{version} must hold a JSON object")
        return notes
