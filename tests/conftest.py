from __future__ import annotations

import os

# Telemetry off and no stray network for every test process (set before any library import).
os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_ERROR_REPORTING", "false")
os.environ.setdefault("WANDB__DISABLE_STATS", "true")
os.environ.setdefault("WANDB__DISABLE_MACHINE_INFO", "true")
os.environ.setdefault("WANDB_SILENT", "true")
for _key in [k for k in os.environ if k.startswith("DRIFTGATE_")]:
    del os.environ[_key]


import uuid  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Any]:
    """One real PostgreSQL cluster on 127.0.0.1 for the test session (devkit/postgres.py)."""
    from devkit.postgres import PostgresCluster

    with PostgresCluster.start() as cluster:
        yield cluster


def fresh_database(cluster: Any) -> str:
    """Create a new, empty database in ``cluster``; returns its SQLAlchemy URL (psycopg 3)."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(
        host="127.0.0.1", port=cluster.port, user=cluster.user, dbname="driftgate", autocommit=True
    ) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return str(cluster.url).rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture
def postgres_url(postgres_cluster: Any) -> str:
    """A fresh, empty database in the session's cluster: its SQLAlchemy URL."""
    return fresh_database(postgres_cluster)
