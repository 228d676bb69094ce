"""LocalRegistry on a real filesystem, with real processes racing and being killed."""

from __future__ import annotations

import hashlib
import itertools
import json
import multiprocessing
import os
import pickle
import random
import signal
import stat
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tasks.core.errors import AliasConflictError, IntegrityError, RegistryError, VersionNotFoundError
from tasks.registry.local import LocalRegistry
from tasks.registry.model import (
    ANY,
    LEDGER_NAME,
    MANIFEST_NAME,
    PREVIOUS_PRODUCTION,
    PRODUCTION,
    STAGING_PREFIX,
    AliasMove,
    ModelVersion,
    last_known_good,
    replay_aliases,
)
from tasks.resources.registry_sql import SqlRegistry, blob_key
from tests.support.mirror import BOOSTER_TEXT, MODEL, MemoryMirror
from tests.support.s3 import s3_credentials, s3_stand_in
from tests.support.sql_registry import SQL_KINDS, sql_registry

__all__ = ["s3_credentials", "s3_stand_in"]  # fixtures


def _register(reg: LocalRegistry, tag: int, **kwargs: object) -> ModelVersion:
    return reg.register(
        MODEL,
        {"model.txt": BOOSTER_TEXT + f"# {tag}\n".encode()},
        {"params": {"num_leaves": 31 + tag}, "metrics": {"roc_auc": 0.7 + tag / 100}},
        actor="test",
        reason=f"register {tag}",
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture
def reg(tmp_path: Path) -> LocalRegistry:
    return LocalRegistry(tmp_path / "registry")


def _with_versions(reg: LocalRegistry, count: int) -> list[ModelVersion]:
    return [_register(reg, i) for i in range(count)]


# --- versions -------------------------------------------------------------------------


def test_register_writes_immutable_version_with_manifest_and_moves_latest(reg: LocalRegistry, tmp_path: Path) -> None:
    schema_file = tmp_path / "schema.json"
    schema_file.write_text('{"features": ["a", "b", "c"]}')
    v0 = reg.register(
        MODEL,
        {"model.txt": BOOSTER_TEXT, "schema.json": schema_file},
        {"params": {"num_leaves": 31}, "parent": None},
        actor="alice",
        reason="first model",
    )
    assert (v0.version, v0.index, v0.model) == ("v0", 0, MODEL)
    assert v0.path == reg.root / MODEL / "v0"
    assert v0.created_at.tzinfo is not None
    assert abs(v0.created_at - datetime.now(UTC)) < timedelta(seconds=30)
    assert v0.metadata == {"params": {"num_leaves": 31}, "parent": None}
    assert v0.digests == {
        "model.txt": hashlib.sha256(BOOSTER_TEXT).hexdigest(),
        "schema.json": hashlib.sha256(schema_file.read_bytes()).hexdigest(),
    }
    # Stored byte for byte, never re-serialized.
    assert reg.read_file(v0, "model.txt") == BOOSTER_TEXT
    manifest = json.loads((v0.path / MANIFEST_NAME).read_text())
    assert manifest["files"]["model.txt"]["sha256"] == v0.digests["model.txt"]
    assert manifest["metadata"] == v0.metadata
    for name in ("model.txt", "schema.json", MANIFEST_NAME):
        assert not (v0.path / name).stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert reg.aliases(MODEL) == {"latest": "v0", "candidate": "v0"}

    v1 = _register(reg, 1, aliases=("candidate", "staging"))
    assert v1.version == "v1"
    assert reg.aliases(MODEL) == {"latest": "v1", "candidate": "v1", "staging": "v1"}
    assert [v.version for v in reg.versions(MODEL)] == ["v0", "v1"]
    assert reg.resolve(MODEL, "latest") == v1
    assert reg.resolve(MODEL, "production") is None
    assert reg.get(MODEL, "v0") == v0

    entries = reg.ledger(MODEL)
    assert [(e.seq, e.action, e.outcome) for e in entries] == [(1, "register", "applied"), (2, "register", "applied")]
    assert entries[0].actor == "alice" and entries[0].reason == "first model"
    assert set(entries[1].moves) == {
        AliasMove("latest", "v0", "v1"),
        AliasMove("candidate", "v0", "v1"),
        AliasMove("staging", None, "v1"),
    }
    assert not list((reg.root / MODEL).glob(f"{STAGING_PREFIX}*"))


def test_register_and_lookups_reject_bad_input_with_named_errors(reg: LocalRegistry) -> None:
    with pytest.raises(RegistryError, match="'V1'"):
        _register(reg, 0, aliases=("V1",))
    with pytest.raises(RegistryError, match="look like a version"):
        _register(reg, 0, aliases=("v7",))
    with pytest.raises(RegistryError, match="use promote"):
        _register(reg, 0, aliases=("production",))
    with pytest.raises(RegistryError, match=r"invalid file name '\.\./evil'"):
        reg.register(MODEL, {"../evil": b"x"}, {}, actor="t", reason="r")
    with pytest.raises(RegistryError, match="JSON-serializable"):
        reg.register(MODEL, {"model.txt": b"x"}, {"booster": object()}, actor="t", reason="r")
    with pytest.raises(RegistryError, match="cannot read"):
        reg.register(MODEL, {"model.txt": Path("/nonexistent/model.txt")}, {}, actor="t", reason="r")
    with pytest.raises(RegistryError, match="invalid model name"):
        reg.versions("../other")
    assert reg.versions(MODEL) == []
    assert not list((reg.root / MODEL).glob(f"{STAGING_PREFIX}*"))
    assert reg.ledger(MODEL) == []

    _register(reg, 0)
    with pytest.raises(VersionNotFoundError, match=r"no version 'v9'.*versions: \['v0'\]"):
        reg.get(MODEL, "v9")
    with pytest.raises(VersionNotFoundError, match="'other' has no versions"):
        reg.promote("other", "v0", actor="t", reason="r")
    with pytest.raises(VersionNotFoundError, match="v3"):
        reg.move_alias(MODEL, "staging", "v3", expected=None, actor="t", reason="r")
    with pytest.raises(RegistryError, match=r"has no file 'weights\.bin'"):
        reg.read_file(reg.get(MODEL, "v0"), "weights.bin")


def test_concurrent_registers_from_threads_get_distinct_versions(reg: LocalRegistry) -> None:
    results: list[ModelVersion] = []
    lock = threading.Lock()

    def worker(tag: int) -> None:
        version = _register(reg, tag)
        with lock:
            results.append(version)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(v.version for v in results) == ["v0", "v1", "v2", "v3"]
    assert [e.seq for e in reg.ledger(MODEL)] == [1, 2, 3, 4]
    assert reg.aliases(MODEL)["latest"] == reg.ledger(MODEL)[-1].moves[0].to_version
    for version in results:  # each thread's payload landed in the version it was told about
        tag = int(reg.read_file(version, "model.txt").rsplit(b"# ", 1)[1])
        assert version.metadata["params"]["num_leaves"] == 31 + tag


# --- integrity ------------------------------------------------------------------------


def test_tampered_byte_is_detected_by_read_file_and_verify(reg: LocalRegistry) -> None:
    v0, v1 = _with_versions(reg, 2)
    reg.verify(v0)
    model_path = v0.path / "model.txt"
    os.chmod(model_path, 0o644)
    data = bytearray(model_path.read_bytes())
    data[5] ^= 0x01
    model_path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=r"'model.txt' of car-loan:v0 .*tampered or truncated"):
        reg.read_file(v0, "model.txt")
    with pytest.raises(IntegrityError, match=r"'model.txt' of car-loan:v0"):
        reg.verify(v0)

    # Rewriting the manifest to match the tampered file is caught by the digest the ledger kept.
    manifest_path = v1.path / MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text())
    os.chmod(v1.path / "model.txt", 0o644)
    (v1.path / "model.txt").write_bytes(b"evil")
    manifest["files"]["model.txt"]["sha256"] = hashlib.sha256(b"evil").hexdigest()
    os.chmod(manifest_path, 0o644)
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(IntegrityError, match="manifest was rewritten"):
        reg.verify(reg.get(MODEL, "v1"))

    v2 = _register(reg, 2)
    (v2.path / "extra.py").write_text("import os")
    with pytest.raises(IntegrityError, match=r"does not list: \['extra.py'\]"):
        reg.verify(v2)
    (v2.path / "extra.py").unlink()
    os.chmod(v2.path / "model.txt", 0o644)
    (v2.path / "model.txt").unlink()
    with pytest.raises(IntegrityError, match="missing"):
        reg.read_file(v2, "model.txt")


