"""Retraining, gating, registration, promotion and rollback stages (the acting half of the loop)."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks import events
from tasks.errors import TrainingError
from tasks.workspace import CONTRACT_FILE, MODEL_FILE, REFERENCE_FILE

if TYPE_CHECKING:
    import polars as pl

    from tasks.gating import GateDecision
    from tasks.registry import ModelVersion
    from tasks.training import TrainedModel
    from tasks.workspace import Workspace

Progress = Callable[[int, int, float | None], None]


@dataclass(frozen=True)
class RetrainOutcome:
    candidate_version: str | None
    champion_version: str | None
    gate_passed: bool
    reasons: tuple[str, ...]
    report_path: str | None
    idempotency_key: str | None
    duplicate: bool = False
    candidate_metric: float | None = None
    champion_metric: float | None = None


@dataclass(frozen=True)
class Judgement:
    gate: GateDecision
    holdout_scored: pl.DataFrame  # scored by the candidate: the monitoring reference it will carry
    champion: ModelVersion | None


def claim(ws: Workspace, key: str | None) -> bool:
    """Exactly one retrain per idempotency key, however often the event arrives."""
    return True if key is None else ws.store.claim(key, purpose="retrain")


def collect_window(ws: Workspace, start: datetime | None = None, end: datetime | None = None) -> pl.DataFrame:
    frame = ws.lake.window(ws.contract, start=start, end=end, max_rows=ws.settings.training.window_rows)
    minimum = max(200, int(1 / ws.settings.training.holdout_fraction) * 50)
    if frame.height < minimum:
        raise TrainingError(
            f"the retraining window {start} → {end} holds {frame.height} labelled rows; need at least {minimum} "
            "(labels may not have arrived yet: `driftgate monitor --labels ...`)"
        )
    return frame


def split_holdout(ws: Workspace, frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Time-ordered: the newest rows are the gate's holdout and never seen in training or tuning."""
    from tasks.training import time_ordered_split

    return time_ordered_split(frame, ws.contract, ws.settings.training.holdout_fraction)


def train(ws: Workspace, frame: pl.DataFrame, *, study_name: str, progress: Progress | None = None) -> TrainedModel:
    from tasks.schema import require_two_classes
    from tasks.training import train_candidate

    require_two_classes(frame, ws.contract, source=f"training window of {ws.model}")
    return train_candidate(
        frame,
        ws.contract,
        ws.settings.training,
        num_threads=ws.settings.num_threads,
        storage_dir=ws.settings.optuna_dir,
        study_name=study_name,
        progress=progress,
    )


def evaluate(ws: Workspace, trained: TrainedModel, holdout: pl.DataFrame, champion: ModelVersion | None) -> Judgement:
    """Score the same holdout rows with candidate and champion, then run the gate."""
    import numpy as np
    import polars as pl

    from tasks.gating import evaluate_gate
    from tasks.scoring import score_frame
    from tasks.training import predict_proba

    contract = ws.contract
    scored = score_frame(
        holdout.drop([c for c in ("model_version",) if c in holdout.columns]),
        trained.model_text,
        contract,
        version="candidate",
        num_threads=ws.settings.num_threads,
    )
    candidate_scores = scored.get_column(contract.probability).to_numpy()
    champion_scores = None
    if champion is not None:
        champion_scores = predict_proba(ws.model_text(champion), holdout, contract, num_threads=ws.settings.num_threads)
    slices = {
        column: holdout.get_column(column).cast(pl.String).fill_null("<null>").to_numpy() for column in contract.slices
    }
    gate = evaluate_gate(
        np.asarray(holdout.get_column(contract.target).to_numpy(), dtype=float),
        candidate_scores,
        champion_scores,
        slices,
        ws.settings.gate,
        seed=ws.settings.training.seed,
    )
    return Judgement(gate=gate, holdout_scored=scored, champion=champion)


def register(ws: Workspace, trained: TrainedModel, judgement: Judgement, *, reason: str, actor: str) -> ModelVersion:
    """Store the candidate as an immutable version carrying its model, monitoring reference and gate verdict."""
    import io

    reference = io.BytesIO()
    judgement.holdout_scored.drop("model_version").write_parquet(reference)
    files: dict[str, bytes] = {
        MODEL_FILE: trained.model_text.encode(),
        REFERENCE_FILE: reference.getvalue(),
        CONTRACT_FILE: ws.settings.resolved_contract_path.read_bytes(),
        "gate.json": json.dumps(judgement.gate.to_dict(), indent=2, default=str).encode(),
    }
    metadata = {
        "params": trained.params,
        "metrics": {
            "validation_auc": trained.validation_auc,
            "holdout_auc": judgement.gate.candidate_metric,
            "champion_holdout_auc": judgement.gate.champion_metric,
        },
        "gate_passed": judgement.gate.passed,
        "training_window": [_iso(trained.window_start), _iso(trained.window_end)],
        "train_rows": trained.train_rows,
        "valid_rows": trained.valid_rows,
        "holdout_rows": judgement.gate.n_rows,
        "data_fingerprint": _fingerprint(judgement.holdout_scored),
        "feature_schema": ws.contract.model_dump(mode="json")["features"],
        "feature_importance": trained.feature_importance,
        "library_versions": _library_versions(),
        "code_revision": _code_revision(),
        "parent_version": judgement.champion.version if judgement.champion else None,
        "study_name": trained.study_name,
    }
    return ws.registry.register(ws.model, files, metadata, actor=actor, reason=reason, aliases=("candidate",))


