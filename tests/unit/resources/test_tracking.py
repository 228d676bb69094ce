"""W&B tracking with the real wandb library, offline in a temporary directory (no network)."""

from __future__ import annotations

import json
import os
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tasks.core.errors import ConfigError, TrackingError
from tasks.core.settings import load_settings
from tasks.registry.local import LocalRegistry
from tasks.registry.model import MANIFEST_NAME, ModelVersion
from tasks.resources.tracking import WandbTracker, make_tracker, record_model_version

MODEL = "car-loan"
BOOSTER_TEXT = b"tree\nversion=v4\nnum_class=1\n\nTree=0\nnum_leaves=2\n"
_LEVELDB_BLOCK = 32768
_LEVELDB_HEADER = 7


@pytest.fixture(autouse=True)
def _wandb_state_in_tmp(monkeypatch: pytest.MonkeyPatch) -> None:
    # Register the variables with monkeypatch, then remove them, so that what the tracker sets is undone.
    for key in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR"):
        monkeypatch.setenv(key, "unset-by-test")
        monkeypatch.delenv(key)
    for key in ("WANDB_MODE", "WANDB_DIR", "WANDB_PROJECT", "WANDB_RUN_ID"):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture
def version(tmp_path: Path) -> ModelVersion:
    registry = LocalRegistry(tmp_path / "registry")
    return registry.register(
        MODEL,
        {"model.txt": BOOSTER_TEXT},
        {"params": {"num_leaves": 31}, "metrics": {"roc_auc": 0.81}},
        actor="test",
        reason="tracking test",
    )


def read_wandb_records(path: Path, timeout: float = 10.0) -> list[tuple[str, Any]]:
    """The records of a finished run's file. wandb-core may still be writing for a few ms after ``finish()``
    returns (seen here with several runs per process), so wait until the run's ``exit`` record is in."""
    from google.protobuf.message import DecodeError

    deadline = time.monotonic() + timeout
    while True:
        try:
            records = list(_decode_wandb_file(path))
            if records and records[-1][0] == "exit":
                return records
        except DecodeError:
            pass  # a record still being written
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} holds no complete run after {timeout} s")
        time.sleep(0.02)


