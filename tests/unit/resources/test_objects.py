"""One contract for every object store (a folder, fsspec's memory file system, an S3-API stand-in), and the batch
lake on each: what one worker writes another reads whole, listings are fresh, keys stay under the root."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from tasks.core.errors import ConfigError, TrainingError
from tasks.data.contract import ModelContract
from tasks.resources.lake import BatchLake
from tasks.resources.objects import FolderStore, FsspecStore, ObjectStore, open_store
from tests.support.s3 import S3StandIn, s3_credentials, s3_stand_in

__all__ = ["s3_credentials", "s3_stand_in"]  # fixtures

# The S3 stand-in (a local moto server) in the slow tier; the inner loop keeps it through the two homes sharing a lake.
KINDS = ["folder", "memory", pytest.param("s3", marks=pytest.mark.slow)]
Opener = Callable[[], ObjectStore]  # a new store on the same location: another worker's view


@pytest.fixture(params=KINDS)
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    kind = request.param
    if kind == "folder":
        return lambda: open_store(tmp_path / "objects")
    if kind == "memory":
        url = f"memory://driftgate-{uuid.uuid4().hex[:8]}/objects"
        return lambda: open_store(url)
    request.getfixturevalue("s3_credentials")
    s3: S3StandIn = request.getfixturevalue("s3_stand_in")
    url = f"s3://{s3.bucket()}/shared/objects"
    return lambda: open_store(url, s3.options)


def test_an_object_is_read_back_whole_and_replaced_whole(opener: Opener) -> None:
    store = opener()
    store.write("car-loan/day-01.parquet", b"first")
    store.write("car-loan/day-01.parquet", b"second, longer")
    assert store.read("car-loan/day-01.parquet") == b"second, longer"
    assert store.exists("car-loan/day-01.parquet") and not store.exists("car-loan/day-02.parquet")
    with pytest.raises(FileNotFoundError):
        store.read("car-loan/day-02.parquet")


def test_listings_are_sorted_by_prefix_and_see_another_workers_writes(opener: Opener) -> None:
    one, other = opener(), opener()
    assert one.list_keys() == []
    one.write("b/2.bin", b"2")
    one.write("a/1.bin", b"1")
    assert other.list_keys() == ["a/1.bin", "b/2.bin"]  # a second view, after the writes, sees them
    other.write("a/0.bin", b"0")
    assert one.list_keys("a") == ["a/0.bin", "a/1.bin"] and one.read("a/0.bin") == b"0"
    one.delete("a/0.bin")
    one.delete("a/0.bin")  # deleting what is gone is done
    assert other.list_keys() == ["a/1.bin", "b/2.bin"]


@pytest.mark.parametrize("key", ["", "/abs", "../escape", "a/../b", "a//b", "a\\b", "./a"])
def test_keys_stay_under_the_root(opener: Opener, key: str) -> None:
    with pytest.raises(ValueError, match="not a relative path"):
        opener().write(key, b"x")


def test_concurrent_writers_of_one_key_leave_one_whole_object(opener: Opener) -> None:
    store = opener()
    payloads = [bytes([i]) * 200_000 for i in range(4)]
    start = threading.Barrier(len(payloads))

    def write(data: bytes) -> None:
        start.wait()
        store.write("race.bin", data)

    threads = [threading.Thread(target=write, args=(p,)) for p in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.read("race.bin") in payloads
    assert store.list_keys() == ["race.bin"]  # no temporary left behind, none listed


def test_a_file_system_that_is_not_installed_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no file system for 'nosuch'"):
        FsspecStore("nosuch://bucket/prefix")
    assert isinstance(open_store("file:///tmp/x"), FolderStore)


CONTRACT = ModelContract.model_validate(
    {
        "name": "toy",
        "target": "y",
        "entity_id": "id",
        "timestamp": "ts",
        "features": [{"name": "x", "kind": "numeric"}],
    }
)


def _batch(first: int, day: int, labelled: bool) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": list(range(first, first + 3)),
            "ts": [datetime(2026, 1, day, h, tzinfo=UTC) for h in (1, 2, 3)],
            "x": [0.1, 0.2, 0.3],
            "y": [1, 0, 1] if labelled else [None, None, None],
        },
        schema_overrides={"y": pl.Int64},
    )


def test_the_lake_on_every_store_keeps_batches_for_a_retrain_elsewhere(opener: Opener) -> None:
    worker_a, worker_b = BatchLake(opener()), BatchLake(opener())
    with pytest.raises(TrainingError, match="no monitored batches in"):
        worker_b.window(CONTRACT)
    worker_a.save("day-01", _batch(0, 1, labelled=True))
    worker_a.save("day-02", _batch(10, 2, labelled=False))
    assert worker_b.batch_ids() == ["day-01", "day-02"]
    assert worker_b.read("day-02").equals(_batch(10, 2, labelled=False))
    window = worker_b.window(CONTRACT, start=datetime(2026, 1, 1, tzinfo=UTC))
    assert window.get_column("id").to_list() == [0, 1, 2]  # labelled rows only, time-ordered
    worker_b.save("day-02", _batch(10, 2, labelled=True))  # labels arrived: the batch is replaced whole
    assert worker_a.window(CONTRACT).height == 6


def test_two_homes_sharing_an_s3_artifact_store_share_the_lake(
    tmp_path: Path, s3_stand_in: S3StandIn, s3_credentials: None
) -> None:
    """Two workers, each with its own home (registry cache, reports, local files), one artifact_store URL."""
    from tasks.core.settings import load_settings
    from tasks.resources.workspace import open_workspace

    url = f"s3://{s3_stand_in.bucket()}/driftgate"
    homes = []
    for name in ("worker-a", "worker-b"):
        settings = load_settings(
            home=str(tmp_path / name),
            model_name="toy",
            tracking_mode="disabled",
            artifact_store=url,
            artifact_store_options=s3_stand_in.options,
        )
        homes.append(open_workspace(settings))
    a, b = homes
    try:
        a.lake.save("day-01", _batch(0, 1, labelled=True))
        assert b.lake.batch_ids() == ["day-01"] and b.lake.location == f"{url}/batches/toy"
        assert not (tmp_path / "worker-a" / "batches").exists()  # nothing on the worker's own disk
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("nosuch://bucket/x", "nosuch:// is not a file system fsspec knows"),
        ("gs://bucket/x", "needs the gcsfs package"),
    ],
)
def test_an_artifact_store_that_cannot_work_is_refused_when_the_settings_load(url: str, message: str) -> None:
    from tasks.core.errors import ConfigError
    from tasks.core.settings import load_settings

    with pytest.raises(ConfigError, match=message) as refused:
        load_settings(artifact_store=url)
    assert "artifact_store" in str(refused.value).lower()  # names the setting
