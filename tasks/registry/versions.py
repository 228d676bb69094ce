"""A model's immutable versions on disk: their names, their manifests, and the check that their files are
still the bytes that were registered.

A version folder ``v<N>`` holds the files as given plus ``manifest.json`` (sha256 of each, the metadata, the
creation time); ``.staging-<pid>-<hex>`` folders are versions still being written. Everything here reads or
removes files and needs no lock: a version never changes once renamed into place, so reading and verifying
it is independent of the ledger and its writer (:mod:`tasks.registry.writer`), which is why it lives apart.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from tasks.core.errors import IntegrityError, RegistryError
from tasks.core.timeutil import parse_utc
from tasks.registry.ledger import pid_alive, sha256_file
from tasks.registry.model import MANIFEST_FORMAT, MANIFEST_NAME, STAGING_PREFIX, ModelVersion

VERSION_RE: Final = re.compile(r"^v(0|[1-9][0-9]*)$")
NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def check_model(model: str) -> None:
    if not NAME_RE.match(model):
        raise RegistryError(f"invalid model name {model!r}: use letters, digits, '_', '.', '-' (no path separators)")


def check_file_name(model: str, name: str) -> None:
    if not NAME_RE.match(name) or name == MANIFEST_NAME:
        raise RegistryError(
            f"invalid file name {name!r} for model {model!r}: use letters, digits, '_', '.', '-' "
            f"(no directories) and not {MANIFEST_NAME!r}"
        )


def remove_abandoned_staging(model_dir: Path, keep: Path) -> None:
    for path in model_dir.glob(f"{STAGING_PREFIX}*"):
        pid_text = path.name[len(STAGING_PREFIX) :].split("-", 1)[0]
        if path != keep and pid_text.isdigit() and not pid_alive(int(pid_text)):
            shutil.rmtree(path, ignore_errors=True)


def scan_versions(model_dir: Path) -> list[ModelVersion]:
    found = []
    for path in model_dir.iterdir() if model_dir.is_dir() else ():
        if VERSION_RE.match(path.name) and (path / MANIFEST_NAME).is_file():
            found.append(load_version(model_dir.name, path.name, path))
    return sorted(found, key=lambda v: v.index)


def manifest_json(model: str, index: int, digests: Mapping[str, str], metadata: Mapping[str, Any]) -> bytes:
    """The manifest of version ``v<index>`` as stored (its sha256 goes into the ledger's register entry)."""
    manifest = {
        "format": MANIFEST_FORMAT,
        "model": model,
        "version": f"v{index}",
        "index": index,
        "created_at": datetime.now(UTC).isoformat(),
        "files": {name: {"sha256": digests[name]} for name in sorted(digests)},
        "metadata": dict(metadata),
    }
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()


def load_version(model: str, version: str, path: Path) -> ModelVersion:
    manifest_path = path / MANIFEST_NAME
    try:
        raw = manifest_path.read_bytes()
    except OSError as exc:
        raise IntegrityError(f"manifest {manifest_path} of {model}:{version} is unreadable: {exc}") from exc
    return parse_manifest(model, version, path, raw, str(manifest_path))


def parse_manifest(model: str, version: str, path: Path, raw: bytes, manifest_path: str) -> ModelVersion:
    """The version a manifest describes (``manifest_path`` names where it was read, for messages)."""
    try:
        manifest = json.loads(raw)
        loaded = ModelVersion(
            model=model,
            version=version,
            index=int(manifest["index"]),
            path=path,
            created_at=parse_utc(manifest["created_at"]),
            metadata=dict(manifest["metadata"]),
            digests={name: str(spec["sha256"]) for name, spec in manifest["files"].items()},
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"manifest {manifest_path} of {model}:{version} is unreadable: {exc}") from exc
    if manifest.get("model") != model or manifest.get("version") != version or loaded.index != int(version[1:]):
        raise IntegrityError(
            f"manifest {manifest_path} names {manifest.get('model')}:{manifest.get('version')}, "
            f"not {model}:{version}: the version directory was moved or tampered with"
        )
    return loaded


def read_version_file(version: ModelVersion, name: str) -> bytes:
    """The file's bytes, only if they still hash to the manifest's digest (read once, checked in memory)."""
    expected = version.digests.get(name)
    if expected is None:
        raise RegistryError(
            f"{version.model}:{version.version} has no file {name!r} (files: {sorted(version.digests)})"
        )
    path = version.path / name
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise IntegrityError(f"file {name!r} of {version.model}:{version.version} is missing ({path})") from exc
    return checked_bytes(version, name, data, str(path))


def checked_bytes(version: ModelVersion, name: str, data: bytes, where: str) -> bytes:
    """``data`` (file ``name`` of ``version``, read from ``where``) if it hashes to the manifest's digest."""
    actual = hashlib.sha256(data).hexdigest()
    expected = version.digests[name]
    if actual != expected:
        raise IntegrityError(
            f"file {name!r} of {version.model}:{version.version} ({where}) has sha256 {actual}, "
            f"manifest says {expected}: tampered or truncated"
        )
    return data


def verify_version(version: ModelVersion, recorded: str | None) -> None:
    """Raise IntegrityError unless the manifest is the one the ledger ``recorded`` and every file matches it."""
    label = f"{version.model}:{version.version}"
    manifest_path = version.path / MANIFEST_NAME
    try:
        manifest_sha = sha256_file(manifest_path)
    except FileNotFoundError as exc:
        raise IntegrityError(f"manifest of {label} is missing ({manifest_path})") from exc
    if recorded is not None and recorded != manifest_sha:
        raise IntegrityError(
            f"manifest {manifest_path} of {label} has sha256 {manifest_sha}, the ledger recorded {recorded} "
            "at registration: the manifest was rewritten"
        )
    on_disk = load_version(version.model, version.version, version.path)
    if on_disk.digests != version.digests:
        raise IntegrityError(f"manifest {manifest_path} of {label} no longer lists the digests it was loaded with")
    extra = sorted({p.name for p in version.path.iterdir()} - set(version.digests) - {MANIFEST_NAME})
    if extra:
        raise IntegrityError(f"{label} ({version.path}) holds files its manifest does not list: {extra}")
    for name, expected in sorted(version.digests.items()):
        path = version.path / name
        try:
            actual = sha256_file(path)
        except FileNotFoundError as exc:
            raise IntegrityError(f"file {name!r} of {label} is missing ({path})") from exc
        if actual != expected:
            raise IntegrityError(
                f"file {name!r} of {label} ({path}) has sha256 {actual}, manifest says {expected}: "
                "tampered or truncated"
            )
