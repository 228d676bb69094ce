"""The driftgate command line. Imports stay lazy so that `--help` answers at once."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypedDict

import click

from driftgate import render
from driftgate.wandb_commands import wandb_group

if TYPE_CHECKING:
    from tasks.resources.workspace import Workspace

HOME_HELP = "State directory (registry, audit store, W&B offline runs, reports). Env: DRIFTGATE_HOME."


def _common(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--home", type=click.Path(file_okay=False), default=None, help=HOME_HELP)(fn)
    fn = click.option(
        "--config",
        type=click.Path(dir_okay=False, exists=True),
        default=None,
        help="YAML settings file (same keys as the DRIFTGATE_* variables). Env: DRIFTGATE_CONFIG.",
    )(fn)
    fn = click.option("--model", default=None, help="Model (registry collection) name. Env: DRIFTGATE_MODEL_NAME.")(fn)
    return fn


def _quiet_prefect(verbose: bool) -> None:
    from tasks.core.telemetry import disable_telemetry

    disable_telemetry()
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO" if verbose else "WARNING")
    # The local (ephemeral) API needs 8-26 s to start, more on a loaded machine; Prefect's default gives up at 20 s.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    # Prefect's console logs would interleave with the progress display; the run logs still reach the API.
    os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "true")


@contextmanager
def _progress() -> Iterator[None]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from tasks.core import progress as sink

    bars: dict[str, Any] = {}
    with Progress(
        TextColumn("[bold]{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[detail]}"),
        transient=False,
    ) as display:

        def update(task: str, done: int, total: int, detail: str) -> None:
            if task not in bars:
                bars[task] = display.add_task(task, total=total, detail="")
            display.update(bars[task], completed=done, total=total, detail=detail)

        sink.install(update)
        try:
            yield
        finally:
            sink.install(None)


# A conditional alias move that lost a race exits with its own code, so scripts can tell "state moved
# under you, look again" (3) from bad input (2).
EXIT_CONFLICT = 3


def _fail(exc: Exception) -> None:
    from tasks.core.errors import AliasConflictError

    click.secho(f"error: {exc}", fg="red", err=True)
    sys.exit(EXIT_CONFLICT if isinstance(exc, AliasConflictError) else 2)


@contextmanager
def _errors() -> Iterator[None]:
    from tasks.core.errors import DriftgateError

    try:
        yield
    except DriftgateError as exc:
        _fail(exc)
    except Exception as exc:
        # Prefect wraps task failures; surface the typed error beneath it when there is one.
        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, DriftgateError):
            cause = cause.__cause__ or cause.__context__
        if isinstance(cause, DriftgateError):
            _fail(cause)
        raise


class _FlowArgs(TypedDict):
    home: str | None
    config: str | None
    model: str | None


def _flow_args(home: str | None, config: str | None, model: str | None) -> _FlowArgs:
    return {"home": home, "config": config, "model": model}


def _home(home: str | None, config: str | None, model: str | None) -> AbstractContextManager[Workspace]:
    """``with _home(home, config, model) as ws:``: the workspace the command's options name, always closed."""
    from tasks.core.settings import load_settings
    from tasks.resources.workspace import open_home

    return open_home(load_settings(config, home=home, model_name=model))