def _decode_wandb_file(path: Path) -> Iterator[tuple[str, Any]]:
    """Decode a run-<id>.wandb file: LevelDB-log framing (7-byte header, 32 KiB blocks) of Record protobufs."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, pending = _LEVELDB_HEADER, b""
    while pos + _LEVELDB_HEADER <= len(data):
        left = _LEVELDB_BLOCK - pos % _LEVELDB_BLOCK
        if left < _LEVELDB_HEADER:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + _LEVELDB_HEADER])
        payload = data[pos + _LEVELDB_HEADER : pos + _LEVELDB_HEADER + length]
        pos += _LEVELDB_HEADER + length
        if kind == 0:
            break
        pending = payload if kind in (1, 2) else pending + payload
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending)
            kind_name = record.WhichOneof("record_type")
            yield kind_name, getattr(record, kind_name)


def _history(records: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for kind, body in records:
        if kind == "history":
            rows.append({"/".join(item.nested_key) or item.key: json.loads(item.value_json) for item in body.item})
    return rows


def test_offline_run_records_metrics_model_artifact_with_aliases_and_files(
    tmp_path: Path, version: ModelVersion
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import polars as pl

    report = tmp_path / "gate-report.md"
    report.write_text("# Gate\ncandidate v0 passes: delta AUC 0.012 [0.004, 0.020]\n")
    plot = tmp_path / "calibration.png"
    fig = plt.figure(figsize=(2, 2))
    plt.plot([0, 1], [0, 1])
    fig.savefig(plot)
    plt.close(fig)
    slices = pl.DataFrame({"slice": ["north", "south"], "roc_auc": [0.8, 0.77], "rows": [1200, 900]})

    directory = tmp_path / "wandb-home"
    tracker = WandbTracker(mode="offline", project="driftgate-test", entity=None, directory=directory)
    run = tracker.start_run(job_type="train", name="retrain-1", config={"window": Path("/data/w1"), "trials": 8})
    run.log({"valid_auc": 0.70}, step=0)
    run.log({"valid_auc": 0.75}, step=1)
    run.summary({"best_auc": 0.75})
    run.log_model(version, ["candidate", "latest"])
    run.log_file("gate-report", report)
    run.log_file("calibration", plot)
    run.log_table("slices", slices)
    run.finish()
    run.finish()  # idempotent

    assert run.dir is not None and run.dir.is_dir()
    assert run.dir.parent == directory / "wandb"
    assert run.dir.name.startswith("offline-run-") and run.dir.name.endswith(run.id)
    wandb_file = run.dir / f"run-{run.id}.wandb"
    assert wandb_file.is_file()
    records = read_wandb_records(wandb_file)
    kinds = [kind for kind, _ in records]
    assert kinds[:2] == ["header", "run"] and kinds[-1] == "exit"

    run_record = records[1][1]
    assert (run_record.project, run_record.job_type, run_record.display_name) == (
        "driftgate-test",
        "train",
        "retrain-1",
    )
    config = {item.key: json.loads(item.value_json) for item in run_record.config.update}
    assert config["window"] == "/data/w1" and config["trials"] == 8

    history = _history(records)
    assert [row["valid_auc"] for row in history if "valid_auc" in row] == [0.70, 0.75]
    assert any(row.get("calibration/_type") == "image-file" for row in history)
    assert any(row.get("slices/_type") == "table-file" for row in history)
    summary_keys = {"/".join(u.nested_key) or u.key for kind, body in records if kind == "summary" for u in body.update}
    assert "best_auc" in summary_keys

    artifacts = [body for kind, body in records if kind == "artifact" and body.type == "model"]
    assert len(artifacts) == 1
    artifact = artifacts[0]
    assert artifact.name == MODEL
    assert set(artifact.aliases) == {"candidate", "latest"}
    metadata = json.loads(artifact.metadata)
    assert metadata["registry_version"] == "v0"
    assert metadata["digests"] == version.digests
    assert metadata["metrics"] == {"roc_auc": 0.81}
    contents = {entry.path: entry for entry in artifact.manifest.contents}
    assert set(contents) == {"model.txt", MANIFEST_NAME}
    # Referenced in place: `wandb sync` uploads the registry's read-only bytes.
    assert contents["model.txt"].local_path == str(version.path / "model.txt")
    assert contents["model.txt"].size == len(BOOSTER_TEXT)

    files_dir = run.dir / "files"
    assert (files_dir / "gate-report.md").read_text() == report.read_text()
    assert list((files_dir / "media" / "images").glob("calibration_*.png"))
    table_files = list((files_dir / "media" / "table").glob("slices_*.table.json"))
    assert len(table_files) == 1
    table = json.loads(table_files[0].read_text())
    assert table["columns"] == ["slice", "roc_auc", "rows"]
    assert table["data"] == [["north", 0.8, 1200], ["south", 0.77, 900]]
    # W&B's own state (staging copies, core logs) stays in the tracker's directory.
    assert os.environ["WANDB_DATA_DIR"] == str(directory / "data")

    with pytest.raises(TrackingError, match="is finished"):
        run.log({"late": 1.0})


def test_several_runs_per_process_are_distinct(tmp_path: Path) -> None:
    tracker = WandbTracker(mode="offline", project="p", entity=None, directory=tmp_path / "wb")
    ids = []
    for index in range(2):
        with tracker.start_run(job_type="monitor", name=f"batch-{index}", config={"batch": index}) as run:
            run.log({"drift_share": 0.1 * index})
        ids.append(run.id)
        assert run.dir is not None and (run.dir / f"run-{run.id}.wandb").is_file()
    assert len(set(ids)) == 2


def test_disabled_mode_accepts_everything_and_writes_nothing(tmp_path: Path, version: ModelVersion) -> None:
    import polars as pl

    report = tmp_path / "report.md"
    report.write_text("# report")
    directory = tmp_path / "wandb-home"
    tracker = WandbTracker(mode="disabled", project="p", entity=None, directory=directory)
    run = tracker.start_run(job_type="train", name="quiet", config={"a": 1})
    assert run.dir is None and run.id
    run.log({"auc": 0.8}, step=0)
    run.summary({"auc": 0.8})
    run.log_model(version, ["candidate"])
    run.log_file("report", report)
    run.log_table("t", pl.DataFrame({"a": [1]}))
    with pytest.raises(TrackingError, match="is not a file"):
        run.log_file("missing", tmp_path / "nope.md")
    run.finish()
    assert not directory.exists()
    assert "WANDB_DATA_DIR" not in os.environ


def test_make_tracker_follows_settings_and_rejects_unknown_modes(tmp_path: Path, version: ModelVersion) -> None:
    settings = load_settings(home=tmp_path / "home", tracking_mode="disabled", wandb_project="proj")
    tracker = make_tracker(settings)
    assert isinstance(tracker, WandbTracker)
    assert (tracker.mode, tracker.project, tracker.directory) == ("disabled", "proj", settings.wandb_dir)
    with pytest.raises(ConfigError, match="DRIFTGATE_TRACKING_MODE='cloud'"):
        WandbTracker(mode="cloud", project="p", entity=None, directory=tmp_path)

    offline = load_settings(home=tmp_path / "home", tracking_mode="offline")
    run_dir = record_model_version(offline, version, ["candidate", "latest"])
    assert run_dir is not None and run_dir.parent == offline.wandb_dir / "wandb"
    (wandb_file,) = run_dir.glob("run-*.wandb")
    (artifact,) = [body for kind, body in read_wandb_records(wandb_file) if kind == "artifact"]
    assert (artifact.name, artifact.type, sorted(artifact.aliases)) == (MODEL, "model", ["candidate", "latest"])


def test_every_alias_move_of_a_promotion_and_rollback_reaches_the_offline_runs(tmp_path: Path) -> None:
    """Replaying the offline runs' artifact aliases in order (what `wandb sync` does) gives the ledger's aliases."""
    from devkit.promotion_home import MODEL as TOY
    from devkit.promotion_home import good_and_bad_models, make_home
    from tasks.resources.workspace import open_workspace
    from tasks.stages import promotion

    home = make_home(tmp_path / "home", tracking_mode="offline", emit_events=False)
    texts = good_and_bad_models()
    for name in ("good", "good2", "good"):
        home.register(texts[name] + ("\n" if name == "good" and home.registry.versions(TOY) else ""))
    ws = open_workspace(home.settings)
    try:
        promotion.promote(ws, "v0", actor="gate", reason="first", evidence=None)
        promotion.promote(ws, "v1", actor="gate", reason="second", evidence="gate-v1.md")
        promotion.promote(ws, "v2", actor="gate", reason="third", evidence="gate-v2.md")
        promotion.rollback(ws, actor="ops", reason="v2 misbehaves")
        ledger_aliases = ws.registry.aliases(TOY)
    finally:
        ws.close()
    runs = [read_wandb_records(f) for f in (home.settings.wandb_dir / "wandb").glob("offline-run-*/run-*.wandb")]
    assert len(runs) == 4  # one per promotion, one for the rollback
    # Directory names have one-second resolution: order the runs by their recorded start time.
    runs.sort(key=lambda records: records[1][1].start_time.ToNanoseconds())
    replayed: dict[str, str] = {}
    moves = 0
    for records in runs:
        for kind, body in records:
            if kind != "artifact":
                continue
            version = json.loads(body.metadata)["registry_version"]
            for alias in body.aliases:  # W&B moves an alias onto the version logged with it
                replayed[alias] = version
                moves += 1
    assert moves >= 10
    for alias in ("production", "previous-production"):
        assert replayed[alias] == ledger_aliases[alias]
    assert ledger_aliases["production"] == "v1" and ledger_aliases["previous-production"] == "v0"


@pytest.mark.parametrize("rows", [False, True])
def test_model_artifact_withholds_row_data_unless_asked(tmp_path: Path, rows: bool) -> None:
    """The W&B artifact carries the model, contract and verdict; the version's Parquet rows (the monitoring
    reference, the training-row keys) only with wandb_artifact_rows — their digests are always in the metadata."""
    from tasks.resources.workspace import REFERENCE_FILE
    from tasks.stages.retraining import TRAINING_ROWS_FILE

    assert REFERENCE_FILE.endswith(".parquet") and TRAINING_ROWS_FILE.endswith(".parquet")
    registry = LocalRegistry(tmp_path / "registry")
    files = {"model.txt": BOOSTER_TEXT, REFERENCE_FILE: b"PAR1 rows PAR1", TRAINING_ROWS_FILE: b"PAR1 keys PAR1"}
    version = registry.register(MODEL, files, {"metrics": {"roc_auc": 0.8}}, actor="test", reason="privacy")
    settings = load_settings(home=tmp_path / "home", tracking_mode="offline", wandb_artifact_rows=rows)
    run = make_tracker(settings).start_run(job_type="register", name="privacy", config={})
    run.log_model(version, ["candidate"])
    run.finish()
    assert run.dir is not None
    records = read_wandb_records(run.dir / f"run-{run.id}.wandb")
    (artifact,) = [body for kind, body in records if kind == "artifact" and body.type == "model"]
    contents = {entry.path for entry in artifact.manifest.contents}
    withheld = {REFERENCE_FILE, TRAINING_ROWS_FILE}
    assert contents == {"model.txt", MANIFEST_NAME} | (withheld if rows else set())
    metadata = json.loads(artifact.metadata)
    assert set(metadata["digests"]) == {"model.txt", *withheld}
    assert metadata["row_data"].startswith("included" if rows else "withheld")


def test_run_files_hold_no_local_paths(tmp_path: Path) -> None:
    """W&B's system metadata (host, user, program, working directory) stays out of the run unless
    share_absolute_paths asks for it; the run file is what a sync would upload."""
    run = WandbTracker(mode="offline", project="p", entity=None, directory=tmp_path).start_run(
        job_type="monitor", name="n", config={"a": 1}
    )
    run.finish()
    (run_file,) = tmp_path.glob("wandb/offline-run-*/run-*.wandb")
    deadline = time.monotonic() + 30  # wandb-core may still be writing the records it was handed
    while b"monitor" not in run_file.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.1)
    content = run_file.read_bytes()
    assert b"monitor" in content  # the run's own records are there ...
    assert os.getcwd().encode() not in content and str(Path.home()).encode() + b"/" not in content  # ... no paths
