"""SQL registries for the registry contract: SQLite + a folder, PostgreSQL (the session's throwaway cluster) + the
S3-API stand-in. Tests that use ``postgres+s3`` import the ``s3_credentials`` / ``s3_stand_in`` fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.registry.model import AliasMirror
from tasks.resources.objects import open_store
from tasks.resources.registry_sql import SqlRegistry

SQL_KINDS = ["sqlite+folder", "postgres+s3"]


def sql_location(request: pytest.FixtureRequest, tmp_path: Path, kind: str) -> tuple[str, str, dict[str, str]]:
    """(database URL, artifact store URL, its options) of a fresh registry of ``kind``."""
    if kind == "sqlite+folder":
        return f"sqlite:///{tmp_path / 'registry.db'}", str(tmp_path / "objects"), {}
    url = request.getfixturevalue("postgres_url")
    request.getfixturevalue("s3_credentials")
    s3 = request.getfixturevalue("s3_stand_in")
    return url, f"s3://{s3.bucket()}/shared", s3.options


def open_sql_registry(
    url: str, objects: str, options: dict[str, str], copies: Path, mirror: AliasMirror | None = None
) -> SqlRegistry:
    return SqlRegistry(url, open_store(objects, options), copies, mirror=mirror)


def sql_registry(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str, mirror: AliasMirror | None = None
) -> SqlRegistry:
    reg = open_sql_registry(*sql_location(request, tmp_path, kind), tmp_path / "copies", mirror)
    request.addfinalizer(reg.close)
    return reg