def test_annotations_live_outside_the_immutable_manifest(reg: LocalRegistry) -> None:
    (v0,) = _with_versions(reg, 1)
    manifest_before = (v0.path / MANIFEST_NAME).read_bytes()
    assert reg.annotations(MODEL, "v0") == {}
    reg.annotate(MODEL, "v0", "gate_report", "reports/gate-v0.md")
    reg.annotate(MODEL, "v0", "gate_passed", True)
    reg.annotate(MODEL, "v0", "gate_report", "reports/gate-v0-rerun.md")
    assert reg.annotations(MODEL, "v0") == {"gate_report": "reports/gate-v0-rerun.md", "gate_passed": True}
    assert (v0.path / MANIFEST_NAME).read_bytes() == manifest_before
    reg.verify(reg.get(MODEL, "v0"))
    with pytest.raises(VersionNotFoundError):
        reg.annotate(MODEL, "v5", "k", 1)
    with pytest.raises(RegistryError, match="JSON-serializable"):
        reg.annotate(MODEL, "v0", "k", {1, 2})


# --- alias moves ------------------------------------------------------------------------


def test_conditional_move_applies_or_records_the_rejected_attempt(reg: LocalRegistry) -> None:
    _with_versions(reg, 3)
    entry = reg.move_alias(MODEL, "staging", "v1", expected=None, actor="bob", reason="stage v1", evidence="gate-7")
    assert (entry.action, entry.outcome, entry.evidence) == ("move", "applied", "gate-7")
    assert entry.moves == (AliasMove("staging", None, "v1"),)
    assert reg.aliases(MODEL)["staging"] == "v1"

    with pytest.raises(AliasConflictError) as excinfo:
        reg.move_alias(MODEL, "staging", "v2", expected=None, actor="carol", reason="stage v2")
    message = str(excinfo.value)
    assert "'staging'" in message and "points at v1" in message and "expected nothing" in message
    assert reg.aliases(MODEL)["staging"] == "v1"
    last = reg.ledger(MODEL)[-1]
    assert (last.action, last.outcome, last.actor) == ("conflict", "rejected", "carol")
    assert last.moves == (AliasMove("staging", None, "v2"),)
    assert "points at v1" in last.reason

    reg.move_alias(MODEL, "staging", "v2", expected="v1", actor="carol", reason="stage v2 after re-read")
    reg.move_alias(MODEL, "staging", None, expected="v2", actor="carol", reason="unstage")
    assert "staging" not in reg.aliases(MODEL)
    with pytest.raises(RegistryError, match="invalid alias"):
        reg.move_alias(MODEL, "v1", "v2", expected=None, actor="t", reason="r")


