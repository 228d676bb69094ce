"""Shared flow plumbing: building the workspace from flow parameters, stage banners, the retrain slot.

Imports no Prefect at module level: the direct-mode bodies (flows/bodies.py) open their workspace here too."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from tasks.core.settings import load_settings
from tasks.resources.workspace import Workspace, open_home


def workspace(
    home: str | None = None, config: str | None = None, model: str | None = None
) -> AbstractContextManager[Workspace]:
    """``with workspace(home, config, model) as ws:``: the home of a flow's parameters, closed however it ends."""
    return open_home(load_settings(config, home=home, model_name=model))


def banner(text: str) -> None:
    """A stage banner in the run log (the module's logger outside a run)."""
    _logger().info("── %s ──", text)


@contextmanager
def retrain_slot(name: str | None) -> Iterator[float | None]:
    """Hold one slot of the Prefect global concurrency limit ``name`` (waiting for it); yields the wait in seconds.

    Each retrain deployment already runs one flow at a time; this slot makes the priority deployments
    share one limit. Without the limit on the server (or without a name) nothing is held: yields None.
    """
    from prefect import get_client
    from prefect.concurrency.sync import concurrency
    from prefect.exceptions import ObjectNotFound

    logger = _logger()
    if name is None:
        yield None
        return
    try:
        with get_client(sync_client=True) as client:
            client.read_global_concurrency_limit_by_name(name)
    except ObjectNotFound:
        logger.info("no global concurrency limit %r on the server: retrains are limited per deployment only", name)
        yield None
        return
    started = time.monotonic()
    with concurrency(name, occupy=1, strict=True):
        waited = time.monotonic() - started
        logger.info("holding the retrain slot %r (waited %.1f s)", name, waited)
        yield waited


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The run logger inside a flow or task run, the module's logger outside one."""
    from prefect import get_run_logger
    from prefect.exceptions import MissingContextError

    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)
