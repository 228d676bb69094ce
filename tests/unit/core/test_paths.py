"""Paths in anything shared are relative to the home or the working directory, URLs keep no password."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.core.paths import ELLIPSIS, shareable
from tasks.core.settings import load_settings


def test_paths_under_the_home_are_relative_to_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert shareable(home / "reports" / "gate" / "v1.md", home) == "reports/gate/v1.md"
    assert shareable(str(home / "inputs" / "d1.parquet"), home) == "inputs/d1.parquet"


def test_paths_under_the_working_directory_stay_as_typed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert shareable(tmp_path / "batches" / "d1.parquet", tmp_path / "elsewhere") == "batches/d1.parquet"
    assert shareable("batches/d1.parquet", tmp_path / "elsewhere") == "batches/d1.parquet"


def test_other_absolute_paths_keep_only_their_tail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    shown = shareable("/srv/users/alice/data/batches/d1.parquet", tmp_path / "home")
    assert shown == f"{ELLIPSIS}/batches/d1.parquet"
    assert "alice" not in shown


def test_urls_are_kept_without_credentials() -> None:
    home = Path("/x")
    assert shareable("s3://bucket/batches/d1.parquet", home) == "s3://bucket/batches/d1.parquet"
    assert shareable("https://user:secret@host/d1.csv", home) == "https://user:***@host/d1.csv"


def test_the_setting_keeps_absolute_paths(tmp_path: Path) -> None:
    outside = "/srv/users/alice/d1.parquet"
    assert load_settings(home=tmp_path).shareable(outside) == f"{ELLIPSIS}/alice/d1.parquet"
    assert load_settings(home=tmp_path, share_absolute_paths=True).shareable(outside) == outside
