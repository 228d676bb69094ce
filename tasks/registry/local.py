"""Local model registry with W&B artifact semantics, built on a ledger that never lies.

One collection per model under the registry root::

    <root>/<model>/
        .lock                   flock target: every write of this model is serialized on it
        ledger.jsonl            append-only transactions, hash-chained; the aliases are their replay
        ledger-anchor.json      last seq + digest of its line, replaced atomically after each append
        v0/ v1/ ...             immutable versions: the files as given + manifest.json (sha256 each)
        annotations/v0.json     mutable side-notes (gate report path, ...) outside the manifest
        .staging-<pid>-<hex>/   a version being written; renamed to v<N> only once complete

Each alias move is one hash-chained ledger entry, written under the model's lock and applied to the
mirror first (:mod:`tasks.registry.writer`, the base class that holds that protocol); the versions' files
and manifests are read and verified by :mod:`tasks.registry.versions`. This module holds the operations:
register, move, promote, the promotion lease, withdraw, rollback, notes, the integrity check and the
annotations. Models are stored byte for byte as given (LightGBM text); nothing is ever pickled.

Promotion lease. :meth:`LocalRegistry.begin_promotion` appends a ``lease`` entry (version, holder
``host:pid``) before any alias of the promotion moves; while it is open a second ``begin_promotion`` (and a
lease-less ``promote``) is refused up front with ``PromotionInProgressError``, so it never touches the first
one's aliases. The lease ends in the entry that names it in ``ends_lease``: the ``promote`` entry (which
also clears the version's staging/canary in the same line), a ``withdraw``, or a hand-over to
`driftgate watch` (a new ``lease`` entry with holder ``watch``, ended by watch's promote or withdraw).

A half-finished promotion whose holder died is settled under the lock by the rule in :mod:`tasks.registry.writer`.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import socket
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from tasks.core.errors import (
    AliasConflictError,
    IntegrityError,
    PromotionInProgressError,
    RegistryError,
    VersionNotFoundError,
)
from tasks.registry.ledger import (
    LedgerState,
    check_ledger,
    fsync_dir,
    json_text,
    write_durably,
)
from tasks.registry.model import (
    ANNOTATIONS_DIR,
    ANY,
    CANARY,
    CANDIDATE,
    LATEST,
    LEDGER_NAME,
    MANIFEST_NAME,
    NOTE_ACTIONS,
    PREVIOUS_PRODUCTION,
    PRODUCTION,
    STAGING,
    STAGING_PREFIX,
    AliasMove,
    Lease,
    LedgerEntry,
    ModelVersion,
    Unchecked,
    check_alias,
    last_known_good,
)
from tasks.registry.versions import (
    VERSION_RE,
    check_file_name,
    check_model,
    load_version,
    manifest_json,
    read_version_file,
    remove_abandoned_staging,
    scan_versions,
    verify_version,
)
from tasks.registry.writer import LedgerWriter

# Only promote/rollback may move these two, so the last-known-good bookkeeping stays right.
_PROMOTION_ALIASES: Final = frozenset({PRODUCTION, PREVIOUS_PRODUCTION})


def _lease_busy(model: str, version: str, held: Lease) -> str:
    return (
        f"promotion of {model}:{version} refused: {held.version} is being promoted (lease #{held.seq} held by "
        f"{held.holder} since {held.started:%Y-%m-%d %H:%M:%S} UTC); nothing changed — wait for it, or "
        f"`driftgate withdraw {held.version}`"
    )


# --- the registry ----------------------------------------------------------------------


class LocalRegistry(LedgerWriter):
    """Registry on a local (or shared POSIX) filesystem; safe across processes via flock."""

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
        requested, metadata_dict = self._register_request(model, files, metadata, aliases)
        self._inside(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        staging = model_dir / f"{STAGING_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
        staging.mkdir()
        try:
            # Heavy copying happens before taking the lock, so concurrent alias moves are not held up.
            digests = {name: write_durably(staging / name, source, model) for name, source in sorted(files.items())}
            with self._locked(model_dir) as state:
                remove_abandoned_staging(model_dir, keep=staging)
                index = 1 + max((v.index for v in scan_versions(model_dir)), default=-1)
                version = f"v{index}"
                manifest_bytes = manifest_json(model, index, digests, metadata_dict)
                write_durably(staging / MANIFEST_NAME, manifest_bytes, model)
                fsync_dir(staging)
                moves = [AliasMove(alias, state.aliases().get(alias), version) for alias in requested]
                self._check_mirror(
                    model_dir, state, model=model, moves=moves, actor=actor, reason=reason, evidence=None
                )
                os.rename(staging, self._inside(model_dir / version))
                fsync_dir(model_dir)
                self._append_register(model_dir, state, moves, version, manifest_bytes, actor=actor, reason=reason)
                registered = self.get(model, version)
                if self.mirror is not None:
                    self._publish(model_dir, state, registered, [m.alias for m in moves], actor=actor)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return registered

    def _append_register(
        self,
        model_dir: Path,
        state: LedgerState,
        moves: Sequence[AliasMove],
        version: str,
        manifest: bytes,
        *,
        actor: str,
        reason: str,
    ) -> LedgerEntry:
        """The ``register`` entry: the version's aliases, and the sha256 of its manifest (checked by ``verify``)."""
        return self._append(
            model_dir,
            state,
            model=model_dir.name,
            action="register",
            moves=moves,
            actor=actor,
            reason=reason,
            evidence=None,
            extra={"version": version, "manifest_sha256": hashlib.sha256(manifest).hexdigest()},
        )

    def _register_request(
        self, model: str, files: Mapping[str, Path | bytes], metadata: Mapping[str, Any], aliases: Sequence[str]
    ) -> tuple[list[str], dict[str, Any]]:
        """The aliases a registration sets (``latest`` first) and its metadata as JSON, or the reason it is refused."""
        check_model(model)
        if not files:
            raise RegistryError(f"register {model!r}: no files given")
        for name in files:
            check_file_name(model, name)
        requested = list(dict.fromkeys([LATEST, *aliases]))
        for alias in requested:
            check_alias(alias)
        blocked = _PROMOTION_ALIASES.intersection(requested)
        if blocked:
            raise RegistryError(
                f"register {model!r} cannot set {sorted(blocked)}: use promote(), which keeps previous-production"
            )
        return requested, json.loads(json_text(dict(metadata), f"metadata of model {model!r}"))

    def versions(self, model: str) -> list[ModelVersion]:
        return scan_versions(self._model_dir(model))

    def get(self, model: str, version: str) -> ModelVersion:
        model_dir = self._model_dir(model)
        path = model_dir / version
        if not VERSION_RE.match(version) or not (path / MANIFEST_NAME).is_file():
            known = [v.version for v in scan_versions(model_dir)]
            raise VersionNotFoundError(
                f"model {model!r} has no version {version!r} in registry {self.root} (versions: {known or 'none'})"
            )
        return load_version(model, version, path)

    # aliases -------------------------------------------------------------------------
    def aliases(self, model: str) -> dict[str, str]:
        return self._read_state(self._model_dir(model)).aliases()

    def resolve(self, model: str, alias: str) -> ModelVersion | None:
        version = self.aliases(model).get(alias)
        return None if version is None else self.get(model, version)

    def ledger(self, model: str) -> list[LedgerEntry]:
        return [r.entry for r in self._read_state(self._model_dir(model)).records]

    def aliases_at(self, model: str, at: datetime) -> dict[str, str]:
        if at.tzinfo is None:
            raise RegistryError(f"aliases_at({model!r}, {at.isoformat()}) needs a timezone-aware datetime")
        return self._read_state(self._model_dir(model)).aliases(until=at)

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
        return self._read_state(self._model_dir(model)).open_lease

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

    # integrity -----------------------------------------------------------------------
    def read_file(self, version: ModelVersion, name: str) -> bytes:
        return read_version_file(version, name)

    def verify(self, version: ModelVersion) -> None:
        recorded = {
            r.version: r.manifest_sha256
            for r in self._read_state(self._model_dir(version.model)).records
            if r.entry.action == "register"
        }.get(version.version)
        verify_version(version, recorded)

    def check(self, model: str) -> list[str]:
        """Every problem of the model's collection, one line each: the ledger chain and anchor, then every
        version's manifest and file digests (checked against the ledger's record even when the chain is broken)."""
        model_dir = self._existing_model_dir(model)
        state = check_ledger(model_dir / LEDGER_NAME)
        problems = [f"{model}: {p}" for p in state.problems]
        recorded = {r.version: r.manifest_sha256 for r in state.records if r.entry.action == "register"}
        for path in sorted(model_dir.iterdir()):
            if not VERSION_RE.match(path.name):
                continue
            try:
                self._inside(path)
                verify_version(load_version(model, path.name, path), recorded.get(path.name))
            except RegistryError as exc:
                problems.append(str(exc))
        named = {m.to_version for r in state.records for m in r.entry.moves if m.to_version}
        missing = sorted(named - {p.name for p in model_dir.iterdir()}, key=lambda v: (len(v), v))
        problems += [f"{model}: the ledger names {v} but its directory is missing" for v in missing]
        return problems

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