def _mode(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The --flow/--no-flow option of the commands whose body runs either way (flows/bodies.py)."""
    return click.option(
        "--flow/--no-flow",
        "use_flow",
        default=None,
        help="Run as a Prefect flow run (default when a Prefect API is configured: PREFECT_API_URL or the active "
        "profile) or directly in this process (default otherwise: no Prefect import, no temporary server; events "
        "wait in the audit store's outbox for `driftgate events flush`). --flow without an API starts a temporary "
        "local Prefect server (8-26 s).",
    )(fn)


def _use_flow(
    ctx: click.Context, use_flow: bool | None, home: str | None, config: str | None, model: str | None
) -> bool:
    """Decide the run mode and prepare it: flow mode quiets Prefect and first delivers pending outbox events."""
    if use_flow is None:
        use_flow = _prefect_api_configured()
    if use_flow:
        if not _prefect_api_configured():
            _temporary_server(ctx.obj["verbose"])
        else:
            _quiet_prefect(ctx.obj["verbose"])
            _flush_outbox(home, config, model, quiet=True)
    else:
        _direct_logging(ctx.obj["verbose"])
    return use_flow


def _loopback_available() -> bool:
    """Whether 127.0.0.1 can be bound (Prefect's temporary server listens there)."""
    import socket

    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
    except OSError:
        return False
    return True


def _temporary_server(verbose: bool) -> None:
    """Flow mode without an API: start Prefect's temporary server now, so that it dies with this command (see
    flows._common.start_temporary_server); without a loopback interface, fail at once instead of after 3 minutes."""
    if not _loopback_available():
        _fail(
            RuntimeError(
                "--flow needs a Prefect API, and 127.0.0.1 cannot be bound for a temporary one (no loopback "
                "interface): set PREFECT_API_URL to a running server, or run without --flow"
            )
        )
    _quiet_prefect(verbose)
    from flows._common import start_temporary_server

    start_temporary_server()


def _direct_logging(verbose: bool) -> None:
    """Direct mode: telemetry off, and the bodies' stage banners on stderr with -v."""
    import logging

    from tasks.core.telemetry import disable_telemetry

    disable_telemetry()
    logger = logging.getLogger("driftgate")
    if verbose and not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO if verbose else logging.WARNING)


def _run(use_flow: bool, name: str, **params: Any) -> Any:
    """Run the body ``name`` (monitor, cycle, labels, retrain, bootstrap, promote, score, watch, drill): as the flow
    ``flows.<name>.<name>_flow`` or in-process, the same body with plain steps (``<name>_body`` of flows/bodies.py
    or flows/ops_bodies.py)."""
    import importlib

    if use_flow:
        return getattr(importlib.import_module(f"flows.{name}"), f"{name}_flow")(**params)
    from flows import bodies, ops_bodies

    body = getattr(bodies, f"{name}_body", None) or getattr(ops_bodies, f"{name}_body")
    return body(bodies.Runner(), **params)


def _flush_outbox(home: str | None, config: str | None, model: str | None, *, quiet: bool = False) -> int:
    """Deliver the pending outbox events of the home to the configured Prefect API; returns how many."""
    from tasks.resources.events import prefect_sender

    with _home(home, config, model) as ws:
        if not ws.store.outbox(pending=True):
            return 0
        try:
            return ws.store.deliver_outbox(prefect_sender())
        except Exception as exc:  # an unreachable API: the events stay pending, the command goes on
            if not quiet:
                raise
            left = len(ws.store.outbox(pending=True))
            click.secho(f"warning: {left} outbox event(s) not delivered yet: {exc}", fg="yellow", err=True)
            return 0


class _Checked(NamedTuple):
    batches: list[str]  # batch files whose header holds the contract's columns
    refused: list[Exception]  # typed errors of the others, each already recorded as a BLOCK decision


def _preflight(
    home: str | None,
    config: str | None,
    model: str | None,
    *,
    batches: tuple[str, ...] = (),
    labels: tuple[str, ...] = (),
    reference: str | None = None,
    record_refused: bool = True,
) -> _Checked:
    """Validate before anything heavy (Prefect, NannyML, LightGBM, a server): settings, contract, that every input
    exists, and each file's header (a Parquet footer, a CSV first line) against the contract. A typed error leaves
    as one line and exit code 2 (see _errors).

    A batch refused here is recorded as a BLOCK decision, as the monitor records any batch refused at the
    boundary, and is left out of the run: the others are monitored, and the command still exits 2. Without
    ``record_refused`` (batches to score, not to monitor) the first refused batch is the error.
    """
    from tasks.core.errors import DataError
    from tasks.core.settings import load_settings
    from tasks.data.contract import ModelContract
    from tasks.data.files import expand_paths, require_columns

    settings = load_settings(config, home=home, model_name=model)
    contract = ModelContract.load(settings.resolved_contract_path)
    keys = [contract.entity_id, *([contract.timestamp] if contract.timestamp else [])]
    if reference is not None:
        for path in expand_paths(reference):
            require_columns(path, [*contract.feature_names, *keys, contract.target])
    for path in expand_paths(list(labels)) if labels else []:
        require_columns(path, [contract.entity_id, contract.target])
    good: list[str] = []
    refused: list[tuple[str, DataError]] = []
    for batch in expand_paths(list(batches)) if batches else []:
        try:
            require_columns(batch, [*contract.feature_names, *keys])
            good.append(str(batch))
        except DataError as exc:
            refused.append((str(batch), exc))
    if refused and not record_refused:
        raise refused[0][1]
    if refused:
        from tasks.stages.monitoring import refuse

        with _home(home, config, model) as ws:
            for name, error in refused:
                refuse(ws, name, error)
        if not good and not labels:
            raise refused[0][1]
    return _Checked(good, [exc for _, exc in refused])


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="driftgate")
@click.option("-v", "--verbose", is_flag=True, help="Show Prefect's flow and task logs on the console.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """driftgate keeps a production model healthy: monitor batches (drift, data quality, performance
    estimated without labels), decide by policy whether to retrain, retrain with Optuna-tuned LightGBM,
    promote only when paired significance tests say the candidate is better, and roll back in one step.

    Everything runs offline by default: W&B in offline mode, a local registry and a SQLite audit store under
    --home (default ./.driftgate). Without a Prefect API (PREFECT_API_URL or the active profile) commands run
    directly in this process and keep their events in an outbox (`driftgate events flush` delivers them);
    with one, or with --flow, they run as Prefect flow runs.

    \b
    Quick start:     driftgate demo
    Your own data:   driftgate contract reference.parquet --target y --entity-id id --timestamp ts
                     driftgate bootstrap reference.parquet
                     driftgate monitor 'batches/*.parquet' --labels 'labels/*.parquet'
                     driftgate history
    A big file:      driftgate profile big.parquet --chunk-by day
    """
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose


@main.command()
@click.option(
    "--home",
    type=click.Path(file_okay=False),
    default=None,
    help="Base state directory; each demo run gets its own folder <home>/demo/<run>. Default ./.driftgate.",
)
@click.option("--seed", default=7, show_default=True, help="Seed of the scenario generator.")
@click.option("--rows-per-batch", default=4000, show_default=True, help="Rows in each daily batch.")
@click.option("--trials", default=5, show_default=True, help="Optuna trial budget per retrain.")
@click.pass_context
def demo(ctx: click.Context, home: str | None, seed: int, rows_per_batch: int, trials: int) -> None:
    """Run the whole loop on NannyML's car-loan data with a seeded drift scenario.

    Shows, in order: a champion registered as production; stationary batches that cause no
    retraining; a drifted, degraded stretch that triggers RETRAIN; a candidate that passes the gate
    and is promoted (old champion kept as previous-production); a candidate that fails the gate and
    is not promoted; a rollback that restores the previous production version.
    """
    _quiet_prefect(ctx.obj["verbose"])
    from tasks.core.settings import load_settings

    base = load_settings(home=home).home
    run_home = base / "demo" / time.strftime("run-%Y%m%d-%H%M%S")
    started = time.perf_counter()
    with _errors(), _progress():
        from flows.demo import demo_flow
        from flows.results import DemoRun

        run = DemoRun.from_dict(
            demo_flow(home=str(run_home), seed=seed, rows_per_batch=rows_per_batch, n_trials=trials)
        )
    render.demo(run, time.perf_counter() - started)
    if not all(check.ok for check in run.checks):
        sys.exit(1)


@main.command()
@click.argument("reference", type=click.Path(dir_okay=False))
@click.option("--target", required=True, help="Label column: 0/1 or true/false, with both classes.")
@click.option(
    "--entity-id", required=True, help="Column that identifies a row: unique, never missing (labels join on it)."
)
@click.option(
    "--timestamp", default=None, help="Datetime, date or ISO-text column, not all null (enables time windows)."
)
@click.option("--probability", default="y_pred_proba", show_default=True, help="Model probability column.")
@click.option("--prediction", default="y_pred", show_default=True, help="Model prediction column.")
@click.option("--slice", "slices", multiple=True, help="Segment column judged separately by the gate (repeatable).")
@click.option("--exclude", multiple=True, help="Column to leave out of the features (repeatable).")
@click.option(
    "--out", type=click.Path(dir_okay=False), default=None, help="Where to write (default <home>/contract.yaml)."
)
@_common
def contract(
    reference: str,
    target: str,
    entity_id: str,
    timestamp: str | None,
    probability: str,
    prediction: str,
    slices: tuple[str, ...],
    exclude: tuple[str, ...],
    out: str | None,
    home: str | None,
    config: str | None,
    model: str | None,
) -> None:
    """Write the model contract from a reference Parquet/CSV file.

    Every column other than target, id, timestamp, probability and prediction becomes a feature;
    numeric, boolean and text (categorical, with its known categories) types are inferred.

    The target must be 0/1 or true/false with both classes, the entity id unique and never missing,
    the timestamp datetimes, dates or text that parses as datetimes: anything else is refused and
    nothing is written. The contract, and so the model, is named after --model (or model_name in the
    settings), else after the reference file (churn.parquet: model churn).
    """
    with _errors():
        import re

        from tasks.core.settings import load_settings
        from tasks.data.contract import infer_contract
        from tasks.data.files import read_file
        from tasks.resources.workspace import MODEL_NAME

        settings = load_settings(config, home=home, model_name=model)
        if "model_name" in settings.model_fields_set:
            name = settings.model_name
        else:
            stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(reference).stem).lstrip("_.-").rstrip("-")
            name = stem if MODEL_NAME.fullmatch(stem) else "model"
        frame = read_file(reference)
        result = infer_contract(
            frame,
            name=name,
            target=target,
            entity_id=entity_id,
            timestamp=timestamp,
            probability=probability,
            prediction=prediction,
            slices=list(slices),
            exclude=list(exclude),
            source=reference,
        )
        path = result.save(Path(out) if out else settings.resolved_contract_path)
    render.contract_written(path, result)


@main.command()
@click.argument("reference", type=click.Path(dir_okay=False))
@click.option("--no-promote", is_flag=True, help="Register the model without making it production.")
@_mode
@_common
@click.pass_context
def bootstrap(
    ctx: click.Context,
    reference: str,
    no_promote: bool,
    use_flow: bool | None,
    home: str | None,
    config: str | None,
    model: str | None,
) -> None:
    """Train the first model on a labelled reference file and make it production.

    With no champion to beat, the gate judges it against absolute floors (gate.floor_roc_auc).
    """
    with _errors():
        _preflight(home, config, model, reference=reference)
    flow = _use_flow(ctx, use_flow, home, config, model)
    with _errors(), _progress():
        from tasks.stages.retraining import RetrainOutcome

        outcome = RetrainOutcome.from_dict(
            _run(flow, "bootstrap", reference=reference, promote=not no_promote, **_flow_args(home, config, model))
        )
    render.retrain(outcome)


@main.command()
@click.argument("batches", nargs=-1, required=True)
@click.option(
    "--labels",
    multiple=True,
    help="Label file or glob keyed by entity id (repeatable): for these batches or any batch monitored before.",
)
@click.option(
    "--retrain/--no-retrain",
    default=True,
    show_default=True,
    help="Act on a RETRAIN decision at once (retrain, gate, promote on pass).",
)
@_mode
@_common
@click.pass_context
def monitor(
    ctx: click.Context,
    batches: tuple[str, ...],
    labels: tuple[str, ...],
    retrain: bool,
    use_flow: bool | None,
    home: str | None,
    config: str | None,
    model: str | None,
) -> None:
    """Monitor batch files or globs (Parquet/CSV).

    Batches may carry the model's probability column or not; without it they are scored by the
    production model first. Each batch is validated against the contract, profiled (data quality,
    drift per feature), its performance estimated (NannyML CBPE) and, with labels, realized; the policy
    decides NONE / ALERT / BLOCK / RETRAIN, and everything lands in the audit store and a report.
    Labels of batches monitored earlier are attached after the batches, and those batches judged again
    (as `driftgate labels` does). A batch refused at the boundary is recorded as BLOCK (exit code 2).
    """
    with _errors():
        checked = _preflight(home, config, model, batches=batches, labels=labels)
    flow = _use_flow(ctx, use_flow, home, config, model)
    params = {"batches": checked.batches, "labels": list(labels) or None, **_flow_args(home, config, model)}
    with _errors(), _progress():
        from flows.results import CycleRun, MonitorRun

        if retrain:
            cycle = CycleRun.from_dict(_run(flow, "cycle", **params))
            outcomes, arrival, retrained = cycle.monitor, cycle.labels, cycle.retrain
        else:
            monitored = MonitorRun.from_dict(_run(flow, "monitor", **params))
            outcomes, arrival, retrained = monitored.batches, monitored.labels, None
    render.monitored(outcomes, arrival, retrained)
    if checked.refused:
        _fail(checked.refused[0])


@main.command()
@click.argument("analysis", type=click.Path(dir_okay=False))
@click.option(
    "--reference", default=None, help="Reference file (Parquet/CSV); default: the workspace's (reference_path)."
)
@click.option("--chunk-rows", type=click.IntRange(min=1), default=None, help="Chunks of this many rows.")
@click.option(
    "--chunks",
    type=click.IntRange(min=1),
    default=None,
    help="This many equal chunks (a remainder becomes one more, smaller chunk, as in NannyML).",
)
@click.option(
    "--chunk-by",
    type=click.Choice(["day", "week", "month"]),
    default=None,
    help="One chunk per period of the contract's timestamp column.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder for results.parquet and heatmap.svg; default <home>/reports/profile/<analysis name>.",
)
@_common
def profile(
    analysis: str,
    reference: str | None,
    chunk_rows: int | None,
    chunks: int | None,
    chunk_by: str | None,
    out: str | None,
    home: str | None,
    config: str | None,
    model: str | None,
) -> None:
    """Profile a large Parquet/CSV file chunk by chunk against the reference.

    Each chunk gets data-quality checks and drift per feature (KS, Wasserstein, Jensen-Shannon,
    Hellinger, PSI; chi2, L-infinity for categories), the model score and a joint PCA check, each
    against a threshold calibrated at the chunk's size. The file is streamed (small chunks are
    profiled in parallel, big ones one at a time), so it may be larger than memory. Writes one row per
    chunk x feature x method to results.parquet and draws heatmap.svg. Read-only: no registry, audit
    store or Prefect. Default chunking: profiling.chunk_size rows.
    """
    if sum(option is not None for option in (chunk_rows, chunks, chunk_by)) > 1:
        raise click.UsageError("choose one of --chunk-rows, --chunks and --chunk-by")
    with _errors(), _progress():
        from tasks.core.settings import load_settings
        from tasks.data.chunking import Chunking
        from tasks.data.contract import ModelContract
        from tasks.stages.drift_scan import scan_drift

        settings = load_settings(config, home=home, model_name=model)
        if chunk_by is not None:
            chunking = Chunking.by_period(chunk_by)  # type: ignore[arg-type]
        elif chunks is not None:
            chunking = Chunking.by_number(chunks)
        else:
            chunking = Chunking.by_size(chunk_rows or settings.profiling.chunk_size)
        folder = Path(out) if out else settings.reports_dir / "profile" / Path(analysis).stem
        scan = scan_drift(
            analysis,
            reference or settings.resolved_reference_path,
            ModelContract.load(settings.resolved_contract_path),
            settings.profiling,
            chunking,
            folder,
        )
    render.scan(scan, chunking.describe())


@main.command()
@click.argument("labels", nargs=-1, required=True)
@click.option(
    "--retrain/--no-retrain",
    default=True,
    show_default=True,
    help="Act on a RETRAIN decided on the labels' arrival at once (retrain, gate, promote on pass).",
)
@_mode
@_common
@click.pass_context
def labels(
    ctx: click.Context,
    labels: tuple[str, ...],
    retrain: bool,
    use_flow: bool | None,
    home: str | None,
    config: str | None,
    model: str | None,
) -> None:
    """Attach delayed label files (or globs), keyed by entity id, to already monitored batches.

    All files are checked together first: an id with two different labels, or labels of one class only, is
    refused (naming the files) before anything is written. Each batch that gains labels gets its realized
    performance recorded and is judged again by the policy (a realized drop counts like an estimated one),
    so a RETRAIN can be decided when labels land. Unknown ids, ids already labelled and ids found in more than
    one batch are counted and reported.
    """
    with _errors():
        _preflight(home, config, model, labels=labels)
    flow = _use_flow(ctx, use_flow, home, config, model)
    with _errors():
        from flows.results import LabelsRun

        arrived = LabelsRun.from_dict(
            _run(flow, "labels", labels=list(labels), retrain=retrain, **_flow_args(home, config, model))
        )
    render.labels(arrived.labels)
    if arrived.retrain:
        render.retrain(arrived.retrain)


@main.command()
@click.option("--window-start", default=None, help="ISO time; default: the newest labelled rows.")
@click.option("--window-end", default=None, help="ISO time.")
@click.option("--reason", default="manual retrain", show_default=True)
@click.option("--no-promote", is_flag=True, help="Register and gate only; never move production.")
@click.option(
    "--study",
    default=None,
    help="Optuna study to tune in (a journal under <home>/optuna). Default: one per data window, so a retrain on "
    "new data starts afresh and a retry of an interrupted one resumes it.",
)
@_mode
@_common
@click.pass_context
def retrain(
    ctx: click.Context,
    window_start: str | None,
    window_end: str | None,
    reason: str,
    no_promote: bool,
    study: str | None,
    use_flow: bool | None,
    home: str | None,
    config: str | None,
    model: str | None,
) -> None:
    """Retrain on the labelled window of monitored batches, gate against the champion, promote on pass."""
    with _errors():
        _preflight(home, config, model)
    flow = _use_flow(ctx, use_flow, home, config, model)
    with _errors(), _progress():
        from tasks.stages.retraining import RetrainOutcome

        result = _run(
            flow,
            "retrain",
            window_start=window_start,
            window_end=window_end,
            reason=reason,
            auto_promote=not no_promote,
            actor=os.environ.get("USER", "cli"),
            study=study,
            **_flow_args(home, config, model),
        )
    render.retrain(RetrainOutcome.from_dict(result))


@main.command()
@click.argument("version")
@click.option("--reason", default="manual promotion", show_default=True)
@click.option(
    "--approve/--require-approval",
    "auto_approve",
    default=None,
    help="Approve by policy, or pause for an approver (`driftgate approve`). Default: promotion.auto_approve.",
)
@click.option("--watch", "watch_batches", multiple=True, help="Batch file scored with the canary split (repeatable).")
@click.option("--labels", multiple=True, help="Label file for the watched batches, keyed by entity id (repeatable).")
@click.option("--force", is_flag=True, help="Promote a version that did not pass the gate.")
@click.option(
    "--expect",
    "expected",
    default=None,
    help="Promote only if production is still this version (default: the version production holds when the "
    "command starts). If it moved, or another promotion holds the lease, nothing changes and the command exits "
    "with code 3.",
)
@_mode
@_common
@click.pass_context
def promote(
    ctx: click.Context,
    version: str,
    reason: str,
    auto_approve: bool | None,
    watch_batches: tuple[str, ...],
    labels: tuple[str, ...],
    force: bool,
    expected: str | None,
    use_flow: bool | None,
    home: str | None,
    config: str | None,
    model: str | None,
) -> None:
    """Promote VERSION (e.g. v3): staging → approval → canary → watch window → production.

    A canary that misses a threshold (estimated or realized AUC, error rate, scoring time) is withdrawn
    and production does not move; with promotion.watch_hours > 0 the canary stays and `driftgate watch`
    decides once the window has passed.

    Only a flow run can pause for an approver: in direct mode a promotion that needs one moves nothing, is
    recorded as awaiting approval (`driftgate pending`) and names the `--flow` command that can wait.

    Conditional (--expect) and leased: a promotion racing another promotion or a rollback applies once; the
    other exits with code 3 and prints the aliases as they are now.
    """
    with _errors():
        _preflight(home, config, model, batches=watch_batches, labels=labels, record_refused=False)
    needs_approver, name = False, model
    from tasks.registry.model import PRODUCTION

    with _errors(), _state_on_conflict(home, config, model), _home(home, config, model) as ws:
        production = ws.registry.aliases(ws.model).get(PRODUCTION)
        lease = ws.registry.open_lease(ws.model)
        # Refuse a lost race at once, before a Prefect API starts; the flow checks again under the lock.
        if expected is not None and production != expected:
            from tasks.core.errors import AliasConflictError

            raise AliasConflictError(
                f"promotion of {ws.model}:{version} refused: production is {production or 'unset'}, not {expected} "
                "as expected (someone moved it meanwhile); nothing changed"
            )
        if lease is not None and not _settled_on_next_write(lease):
            from tasks.core.errors import PromotionInProgressError

            raise PromotionInProgressError(
                f"promotion of {ws.model}:{version} refused: {lease.version} is being promoted (lease #{lease.seq} "
                f"held by {lease.holder}); nothing changed — wait for it, or `driftgate withdraw {lease.version}`"
            )
        expected = production if expected is None else expected
        needs_approver = not (ws.settings.promotion.auto_approve if auto_approve is None else auto_approve)
        name = ws.model
    flow = _use_flow(ctx, use_flow, home, config, model)
    if needs_approver and flow:
        # The flow run blocks this command while it waits: say so first; its id and the commands follow in
        # the run's WARNING log line once it pauses (and `driftgate pending` lists it meanwhile).
        render.promotion_needs_approver(name, version)
    with _errors(), _state_on_conflict(home, config, model):
        from tasks.stages.promotion import PromotionOutcome

        result = _run(
            flow,
            "promote",
            expected=expected,
            version=version,
            reason=reason,
            actor=os.environ.get("USER", "cli"),
            watch_batches=list(watch_batches) or None,
            labels=list(labels) or None,
            auto_approve=auto_approve,
            force=force,
            **_flow_args(home, config, model),
        )
    render.promotion(version, PromotionOutcome.from_dict(result))


@contextmanager
def _state_on_conflict(home: str | None, config: str | None, model: str | None) -> Iterator[None]:
    """On a lost race (AliasConflictError, exit code 3) also print the model's aliases and lease now, in one line."""
    from tasks.core.errors import AliasConflictError

    try:
        yield
    except Exception as exc:
        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, AliasConflictError):
            cause = cause.__cause__ or cause.__context__
        if isinstance(cause, AliasConflictError):
            with _home(home, config, model) as ws:
                state = render.state_line(ws.model, ws.registry.aliases(ws.model), ws.registry.open_lease(ws.model))
            click.echo(state, err=True)
            _fail(cause)
        raise


