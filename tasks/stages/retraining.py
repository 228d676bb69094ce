"""Retraining, gating, registration and recording stages (the acting half of the loop).

Data the stages read, besides the monitored batches in the lake: the labelled *reference* the first
model was trained on. ``bootstrap`` keeps a copy at ``settings.resolved_reference_path`` (see
:func:`keep_reference`); reference-plus-recent and expanding windows train on it, and the gate's
back-test draws older rows from it and from the lake.
"""

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

from tasks.core.errors import TrainingError
from tasks.core.records import FromDict
from tasks.core.timeutil import time_span
from tasks.resources import events
from tasks.resources.workspace import CONTRACT_FILE, MODEL_FILE, REFERENCE_FILE

if TYPE_CHECKING:
    import polars as pl

    from tasks.gate.comparison import ModelComparison
    from tasks.gate.results import BacktestData, GateDecision
    from tasks.registry.model import ModelVersion
    from tasks.resources.workspace import Workspace
    from tasks.training.train import TrainedModel
    from tasks.training.windows import TrainingWindow

# Row keys (entity id, timestamp) of the rows a version was trained on: the back-test leaves them out.
TRAINING_ROWS_FILE = "training_rows.parquet"
GATE_FILE = "gate.json"

Progress = Callable[[int, int, float | None], None]


@dataclass(frozen=True)
class RetrainOutcome(FromDict):
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
    training_keys: pl.DataFrame | None = None  # row keys of the candidate's training rows
    window: dict[str, Any] | None = None  # TrainingWindow.summary()
    comparison: ModelComparison | None = None  # calibration, errors and importance of both models (descriptive)


def claim(ws: Workspace, key: str | None) -> bool:
    """Exactly one retrain per idempotency key, however often the event arrives.

    Inside a Prefect flow run the claim is held by the run's id, so the same run retried (after its worker
    was killed mid-retrain, say) claims its key again instead of ending as a duplicate of itself.
    """
    return True if key is None else ws.store.claim(key, purpose="retrain", holder=flow_run_holder())


def flow_run_holder() -> str | None:
    """``flow-run:<id>`` of the Prefect flow run this code runs in; None outside one (or without Prefect loaded)."""
    import sys

    context = sys.modules.get("prefect.context")  # direct mode never imports Prefect: nothing to ask then
    run_context = context.FlowRunContext.get() if context is not None else None
    flow_run = run_context.flow_run if run_context is not None else None
    return f"flow-run:{flow_run.id}" if flow_run is not None else None


DUPLICATE_REASON = "duplicate request: this window, with the labelled rows it holds, was already retrained"


def record_duplicate(ws: Workspace, key: str | None, reason: str) -> RetrainOutcome:
    """A collapsed retrain request is a visible decision (kind ``retrain``, outcome ``duplicate``) with its key."""
    from tasks.resources.store import DecisionRecord

    ws.store.record_decision(
        DecisionRecord(
            model=ws.model,
            kind="retrain",
            outcome="duplicate",
            reasons=(DUPLICATE_REASON, f"key {key}", f"requested for: {reason}"),
            payload={"idempotency_key": key},
        )
    )
    return RetrainOutcome(None, None, False, (DUPLICATE_REASON,), None, key, duplicate=True)


def collect_window(ws: Workspace, start: datetime | None = None, end: datetime | None = None) -> pl.DataFrame:
    """The recent labelled rows of the lake: the newest training.window_rows, or all of them for an expanding window."""
    training = ws.settings.training
    expanding = training.window == "expanding"
    frame = ws.lake.window(
        ws.contract, start=None if expanding else start, end=end, max_rows=None if expanding else training.window_rows
    )
    minimum = max(200, int(1 / ws.settings.training.holdout_fraction) * 50)
    if frame.height < minimum:
        raise TrainingError(
            f"the retraining window {start} → {end} holds {frame.height} labelled rows; need at least {minimum} "
            "(labels may not have arrived yet: `driftgate monitor --labels ...`)"
        )
    return frame


def load_reference(ws: Workspace) -> pl.DataFrame | None:
    """The kept labelled reference (``settings.resolved_reference_path``), or None when there is none."""
    from pathlib import Path

    from tasks.data.files import read_file

    path = ws.settings.resolved_reference_path
    if not Path(path).is_file():
        return None
    frame = read_file(path)
    return frame if ws.contract.target in frame.columns else None


