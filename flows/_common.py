"""Shared flow plumbing: building the workspace from flow parameters, stage banners, the retrain slot.

Imports no Prefect at module level: the direct-mode bodies (flows/bodies.py) open their workspace here too."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from tasks.core.settings import load_settings
from tasks.resources.workspace import Workspace, open_home


def workspace(
    home: str | None = None, config: str | None = None, model: str | None = None
) -> AbstractContextManager[Workspace]:
    """``with workspace(home, config, model) as ws:``: the home of a flow's parameters, closed however it ends."""
    return open_home(load_settings(config, home=home, model_name=model))


def monitor_task_runner() -> Any:
    """The monitor flow's task runner, from the environment when the flow is defined (settings
    ``dask_address`` and ``monitor_concurrency``, as DRIFTGATE_DASK_ADDRESS and DRIFTGATE_MONITOR_CONCURRENCY).

    Without a Dask address: Prefect's thread pool, ``monitor_concurrency`` threads (the polars and numpy work
    of profiling runs outside the GIL). ``local``: a local Dask cluster of that many single-threaded worker
    processes; an address (``tcp://host:8786``): that scheduler's workers, on any machine that has this
    project and reaches the home's store and artifact store. Task arguments travel pickled: a workspace as its
    settings (``Workspace.__reduce__``).
    """
    import os

    from prefect.task_runners import ThreadPoolTaskRunner

    concurrency = max(1, int(os.environ.get("DRIFTGATE_MONITOR_CONCURRENCY") or 1))
    address = (os.environ.get("DRIFTGATE_DASK_ADDRESS") or "").strip()
    if not address:
        return ThreadPoolTaskRunner(max_workers=concurrency)
    from prefect_dask import DaskTaskRunner

    if address == "local":
        return DaskTaskRunner(
            cluster_kwargs={
                "n_workers": concurrency,
                "threads_per_worker": 1,
                "processes": True,
                "dashboard_address": None,
            }
        )
    return DaskTaskRunner(address=address)


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
        held = time.monotonic()
        waited = held - started
        logger.info("holding the retrain slot %r (waited %.1f s)", name, waited)
        try:
            yield waited
        finally:  # with the line above, the run's logs show when it held the slot
            logger.info("releasing the retrain slot %r (held %.1f s)", name, time.monotonic() - held)


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The run logger inside a flow or task run, the module's logger outside one."""
    from prefect import get_run_logger
    from prefect.exceptions import MissingContextError

    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


# A tiny process that outlives a killed command: when the command's pid is gone, it stops the server.
_REAPER = """
import os, signal, sys, time
parent, child = int(sys.argv[1]), int(sys.argv[2])
def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
while alive(child):
    if os.getppid() != parent and not alive(parent):
        os.kill(child, signal.SIGTERM)
        for _ in range(50):
            if not alive(child):
                break
            time.sleep(0.1)
        else:
            os.kill(child, signal.SIGKILL)
        break
    time.sleep(0.5)
"""


def spawn_reaper(parent: int, child: int) -> int:
    """Start a watchdog that stops process ``child`` once process ``parent`` is gone (even by kill -9, which runs
    no atexit hook); it exits by itself when the child does. Returns the watchdog's pid."""
    import subprocess
    import sys

    process = subprocess.Popen(
        [sys.executable, "-c", _REAPER, str(parent), str(child)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C to the command's process group leaves the reaper to finish its job
    )
    return process.pid


def start_temporary_server() -> str:
    """Start Prefect's temporary (ephemeral) API server now, tied to this process; returns its API URL.

    Prefect 3.9 runs it as a uvicorn subprocess (``prefect.server.api.server.SubprocessASGIServer``, the one
    ``get_client()`` reuses) and stops it in an ``atexit`` hook. That hook runs on a normal exit, an exception
    and Ctrl-C, but not on SIGTERM/SIGHUP (Python's default action kills at once) nor on kill -9: the ~200 MB
    server was left behind with parent 1. Here SIGTERM and SIGHUP become SystemExit (so atexit runs), and a
    reaper process stops the server if this process dies without cleaning up.
    """
    import os
    import signal

    from prefect.server.api.server import SubprocessASGIServer

    def leave(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) in (signal.SIG_DFL, None):
            signal.signal(sig, leave)
    server = SubprocessASGIServer()
    if not server.running:
        # The reaper must watch the server from its first second: start() waits (8-26 s) for it to be healthy,
        # and a command killed meanwhile left it behind. Each uvicorn process start() launches gets one.
        launch = server._run_uvicorn_command

        def launch_and_reap() -> Any:
            process = launch()
            spawn_reaper(os.getpid(), process.pid)
            return process

        server._run_uvicorn_command = launch_and_reap  # type: ignore[method-assign]
    server.start()
    return server.api_url