def test_promote_moves_production_and_previous_production_in_one_entry(reg: LocalRegistry) -> None:
    _with_versions(reg, 3)
    first = reg.promote(MODEL, "v0", actor="gate", reason="first model", expected_production=None)
    assert first.moves == (AliasMove(PRODUCTION, None, "v0"),)
    entry = reg.promote(MODEL, "v1", actor="gate", reason="beats v0", evidence="gate-report-12")
    assert entry.action == "promote" and entry.outcome == "applied" and entry.evidence == "gate-report-12"
    assert entry.moves == (AliasMove(PRODUCTION, "v0", "v1"), AliasMove(PREVIOUS_PRODUCTION, None, "v0"))
    aliases = reg.aliases(MODEL)
    assert (aliases[PRODUCTION], aliases[PREVIOUS_PRODUCTION]) == ("v1", "v0")
    assert reg.resolve(MODEL, PRODUCTION) == reg.get(MODEL, "v1")

    with pytest.raises(RegistryError, match="already holds 'production'"):
        reg.promote(MODEL, "v1", actor="gate", reason="again")
    with pytest.raises(AliasConflictError, match="points at v1, caller expected v0"):
        reg.promote(MODEL, "v2", actor="gate", reason="stale view", expected_production="v0")
    assert reg.aliases(MODEL)[PRODUCTION] == "v1"
    assert reg.ledger(MODEL)[-1].moves == (AliasMove(PRODUCTION, "v0", "v2"),)
    reg.promote(MODEL, "v2", actor="gate", reason="fresh view", expected_production="v1")
    assert (reg.aliases(MODEL)[PRODUCTION], reg.aliases(MODEL)[PREVIOUS_PRODUCTION]) == ("v2", "v1")