def keep_reference(ws: Workspace, frame: pl.DataFrame, *, source: str) -> str:
    """Keep the labelled reference the first model is trained on at ``settings.resolved_reference_path``.

    ``frame`` is the reference as read, once validation has accepted it: it is kept in the dtypes it was
    read with, not in validation's canonical ones (Float64 features, Int8 labels), so the copy matches
    the user's files. Only a text or date timestamp is kept parsed, as validation parses it: the gate's
    back-test puts the kept rows and the lake's together by time without validating them again.
    A file the user named with ``reference_path`` is theirs: it is read, never overwritten.
    """
    from pathlib import Path

    from tasks.data.contract import with_parsed_timestamp
    from tasks.data.files import write_frame

    target = ws.settings.resolved_reference_path
    if ws.settings.reference_path is not None or Path(source).resolve() == Path(target).resolve():
        return target
    return str(write_frame(with_parsed_timestamp(frame, ws.contract), Path(target)))


def split_holdout(ws: Workspace, frame: pl.DataFrame, *, with_reference: bool = True) -> TrainingWindow:
    """The training window (``training.window``) around the newest rows of ``frame``, which are the gate's
    holdout and never seen in training or tuning. A first model (``with_reference=False``) is trained
    on ``frame`` alone."""
    from tasks.training.windows import assemble_window

    settings = ws.settings.training
    if not with_reference:
        settings = settings.model_copy(update={"window": "sliding"})
    reference = load_reference(ws) if with_reference and settings.window != "sliding" else None
    return assemble_window(frame, reference, ws.contract, settings)


def study_for(ws: Workspace, window: TrainingWindow, key: str | None, explicit: str | None = None) -> str:
    """The Optuna study a retrain tunes in: the one named (``--study``), the retrain request's (its key covers the
    window and its labelled rows), or, for a manual retrain, one per data window: ``<model>-manual-<digest of the
    window's row keys>``. A second manual retrain on new data then gets a new study, while a retry of the same
    one resumes its trials."""
    import hashlib

    from tasks.training.windows import row_keys

    if explicit:
        return explicit
    if key:
        return f"{ws.model}-{key}"
    digest = hashlib.sha256()
    for part in (window.train, window.holdout):
        keys = row_keys(part, ws.contract)
        digest.update(str(keys.height).encode())
        digest.update(keys.hash_rows(seed=0).to_numpy().tobytes())
    return f"{ws.model}-manual-{digest.hexdigest()[:12]}"


def train(ws: Workspace, window: TrainingWindow, *, study_name: str, progress: Progress | None = None) -> TrainedModel:
    from tasks.data.contract import require_two_classes
    from tasks.training.train import WEIGHT_COLUMN, train_candidate

    require_two_classes(window.train, ws.contract, source=f"training window of {ws.model}")
    return train_candidate(
        window.train,
        ws.contract,
        ws.settings.training.model_copy(update={"validation_fraction": window.validation_fraction}),
        num_threads=ws.settings.num_threads,
        storage_dir=ws.settings.optuna_dir,
        storage_url=ws.settings.optuna_storage_url,
        study_name=study_name,
        progress=progress,
        weight_column=WEIGHT_COLUMN if window.weighted else None,
    )


def evaluate(ws: Workspace, trained: TrainedModel, window: TrainingWindow, champion: ModelVersion | None) -> Judgement:
    """Score the same holdout rows with candidate and champion, gather the back-test rows, the stress
    scenarios and the inference costs, then run the gate."""
    import numpy as np

    from tasks.gate.comparison import compare_models
    from tasks.gate.evaluate import evaluate_gate
    from tasks.gate.rules import gate_slices
    from tasks.gate.stress import stress_scenarios, top_features
    from tasks.training.scoring import score_frame
    from tasks.training.train import measure_inference, predict_proba
    from tasks.training.windows import row_keys

    contract = ws.contract
    gate_settings = ws.settings.gate
    threads = ws.settings.num_threads
    holdout = window.holdout
    slices = gate_slices(holdout, contract.slices)
    scored = score_frame(
        holdout.drop([c for c in ("model_version",) if c in holdout.columns]),
        trained.model_text,
        contract,
        version="candidate",
        num_threads=threads,
        threshold=gate_settings.decision_threshold,
    )
    candidate_scores = scored.get_column(contract.probability).to_numpy()
    models = {"candidate": trained.model_text}
    importances = [trained.feature_importance]
    champion_scores = None
    backtest = None
    training_keys = row_keys(window.train, contract)
    if champion is not None:
        models["champion"] = ws.model_text(champion)
        importances.append(champion.metadata.get("feature_importance") or {})
        champion_scores = predict_proba(models["champion"], holdout, contract, num_threads=threads)
        backtest = _backtest_data(ws, models, window, training_keys, champion)
    scenarios = stress_scenarios(
        holdout,
        contract,
        top_features(importances, gate_settings.stress_features) if gate_settings.stress_features else [],
        shift=gate_settings.stress_shift,
        category_factor=gate_settings.stress_category_factor,
    )
    costs = measure_inference(models, holdout, contract, num_threads=threads)
    labels = np.asarray(holdout.get_column(contract.target).to_numpy(), dtype=float)
    gate = evaluate_gate(
        labels,
        candidate_scores,
        champion_scores,
        slices,
        gate_settings,
        seed=ws.settings.training.seed,
        backtest=backtest,
        stress=scenarios,
        candidate_cost=costs["candidate"],
        champion_cost=costs.get("champion"),
    )
    return Judgement(
        gate=gate,
        holdout_scored=scored,
        champion=champion,
        training_keys=training_keys,
        window=window.summary(),
        comparison=compare_models(
            labels,
            candidate_scores,
            champion_scores,
            threshold=gate_settings.decision_threshold,
            candidate_importance=trained.feature_importance,
            champion_importance=importances[1] if champion is not None else None,
        ),
    )


