"""Object storage for what several workers share: a local folder by default, or any fsspec URL (``s3://`` with
driftgate's ``s3`` extra, ``gs://`` / ``az://`` with gcsfs / adlfs, ``memory://`` in tests).

Layout: an object is a key, a ``/``-separated relative path under the store's root (``car-loan/day-01.parquet``);
keys never hold ``..``, a leading ``/`` or a backslash, so nothing is written outside the root.

Atomicity: a reader sees an object whole, old or new, never a part.
- Folder: the bytes go to a temporary file beside the target (one per process and thread), then ``os.replace``.
- Object stores: one PUT per object, which S3, GCS and Azure Blob make visible only once complete (and S3 reads
  after a write are strongly consistent). Two writers of one key: the last complete PUT wins, as with
  ``os.replace``; the callers (the batch lake) write whole objects, never append.

Both implementations run the same contract suite (``tests/unit/resources/test_objects.py``): the folder, fsspec's
in-memory file system and an S3-API stand-in (moto's server) started by the test.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tasks.core.errors import ConfigError

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem


class ObjectStore(Protocol):
    @property
    def url(self) -> str:
        """Where the objects live, for messages (a folder path or a URL without credentials)."""
        ...

    def read(self, key: str) -> bytes:
        """The object's bytes; FileNotFoundError when there is none."""
        ...

    def write(self, key: str, data: bytes) -> None: ...

    def list_keys(self, prefix: str = "") -> list[str]:
        """Every key under ``prefix`` (a folder-like prefix, "" for all), sorted."""
        ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None: ...


def check_key(key: str) -> str:
    """``key`` if it is a safe relative key, else ValueError (see the module docstring)."""
    parts = key.split("/")
    if not key or key.startswith("/") or "\\" in key or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"object key {key!r} is not a relative path of plain names")
    return key


class FolderStore:
    """Objects as files under a local folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def url(self) -> str:
        return str(self.root)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def read(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def write(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def list_keys(self, prefix: str = "") -> list[str]:
        base = self._path(prefix) if prefix else self.root
        if not base.is_dir():
            return []
        found = [p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file()]
        return sorted(k for k in found if not k.rsplit("/", 1)[-1].startswith("."))  # temporaries are hidden

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


class FsspecStore:
    """Objects at an fsspec URL; ``options`` go to the file system (e.g. ``{"endpoint_url": ...}`` for an S3-API
    service). Credentials come from the environment as each library reads them (AWS_ACCESS_KEY_ID, ...), never
    from driftgate's settings."""

    def __init__(self, url: str, options: Mapping[str, Any] | None = None) -> None:
        from fsspec.core import url_to_fs

        self._url = url.rstrip("/")
        protocol = self._url.split("://", 1)[0]
        try:
            # A fresh instance (not fsspec's shared one) whose listings are read anew each time: another worker
            # may have written since.
            fs, root = url_to_fs(self._url, skip_instance_cache=True, **dict(options or {}))
        except (ImportError, ValueError) as exc:
            raise ConfigError(
                f"artifact_store {url!r}: no file system for {protocol!r} ({exc}); s3:// needs the `s3` extra "
                "(`uv sync --extra s3`), gs:// gcsfs, az:// adlfs"
            ) from exc
        self.fs: AbstractFileSystem = fs
        self.root = str(root).rstrip("/")

    @property
    def url(self) -> str:
        return self._url

    def _path(self, key: str) -> str:
        return f"{self.root}/{check_key(key)}"

    def read(self, key: str) -> bytes:
        try:
            return bytes(self.fs.cat_file(self._path(key)))
        except FileNotFoundError:
            raise
        except OSError as exc:  # some back ends report a missing object as a generic OSError
            if not self.exists(key):
                raise FileNotFoundError(f"{self._url}/{key}") from exc
            raise

    def write(self, key: str, data: bytes) -> None:
        self.fs.pipe_file(self._path(key), data)

    def list_keys(self, prefix: str = "") -> list[str]:
        base = self._path(prefix) if prefix else self.root
        self.fs.invalidate_cache(base)
        try:
            found = self.fs.find(base)
        except FileNotFoundError:
            return []
        root = self.root.rstrip("/") + "/"
        return sorted(str(p)[len(root) :] for p in found if str(p).startswith(root))

    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(self._path(key)))

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):  # deleting what is not there is done
            self.fs.rm_file(self._path(key))


def open_store(location: str | Path, options: Mapping[str, Any] | None = None) -> ObjectStore:
    """A folder for a path or ``file://`` URL, else the fsspec store of the URL."""
    text = str(location)
    if "://" not in text:
        return FolderStore(Path(text))
    if text.startswith("file://"):
        return FolderStore(Path(text[len("file://") :]))
    return FsspecStore(text, options)
