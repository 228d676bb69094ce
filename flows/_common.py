"""Shared flow plumbing: building the workspace from flow parameters and stage banners."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger

from tasks.settings import load_settings
from tasks.workspace import Workspace, open_workspace


def workspace(home: str | None = None, config: str | None = None, model: str | None = None) -> Workspace:
    settings = load_settings(Path(config) if config else None, home=home, model_name=model)
    return open_workspace(settings)


def banner(text: str) -> None:
    get_run_logger().info("── %s ──", text)