def test_rollback_steps_back_through_known_good_versions(reg: LocalRegistry) -> None:
    _with_versions(reg, 4)
    with pytest.raises(RegistryError, match="no 'previous-production'"):
        reg.rollback(MODEL, actor="watch", reason="nothing promoted yet")
    for version in ("v0", "v1", "v2"):
        reg.promote(MODEL, version, actor="gate", reason=f"promote {version}")

    entry = reg.rollback(MODEL, actor="watch", reason="canary degraded")
    assert entry.action == "rollback"
    assert entry.moves == (AliasMove(PRODUCTION, "v2", "v1"), AliasMove(PREVIOUS_PRODUCTION, "v1", "v0"))
    assert {k: v for k, v in reg.aliases(MODEL).items() if "production" in k} == {
        PRODUCTION: "v1",
        PREVIOUS_PRODUCTION: "v0",
    }
    # A second rollback goes further back instead of bouncing to the version just rolled back from.
    reg.rollback(MODEL, actor="watch", reason="still degraded")
    assert reg.aliases(MODEL)[PRODUCTION] == "v0"
    assert PREVIOUS_PRODUCTION not in reg.aliases(MODEL)
    with pytest.raises(RegistryError, match=r"cannot roll back model 'car-loan'.*production is v0"):
        reg.rollback(MODEL, actor="watch", reason="third")

    # Promote again, roll back: v2 and v1 were rolled back from, so neither becomes last known good.
    reg.promote(MODEL, "v3", actor="gate", reason="new candidate")
    assert reg.aliases(MODEL)[PREVIOUS_PRODUCTION] == "v0"
    reg.rollback(MODEL, actor="watch", reason="v3 degraded")
    assert reg.aliases(MODEL)[PRODUCTION] == "v0"
    assert PREVIOUS_PRODUCTION not in reg.aliases(MODEL)


def test_last_known_good_skips_rolled_back_versions_after_repromotion(reg: LocalRegistry) -> None:
    _with_versions(reg, 4)
    for version in ("v0", "v1", "v2"):
        reg.promote(MODEL, version, actor="gate", reason="r")
    reg.rollback(MODEL, actor="watch", reason="v2 bad")  # production v1, previous v0
    reg.promote(MODEL, "v3", actor="gate", reason="r")  # production v3, previous v1
    reg.rollback(MODEL, actor="watch", reason="v3 bad")
    aliases = reg.aliases(MODEL)
    assert (aliases[PRODUCTION], aliases[PREVIOUS_PRODUCTION]) == ("v1", "v0")
    assert last_known_good(reg.ledger(MODEL), "v0", "v1") is None


def test_aliases_at_answers_what_held_each_alias_at_time_t(reg: LocalRegistry) -> None:
    _with_versions(reg, 3)
    reg.promote(MODEL, "v0", actor="gate", reason="r")
    reg.move_alias(MODEL, "canary", "v1", expected=None, actor="ops", reason="canary v1")
    reg.promote(MODEL, "v1", actor="gate", reason="r")
    reg.move_alias(MODEL, "canary", None, expected="v1", actor="ops", reason="canary done")
    reg.rollback(MODEL, actor="watch", reason="r")
    entries = reg.ledger(MODEL)
    assert [e.seq for e in entries] == list(range(1, 9))
    assert all(a.at <= b.at for a, b in itertools.pairwise(entries))

    before_anything = entries[0].at - timedelta(seconds=1)
    assert reg.aliases_at(MODEL, before_anything) == {}
    expected_production = [None, None, None, "v0", "v0", "v1", "v1", "v0"]
    expected_canary = [None, None, None, None, "v1", "v1", None, None]
    for entry, production, canary in zip(entries, expected_production, expected_canary, strict=True):
        held = reg.aliases_at(MODEL, entry.at)
        # Entries can share a timestamp; the answer at T includes every entry stamped <= T.
        assert held == replay_aliases([e for e in entries if e.at <= entry.at])
        if all(e.at != entry.at for e in entries if e.seq != entry.seq):
            assert held.get(PRODUCTION) == production and held.get("canary") == canary
    assert reg.aliases_at(MODEL, datetime.now(UTC)) == reg.aliases(MODEL)
    with pytest.raises(RegistryError, match="timezone-aware"):
        reg.aliases_at(MODEL, datetime(2024, 1, 1))


