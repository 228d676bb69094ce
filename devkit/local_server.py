"""A local Prefect server, work pool, deployments and process worker on 127.0.0.1, started and stopped by PID.

Used by the integration tests and the event-latency benchmark; also handy to try the deployments by hand:

    with LocalPrefect.start(Path("/tmp/prefect-home")) as prefect:
        prefect.create_pool("driftgate", queues={"urgent": 1, "normal": 2, "low": 3})
        prefect.create_global_limit("driftgate-retrain", 1)   # one retrain at a time across the deployments
        prefect.deploy_all(Path("."))
        prefect.start_worker("driftgate", env={"DRIFTGATE_HOME": "/tmp/home"})

Every process is started in its own session with the real interpreter (no shell wrapper), so stopping it
signals exactly that process group, plus any descendant that moved to a session of its own (the process
worker isolates each flow run that way).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Self

from tasks.core.errors import OrchestrationError

if TYPE_CHECKING:
    from prefect._internal.concurrency.services import QueueService

TELEMETRY_OFF = {"DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
# Quiet server defaults for a short-lived local server: no UI bundle to prepare, events persisted quickly
# so that they can be read back within a second, and no scheduler creating runs nobody asked for.
LOCAL_SERVER_ENV = {
    "PREFECT_SERVER_UI_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": "0.5",
}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class ManagedProcess:
    """A process this module started: its command, real PID and log file."""

    name: str
    command: list[str]
    process: subprocess.Popen[bytes]
    log_path: Path
    _log: IO[bytes] = field(repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM the process group (and descendants in other sessions), SIGKILL what outlives the timeout."""
        descendants = _descendants(self.pid)
        if self.running():
            _signal_group(self.pid, signal.SIGTERM)
        for pid in descendants:
            _signal_pid(pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(self.pid, signal.SIGKILL)
            self.process.wait(timeout=timeout)
        deadline = time.monotonic() + timeout
        for pid in descendants:
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            _signal_pid(pid, signal.SIGKILL)
        # The group may hold children that ignored SIGTERM after their parent exited.
        _signal_group(self.pid, signal.SIGKILL)
        self._log.close()
        return self.process.returncode

    def kill(self, timeout: float = 15.0) -> list[int]:
        """SIGKILL the process group and every descendant at once (a machine that died: no cleanup, no
        goodbye to the server); returns the PIDs killed besides the process itself."""
        descendants = _descendants(self.pid)
        _signal_group(self.pid, signal.SIGKILL)
        for pid in descendants:
            _signal_pid(pid, signal.SIGKILL)
        self.process.wait(timeout=timeout)
        deadline = time.monotonic() + timeout
        while any(_alive(pid) for pid in descendants) and time.monotonic() < deadline:
            time.sleep(0.1)
        self._log.close()
        return descendants


def _descendants(pid: int) -> list[int]:
    try:
        import psutil
    except ImportError:  # the group signal still reaches every child that stayed in the session
        return []
    try:
        return [child.pid for child in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def _signal_group(pid: int, sig: signal.Signals) -> None:
    # start_new_session made the process its group's leader, so its pgid is its pid even after it exits.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _signal_pid(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


@dataclass
class LocalPrefect:
    """A Prefect server on 127.0.0.1 with its own PREFECT_HOME (SQLite), and the workers started against it."""

    api_url: str
    prefect_home: Path
    server: ManagedProcess
    base_env: dict[str, str]
    workers: list[ManagedProcess] = field(default_factory=list)

    # --- lifecycle ---------------------------------------------------------------------
    @classmethod
    def launch(
        cls, prefect_home: Path, *, port: int | None = None, server_env: Mapping[str, str] | None = None
    ) -> Self:
        """Start `prefect server start` without waiting for it; call `wait_healthy` before using the API."""
        prefect_home.mkdir(parents=True, exist_ok=True)
        port = port or free_port()
        api_url = f"http://127.0.0.1:{port}/api"
        base_env = {
            **_inherited_env(),
            **TELEMETRY_OFF,
            "PREFECT_HOME": str(prefect_home),
            "PREFECT_API_URL": api_url,
        }
        env = {**base_env, **LOCAL_SERVER_ENV, **(server_env or {})}
        command = [*prefect_cli(), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
        server = _spawn("prefect-server", command, env=env, log_path=prefect_home / "server.log", cwd=prefect_home)
        return cls(api_url=api_url, prefect_home=prefect_home, server=server, base_env=base_env)

    @classmethod
    def start(
        cls,
        prefect_home: Path,
        *,
        port: int | None = None,
        server_env: Mapping[str, str] | None = None,
        startup_timeout: float = 120.0,
    ) -> Self:
        """Start the server and wait until /api/health answers (16-21 s on a fresh SQLite database)."""
        local = cls.launch(prefect_home, port=port, server_env=server_env)
        try:
            local.wait_healthy(startup_timeout)
        except BaseException:
            local.stop()
            raise
        return local

    def wait_healthy(self, timeout: float = 120.0) -> float:
        """Block until the API is healthy; returns the seconds waited."""
        started = time.monotonic()
        while True:
            if not self.server.running():
                raise OrchestrationError(
                    f"prefect server exited with code {self.server.process.returncode} before it was healthy "
                    f"(log {self.server.log_path}):\n{self.server.log_tail()}"
                )
            if _healthy(self.api_url):
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise OrchestrationError(
                    f"prefect server at {self.api_url} not healthy after {timeout:.0f} s "
                    f"(log {self.server.log_path}):\n{self.server.log_tail()}"
                )
            time.sleep(0.25)

    def stop(self) -> None:
        """Stop the workers first (they would log connection errors), then the server."""
        for worker in reversed(self.workers):
            worker.stop()
        self.workers.clear()
        self.server.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- setup ---------------------------------------------------------------------------
    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment of a process that talks to this server."""
        return {**self.base_env, **(extra or {})}

    def create_pool(self, name: str, *, pool_type: str = "process", queues: Mapping[str, int] | None = None) -> None:
        """Create a work pool and its queues (name → priority, 1 first); existing ones are left as they are."""
        from prefect.client.orchestration import SyncPrefectClient
        from prefect.client.schemas.actions import WorkPoolCreate
        from prefect.exceptions import ObjectAlreadyExists
        from prefect.workers.process import ProcessWorker

        if pool_type != "process":
            raise OrchestrationError(f"work pool {name!r}: only the 'process' type is supported here, not {pool_type}")
        with SyncPrefectClient(self.api_url) as client:
            with contextlib.suppress(ObjectAlreadyExists):
                client.create_work_pool(
                    WorkPoolCreate(
                        name=name,
                        type=pool_type,
                        base_job_template=ProcessWorker.get_default_base_job_template(),
                    )
                )
            for queue, priority in sorted((queues or {}).items(), key=lambda item: item[1]):
                with contextlib.suppress(ObjectAlreadyExists):
                    client.create_work_queue(name=queue, work_pool_name=name, priority=priority)

    def create_global_limit(self, name: str, limit: int) -> None:
        """Create (or reset to ``limit``) a global concurrency limit, such as the retrain slot."""
        from prefect.client.orchestration import SyncPrefectClient

        with SyncPrefectClient(self.api_url) as client:
            client.upsert_global_concurrency_limit_by_name(name, limit)

    def prefect(self, *args: str, cwd: Path, timeout: float = 180.0, env: Mapping[str, str] | None = None) -> str:
        """Run a prefect CLI command against this server; returns its output, raises with it on failure."""
        command = [*prefect_cli(), *args]
        # `{{ $PWD }}` in prefect.yaml reads the PWD variable, which a subprocess started with cwd= does not update.
        run_env = self.env({"PWD": str(cwd.resolve()), **(env or {})})
        try:
            result = subprocess.run(
                command, cwd=cwd, env=run_env, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise OrchestrationError(f"`{' '.join(command)}` did not finish within {timeout:.0f} s") from exc
        output = result.stdout + result.stderr
        if result.returncode != 0:
            raise OrchestrationError(f"`{' '.join(command)}` failed with code {result.returncode}:\n{output[-4000:]}")
        return output

    def deploy_all(self, project_dir: Path, timeout: float = 180.0) -> str:
        """`prefect --no-prompt deploy --all` from the directory holding prefect.yaml."""
        if not (project_dir / "prefect.yaml").is_file():
            raise OrchestrationError(f"no prefect.yaml in {project_dir}")
        return self.prefect("--no-prompt", "deploy", "--all", cwd=project_dir, timeout=timeout)

    def start_worker(
        self,
        pool: str,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        query_seconds: float = 1.0,
        prefetch_seconds: float = 2.0,
        name: str | None = None,
        limit: int | None = None,
    ) -> ManagedProcess:
        """Start a process worker polling `pool` every `query_seconds` (Prefect's default is 10 s), running at
        most `limit` flow runs at once (default: no limit)."""
        worker_name = name or f"{pool}-worker-{len(self.workers) + 1}"
        command = [*prefect_cli(), "worker", "start", "--pool", pool, "--type", "process", "--name", worker_name]
        if limit is not None:
            command += ["--limit", str(limit)]
        worker_env = self.env(
            {
                "PREFECT_WORKER_QUERY_SECONDS": str(query_seconds),
                "PREFECT_WORKER_PREFETCH_SECONDS": str(prefetch_seconds),
                **(env or {}),
            }
        )
        worker = _spawn(
            worker_name,
            command,
            env=worker_env,
            log_path=self.prefect_home / f"{worker_name}.log",
            cwd=cwd or self.prefect_home,
        )
        self.workers.append(worker)
        return worker

    def wait_for_worker(self, pool: str, timeout: float = 60.0) -> float:
        """Block until a worker has sent its first heartbeat for `pool`; returns the seconds waited."""
        from prefect.client.orchestration import SyncPrefectClient

        started = time.monotonic()
        with SyncPrefectClient(self.api_url) as client:
            while not client.read_workers_for_work_pool(pool):
                dead = [w for w in self.workers if not w.running()]
                if dead:
                    raise OrchestrationError(
                        f"worker {dead[0].name} exited with code {dead[0].process.returncode} "
                        f"(log {dead[0].log_path}):\n{dead[0].log_tail()}"
                    )
                if time.monotonic() - started > timeout:
                    raise OrchestrationError(f"no worker joined pool {pool!r} at {self.api_url} in {timeout:.0f} s")
                time.sleep(0.25)
        return time.monotonic() - started

    def logs(self, lines: int = 40) -> str:
        """The tail of every log, for a failure message."""
        parts = [f"--- {p.name} ({p.log_path})\n{p.log_tail(lines)}" for p in (self.server, *self.workers)]
        return "\n".join(parts)


@contextlib.contextmanager
def client_settings(api_url: str) -> Iterator[None]:
    """Point this process's Prefect client (flows, events, logs) at `api_url` for the duration.

    Prefect keeps one events worker and one log worker per process, bound to the API they first saw; they are
    drained on entry and exit so that this block, and whatever runs after it, talk to their own server.
    """
    import prefect.context
    from prefect.events.clients import PrefectEventsClient
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.settings import PREFECT_API_URL, temporary_settings

    _drain_client_workers(EventsWorker, APILogWorker)
    EventsWorker.set_client_override(PrefectEventsClient, api_url=api_url)
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(temporary_settings(updates={PREFECT_API_URL: api_url}))
            # Code that runs in a context copied before this block (threads of the global loop) sees the
            # process-global settings context, so point that one at the server too.
            stack.enter_context(
                prefect.context._temporary_global_settings_context(prefect.context.get_settings_context())
            )
            yield
    finally:
        _drain_client_workers(EventsWorker, APILogWorker)
        EventsWorker.set_client_override(None)


def _drain_client_workers(*services: type[QueueService[Any]]) -> None:
    import inspect

    for service in services:
        result = service.drain_all(timeout=10)
        if inspect.iscoroutine(result):  # only from async code, where this helper is not used
            result.close()


def prefect_cli() -> list[str]:
    """The prefect CLI of this interpreter, run directly so that the started PID is the real process."""
    return [sys.executable, "-m", "prefect"]


def _inherited_env() -> dict[str, str]:
    # A PREFECT_* variable of the caller (an API key, a profile, another server's URL) must not leak in.
    return {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}


def _spawn(name: str, command: list[str], *, env: Mapping[str, str], log_path: Path, cwd: Path) -> ManagedProcess:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("ab")
    try:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        log.close()
        raise OrchestrationError(f"cannot start {name}: `{' '.join(command)}`: {exc}") from exc
    return ManagedProcess(name=name, command=command, process=process, log_path=log_path, _log=log)


def _healthy(api_url: str) -> bool:
    # A proxy from the environment must not see (or break) a request to 127.0.0.1.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{api_url}/health", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False
