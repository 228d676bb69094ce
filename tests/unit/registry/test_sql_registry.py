"""SqlRegistry beyond the shared contract: real processes racing on one database, a process killed between the blob
writes and the COMMIT, ledger and manifest rows edited behind its back, a dead holder's lease settled, and the
``registry_storage`` setting. Each on SQLite + a folder and on PostgreSQL + the S3-API stand-in."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tasks.core.errors import AliasConflictError, IntegrityError, LedgerIntegrityError, RegistryError
from tasks.core.faults import FAULT_ENV, KILLED_EXIT_CODE
from tasks.core.settings import DriftgateSettings
from tasks.registry.local import LocalRegistry
from tasks.registry.model import CANARY, PRODUCTION, STAGING, ModelVersion
from tasks.resources.registry_sql import LEDGER, VERSIONS, SqlRegistry, blob_key
from tasks.resources.workspace import make_registry
from tests.support.mirror import BOOSTER_TEXT, MODEL
from tests.support.s3 import s3_credentials, s3_stand_in
from tests.support.sql_registry import SQL_KINDS, open_sql_registry, sql_location

__all__ = ["s3_credentials", "s3_stand_in"]  # fixtures

Location = tuple[str, str, dict[str, str]]


@pytest.fixture(params=SQL_KINDS)
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Location:
    return sql_location(request, tmp_path, request.param)


def _open(location: Location, copies: Path) -> SqlRegistry:
    return open_sql_registry(*location, copies)


@pytest.fixture
def reg(location: Location, tmp_path: Path) -> Iterator[SqlRegistry]:
    registry = _open(location, tmp_path / "copies")
    yield registry
    registry.close()


def _register(reg: LocalRegistry, tag: int) -> ModelVersion:
    return reg.register(MODEL, {"model.txt": BOOSTER_TEXT + f"# {tag}\n".encode()}, {"tag": tag}, actor="t", reason="r")


def _execute(reg: SqlRegistry, statement: Any) -> None:
    with reg.db.engine().begin() as conn:
        conn.execute(statement)


# --- processes racing on one database ---------------------------------------------------------------------------


def _race(location: Location, copies: str, what: str, barrier: Any, results: Any) -> None:
    reg = _open(location, Path(copies))
    barrier.wait()
    try:
        if what == "move":
            reg.move_alias(MODEL, STAGING, "v1", expected=None, actor=f"pid-{os.getpid()}", reason="race")
            results.put("won")
        else:
            results.put([_register(reg, 100 + i).version for i in range(3)])
    except AliasConflictError as exc:
        results.put(f"conflict: {exc}")
    finally:
        reg.close()


def _run_racers(location: Location, tmp_path: Path, what: str) -> list[Any]:
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(target=_race, args=(location, str(tmp_path / f"copies-{i}"), what, barrier, results))
        for i in range(2)
    ]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    return outcomes


@pytest.mark.slow
def test_two_processes_moving_one_alias_from_the_same_state_exactly_one_wins(
    reg: SqlRegistry, location: Location, tmp_path: Path
) -> None:
    _register(reg, 0)
    _register(reg, 1)
    outcomes = _run_racers(location, tmp_path, "move")
    assert sorted(o[:8] for o in outcomes) == ["conflict", "won"], outcomes
    assert "points at v1, caller expected nothing" in next(o for o in outcomes if o != "won")
    assert reg.aliases(MODEL)[STAGING] == "v1"
    assert sorted((e.action, e.outcome) for e in reg.ledger(MODEL)[-2:]) == [
        ("conflict", "rejected"),
        ("move", "applied"),
    ]
    assert reg.check(MODEL) == []


@pytest.mark.slow
def test_two_processes_registering_at_once_get_distinct_versions(
    reg: SqlRegistry, location: Location, tmp_path: Path
) -> None:
    _register(reg, 0)
    outcomes = _run_racers(location, tmp_path, "register")
    got = sorted(v for versions in outcomes for v in versions)
    assert got == sorted(f"v{i}" for i in range(1, 7))
    assert [v.version for v in reg.versions(MODEL)] == [f"v{i}" for i in range(7)]
    assert [e.seq for e in reg.ledger(MODEL)] == list(range(1, 8))
    assert reg.check(MODEL) == []


# --- crashes ---------------------------------------------------------------------------------------------------


def _killed_while(location: Location, copies: str, fault: str, action: str) -> None:
    os.environ[FAULT_ENV] = fault
    reg = _open(location, Path(copies))
    if action == "register":
        _register(reg, 7)
    else:
        reg.begin_promotion(MODEL, "v1", actor="gate", reason="dies holding the lease")
        reg.move_alias(MODEL, CANARY, "v1", expected=None, actor="gate", reason="canary")
        os._exit(KILLED_EXIT_CODE)


def _run_killed(location: Location, tmp_path: Path, fault: str, action: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=_killed_while, args=(location, str(tmp_path / "copies-killed"), fault, action))
    proc.start()
    proc.join(timeout=120)
    assert proc.exitcode == KILLED_EXIT_CODE


@pytest.mark.slow
def test_a_process_killed_after_its_blobs_and_rows_but_before_commit_leaves_no_version(
    reg: SqlRegistry, location: Location, tmp_path: Path
) -> None:
    _register(reg, 0)
    _run_killed(location, tmp_path, "register:after_ledger", "register")
    # The blob is there, unreferenced; no row, no ledger entry, no alias names it.
    assert [v.version for v in reg.versions(MODEL)] == ["v0"]
    assert reg.objects.exists(blob_key(hashlib.sha256(BOOSTER_TEXT + b"# 7\n").hexdigest()))
    assert reg.aliases(MODEL) == {"latest": "v0", "candidate": "v0"}
    assert reg.check(MODEL) == []
    assert _register(reg, 7).version == "v1"  # the retry registers it whole
    assert reg.check(MODEL) == []


@pytest.mark.slow
def test_a_promotion_whose_holder_died_is_withdrawn_by_the_next_write(
    reg: SqlRegistry, location: Location, tmp_path: Path
) -> None:
    _register(reg, 0)
    _register(reg, 1)
    reg.promote(MODEL, "v0", actor="gate", reason="baseline")
    _run_killed(location, tmp_path, "", "lease")
    assert reg.open_lease(MODEL) is not None and reg.aliases(MODEL)[CANARY] == "v1"
    reg.note(MODEL, "audit", actor="auditor", reason="any write settles first")
    settled = reg.ledger(MODEL)[-2]
    assert (settled.action, settled.actor) == ("withdraw", "driftgate-recovery")
    assert reg.open_lease(MODEL) is None
    assert CANARY not in reg.aliases(MODEL) and reg.aliases(MODEL)[PRODUCTION] == "v0"


# --- tampering -------------------------------------------------------------------------------------------------


def test_an_updated_ledger_row_is_reported_by_check_and_refused_by_every_write(reg: SqlRegistry) -> None:
    from sqlalchemy import update

    for tag in range(3):
        _register(reg, tag)
    reg.promote(MODEL, "v0", actor="gate", reason="baseline")
    ledger = reg.db.table(LEDGER)
    row = reg.ledger(MODEL)[1]
    edited = update(ledger).where(ledger.c.model == MODEL, ledger.c.seq == row.seq)
    _execute(reg, edited.values(entry=_edited(reg, row.seq)))
    problems = reg.check(MODEL)
    assert any("entry #3: prev does not match the digest of entry #2" in p for p in problems), problems
    with pytest.raises(LedgerIntegrityError, match="entry #3"):
        reg.move_alias(MODEL, STAGING, "v1", expected=None, actor="t", reason="on a forged history")
    with pytest.raises(LedgerIntegrityError):
        reg.aliases(MODEL)


def _edited(reg: SqlRegistry, seq: int) -> str:
    from sqlalchemy import select

    ledger = reg.db.table(LEDGER)
    with reg.db.engine().connect() as conn:
        text = conn.execute(select(ledger.c.entry).where(ledger.c.model == MODEL, ledger.c.seq == seq)).scalar_one()
    return str(text).replace('"actor":"t"', '"actor":"mallory"')


def test_an_edit_of_the_last_row_disagrees_with_the_head(reg: SqlRegistry) -> None:
    from sqlalchemy import update

    _register(reg, 0)
    reg.promote(MODEL, "v0", actor="t", reason="baseline")
    ledger = reg.db.table(LEDGER)
    _execute(reg, update(ledger).where(ledger.c.model == MODEL, ledger.c.seq == 2).values(entry=_edited(reg, 2)))
    assert any("the entry was edited" in p for p in reg.check(MODEL))


def test_a_rewritten_manifest_row_or_a_swapped_blob_never_verifies(reg: SqlRegistry) -> None:
    from sqlalchemy import update

    v0, v1 = _register(reg, 0), _register(reg, 1)
    versions = reg.db.table(VERSIONS)
    forged = reg._manifests(MODEL)["v0"].decode().replace('"tag": 0', '"tag": 42')
    _execute(reg, update(versions).where(versions.c.model == MODEL, versions.c.version == "v0").values(manifest=forged))
    with pytest.raises(IntegrityError, match="the manifest was rewritten"):
        reg.verify(reg.get(MODEL, "v0"))
    reg.objects.delete(blob_key(v1.digests["model.txt"]))
    with pytest.raises(IntegrityError, match="is missing"):
        reg.read_file(v1, "model.txt")
    problems = reg.check(MODEL)
    assert len(problems) == 2 and "rewritten" in problems[0] and "missing" in problems[1]
    assert reg.read_file(v0, "model.txt") == BOOSTER_TEXT + b"# 0\n"  # the files themselves are intact


# --- reads, annotations, local copies --------------------------------------------------------------------------


def test_versions_have_verified_local_copies_and_annotations_live_in_a_table(reg: SqlRegistry, tmp_path: Path) -> None:
    v0 = _register(reg, 0)
    assert v0.path == reg.root / MODEL / "v0" and (v0.path / "model.txt").read_bytes() == BOOSTER_TEXT + b"# 0\n"
    other = SqlRegistry(reg.db.url, reg.objects, tmp_path / "elsewhere")
    copy = other.get(MODEL, "v0")  # another machine: its own copy, fetched from the object store
    assert copy.path == tmp_path / "elsewhere" / MODEL / "v0" and (copy.path / "model.txt").is_file()
    reg.annotate(MODEL, "v0", "gate_report", "reports/g.md")
    other.annotate(MODEL, "v0", "gate_report", "reports/g2.md")
    assert reg.annotations(MODEL, "v0") == {"gate_report": "reports/g2.md"}
    assert reg.annotations(MODEL, "v1") == {}
    other.close()


# --- settings ----------------------------------------------------------------------------------------------------


def test_registry_storage_selects_the_sql_registry_and_files_stay_the_default(tmp_path: Path) -> None:
    files = make_registry(DriftgateSettings(home=tmp_path / "a"))
    assert type(files) is LocalRegistry and files.root == (tmp_path / "a" / "registry").resolve()
    settings = DriftgateSettings(home=tmp_path / "b", registry_storage="sql")
    reg = make_registry(settings)
    assert isinstance(reg, SqlRegistry)
    _register(reg, 0)
    assert (tmp_path / "b" / "audit.db").is_file()
    assert len(list((tmp_path / "b" / "registry-objects" / "sha256").iterdir())) == 1
    again = make_registry(settings)  # a second process on the same home sees the same registry
    assert again.aliases(MODEL) == {"latest": "v0", "candidate": "v0"}
    assert isinstance(again, SqlRegistry)
    reg.close()
    again.close()


def test_threads_of_one_process_registering_and_moving_at_once_stay_consistent(reg: SqlRegistry) -> None:
    import threading

    _register(reg, 0)
    errors: list[BaseException] = []

    def work(tag: int) -> None:
        try:
            for i in range(3):
                _register(reg, 10 * tag + i)
            reg.move_alias(MODEL, f"t{tag}", "v0", expected=None, actor="t", reason="own alias")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(tag,)) for tag in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert [v.version for v in reg.versions(MODEL)] == [f"v{i}" for i in range(13)]
    assert {a: v for a, v in reg.aliases(MODEL).items() if a.startswith("t")} == {f"t{i}": "v0" for i in range(4)}
    assert reg.check(MODEL) == []


# --- migration from a file registry -------------------------------------------------------------------------------


def test_a_file_registry_is_imported_byte_for_byte_with_its_chain_and_history(reg: SqlRegistry, tmp_path: Path) -> None:
    files = LocalRegistry(tmp_path / "file-registry")
    for tag in range(3):
        _register(files, tag)
    files.promote(MODEL, "v0", actor="gate", reason="first", expected_production=None)
    files.promote(MODEL, "v1", actor="gate", reason="second")
    files.move_alias(MODEL, STAGING, "v2", expected=None, actor="ann", reason="stage")
    with pytest.raises(AliasConflictError):
        files.move_alias(MODEL, STAGING, "v0", expected=None, actor="bob", reason="stale")
    files.rollback(MODEL, actor="ops", reason="bad day")

    assert reg.import_collection(files.root / MODEL) == len(files.ledger(MODEL))
    assert reg.ledger(MODEL) == files.ledger(MODEL)
    assert [e.digest for e in reg.ledger(MODEL)] == [e.digest for e in files.ledger(MODEL)]
    assert reg.aliases(MODEL) == files.aliases(MODEL)
    at = files.ledger(MODEL)[4].at
    assert reg.aliases_at(MODEL, at) == files.aliases_at(MODEL, at)
    assert [(v.version, v.digests, v.metadata) for v in reg.versions(MODEL)] == [
        (v.version, v.digests, v.metadata) for v in files.versions(MODEL)
    ]
    for version in reg.versions(MODEL):
        reg.verify(version)
    assert reg.check(MODEL) == []
    assert _register(reg, 3).version == "v3"  # and it goes on from there
    with pytest.raises(RegistryError, match="already has a ledger"):
        reg.import_collection(files.root / MODEL)


def test_a_tampered_file_registry_is_not_imported(reg: SqlRegistry, tmp_path: Path) -> None:
    files = LocalRegistry(tmp_path / "file-registry")
    v0 = _register(files, 0)
    os.chmod(v0.path / "model.txt", 0o644)
    (v0.path / "model.txt").write_bytes(b"tampered")
    with pytest.raises(IntegrityError, match="tampered or truncated"):
        reg.import_collection(files.root / MODEL)
    assert reg.versions(MODEL) == []