def test_any_sentinel_survives_pickling() -> None:
    assert pickle.loads(pickle.dumps(ANY)) is ANY
    assert repr(ANY) == "ANY"


# --- crashes and races ------------------------------------------------------------------


def test_torn_last_line_is_ignored_then_truncated_by_the_next_write(reg: LocalRegistry) -> None:
    _with_versions(reg, 2)
    reg.promote(MODEL, "v0", actor="gate", reason="r")
    ledger_path = reg.root / MODEL / LEDGER_NAME
    intact = ledger_path.read_bytes()
    before = reg.aliases(MODEL)
    torn = b'{"seq":4,"at":"2030-01-01T00:00:00+00:00","model":"car-loan","action":"promote","moves":[{"alias":"produ'
    with ledger_path.open("ab") as handle:
        handle.write(torn)
    assert reg.aliases(MODEL) == before
    assert len(reg.ledger(MODEL)) == 3

    entry = reg.promote(MODEL, "v1", actor="gate", reason="after crash")
    assert entry.seq == 4
    assert ledger_path.read_bytes().startswith(intact)
    lines = ledger_path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 5
    assert all(json.loads(line)["seq"] == i for i, line in enumerate(lines[:-1], start=1))
    assert reg.aliases(MODEL)[PRODUCTION] == "v1"

    # A complete but corrupt line in the middle is not a crash artefact: refuse to guess.
    ledger_path.write_bytes(intact + b"not json\n")
    with pytest.raises(IntegrityError, match="line 4 is corrupt"):
        reg.aliases(MODEL)


def _race_promote(root: str, version: str, barrier: object, results: object) -> None:
    reg = LocalRegistry(Path(root))
    barrier.wait()  # type: ignore[attr-defined]
    try:
        reg.promote(MODEL, version, actor=f"pid-{os.getpid()}", reason="race", expected_production="v0")
        results.put((version, "won"))  # type: ignore[attr-defined]
    except AliasConflictError as exc:
        results.put((version, f"conflict: {exc}"))  # type: ignore[attr-defined]


@pytest.mark.slow
def test_two_processes_racing_to_promote_exactly_one_wins(reg: LocalRegistry) -> None:
    _with_versions(reg, 3)
    reg.promote(MODEL, "v0", actor="gate", reason="baseline")
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    results = ctx.Queue()
    procs = [ctx.Process(target=_race_promote, args=(str(reg.root), v, barrier, results)) for v in ("v1", "v2")]
    for proc in procs:
        proc.start()
    outcomes = dict(results.get(timeout=60) for _ in procs)
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0

    winners = [v for v, outcome in outcomes.items() if outcome == "won"]
    assert len(winners) == 1, outcomes
    (winner,) = winners
    (loser,) = set(outcomes) - {winner}
    assert f"points at {winner}, caller expected v0" in outcomes[loser]
    assert reg.aliases(MODEL)[PRODUCTION] == winner
    assert reg.aliases(MODEL)[PREVIOUS_PRODUCTION] == "v0"
    attempts = reg.ledger(MODEL)[-2:]
    assert sorted((e.action, e.outcome) for e in attempts) == [("conflict", "rejected"), ("promote", "applied")]
    rejected = next(e for e in attempts if e.outcome == "rejected")
    assert rejected.moves == (AliasMove(PRODUCTION, "v0", loser),)
    applied = next(e for e in attempts if e.outcome == "applied")
    assert applied.seq < rejected.seq