def record(
    ws: Workspace,
    trained: TrainedModel,
    judgement: Judgement,
    version: ModelVersion,
    *,
    key: str | None,
    reason: str,
) -> Path:
    """Audit rows, events, tracking run and the gate report for one retrain."""
    from tasks.reporting import forest_plot, gate_markdown, publish_markdown, write_report
    from tasks.store import DecisionRecord

    gate = judgement.gate
    champion = judgement.champion.version if judgement.champion else None
    folder = ws.settings.reports_dir / "gate"
    png = forest_plot(gate, folder / f"{version.version}-slices.png", title=f"{version.version} vs {champion}")
    markdown = gate_markdown(
        model=ws.model,
        candidate_version=version.version,
        champion_version=champion,
        trained=trained,
        gate=gate,
        forest_png=png,
    )
    path = write_report(folder / f"{version.version}.md", markdown)
    ws.registry.annotate(ws.model, version.version, "gate_report", str(path))
    payload = {
        "gate": gate.to_dict(),
        "idempotency_key": key,
        "champion": champion,
        "trained": _trained_summary(trained),
    }
    with ws.store.transaction() as conn:
        ws.store.record_decision(
            DecisionRecord(
                model=ws.model,
                kind="retrain",
                outcome="trained",
                reasons=(reason,),
                version=version.version,
                payload={"idempotency_key": key, **_trained_summary(trained)},
            ),
            conn=conn,
        )
        ws.store.record_decision(
            DecisionRecord(
                model=ws.model,
                kind="gate",
                outcome="passed" if gate.passed else "failed",
                reasons=gate.reasons,
                version=version.version,
                payload=payload,
            ),
            conn=conn,
        )
    run = ws.tracker.start_run(job_type="retrain", name=f"retrain-{version.version}", config=trained.params)
    try:
        run.log(
            {
                "validation_auc": trained.validation_auc,
                "holdout_auc": gate.candidate_metric,
                "gate_passed": float(gate.passed),
                **({"gate_diff": gate.diff} if gate.diff is not None else {}),
            }
        )
        run.log_model(version, aliases=["candidate", "latest"])
        run.log_file("gate_report.md", path)
        if png is not None:
            run.log_file("gate_slices.png", png)
        run.summary({"gate_passed": gate.passed, "candidate_version": version.version, "champion": champion})
    finally:
        run.finish()
    publish_markdown(markdown, key=f"gate-{ws.model}-{version.version}", description=f"gate for {version.version}")
    if ws.settings.emit_events:
        base = {"model": ws.model, "version": version.version, "champion": champion, "idempotency_key": key}
        events.emit(events.CANDIDATE_REGISTERED, ws.model, base)
        events.emit(
            events.GATE_PASSED if gate.passed else events.GATE_FAILED,
            ws.model,
            {**base, "diff": gate.diff, "p_value": gate.delong_p},
        )
    return path


def _trained_summary(trained: TrainedModel) -> dict[str, Any]:
    return {
        "params": trained.params,
        "validation_auc": trained.validation_auc,
        "n_trials": trained.n_trials,
        "n_pruned": trained.n_pruned,
        "tuning_seconds": trained.tuning_seconds,
        "train_rows": trained.train_rows,
        "valid_rows": trained.valid_rows,
        "window_start": _iso(trained.window_start),
        "window_end": _iso(trained.window_end),
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _fingerprint(frame: pl.DataFrame) -> str:
    digest = hashlib.sha256()
    digest.update(str(frame.schema).encode())
    digest.update(frame.hash_rows(seed=0).to_numpy().tobytes())
    return digest.hexdigest()


def _library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for package in ("lightgbm", "optuna", "polars", "nannyml", "prefect", "wandb", "driftgate"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            continue
    return out


def _code_revision() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def load_labelled(ws: Workspace, path: str) -> pl.DataFrame:
    """A labelled reference file, validated against the contract (for the first model)."""
    from tasks.data import read_file
    from tasks.schema import require_two_classes, validate_batch

    frame = validate_batch(read_file(path), ws.contract, source=path, require_target=True, min_rows=200)
    require_two_classes(frame, ws.contract, source=path)
    return frame
