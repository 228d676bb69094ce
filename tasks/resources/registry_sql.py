"""The model registry with its metadata in SQL and its files in a content-addressed object store, for a registry
shared by workers on several machines (``registry_storage: sql``).

Same operations, same rules: :class:`SqlRegistry` is a :class:`tasks.registry.local.LocalRegistry` (promotion
lease, rollback to last known good, settlement of a dead holder's promotion, the mirror applied first) whose
storage is replaced through the seam of :class:`tasks.registry.writer.LedgerWriter` (``_locked``,
``_store_entry``, ``_read_state``, ``_scan_versions``) and the version reads (``register``, ``get``, ``versions``,
``read_file``, ``verify``, ``check``, annotations).

Tables (in the audit store's database, ``store_url``: SQLite in the home by default, PostgreSQL in production)::

    driftgate_registry_models       model PK, head_seq, head_digest: the per-model lock row and the ledger's anchor
    driftgate_registry_ledger       (model, seq) PK, entry (the JSON line, ``prev`` included), digest, prev_digest, at
    driftgate_registry_versions     (model, version) PK, idx UNIQUE per model, manifest (JSON text), created_at
    driftgate_registry_annotations  (model, version, key) PK, value (JSON): mutable side-notes, outside the manifest

Model files live in an :class:`ObjectStore` (a folder by default, any fsspec URL: ``s3://`` ...) under
``sha256/<digest>``: content-addressed, so a blob is never rewritten with other bytes, and every read hashes it
against the manifest (a tampered or missing blob is an ``IntegrityError``, as with the folder registry).
``ModelVersion.path`` is a verified local copy under the registry root (a cache, filled on first ``get``) for
callers that hand a folder to another library (the W&B upload, the gate file of a review); ``read_file`` and
``verify`` never trust it and read the store.

Atomicity. Every write of a model runs in ONE database transaction that first takes the model's row in
``driftgate_registry_models``: ``SELECT … FOR UPDATE`` on PostgreSQL (a row lock held to COMMIT; the row is
inserted first with ``ON CONFLICT DO NOTHING`` when the model is new), ``BEGIN IMMEDIATE`` on SQLite (the
database's write lock, taken at BEGIN). Under it the ledger is read and its chain checked exactly like the file
ledger, a dead holder's lease is settled, the operation decides, and each ledger entry is an INSERT at
``seq = head_seq + 1`` plus an UPDATE of the head ``WHERE head_seq = <seen>``: a compare-and-set that refuses
a stale view, backed by the primary key (model, seq), so two appenders of one seq can never both commit. A
multi-alias move is one row, so it is all or nothing; the COMMIT is the durability point (a process killed
before it leaves nothing). Refusals recorded in the ledger (a rejected conflict, a mirror divergence) are
committed with the error that reports them, as a file append would be; a database error rolls everything back.

Versions: the blobs are written first, outside the lock (a PUT per file, skipped when the digest is already
stored); then, in the transaction, the index is allocated (``max(idx) + 1``, UNIQUE per model), the ``register``
entry appended (it records the manifest's sha256) and the version row inserted. A crash before COMMIT leaves
only unreferenced blobs, never a half-registered version. The ledger table is append-only: no code path
updates or deletes a ledger row; an edited row changes its digest, which breaks the next row's ``prev`` or the
head's digest, and ``check`` / every locked read report it (tamper evidence, as for the file).

"What held each alias at T": ``aliases_at`` replays the checked ledger up to T; the rows carry ``at`` for SQL
readers (``SELECT entry FROM driftgate_registry_ledger WHERE model = … AND at <= … ORDER BY seq``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks.core.errors import IntegrityError, RegistryError, VersionNotFoundError
from tasks.core.faults import fault_point
from tasks.registry.ledger import (
    Anchor,
    LedgerProblem,
    LedgerState,
    check_records,
    json_text,
    line_digest,
    record_from_json,
    refuse_broken,
    write_durably,
)
from tasks.registry.local import LocalRegistry
from tasks.registry.model import (
    CANDIDATE,
    GENESIS,
    MANIFEST_NAME,
    STAGING_PREFIX,
    AliasMirror,
    AliasMove,
    LedgerEntry,
    ModelVersion,
)
from tasks.registry.versions import VERSION_RE, checked_bytes, manifest_json, parse_manifest
from tasks.resources.objects import ObjectStore
from tasks.resources.sql import WRITE_OPTION, SqlDatabase, dialect_insert

if TYPE_CHECKING:
    from sqlalchemy import Connection, MetaData, Table

MODELS = "driftgate_registry_models"
LEDGER = "driftgate_registry_ledger"
VERSIONS = "driftgate_registry_versions"
ANNOTATIONS = "driftgate_registry_annotations"


def registry_metadata() -> tuple[MetaData, dict[str, Table]]:
    from sqlalchemy import Column, DateTime, Index, Integer, MetaData, String, Table, Text, UniqueConstraint

    metadata = MetaData()
    tables = [
        Table(
            MODELS,
            metadata,
            Column("model", String(200), primary_key=True),
            Column("head_seq", Integer, nullable=False),
            Column("head_digest", String(64), nullable=False),
        ),
        Table(
            LEDGER,
            metadata,
            Column("model", String(200), primary_key=True),
            Column("seq", Integer, primary_key=True, autoincrement=False),
            Column("entry", Text, nullable=False),
            Column("digest", String(64), nullable=False),
            Column("prev_digest", String(64), nullable=False),
            Column("at", DateTime(timezone=True), nullable=False),
            Index("ix_driftgate_registry_ledger_at", "model", "at"),
        ),
        Table(
            VERSIONS,
            metadata,
            Column("model", String(200), primary_key=True),
            Column("version", String(32), primary_key=True),
            Column("idx", Integer, nullable=False),
            Column("manifest", Text, nullable=False),
            Column("created_at", DateTime(timezone=True), nullable=False),
            UniqueConstraint("model", "idx", name="uq_driftgate_registry_versions_idx"),
        ),
        Table(
            ANNOTATIONS,
            metadata,
            Column("model", String(200), primary_key=True),
            Column("version", String(32), primary_key=True),
            Column("key", String(200), primary_key=True),
            Column("value", Text, nullable=False),
        ),
    ]
    return metadata, {t.name: t for t in tables}


def blob_key(digest: str) -> str:
    return f"sha256/{digest}"


class SqlRegistry(LocalRegistry):
    """Registry metadata in SQL (``url``), files in ``objects``; ``root`` holds only the local copies of versions."""

    def __init__(self, url: str, objects: ObjectStore, root: Path, mirror: AliasMirror | None = None) -> None:
        super().__init__(root, mirror=mirror)
        self.db = SqlDatabase(url, registry_metadata)
        self.objects = objects
        # The connection of the write transaction this thread (context) holds in _locked, joined by every read.
        self._held: ContextVar[Connection | None] = ContextVar(f"driftgate_registry_{id(self)}", default=None)

    def __repr__(self) -> str:
        suffix = f", mirror={self.mirror.name!r}" if self.mirror is not None else ""
        return f"SqlRegistry({self.db.masked_url!r}, objects={self.objects.url!r}{suffix})"

    def close(self) -> None:
        self.db.close()

    def _where(self, model: str) -> str:
        return f"{LEDGER} of {model!r} in {self.db.masked_url}"

    def _failed(self, action: str, exc: BaseException) -> RegistryError:
        detail = getattr(exc, "orig", None) or exc
        return RegistryError(f"registry {self.db.masked_url}: {action} failed: {type(detail).__name__}: {detail}")

    # connections -----------------------------------------------------------------------
    @contextlib.contextmanager
    def _reading(self, action: str) -> Iterator[Connection]:
        """The held write transaction's connection, else a fresh read-only one."""
        from sqlalchemy.exc import SQLAlchemyError

        held = self._held.get()
        if held is not None:
            yield held
            return
        try:
            with self.db.engine().connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise self._failed(action, exc) from exc

    def _conn(self) -> Connection:
        conn = self._held.get()
        if conn is None:
            raise RegistryError("registry write outside the model's transaction (a bug: writes go through _locked)")
        return conn

    @contextlib.contextmanager
    def _locked(self, model_dir: Path) -> Iterator[LedgerState]:
        """One transaction holding the model's row (see the module docstring); yields the checked, settled ledger.
        Commits on success and on a refusal (its ledger entry stays); a database error rolls back."""
        from sqlalchemy import select
        from sqlalchemy.exc import SQLAlchemyError

        model = model_dir.name
        if self._held.get() is not None:
            raise RegistryError(f"nested write transaction on model {model!r} (a bug)")
        models = self.db.table(MODELS)
        try:
            conn = self.db.engine().connect()
        except SQLAlchemyError as exc:
            raise self._failed(f"locking model {model!r}", exc) from exc
        token = self._held.set(conn)
        try:
            conn.execution_options(**{WRITE_OPTION: True})
            transaction = conn.begin()
            try:
                insert = dialect_insert(conn.dialect.name)
                conn.execute(
                    insert(models)
                    .values(model=model, head_seq=0, head_digest=GENESIS)
                    .on_conflict_do_nothing(index_elements=["model"])
                )
                conn.execute(select(models.c.head_seq).where(models.c.model == model).with_for_update()).one()
                state = refuse_broken(self._where(model), self._load(conn, model))
                yield self._settle(model_dir, state)
            except SQLAlchemyError as exc:
                transaction.rollback()
                raise self._failed(f"writing model {model!r}", exc) from exc
            except Exception:
                with contextlib.suppress(SQLAlchemyError):
                    transaction.commit()  # the refusal's own ledger entry is kept, as a file append would be
                raise
            except BaseException:
                transaction.rollback()
                raise
            try:
                transaction.commit()
            except SQLAlchemyError as exc:
                raise self._failed(f"committing model {model!r}", exc) from exc
        finally:
            self._held.reset(token)
            conn.close()

    # the ledger ------------------------------------------------------------------------
    def _load(self, conn: Connection, model: str) -> LedgerState:
        from sqlalchemy import select

        models, ledger = self.db.table(MODELS), self.db.table(LEDGER)
        head = conn.execute(select(models.c.head_seq, models.c.head_digest).where(models.c.model == model)).first()
        rows = conn.execute(select(ledger.c.seq, ledger.c.entry).where(ledger.c.model == model).order_by(ledger.c.seq))
        records, problems = [], []
        for seq, text in rows:
            try:
                records.append(record_from_json(json.loads(text), line_digest(text.encode())))
            except (ValueError, KeyError, TypeError) as exc:
                problems.append(LedgerProblem(seq, f"row is corrupt ({exc})"))
        if problems:
            return LedgerState(records, 0, 0, problems=tuple(problems))
        anchor = Anchor(head.head_seq, head.head_digest) if head is not None and head.head_seq else None
        return check_records(records, anchor)

    def _read_state(self, model_dir: Path) -> LedgerState:
        with self._reading("reading the ledger") as conn:
            return refuse_broken(self._where(model_dir.name), self._load(conn, model_dir.name))

    def _store_entry(self, model_dir: Path, state: LedgerState, entry: LedgerEntry, body: bytes) -> str:
        from sqlalchemy import insert, update

        conn = self._conn()
        models, ledger = self.db.table(MODELS), self.db.table(LEDGER)
        digest = line_digest(body)
        conn.execute(
            insert(ledger).values(
                model=entry.model,
                seq=entry.seq,
                entry=body.decode(),
                digest=digest,
                prev_digest=state.last_digest,
                at=entry.at,
            )
        )
        moved = conn.execute(
            update(models)
            .where(models.c.model == entry.model, models.c.head_seq == state.last_seq)
            .values(head_seq=entry.seq, head_digest=digest)
        )
        if moved.rowcount != 1:
            raise RegistryError(
                f"ledger of {entry.model!r} moved on under the lock (head is no longer #{state.last_seq}); "
                f"not appending {entry.action} #{entry.seq} to a stale view"
            )
        fault_point(entry.action, "after_ledger")  # the row is written, not committed
        return digest

    # versions --------------------------------------------------------------------------
    def _existing_model_dir(self, model: str) -> Path:
        model_dir = self._model_dir(model)
        if not self._manifests(model):
            raise VersionNotFoundError(f"model {model!r} has no versions in registry {self.db.masked_url}")
        return model_dir

    def _put_blob(self, model: str, source: Path | bytes) -> str:
        if isinstance(source, bytes):
            data = source
        else:
            try:
                data = Path(source).read_bytes()
            except OSError as exc:
                raise RegistryError(f"cannot read {source} to register it in model {model!r}: {exc}") from exc
        digest = hashlib.sha256(data).hexdigest()
        key = blob_key(digest)
        try:
            if not self.objects.exists(key):
                self.objects.write(key, data)
        except OSError as exc:
            raise RegistryError(f"cannot store a file of model {model!r} in {self.objects.url}: {exc}") from exc
        return digest

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
        from sqlalchemy import func, insert, select

        requested, metadata_dict = self._register_request(model, files, metadata, aliases)
        model_dir = self._model_dir(model)
        # Blobs first, outside the lock: a crash from here to COMMIT leaves only unreferenced blobs.
        digests = {name: self._put_blob(model, source) for name, source in sorted(files.items())}
        versions = self.db.table(VERSIONS)
        with self._locked(model_dir) as state:
            conn = self._conn()
            last = conn.execute(select(func.max(versions.c.idx)).where(versions.c.model == model)).scalar()
            index = 0 if last is None else int(last) + 1
            manifest = manifest_json(model, index, digests, metadata_dict)
            registered = parse_manifest(model, f"v{index}", model_dir / f"v{index}", manifest, self._label(model))
            moves = [AliasMove(alias, state.aliases().get(alias), registered.version) for alias in requested]
            self._check_mirror(model_dir, state, model=model, moves=moves, actor=actor, reason=reason, evidence=None)
            self._append_register(model_dir, state, moves, registered.version, manifest, actor=actor, reason=reason)
            conn.execute(
                insert(versions).values(
                    model=model,
                    version=registered.version,
                    idx=index,
                    manifest=manifest.decode(),
                    created_at=registered.created_at,
                )
            )
            self._materialize(registered, manifest)
            if self.mirror is not None:
                self._publish(model_dir, state, registered, [m.alias for m in moves], actor=actor)
        return registered

    def _label(self, model: str) -> str:
        return f"{VERSIONS} of {model!r} in {self.db.masked_url}"

    def _manifests(self, model: str) -> dict[str, bytes]:
        """Version -> manifest bytes of every committed version (and the held transaction's own), oldest first."""
        from sqlalchemy import select

        versions = self.db.table(VERSIONS)
        with self._reading(f"reading the versions of {model!r}") as conn:
            rows = conn.execute(
                select(versions.c.version, versions.c.manifest)
                .where(versions.c.model == model)
                .order_by(versions.c.idx)
            ).all()
        return {str(version): str(manifest).encode() for version, manifest in rows}

    def _version(self, model: str, version: str, manifest: bytes) -> ModelVersion:
        return parse_manifest(model, version, self._model_dir(model) / version, manifest, self._label(model))

    def versions(self, model: str) -> list[ModelVersion]:
        return [self._version(model, v, m) for v, m in self._manifests(self._model_dir(model).name).items()]

    def _scan_versions(self, model_dir: Path) -> list[ModelVersion]:
        found = self._manifests(model_dir.name)
        return [self._materialize(self._version(model_dir.name, v, m), m) for v, m in found.items()]

    def get(self, model: str, version: str) -> ModelVersion:
        self._model_dir(model)
        manifests = self._manifests(model) if VERSION_RE.match(version) else {}
        if version not in manifests:
            raise VersionNotFoundError(
                f"model {model!r} has no version {version!r} in registry {self.db.masked_url} "
                f"(versions: {list(manifests) or 'none'})"
            )
        return self._materialize(self._version(model, version, manifests[version]), manifests[version])

    def _materialize(self, version: ModelVersion, manifest: bytes) -> ModelVersion:
        """Fill ``version.path`` with its verified files once (a local copy; a bad blob leaves it absent)."""
        if (version.path / MANIFEST_NAME).is_file():
            return version
        model_dir = self._inside(version.path.parent)
        model_dir.mkdir(parents=True, exist_ok=True)
        staging = model_dir / f"{STAGING_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
        staging.mkdir()
        try:
            for name in sorted(version.digests):
                write_durably(staging / name, self.read_file(version, name), version.model)
            write_durably(staging / MANIFEST_NAME, manifest, version.model)
            os.rename(staging, self._inside(version.path))
        except (OSError, IntegrityError):
            pass  # another process filled it first, or a blob is bad: read_file and verify say so
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return version

    # integrity -------------------------------------------------------------------------
    def read_file(self, version: ModelVersion, name: str) -> bytes:
        expected = version.digests.get(name)
        if expected is None:
            raise RegistryError(
                f"{version.model}:{version.version} has no file {name!r} (files: {sorted(version.digests)})"
            )
        key = blob_key(expected)
        try:
            data = self.objects.read(key)
        except FileNotFoundError as exc:
            raise IntegrityError(
                f"file {name!r} of {version.model}:{version.version} is missing ({self.objects.url}/{key})"
            ) from exc
        return checked_bytes(version, name, data, f"{self.objects.url}/{key}")

    def _verify_recorded(self, version: ModelVersion, manifest: bytes | None, recorded: str | None) -> None:
        label = f"{version.model}:{version.version}"
        if manifest is None:
            raise IntegrityError(f"the row of {label} in {self._label(version.model)} is missing")
        actual = hashlib.sha256(manifest).hexdigest()
        if recorded is not None and recorded != actual:
            raise IntegrityError(
                f"manifest of {label} in {self._label(version.model)} has sha256 {actual}, the ledger recorded "
                f"{recorded} at registration: the manifest was rewritten"
            )
        if self._version(version.model, version.version, manifest).digests != version.digests:
            raise IntegrityError(f"manifest of {label} no longer lists the digests it was loaded with")
        for name in sorted(version.digests):
            self.read_file(version, name)

    def verify(self, version: ModelVersion) -> None:
        state = self._read_state(self._model_dir(version.model))
        recorded = {r.version: r.manifest_sha256 for r in state.records if r.entry.action == "register"}
        manifest = self._manifests(version.model).get(version.version)
        self._verify_recorded(version, manifest, recorded.get(version.version))

    def check(self, model: str) -> list[str]:
        """Every problem of the model: the ledger chain and head, then every version's manifest and blobs."""
        self._existing_model_dir(model)
        with self._reading(f"checking {model!r}") as conn:
            state = self._load(conn, model)
        problems = [f"{model}: {p}" for p in state.problems]
        recorded = {r.version: r.manifest_sha256 for r in state.records if r.entry.action == "register"}
        manifests = self._manifests(model)
        for version, manifest in manifests.items():
            try:
                self._verify_recorded(self._version(model, version, manifest), manifest, recorded.get(version))
            except RegistryError as exc:
                problems.append(str(exc))
        named = {m.to_version for r in state.records for m in r.entry.moves if m.to_version}
        missing = sorted(named - set(manifests), key=lambda v: (len(v), v))
        problems += [f"{model}: the ledger names {v} but its row is missing" for v in missing]
        return problems

    # drills --------------------------------------------------------------------------------
    def sandbox(self, model: str, root: Path) -> SqlRegistry:
        """A copy of ``model``'s rows in a new SQLite database under ``root``, sharing the (content-addressed) blobs:
        where a rollback drill rehearses without moving anything here. Never mirrored. The ledger is copied first
        (so every version it names is copied) and the copy's head is made from the copied ledger (this one may
        have moved on meanwhile); the caller checks this ledger's chain before copying."""
        from sqlalchemy import insert, select
        from sqlalchemy.exc import SQLAlchemyError

        target = SqlRegistry(f"sqlite:///{Path(root) / 'registry.db'}", self.objects, Path(root))
        try:
            with self._reading(f"copying {model!r}") as source, target.db.engine().begin() as dest:
                for name in (LEDGER, MODELS, VERSIONS, ANNOTATIONS):
                    table = self.db.table(name)
                    rows = [dict(r._mapping) for r in source.execute(select(table).where(table.c.model == model))]
                    if rows:
                        dest.execute(insert(target.db.table(name)), rows)
                ledger = target.db.table(LEDGER)
                last = dest.execute(
                    select(ledger.c.seq, ledger.c.entry).where(ledger.c.model == model).order_by(ledger.c.seq.desc())
                ).first()
                if last is not None:
                    target._move_head(dest, model, last.seq, line_digest(str(last.entry).encode()))
        except SQLAlchemyError as exc:
            target.close()
            raise self._failed(f"copying {model!r} to a sandbox", exc) from exc
        return target

    # migration -------------------------------------------------------------------------
    def import_collection(self, model_dir: Path) -> int:
        """Copy a file registry's collection (``<home>/registry/<model>``) into this empty model, byte for byte: the
        ledger lines become rows unchanged (so the hash chain and the manifests' recorded sha256 still hold), the
        files become blobs, the manifests rows. Refused when the source ledger is broken, a version fails
        verification, or the model here already has entries. Returns the number of ledger entries copied. Run it
        while no one writes the source."""
        from sqlalchemy import insert

        from tasks.registry.ledger import read_ledger
        from tasks.registry.model import LEDGER_NAME
        from tasks.registry.versions import scan_versions, verify_version

        model_dir = Path(model_dir)
        source = read_ledger(model_dir / LEDGER_NAME)  # chain and anchor checked: a broken ledger is not imported
        lines = (model_dir / LEDGER_NAME).read_bytes()[: source.valid_bytes].split(b"\n")
        bodies = [line for line in lines if line.strip()]
        versions = scan_versions(model_dir)
        recorded = {r.version: r.manifest_sha256 for r in source.records if r.entry.action == "register"}
        for version in versions:
            verify_version(version, recorded.get(version.version))  # a tampered version is not imported
            for name in sorted(version.digests):
                self._put_blob(version.model, (version.path / name).read_bytes())
        versions_table, ledger = self.db.table(VERSIONS), self.db.table(LEDGER)
        with self._locked(self._model_dir(model_dir.name)) as state:
            if state.records:
                raise RegistryError(f"model {model_dir.name!r} already has a ledger in {self.db.masked_url}")
            conn = self._conn()
            previous = GENESIS
            for record, body in zip(source.records, bodies, strict=True):
                conn.execute(
                    insert(ledger).values(
                        model=record.entry.model,
                        seq=record.entry.seq,
                        entry=body.decode(),
                        digest=record.digest,
                        prev_digest=record.prev or previous,
                        at=record.entry.at,
                    )
                )
                previous = record.digest
            for version in versions:
                manifest = (version.path / MANIFEST_NAME).read_bytes()
                conn.execute(
                    insert(versions_table).values(
                        model=version.model,
                        version=version.version,
                        idx=version.index,
                        manifest=manifest.decode(),
                        created_at=version.created_at,
                    )
                )
            self._move_head(conn, model_dir.name, source.last_seq, source.last_digest)
        return len(source.records)

    def _move_head(self, conn: Connection, model: str, seq: int, digest: str) -> None:
        from sqlalchemy import update

        models = self.db.table(MODELS)
        conn.execute(update(models).where(models.c.model == model).values(head_seq=seq, head_digest=digest))

    # annotations -----------------------------------------------------------------------
    def annotate(self, model: str, version: str, key: str, value: Any) -> None:
        from sqlalchemy.exc import SQLAlchemyError

        self.get(model, version)
        text = json_text(value, f"annotation {key!r} of {model}:{version}")
        table = self.db.table(ANNOTATIONS)
        try:
            with self.db.engine().connect() as conn:
                conn.execution_options(**{WRITE_OPTION: True})
                with conn.begin():
                    upsert = dialect_insert(conn.dialect.name)(table).values(
                        model=model, version=version, key=key, value=text
                    )
                    conn.execute(
                        upsert.on_conflict_do_update(
                            index_elements=["model", "version", "key"], set_={"value": upsert.excluded.value}
                        )
                    )
        except SQLAlchemyError as exc:
            raise self._failed(f"annotating {model}:{version}", exc) from exc

    def annotations(self, model: str, version: str) -> dict[str, Any]:
        from sqlalchemy import select

        table = self.db.table(ANNOTATIONS)
        with self._reading(f"reading the annotations of {model}:{version}") as conn:
            rows = conn.execute(
                select(table.c.key, table.c.value).where(table.c.model == model, table.c.version == version)
            ).all()
        try:
            return {str(key): json.loads(value) for key, value in rows}
        except ValueError as exc:
            raise IntegrityError(f"an annotation of {model}:{version} is not valid JSON: {exc}") from exc