def _churn(root: str, seed: int) -> None:
    """Register, promote, move and roll back as fast as possible until killed."""
    rng = random.Random(seed)
    reg = LocalRegistry(Path(root))
    payload = rng.randbytes(256 * 1024)
    step = 0
    while True:
        if step % 4 == 0:
            reg.register(
                MODEL, {"model.txt": payload + step.to_bytes(4, "big")}, {"step": step}, actor="churn", reason="r"
            )
        count = len(reg.versions(MODEL))
        target = f"v{rng.randrange(count)}"
        reg.move_alias(
            MODEL, "staging", target, expected=reg.aliases(MODEL).get("staging"), actor="churn", reason="shuffle"
        )
        try:
            if step % 5 == 4:
                reg.rollback(MODEL, actor="churn", reason="r")
            else:
                reg.promote(MODEL, target, actor="churn", reason="r")
        except RegistryError:
            pass  # already production / nothing to roll back: part of the churn
        step += 1


@pytest.mark.slow
def test_sigkill_mid_churn_leaves_aliases_on_complete_versions(reg: LocalRegistry) -> None:
    _with_versions(reg, 1)
    ledger_path = reg.root / MODEL / LEDGER_NAME
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=_churn, args=(str(reg.root), 7))
    proc.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and ledger_path.read_bytes().count(b"\n") < 60:
        time.sleep(0.02)
    time.sleep(random.Random(3).uniform(0.05, 0.2))
    assert proc.pid is not None
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(timeout=30)
    assert proc.exitcode == -signal.SIGKILL

    entries = reg.ledger(MODEL)
    assert len(entries) >= 60
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    existing = {v.version for v in reg.versions(MODEL)}
    for entry in entries:
        if entry.outcome == "applied":
            assert {m.to_version for m in entry.moves if m.to_version} <= existing, entry
    for alias, version in reg.aliases(MODEL).items():
        assert alias and reg.get(MODEL, version).path.is_dir()
        reg.verify(reg.get(MODEL, version))
    for version in reg.versions(MODEL):
        reg.verify(version)

    # The next locked write cleans up after the dead process: torn tail cut, staging removed.
    after = _register(reg, 99)
    assert after.version == f"v{max(v.index for v in reg.versions(MODEL))}"
    assert not list((reg.root / MODEL).glob(f"{STAGING_PREFIX}*"))
    raw = ledger_path.read_bytes()
    assert raw.endswith(b"\n")
    assert [json.loads(line)["seq"] for line in raw.splitlines()] == list(range(1, len(entries) + 2))
    assert reg.aliases(MODEL)["latest"] == after.version


# --- the registry contract: every implementation ---------------------------------------------------


