"""The scheduled monitor reads the inbox under the configured home, whatever the worker's working directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.core.settings import load_settings
from tasks.resources.lake import batch_id_for
from tasks.resources.workspace import open_home
from tasks.stages.monitoring import select_batches


def test_no_patterns_means_the_homes_inbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    elsewhere = tmp_path / "worker-cwd"
    (elsewhere / "inbox").mkdir(parents=True)
    (elsewhere / "inbox" / "decoy.parquet").write_bytes(b"")
    monkeypatch.chdir(elsewhere)
    with open_home(load_settings(home=home, tracking_mode="disabled")) as ws:
        (home / "inbox").mkdir()
        for day in ("2026-11-01", "2026-11-02"):
            (home / "inbox" / f"{day}.parquet").write_bytes(b"")
        picked = select_batches(ws, None, only_new=True)
        assert [Path(p).name for p in picked] == ["2026-11-01.parquet", "2026-11-02.parquet"]
        assert all(Path(p).parent == home / "inbox" for p in picked)
        ws.store.record_batch(ws.model, batch_id_for(picked[0]), picked[0], 0, None, None, "monitored")
        assert [Path(p).name for p in select_batches(ws, [], only_new=True)] == ["2026-11-02.parquet"]


def test_an_absolute_inbox_setting_is_kept(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home", inbox=str(tmp_path / "drop" / "*.csv"))
    assert settings.inbox_pattern == str(tmp_path / "drop" / "*.csv")
    assert load_settings(home=tmp_path / "home").inbox_pattern == str(tmp_path / "home" / "inbox" / "*.parquet")
