"""A throwaway PostgreSQL cluster on 127.0.0.1 for tests and benchmarks (not shipped).

`initdb` into a fresh folder, `pg_ctl start` on a free port with its socket in that folder, one database; stopped
(fast shutdown) and the folder left to the caller's temporary directory. PostgreSQL refuses to run as root, so as
root the cluster runs as the `postgres` system user (`runuser`), which owns the folder. The binaries come from
the OS package (`scripts/_setup.sh` installs `postgresql` with apt-get when they are missing).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from tasks.core.errors import OrchestrationError

DATABASE = "driftgate"


def pg_bin(tool: str) -> str:
    """The path of a PostgreSQL server tool: on PATH, else the newest /usr/lib/postgresql/<v>/bin."""
    found = shutil.which(tool)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{tool}"), key=lambda p: int(Path(p).parts[4]))
    if not candidates:
        raise OrchestrationError(f"PostgreSQL's {tool} is not installed (scripts/_setup.sh installs 'postgresql')")
    return candidates[-1]


def _client_bin(tool: str) -> str:
    try:
        return pg_bin(tool)
    except OrchestrationError:
        return tool


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresCluster:
    folder: Path
    port: int
    user: str
    owns_folder: bool = False

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the cluster's database (psycopg 3, TCP on loopback, trust authentication)."""
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{DATABASE}"

    @classmethod
    def start(cls, folder: Path | None = None, *, timeout: float = 60.0) -> Self:
        """Start a cluster in ``folder`` (default: a new folder under the system temporary directory, removed on
        stop: pytest's own folders are private to root, where the postgres user cannot reach)."""
        owns = folder is None
        folder = Path(tempfile.mkdtemp(prefix="driftgate-pg-")) if folder is None else folder
        folder.mkdir(parents=True, exist_ok=True)
        data = folder / "data"
        as_root = os.geteuid() == 0
        user = "postgres" if as_root else os.environ.get("USER", "postgres")
        if as_root:
            shutil.chown(folder, user="postgres")
        port = _free_port()
        cls._run([pg_bin("initdb"), "-D", str(data), "-U", user, "-A", "trust", "-E", "UTF8", "--no-sync"], as_root)
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off -c full_page_writes=off"
        cls._run(
            [pg_bin("pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"), "-o", options, "-w", "-t",
             str(int(timeout)), "start"],
            as_root,
        )  # fmt: skip
        cluster = cls(folder=folder, port=port, user=user, owns_folder=owns)
        deadline = time.monotonic() + timeout
        while True:
            done = subprocess.run(
                [_client_bin("createdb"), "-h", "127.0.0.1", "-p", str(port),
                 "-U", user, DATABASE],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if done.returncode == 0:
                return cluster
            if time.monotonic() > deadline:
                cluster.stop()
                raise OrchestrationError(f"createdb on 127.0.0.1:{port} failed: {done.stderr.strip()}")
            time.sleep(0.2)

    def stop(self) -> None:
        self._run(
            [pg_bin("pg_ctl"), "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop"],
            os.geteuid() == 0,
            check=False,
        )
        if self.owns_folder:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @staticmethod
    def _run(command: list[str], as_root: bool, *, check: bool = True) -> None:
        if as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if check and done.returncode != 0:
            raise OrchestrationError(f"`{' '.join(command)}` failed: {(done.stdout + done.stderr).strip()[-1500:]}")