def _settled_on_next_write(lease: Any) -> bool:
    """A lease whose holder died on this host: the registry's next write settles it (see tasks.registry.local)."""
    import socket

    from tasks.registry.ledger import pid_alive

    return lease.pid is not None and lease.host == socket.gethostname() and not pid_alive(lease.pid)


def _prefect_api_configured() -> bool:
    """PREFECT_API_URL from the environment or the active Prefect profile, read without importing Prefect (~2 s)."""
    import tomllib

    if os.environ.get("PREFECT_API_URL"):
        return True
    prefect_home = Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser()
    profiles = Path(os.environ.get("PREFECT_PROFILES_PATH", prefect_home / "profiles.toml")).expanduser()
    try:
        data = tomllib.loads(profiles.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return False
    active = os.environ.get("PREFECT_PROFILE") or data.get("active", "ephemeral")
    return bool(data.get("profiles", {}).get(active, {}).get("PREFECT_API_URL"))


@main.command()
@click.option("--reason", default="manual rollback", show_default=True)
@click.option(
    "--expect",
    "expected",
    default=None,
    help="Roll back only if production is still this version (default: the version production holds when the "
    "command starts). If it moved, nothing changes and the command exits with code 3.",
)
@click.option(
    "--flow/--no-flow",
    "use_flow",
    default=None,
    help="Run as a Prefect flow run (default when a Prefect API is configured) or directly (default otherwise: "
    "an ephemeral Prefect API would take 8-26 s to start before production moves).",
)
@_common
@click.pass_context
def rollback(
    ctx: click.Context,
    reason: str,
    expected: str | None,
    use_flow: bool | None,
    home: str | None,
    config: str | None,
    model: str | None,
) -> None:
    """Restore production to the last known good version (previous-production) in one step.

    Conditional: two operators rolling back at once, or a rollback racing a promotion, apply once; the other
    exits with code 3 and says what production is now.
    """
    actor = os.environ.get("USER", "cli")
    if use_flow is None:
        use_flow = _prefect_api_configured()
    with _errors(), _state_on_conflict(home, config, model):
        from tasks.registry.model import PRODUCTION
        from tasks.stages.promotion import RollbackOutcome

        if expected is None:
            with _home(home, config, model) as ws:
                expected = ws.registry.aliases(ws.model).get(PRODUCTION)
        if use_flow:
            _quiet_prefect(ctx.obj["verbose"])
            from flows.rollback import rollback_flow

            outcome = RollbackOutcome.from_dict(
                rollback_flow(reason=reason, actor=actor, expected=expected, **_flow_args(home, config, model))
            )
        else:
            from tasks.stages.promotion import rollback as rollback_now

            with _home(home, config, model) as ws:
                outcome = RollbackOutcome(*rollback_now(ws, actor=actor, reason=reason, expected=expected))
    render.rollback(outcome)


@main.command()
@click.argument("batches", nargs=-1, required=True)
@click.option("--labels", multiple=True, help="Label file or glob keyed by entity id (repeatable).")
@_mode
@_common
@click.pass_context
def score(
    ctx: click.Context,
    batches: tuple[str, ...],
    labels: tuple[str, ...],
    use_flow: bool | None,
    home: str | None,
    config: str | None,
    model: str | None,
) -> None:
    """Score batch files by alias: production, and the canary for canary_share of entities (stable hash of the id).

    Predictions are stored under <home>/predictions/<model>/ with the version that made each one.
    """
    with _errors():
        _preflight(home, config, model, batches=batches, labels=labels, record_refused=False)
    flow = _use_flow(ctx, use_flow, home, config, model)
    with _errors():
        from tasks.stages.canary import ScoredBatch

        results = _run(
            flow, "score", batches=list(batches), labels=list(labels) or None, **_flow_args(home, config, model)
        )
    render.scored([ScoredBatch.from_dict(result) for result in results])


@main.command()
@click.option("--labels", multiple=True, help="Label file or glob for the scored predictions (repeatable).")
@_mode
@_common
@click.pass_context
def watch(
    ctx: click.Context,
    labels: tuple[str, ...],
    use_flow: bool | None,
    home: str | None,
    config: str | None,
    model: str | None,
) -> None:
    """Judge the running canary (promote, withdraw, or wait) or audit the latest promotion (roll back if it fails)."""
    with _errors():
        _preflight(home, config, model, labels=labels)
    flow = _use_flow(ctx, use_flow, home, config, model)
    with _errors():
        from tasks.stages.promotion import WatchOutcome

        result = _run(
            flow,
            "watch",
            labels=list(labels) or None,
            actor=os.environ.get("USER", "cli"),
            **_flow_args(home, config, model),
        )
    render.watched(WatchOutcome.from_dict(result))


@main.command()
@click.option("--keep-sandbox", is_flag=True, help="Keep the sandbox copy of the registry for inspection.")
@_mode
@_common
@click.pass_context
def drill(
    ctx: click.Context,
    keep_sandbox: bool,
    use_flow: bool | None,
    home: str | None,
    config: str | None,
    model: str | None,
) -> None:
    """Rehearse rollback and roll-forward on a sandbox copy of the registry; verify digests, time the restore."""
    with _errors():
        from tasks.core.settings import load_settings

        load_settings(config, home=home, model_name=model)  # the drill needs the registry only, not the contract
    flow = _use_flow(ctx, use_flow, home, config, model)
    with _errors():
        from tasks.stages.drill import DrillResult

        drilled = DrillResult.from_dict(
            _run(flow, "drill", keep_sandbox=keep_sandbox, **_flow_args(home, config, model))
        )
    render.drill(drilled)
    if not drilled.ok:
        sys.exit(1)


@main.command()
@click.argument("flow_run_id")
@click.option("--approver", default=lambda: os.environ.get("USER", "cli"), help="Who approves (lands in the ledger).")
@click.option("--comment", default="", help="Why (lands in the ledger).")
@click.option("--reject", is_flag=True, help="Refuse the promotion instead.")
def approve(flow_run_id: str, approver: str, comment: str, reject: bool) -> None:
    """Answer a promotion paused for approval (needs the Prefect API the flow runs on: PREFECT_API_URL)."""
    from uuid import UUID

    from prefect.flow_runs import resume_flow_run

    try:
        resume_flow_run(UUID(flow_run_id), run_input={"approver": approver, "comment": comment, "approved": not reject})
    except Exception as exc:  # Prefect raises NotPausedError, FlowPauseTimeout or HTTP errors
        _fail(RuntimeError(f"cannot resume flow run {flow_run_id}: {exc}"))
    render.approval_answered(flow_run_id, approver, reject)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@_common
def pending(as_json: bool, home: str | None, config: str | None, model: str | None) -> None:
    """Promotions waiting for an approver, one line each, with the command that answers each one.

    From the Prefect API when one is configured (promote flow runs paused for approval: version, how long they
    have waited, `driftgate approve RUN_ID ...`) and from the audit store (direct-mode promotions left
    "awaiting-approval", not promoted or refused since: start them again with --require-approval).
    """
    from tasks.stages.review import awaiting_in_store

    with _errors(), _home(home, config, model) as ws:
        items = awaiting_in_store(ws)
    if _prefect_api_configured():
        _quiet_prefect(False)
        from flows.promote import paused_promotions

        try:
            items = paused_promotions() + items
        except Exception as exc:  # an unreachable API: still show what the store knows
            click.secho(f"warning: cannot read paused flow runs from the Prefect API: {exc}", fg="yellow", err=True)
    source = "the Prefect API or the audit store" if _prefect_api_configured() else "the audit store"
    render.pending(items, source=source, now=time.time(), as_json=as_json)


@main.command()
@_common
def reconcile(home: str | None, config: str | None, model: str | None) -> None:
    """Make the W&B Registry match the ledger (registry_backend: wandb): publish missing versions, move aliases."""
    with _errors(), _home(home, config, model) as ws:
        changes = ws.registry.reconcile(ws.model, actor=os.environ.get("USER", "cli"))
    render.reconciled(changes)


@main.group()
def events() -> None:
    """The event outbox: events of direct-mode runs, kept in the audit store until delivered to Prefect.

    Direct mode (no Prefect API, or --no-flow) writes each event to the outbox with its final id; `events flush`
    sends the pending ones to the configured Prefect API and marks them delivered. An event is marked only after
    the API accepted it, so none is lost, and a re-sent one (a crash between send and mark) carries the same id,
    which Prefect's event store keeps once. Flow-mode commands flush first by themselves.
    """


@events.command(name="list")
@click.option("--limit", default=20, show_default=True, help="Pending events to show.")
@_common
def events_list(limit: int, home: str | None, config: str | None, model: str | None) -> None:
    """Pending and delivered counts of the outbox, and the oldest pending events (no Prefect needed)."""
    from tasks.resources.events import outbox_state

    with _errors(), _home(home, config, model) as ws:
        state = outbox_state(ws.store)
    render.outbox(state, limit)


@events.command(name="flush")
@_common
def events_flush(home: str | None, config: str | None, model: str | None) -> None:
    """Deliver the pending outbox events to the configured Prefect API (PREFECT_API_URL or the active profile)."""
    if not _prefect_api_configured():
        _fail(RuntimeError("no Prefect API configured (PREFECT_API_URL or a profile): nothing to deliver to"))
    _quiet_prefect(False)
    with _errors():
        try:
            sent = _flush_outbox(home, config, model)
        except Exception as exc:
            if type(exc).__module__.startswith(("httpx", "prefect")):
                _fail(RuntimeError(f"delivery stopped, the rest stays pending: {type(exc).__name__}: {exc}"))
            raise
    render.delivered(sent)


@main.command()
@click.argument("version", required=False)
@click.option("--reason", default="manual withdrawal", show_default=True)
@_common
def withdraw(version: str | None, reason: str, home: str | None, config: str | None, model: str | None) -> None:
    """Withdraw the candidate VERSION from canary/staging and end its promotion lease; production never moves.

    VERSION defaults to the canary (else staging, else the version being promoted) when the command starts.
    Conditional: if VERSION is no longer a candidate, nothing changes and the command exits with code 3.
    """
    from tasks.registry.model import CANARY, STAGING
    from tasks.stages.promotion import withdraw as withdraw_now

    with _errors(), _state_on_conflict(home, config, model), _home(home, config, model) as ws:
        if version is None:
            aliases, lease = ws.registry.aliases(ws.model), ws.registry.open_lease(ws.model)
            version = aliases.get(CANARY) or aliases.get(STAGING) or (lease.version if lease else None)
        entry = withdraw_now(ws, version, actor=os.environ.get("USER", "cli"), reason=reason)
    render.withdrawn(entry, version)


# Exit code of `driftgate verify` when it found problems (same as any refused command).
EXIT_PROBLEMS = 2


@main.command()
@_common
def verify(home: str | None, config: str | None, model: str | None) -> None:
    """Check the ledger's hash chain and anchor and every version's manifest and files; one line per problem.

    Exit code 0 when everything holds, 2 when a problem was found (no Prefect needed).
    """
    with _errors(), _home(home, config, model) as ws:
        problems = ws.registry.check(ws.model)
        entries = len(ws.registry.ledger(ws.model)) if not problems else None
        versions = len(ws.registry.versions(ws.model)) if not problems else None
        if not problems:
            # Audit rows of ledger entries that have none (a process killed between its ledger line and its audit
            # row): derived from the entries, keyed by them, so this is idempotent.
            from tasks.stages.promotion import audit_ledger

            render.repaired(audit_ledger(ws))
    render.verified(problems, entries, versions)
    if problems:
        sys.exit(EXIT_PROBLEMS)


@main.command()
@click.option("--at", "at", default=None, help="ISO time: which version held each alias then.")
@click.option("--limit", default=20, show_default=True, help="Ledger entries and decisions to show.")
@_common
def history(at: str | None, limit: int, home: str | None, config: str | None, model: str | None) -> None:
    """Show aliases, the alias ledger and recent decisions (no Prefect needed)."""
    with _errors():
        from tasks.core.timeutil import parse_utc
        from tasks.stages import history as read

        with _home(home, config, model) as ws:
            if at:
                moment = read.aliases_at(ws, parse_utc(at))
            else:
                shown = read.history(ws, limit)
    if at:
        render.aliases_at(moment)
    else:
        render.history(shown)


@main.command()
@click.option("--truth", type=click.Path(dir_okay=False, exists=True), default=None, help="YAML truth file.")
@click.option(
    "--degraded", default=None, help="Regular expression of the truly degraded batch ids (instead of --truth)."
)
@click.option(
    "--set", "overrides", multiple=True, help="Candidate policy setting key=value, e.g. persistence=3 (repeatable)."
)
@click.option(
    "--candidate",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="Settings file whose `policy:` section is the candidate policy.",
)
@click.option(
    "--clock",
    type=click.Choice(["decided", "window"]),
    default="window",
    show_default=True,
    help="Time the replayed policy sees per batch: the end of its data window (as the monitor judges), or when "
    "it was decided.",
)
@click.option(
    "--scenario",
    is_flag=False,
    flag_value="demo",
    default=None,
    help="First monitor a seeded scenario with known truth, then replay. NAME: demo (the default with a bare "
    "--scenario), concept, covariate, benign, broken, noise or employment.",
)
@click.option(
    "--label-delay",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Scenario: labels arrive this many batches after their batch (0: with it).",
)
@click.option("--stationary", default=8, show_default=True, help="Scenario: stationary batches before the shift.")
@click.option("--drifted", default=6, show_default=True, help="Scenario: changed (drifted) batches after it.")
@click.option("--seed", default=7, show_default=True, help="Scenario: seed of the generator.")
@click.option("--rows-per-batch", default=4000, show_default=True, help="Scenario: rows per batch.")
@click.option("--json", "as_json", is_flag=True, help="Print the full result as JSON.")
@_mode
@_common
@click.pass_context
def replay(
    ctx: click.Context,
    truth: str | None,
    degraded: str | None,
    overrides: tuple[str, ...],
    candidate: str | None,
    clock: str,
    scenario: str | None,
    label_delay: int,
    stationary: int,
    drifted: int,
    seed: int,
    rows_per_batch: int,
    as_json: bool,
    use_flow: bool | None,
    home: str | None,
    config: str | None,
    model: str | None,
) -> None:
    """Replay the policy over the recorded batches and score it against known truth: false alarms, missed
    degradations and detection delay, under the current settings and (with --set/--candidate) a candidate.

    \b
    Recorded history:  driftgate replay --home H --degraded 'drifted' --set persistence=3
    Seeded scenario:   driftgate replay --scenario --set persistence=3   (demo data, shift after 8 days)
    Late labels:       driftgate replay --scenario concept --label-delay 2 --stationary 20

    The truth file holds `degraded: [batch ids]`, `degraded_pattern: regex` or `batches: {id: true|false}`.
    """
    from tasks.core.settings import load_settings

    with _errors():  # settings first, before anything heavy
        settings = load_settings(home=home) if scenario else load_settings(config, home=home, model_name=model)
    flow = _use_flow(ctx, use_flow, home, config, model)
    with _errors(), _progress():
        from flows.results import ReplayRun

        if scenario:
            params: dict[str, Any] = {
                "home": str(settings.home / "replay" / time.strftime("run-%Y%m%d-%H%M%S")),
                "scenario": scenario,
                "label_delay": label_delay,
                "seed": seed,
                "stationary": stationary,
                "drifted": drifted,
                "rows_per_batch": rows_per_batch,
                "overrides": list(overrides) or None,
                "candidate_config": candidate,
            }
            if flow:
                from flows.replay import replay_scenario_flow

                result = replay_scenario_flow(**params)
            else:
                from flows import bodies, ops_bodies

                result = ops_bodies.replay_scenario_body(bodies.Runner(), **params)
        else:
            result = _run(
                flow,
                "replay",
                truth=truth,
                degraded=degraded,
                overrides=list(overrides) or None,
                candidate_config=candidate,
                clock="window" if clock == "window" else "decided",
                **_flow_args(home, config, model),
            )
    render.replay(ReplayRun.from_dict(result), as_json=as_json)


main.add_command(wandb_group)

if __name__ == "__main__":
    main()