def _backtest_pool(ws: Workspace) -> pl.DataFrame | None:
    """Every labelled row driftgate keeps: the reference and the monitored batches, in model columns."""
    import polars as pl

    from tasks.training.windows import model_columns

    contract = ws.contract
    parts = []
    reference = load_reference(ws)
    if reference is not None:
        parts.append(reference)
    if ws.lake.batch_ids():
        lake = ws.lake.window(contract)
        if lake.height:
            parts.append(lake)
    columns = model_columns(contract)
    usable = [p.select(columns) for p in parts if all(c in p.columns for c in columns)]
    if not usable:
        return None
    if contract.timestamp:
        usable = [p.with_columns(pl.col(contract.timestamp).dt.cast_time_unit("us")) for p in usable]
    return pl.concat(usable, how="vertical_relaxed")


def _backtest_data(
    ws: Workspace,
    models: dict[str, str],
    window: TrainingWindow,
    training_keys: pl.DataFrame,
    champion: ModelVersion,
) -> BacktestData:
    """Older labelled rows neither the candidate nor the champion trained on, scored by both."""
    import io

    import numpy as np
    import polars as pl

    from tasks.gate.results import BacktestData
    from tasks.training.train import predict_proba
    from tasks.training.windows import older_rows

    contract = ws.contract
    pool = _backtest_pool(ws)
    if pool is None:
        return BacktestData(None, None, None, "n/a", "no labelled reference or monitored rows are kept")
    trained_on = [training_keys]
    trained_between: list[tuple[datetime | None, datetime | None]] = []
    if TRAINING_ROWS_FILE in champion.digests:
        trained_on.append(pl.read_parquet(io.BytesIO(ws.registry.read_file(champion, TRAINING_ROWS_FILE))))
    else:
        span = champion.metadata.get("training_window") or [None, None]
        trained_between.append(tuple(datetime.fromisoformat(v) if v else None for v in span))  # type: ignore[arg-type]
    older = older_rows(
        pool,
        contract,
        before=window.recent_start,
        trained_on=trained_on,
        trained_between=trained_between,
        max_rows=ws.settings.gate.backtest_rows,
        seed=ws.settings.training.seed,
    )
    rows = older.rows
    if not rows.height:
        return BacktestData(None, None, None, "n/a", f"no older row is left: {older.note}")
    period = "n/a"
    if contract.timestamp:
        stamps = rows.get_column(contract.timestamp)
        period = f"{stamps.min()!s} → {stamps.max()!s}"
    threads = ws.settings.num_threads
    note = f"{rows.height} of {older.available} eligible rows sampled; {older.note}"
    return BacktestData(
        y_true=np.asarray(rows.get_column(contract.target).to_numpy(), dtype=float),
        candidate_scores=predict_proba(models["candidate"], rows, contract, num_threads=threads),
        champion_scores=predict_proba(models["champion"], rows, contract, num_threads=threads),
        period=period,
        note=note,
    )