@pytest.fixture(params=["local", "mirrored", "wandb-stand-in", "wandb", *SQL_KINDS, "sql-mirrored"])
def contract_registry(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[LocalRegistry, str]:
    """(registry, model) for each implementation of the Registry interface: the W&B adapter runs against an
    in-process stand-in of the W&B calls it makes, and against W&B itself only with WANDB_API_KEY; the SQL
    registry on SQLite + a folder and on PostgreSQL + an S3-API stand-in (and mirrored, on SQLite)."""
    if request.param == "local":
        return LocalRegistry(tmp_path / "registry"), MODEL
    if request.param in SQL_KINDS:
        return sql_registry(request, tmp_path, request.param), MODEL
    if request.param == "sql-mirrored":
        return sql_registry(request, tmp_path, "sqlite+folder", MemoryMirror()), MODEL
    if request.param == "mirrored":
        return LocalRegistry(tmp_path / "registry", mirror=MemoryMirror()), MODEL
    if request.param == "wandb-stand-in":
        from tasks.registry.wandb_mirror import WandbMirror, WandbRegistry
        from tests.support import wandb_api

        wandb_api.install(monkeypatch)
        mirror = WandbMirror(registry="model", project="contract", entity=None, directory=tmp_path / "wandb")
        return WandbRegistry(tmp_path / "registry", mirror), MODEL
    if not os.environ.get("WANDB_API_KEY"):
        pytest.skip("W&B Registry contract tests need WANDB_API_KEY (and network); not set here")
    from tasks.registry.wandb_mirror import WandbMirror, WandbRegistry

    mirror = WandbMirror(
        registry=os.environ.get("DRIFTGATE_TEST_WANDB_REGISTRY", "model"),
        project=os.environ.get("DRIFTGATE_TEST_WANDB_PROJECT", "driftgate-contract-tests"),
        entity=os.environ.get("WANDB_ENTITY"),
        directory=tmp_path / "wandb",
    )
    return WandbRegistry(tmp_path / "registry", mirror), f"contract-{os.getpid()}-{time.time_ns()}"


def tamper(reg: LocalRegistry, version: ModelVersion, name: str, data: bytes) -> None:
    """Overwrite a stored file of ``version`` behind the registry's back (its folder, or its blob)."""
    if isinstance(reg, SqlRegistry):
        reg.objects.write(blob_key(version.digests[name]), data)
        return
    os.chmod(version.path / name, 0o644)
    (version.path / name).write_bytes(data)


def _mirror_agrees(reg: LocalRegistry, model: str) -> None:
    if reg.mirror is not None:
        expected = {a: v for a, v in reg.aliases(model).items() if a != "latest"}
        assert {a: v for a, v in reg.mirror.aliases(model).items() if a != "latest"} == expected


def test_contract_versions_are_immutable_and_verified(contract_registry: tuple[LocalRegistry, str]) -> None:
    reg, model = contract_registry
    v0 = reg.register(model, {"model.txt": BOOSTER_TEXT}, {"gate_passed": True}, actor="t", reason="first")
    v1 = reg.register(model, {"model.txt": BOOSTER_TEXT + b"#1"}, {}, actor="t", reason="second")
    assert [v.version for v in reg.versions(model)] == ["v0", "v1"]
    assert reg.read_file(v0, "model.txt") == BOOSTER_TEXT
    assert v0.digests["model.txt"] == hashlib.sha256(BOOSTER_TEXT).hexdigest()
    assert reg.aliases(model) == {"latest": "v1", "candidate": "v1"}
    _mirror_agrees(reg, model)
    tamper(reg, v1, "model.txt", b"tampered")
    with pytest.raises(IntegrityError, match="tampered or truncated"):
        reg.read_file(v1, "model.txt")
    with pytest.raises(IntegrityError, match=f"'model.txt' of {model}:v1"):
        reg.promote(model, "v1", actor="t", reason="must not reach production")
    assert "production" not in reg.aliases(model)


def test_contract_moves_are_conditional_and_ledgered(contract_registry: tuple[LocalRegistry, str]) -> None:
    reg, model = contract_registry
    for tag in range(3):
        reg.register(model, {"model.txt": BOOSTER_TEXT + bytes([tag])}, {}, actor="t", reason=f"r{tag}")
    reg.move_alias(model, "staging", "v1", expected=None, actor="ann", reason="stage", evidence="gate-1")
    with pytest.raises(AliasConflictError, match="points at v1"):
        reg.move_alias(model, "staging", "v2", expected=None, actor="bob", reason="stale")
    reg.promote(model, "v0", actor="gate", reason="first", expected_production=None)
    reg.promote(model, "v1", actor="gate", reason="better", evidence="gate-2")
    with pytest.raises(AliasConflictError, match="caller expected v0"):
        reg.promote(model, "v2", actor="gate", reason="stale view", expected_production="v0")
    reg.rollback(model, actor="ops", reason="bad day")
    note = reg.note(model, "audit", actor="auditor", reason="looked", evidence="report.md")
    assert note.moves == () and note.outcome == "applied"
    aliases = reg.aliases(model)
    assert (aliases["production"], aliases.get("previous-production")) == ("v0", None)
    assert aliases["staging"] == "v1"
    _mirror_agrees(reg, model)
    actions = [(e.action, e.outcome, e.actor) for e in reg.ledger(model)[3:]]
    assert actions == [
        ("move", "applied", "ann"),
        ("conflict", "rejected", "bob"),
        ("promote", "applied", "gate"),
        ("promote", "applied", "gate"),
        ("conflict", "rejected", "gate"),
        ("rollback", "applied", "ops"),
        ("audit", "applied", "auditor"),
    ]
    entries = reg.ledger(model)
    at = {e.seq: e.at for e in entries}
    assert reg.aliases_at(model, at[6]).get("production") == "v0"
    assert reg.aliases_at(model, at[7]).get("production") == "v1"
    assert reg.aliases_at(model, at[9]).get("production") == "v0"
    with pytest.raises(RegistryError, match="ledger note 'promote'"):
        reg.note(model, "promote", actor="t", reason="not a note")


# --- verification on the way to production, ledger notes, history from the CLI -----------------


def test_rollback_refuses_a_tampered_known_good_version_and_records_why(reg: LocalRegistry) -> None:
    _with_versions(reg, 2)
    reg.promote(MODEL, "v0", actor="gate", reason="r")
    reg.promote(MODEL, "v1", actor="gate", reason="r")
    path = reg.root / MODEL / "v0" / "model.txt"
    os.chmod(path, 0o644)
    path.write_bytes(b"tree\nevil\n")
    with pytest.raises(IntegrityError, match="car-loan:v0"):
        reg.rollback(MODEL, actor="ops", reason="try")
    assert reg.aliases(MODEL)[PRODUCTION] == "v1"
    last = reg.ledger(MODEL)[-1]
    assert (last.action, last.outcome) == ("rollback", "rejected")
    assert "v0 failed verification" in last.reason


def test_cli_history_at_answers_across_several_moves(reg: LocalRegistry, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from driftgate.cli import main

    home = tmp_path / "home"
    reg = LocalRegistry(home / "registry")
    _with_versions(reg, 3)
    script = [
        lambda: reg.promote(MODEL, "v0", actor="gate", reason="r"),
        lambda: reg.move_alias(MODEL, "canary", "v1", expected=None, actor="ops", reason="canary"),
        lambda: reg.promote(MODEL, "v1", actor="gate", reason="r"),
        lambda: reg.move_alias(MODEL, "canary", None, expected="v1", actor="ops", reason="done"),
        lambda: reg.promote(MODEL, "v2", actor="gate", reason="r"),
        lambda: reg.rollback(MODEL, actor="ops", reason="r"),
    ]
    moments = []
    for step in script:
        time.sleep(0.002)  # distinct ledger timestamps, so each moment names one state
        entry = step()
        moments.append(entry.at)
    expected = [
        {"production": "v0"},
        {"production": "v0", "canary": "v1"},
        {"production": "v1", "previous-production": "v0", "canary": "v1"},
        {"production": "v1", "previous-production": "v0"},
        {"production": "v2", "previous-production": "v1"},
        {"production": "v1", "previous-production": "v0"},
    ]
    runner = CliRunner()
    for moment, want in zip(moments, expected, strict=True):
        result = runner.invoke(main, ["history", "--home", str(home), "--model", MODEL, "--at", moment.isoformat()])
        assert result.exit_code == 0, result.output
        shown = dict(line.split() for line in result.output.splitlines()[1:])
        assert {k: v for k, v in shown.items() if k not in ("latest", "candidate")} == want, moment
    before = (moments[0] - timedelta(days=1)).replace(tzinfo=None).isoformat()
    result = runner.invoke(main, ["history", "--home", str(home), "--model", MODEL, "--at", before])
    assert result.exit_code == 0 and result.output.splitlines()[1:] == [
        f"  {alias:<20} {version}"
        for alias, version in sorted(reg.aliases_at(MODEL, moments[0] - timedelta(days=1)).items())
    ]


def test_rollback_is_conditional_on_the_production_the_operator_saw(reg: LocalRegistry) -> None:
    """Two operators who both saw v2 in production roll back at once: exactly one rollback applies."""
    import threading

    from tasks.core.errors import AliasConflictError

    _with_versions(reg, 3)
    for round_ in range(20):
        for version in ("v0", "v1", "v2"):
            reg.promote(MODEL, version, actor="gate", reason=f"round {round_}")
        seen = reg.aliases(MODEL)[PRODUCTION]
        start = threading.Barrier(2)
        outcomes: list[str] = []

        def operator(
            name: str, seen: str = seen, start: threading.Barrier = start, outcomes: list[str] = outcomes
        ) -> None:
            start.wait()
            try:
                reg.rollback(MODEL, actor=name, reason="race", expected_production=seen)
                outcomes.append("applied")
            except AliasConflictError:
                outcomes.append("refused")

        threads = [threading.Thread(target=operator, args=(f"ops-{i}",)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes) == ["applied", "refused"], (round_, outcomes)
        assert reg.aliases(MODEL)[PRODUCTION] == "v1"  # one step back from v2, never two
