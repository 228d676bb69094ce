"""Rollback drill: rehearse rollback and roll-forward on a sandbox copy of the registry, and time the restore.

The collection is copied (ledger first, then the immutable versions and annotations, so every
version the copied ledger names is present) into ``<home>/drills/<run>/``. In the sandbox the drill
rolls production back to previous-production, then promotes the original production again. After
each move it does what serving does: resolve ``production`` afresh, verify the version's digests,
load its LightGBM text and score one row of its own reference. Time-to-restore is the time from
the move to that scored row. Finally every version in the sandbox is verified. The real registry
is only read, plus one ``drill`` note in its ledger linking the report.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks.core.errors import DriftgateError, RegistryError
from tasks.core.records import FromDict, from_fields, many

if TYPE_CHECKING:
    from tasks.registry.local import LocalRegistry
    from tasks.registry.model import ModelVersion
    from tasks.resources.workspace import Workspace


@dataclass(frozen=True)
class DrillStep(FromDict):
    name: str  # "rollback" | "roll-forward"
    from_version: str | None
    to_version: str | None  # what production resolved to after the move
    expected_version: str | None
    seconds_to_restore: float  # move → fresh resolve → digests verified → model loaded → one row scored
    probability: float | None  # the score of that row

    @property
    def ok(self) -> bool:
        return self.to_version is not None and self.to_version == self.expected_version


@dataclass(frozen=True)
class DrillResult:
    model: str
    ok: bool
    at: datetime
    sandbox: str
    production: str | None
    previous_production: str | None
    steps: tuple[DrillStep, ...]
    versions_verified: int
    problems: tuple[str, ...]
    report_path: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DrillResult:
        """Rebuilt from its ``asdict`` form (a flow's result)."""
        return from_fields(cls, data, steps=many(DrillStep.from_dict))


def copy_collection(registry_root: Path, model: str, sandbox_root: Path) -> Path:
    """Copy one model's collection into ``sandbox_root`` (ledger first, so every version it names is copied).

    The sandbox's ledger anchor is made from the copied ledger (the real one may have moved on between the
    two copies); the caller checks the real ledger's chain before copying."""
    from tasks.registry.ledger import check_ledger, write_anchor
    from tasks.registry.model import ANNOTATIONS_DIR, LEDGER_NAME, STAGING_PREFIX

    source = Path(registry_root) / model
    if not source.is_dir():
        raise RegistryError(f"model {model!r} has no collection in registry {registry_root} to drill on")
    target = Path(sandbox_root) / model
    target.mkdir(parents=True)
    if (source / LEDGER_NAME).is_file():
        shutil.copy2(source / LEDGER_NAME, target / LEDGER_NAME)
        copied = check_ledger(target / LEDGER_NAME)
        if copied.chain_start is not None:
            write_anchor(target, copied.last_seq, copied.last_digest)
    for path in sorted(source.iterdir()):
        if path.is_dir() and not path.name.startswith(STAGING_PREFIX):
            shutil.copytree(path, target / path.name)
    if not (target / ANNOTATIONS_DIR).exists():
        (target / ANNOTATIONS_DIR).mkdir()
    return target


def serve_once(registry: LocalRegistry, model: str, *, num_threads: int = 1) -> tuple[ModelVersion, float]:
    """What serving does after an alias move: resolve production, verify, load, score one reference row."""
    import io

    import polars as pl
    import yaml

    from tasks.data.contract import ModelContract
    from tasks.resources.workspace import CONTRACT_FILE, MODEL_FILE, REFERENCE_FILE
    from tasks.training.train import predict_proba

    version = registry.resolve(model, "production")
    if version is None:
        raise RegistryError(f"model {model!r} has no production version in {registry.root}")
    registry.verify(version)
    text = registry.read_file(version, MODEL_FILE).decode()
    contract = ModelContract.model_validate(yaml.safe_load(registry.read_file(version, CONTRACT_FILE)))
    row = pl.read_parquet(io.BytesIO(registry.read_file(version, REFERENCE_FILE)), n_rows=1)
    return version, float(predict_proba(text, row, contract, num_threads=num_threads)[0])


def _timed_restore(
    registry: LocalRegistry, model: str, name: str, expected: str | None, move: Any, num_threads: int
) -> DrillStep:
    before = registry.aliases(model).get("production")
    started = time.perf_counter()
    move()
    served, probability = serve_once(registry, model, num_threads=num_threads)
    return DrillStep(name, before, served.version, expected, time.perf_counter() - started, probability)


def rehearse(registry: LocalRegistry, model: str, *, num_threads: int = 1) -> tuple[list[DrillStep], list[str]]:
    """Rollback then roll-forward in ``registry`` (a sandbox); returns the steps and any problems found."""
    aliases = registry.aliases(model)
    production, previous = aliases.get("production"), aliases.get("previous-production")
    problems: list[str] = []
    if production is None or previous is None:
        return [], [f"nothing to rehearse: production={production}, previous-production={previous}"]
    steps: list[DrillStep] = []
    try:
        steps.append(
            _timed_restore(
                registry,
                model,
                "rollback",
                previous,
                lambda: registry.rollback(model, actor="drill", reason="rollback drill (sandbox)"),
                num_threads,
            )
        )
        steps.append(
            _timed_restore(
                registry,
                model,
                "roll-forward",
                production,
                lambda: registry.promote(
                    model,
                    production,
                    actor="drill",
                    reason="roll-forward drill (sandbox)",
                    expected_production=previous,
                ),
                num_threads,
            )
        )
    except DriftgateError as exc:
        problems.append(f"drill step {len(steps) + 1} failed: {exc}")
    problems += [
        f"{s.name}: production resolved to {s.to_version}, expected {s.expected_version}" for s in steps if not s.ok
    ]
    return steps, problems


def drill_markdown(result: DrillResult) -> str:
    lines = [
        f"# Rollback drill {result.model} — {'PASSED' if result.ok else 'FAILED'}",
        "",
        f"At {result.at.isoformat()} on a sandbox copy ({result.sandbox}); the real registry was not moved.",
        f"Production {result.production}, previous-production {result.previous_production}.",
        "",
        "| step | production before | production after | expected | time to restore (s) | scored row |",
        "|---|---|---|---|---|---|",
    ]
    for s in result.steps:
        score = "n/a" if s.probability is None else f"{s.probability:.4f}"
        lines.append(
            f"| {s.name} | {s.from_version} | {s.to_version} | {s.expected_version} "
            f"| {s.seconds_to_restore:.3f} | {score} |"
        )
    lines += ["", f"Digests verified for {result.versions_verified} versions.", ""]
    lines += [f"- problem: {p}" for p in result.problems] or ["No problems found."]
    return "\n".join(lines) + "\n"


def run_drill(ws: Workspace, *, keep_sandbox: bool = False, now: datetime | None = None) -> DrillResult:
    """Copy the registry, rehearse rollback and roll-forward there, verify every digest, report, note in the ledger."""
    from tasks.registry.local import LocalRegistry
    from tasks.report.markdown import write_report
    from tasks.report.publish import artifact_key, publish
    from tasks.resources.registry_sql import SqlRegistry

    now = now or datetime.now(UTC)
    ws.registry.ledger(ws.model)  # a broken hash chain (LedgerIntegrityError) stops the drill before any copy
    sandbox_root = ws.settings.home / "drills" / f"{ws.model}-{now:%Y%m%dT%H%M%S%f}"
    real = ws.registry
    if isinstance(real, SqlRegistry):
        sandbox: LocalRegistry = real.sandbox(ws.model, sandbox_root)  # never mirrored either
    else:
        copy_collection(ws.settings.registry_dir, ws.model, sandbox_root)
        sandbox = LocalRegistry(sandbox_root)  # never mirrored: a drill must not touch W&B
    aliases = sandbox.aliases(ws.model)
    try:
        steps, problems = rehearse(sandbox, ws.model, num_threads=ws.settings.num_threads)
        verified = 0
        for version in sandbox.versions(ws.model):
            try:
                sandbox.verify(version)
                verified += 1
            except DriftgateError as exc:
                problems.append(f"{version.version}: {exc}")
    finally:
        if isinstance(sandbox, SqlRegistry):
            sandbox.close()
        if not keep_sandbox:
            shutil.rmtree(sandbox_root, ignore_errors=True)
    result = DrillResult(
        model=ws.model,
        ok=not problems and len(steps) == 2,
        at=now,
        sandbox=str(sandbox_root),
        production=aliases.get("production"),
        previous_production=aliases.get("previous-production"),
        steps=tuple(steps),
        versions_verified=verified,
        problems=tuple(problems),
    )
    markdown = drill_markdown(result)
    path = write_report(
        ws.settings.reports_dir / "drill" / f"{now:%Y%m%dT%H%M%S}.md", markdown, reports_root=ws.settings.reports_dir
    )
    verdict = "passed" if result.ok else "failed"
    publish(markdown, key=artifact_key("drill", ws.model), description=f"rollback drill: {verdict}")
    restore = ", ".join(f"{s.name} {s.seconds_to_restore:.3f} s" for s in steps) or "no step ran"
    ws.registry.note(
        ws.model,
        "drill",
        actor="driftgate-drill",
        reason=f"rollback drill {'passed' if result.ok else 'FAILED'} on a sandbox copy: {restore}",
        evidence=ws.settings.shareable(path),
    )
    return DrillResult(**{**result.__dict__, "report_path": str(path)})