def register(ws: Workspace, trained: TrainedModel, judgement: Judgement, *, reason: str, actor: str) -> ModelVersion:
    """Store the candidate as an immutable version carrying its model, monitoring reference and gate verdict."""
    import io

    gate = judgement.gate
    reference = io.BytesIO()
    holdout = judgement.holdout_scored.drop("model_version")
    if judgement.champion is not None:
        holdout = in_dtypes_of(holdout, ws.reference_of(judgement.champion), ws.contract.feature_names)
    holdout.write_parquet(reference)
    files: dict[str, bytes] = {
        MODEL_FILE: trained.model_text.encode(),
        REFERENCE_FILE: reference.getvalue(),
        CONTRACT_FILE: ws.settings.resolved_contract_path.read_bytes(),
        GATE_FILE: json.dumps(gate.to_dict(), indent=2, default=str).encode(),
    }
    if judgement.training_keys is not None:
        keys = io.BytesIO()
        judgement.training_keys.write_parquet(keys)
        files[TRAINING_ROWS_FILE] = keys.getvalue()
    metadata = {
        "params": trained.params,
        "metrics": {
            "validation_auc": trained.validation_auc,
            "holdout_auc": gate.candidate_auc,
            "champion_holdout_auc": gate.champion_auc,
            f"holdout_{gate.metric}": gate.candidate_metric,
            f"champion_holdout_{gate.metric}": gate.champion_metric,
        },
        "gate_passed": gate.passed,
        "gate": {
            "metric": gate.metric,
            "diff": gate.diff,
            "p_value": gate.primary_p,
            "rules": {r.rule: r.verdict for r in gate.rules if r.verdict != "reported"},
            "file": GATE_FILE,
        },
        "window": judgement.window,
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
    from tasks.report.markdown import forest_plot, gate_markdown, write_report
    from tasks.resources.store import DecisionRecord

    gate = judgement.gate
    champion = judgement.champion.version if judgement.champion else None
    folder = ws.settings.reports_dir / "gate"
    png = forest_plot(gate, folder / f"{version.version}-slices.png", title=f"{version.version} vs {champion}")
    comparison = judgement.comparison
    reliability = None
    if comparison is not None:
        from tasks.report.comparison import reliability_chart

        title = f"{version.version} vs {champion}" if champion else version.version
        reliability = reliability_chart(comparison, folder / f"{version.version}-calibration.svg", title=title)
    markdown = gate_markdown(
        model=ws.model,
        candidate_version=version.version,
        champion_version=champion,
        trained=trained,
        gate=gate,
        forest_png=png,
        window=judgement.window,
        comparison=comparison,
        reliability_chart=reliability,
        reason=reason,
    )
    path = write_report(folder / f"{version.version}.md", markdown, reports_root=ws.settings.reports_dir)
    _annotate_report(ws, version, path, markdown, png)
    payload = {
        "gate": gate.to_dict(),
        # An inconclusive gate asks the policy to wait for this many new labelled rows (tasks/policy/decide.py).
        "awaiting_labels": gate.awaiting_labels(ws.settings.training.holdout_fraction),
        "idempotency_key": key,
        "champion": champion,
        "trained": _trained_summary(trained),
        "comparison": comparison.summary() if comparison is not None else None,
    }
    with ws.store.transaction() as conn:
        ws.store.record_decision(
            DecisionRecord(
                model=ws.model,
                kind="retrain",
                outcome="trained",
                reasons=(reason,),
                version=version.version,
                # data_end: the retrain's time on the policy clock (batch time), for cooldown and budget.
                payload={
                    "idempotency_key": key,
                    "data_end": _data_end(judgement.holdout_scored, ws.contract.timestamp),
                    **_trained_summary(trained),
                },
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
    from tasks.resources import wandb_retrain
    from tasks.stages import wandb_review

    context = wandb_review.run_context(
        ws, trained, judgement, key=key, reason=reason, fingerprint=version.metadata.get("data_fingerprint")
    )
    run_name = f"retrain-{version.version}"
    run = ws.tracker.start_run(
        job_type="retrain", name=run_name, config=context.config, group=context.group, tags=context.tags
    )
    try:
        wandb_review.log_details(ws, run, trained, judgement, context)
        run.log(_run_metrics(trained, gate))
        run.log_model(version, aliases=["candidate", "latest"])
        run.log_file(wandb_retrain.GATE_REPORT_FILE, path)
        if png is not None:
            run.log_file(wandb_retrain.FOREST_PLOT, png)
        run.log_table(wandb_retrain.RULES_TABLE, _rules_table(gate))
        run.summary(
            {
                "gate_passed": gate.passed,
                "candidate_version": version.version,
                "champion": champion,
                "gate_rules": {r.rule: r.verdict for r in gate.rules},
            }
        )
    finally:
        run.finish()
    wandb_review.write_report(
        wandb_review.report_input(
            ws,
            trained,
            judgement,
            version.version,
            reason=reason,
            context=context,
            run_name=run_name,
            report_path=path,
            forest_plot=png is not None,
        ),
        ws,
    )
    from tasks.report.publish import publish

    publish(
        markdown,
        key=f"gate-{ws.model}-{version.version}",
        description=f"gate for {version.version}",
        images_from=path.parent,
    )
    if ws.settings.emit_events:
        base = {"model": ws.model, "version": version.version, "champion": champion, "idempotency_key": key}
        events.emit(events.CANDIDATE_REGISTERED, ws.model, base)
        events.emit(
            events.GATE_PASSED if gate.passed else events.GATE_FAILED,
            ws.model,
            {**base, "diff": gate.diff, "p_value": gate.delong_p},
        )
    return path


def in_dtypes_of(frame: pl.DataFrame, model: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """``frame`` with each numeric feature in the dtype ``model`` has it in (the dtypes of the user's files,
    which the first version's reference keeps): monitoring compares batches with a version's reference, and a
    holdout that validation widened (Int64 to Float64) would raise a "dtype changed" warning on every batch."""
    import polars as pl

    def lossless(name: str) -> bool:
        values = frame.get_column(name).drop_nulls()
        back = values.cast(model.schema[name], strict=False).cast(values.dtype)
        return bool(back.null_count() == 0 and (back == values).all())

    casts = [
        pl.col(name).cast(model.schema[name])
        for name in columns
        if name in frame.columns
        and name in model.columns
        and frame.schema[name] != model.schema[name]
        and frame.schema[name].is_numeric()
        and model.schema[name].is_numeric()
        and lossless(name)
    ]
    return frame.with_columns(casts) if casts else frame


def _data_end(frame: pl.DataFrame, timestamp: str | None) -> str | None:
    """The newest row's time (ISO, UTC), or None without a timestamp column."""
    _, newest = time_span(frame, timestamp)
    return newest.isoformat() if newest is not None else None


def _annotate_report(ws: Workspace, version: ModelVersion, path: Path, markdown: str, png: Path | None) -> None:
    """Make the gate report reachable from the version: path, text and digests of the markdown and plot."""
    notes: dict[str, Any] = {
        "gate_report": ws.settings.shareable(path),
        "gate_report_markdown": markdown,
        "gate_report_sha256": hashlib.sha256(markdown.encode()).hexdigest(),
        "gate_plot": ws.settings.shareable(png) if png is not None else None,
        "gate_plot_sha256": hashlib.sha256(png.read_bytes()).hexdigest() if png is not None else None,
    }
    for key, value in notes.items():
        ws.registry.annotate(ws.model, version.version, key, value)


def _run_metrics(trained: TrainedModel, gate: GateDecision) -> dict[str, float]:
    metrics: dict[str, float | None] = {
        "validation_auc": trained.validation_auc,
        "holdout_auc": gate.candidate_auc,
        f"holdout_{gate.metric}": gate.candidate_metric,
        "gate_passed": float(gate.passed),
        "gate_diff": gate.diff,
        "gate_p_value": gate.primary_p,
        "backtest_diff": gate.backtest.diff if gate.backtest else None,
        "stress_worst_extra_loss": max((s.extra_loss for s in gate.stress if s.extra_loss is not None), default=None),
        "latency_ms_per_10k": gate.inference.candidate_ms_per_10k if gate.inference else None,
        "model_bytes": float(gate.inference.candidate_bytes) if gate.inference else None,
    }
    return {name: float(value) for name, value in metrics.items() if value is not None}


def _rules_table(gate: GateDecision) -> pl.DataFrame:
    import polars as pl

    return pl.DataFrame(
        {
            "rule": [r.rule for r in gate.rules],
            "verdict": [str(r.verdict) for r in gate.rules],
            "blocking": [r.blocking for r in gate.rules],
            "detail": [r.detail for r in gate.rules],
        }
    )


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
        "weighted": trained.weighted,
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
    from tasks.data.contract import require_two_classes, validate_batch
    from tasks.data.files import read_file

    frame = validate_batch(read_file(path), ws.contract, source=path, require_target=True, min_rows=200)
    require_two_classes(frame, ws.contract, source=path)
    return frame


def read_reference(ws: Workspace, path: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The labelled reference as read (its own dtypes) and as validated against the contract (canonical dtypes).

    The contract is checked against the reference first: a target that is not a 0/1 label with both
    classes, an entity id that is missing or repeats, a timestamp that is entirely null or does not
    parse are refused here with a typed error, before anything is trained or kept.
    """
    from tasks.data.contract import check_reference, require_two_classes, validate_batch
    from tasks.data.files import read_file

    raw = read_file(path)
    check_reference(raw, ws.contract, source=path)
    frame = validate_batch(raw, ws.contract, source=path, require_target=True, min_rows=200)
    require_two_classes(frame, ws.contract, source=path)
    return raw, frame
