"""The one home of the flow bodies, runnable two ways and importing no Prefect.

Each body (monitor, labels, cycle, retrain, bootstrap, promote; score, watch and drill in flows/ops_bodies.py)
is written once, over a :class:`Runner`: the runner's ``steps`` (THE table of stage functions, :class:`Steps`),
its banner, and how the body calls the bodies it composes. ``Runner()`` runs them in-process (direct mode: plain
functions, banners on the ``driftgate`` logger, events into the store's outbox); ``flows.steps.FLOW`` runs them as
Prefect flows (the same table wrapped as tasks, the run logger, subflows). flows/<name>.py stay one-screen
``@flow`` wrappers around these bodies.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar

from flows._common import workspace
from tasks.core import progress
from tasks.core.errors import DataError
from tasks.data.files import expand_paths

if TYPE_CHECKING:
    import polars as pl

    from tasks.data.contract import ModelContract
    from tasks.data.labels import LabelSet
    from tasks.resources.workspace import Workspace
    from tasks.stages.arrivals import LabelOutcome
    from tasks.stages.monitoring import MeasuredBatch, MonitorContext, MonitorOutcome
    from tasks.stages.promotion import Approval
    from tasks.stages.retraining import RetrainOutcome

P = ParamSpec("P")
R = TypeVar("R")

log = logging.getLogger("driftgate")


class Wrap(Protocol):
    """Turns a stage function into a step: itself (direct mode) or a Prefect task of that name (flow mode)."""

    def __call__(self, name: str, fn: Callable[P, R], /) -> Callable[P, R]: ...


def plain(name: str, fn: Callable[P, R], /) -> Callable[P, R]:
    return fn


class Steps:
    """THE table of steps: every stage function a flow body calls, under its task name."""

    def __init__(self, wrap: Wrap = plain) -> None:
        from tasks.policy import replay
        from tasks.stages import arrivals, canary, drill, monitor_caches, monitoring, promotion, retraining, review

        self.select_batches = wrap("select-batches", monitoring.select_batches)
        self.prepare_context = wrap("prepare-monitoring", monitoring.prepare_context)
        self.read_labels = wrap("read-labels", monitoring.read_labels)
        self.refuse = wrap("refuse-batch", monitoring.refuse)
        self.attach_labels = wrap("attach-labels", arrivals.attach_labels)
        self.measure = wrap("measure-batch", monitoring.measure)
        self.judge = wrap("policy-decide", monitoring.judge)
        self.record_monitoring = wrap("record-monitoring", monitoring.record)
        self.announce = wrap("emit-events", monitoring.announce)
        self.report_monitoring = wrap("report-batch", monitoring.report)
        self.publish_decision_rules = wrap("publish-decision-rules", review.publish_decision_rules)

        self.record_duplicate = wrap("record-duplicate", retraining.record_duplicate)
        self.claim_window = wrap("claim-window", retraining.claim)
        self.collect_window = wrap("collect-window", retraining.collect_window)
        self.split_holdout = wrap("split-holdout", retraining.split_holdout)
        self.train = wrap("train-candidate", retraining.train)
        self.evaluate = wrap("gate-candidate", retraining.evaluate)
        self.register = wrap("register-candidate", retraining.register)
        self.record_retrain = wrap("record-retrain", retraining.record)
        self.prepare_version = wrap("prepare-monitoring-caches", monitor_caches.prepare_version)
        self.promote = wrap("move-aliases", promotion.promote)
        self.rollback = wrap("rollback-alias", promotion.rollback)
        self.read_reference = wrap("load-reference", retraining.read_reference)
        self.keep_reference = wrap("keep-reference", retraining.keep_reference)

        self.check_candidate = wrap("check-candidate", promotion.check_candidate)
        self.begin_promotion = wrap("begin-promotion", promotion.begin)
        self.hand_over_to_watch = wrap("hand-over-to-watch", promotion.hand_over_to_watch)
        self.withdraw = wrap("withdraw", promotion.withdraw)
        self.stage = wrap("stage", promotion.stage)
        self.await_approval = wrap("await-approval", promotion.await_approval)
        self.publish_gate_evidence = wrap("publish-gate-evidence", review.publish_gate_evidence)
        self.record_approval = wrap("record-approval", promotion.record_approval)
        self.reject = wrap("reject-promotion", promotion.reject)
        self.start_canary = wrap("start-canary", promotion.start_canary)
        self.decide_canary = wrap("decide-canary", promotion.decide_canary)
        self.track_moves = wrap("track-alias-moves", promotion.track_moves)
        self.watch_window = wrap("watch-window", promotion.watch)

        self.score_file = wrap("score-batch", canary.score_file)
        self.attach_prediction_labels = wrap("attach-prediction-labels", canary.attach_labels)

        self.run_drill = wrap("rollback-drill", drill.run_drill)
        self.replay_policy = wrap("replay-policy", replay.replay)


class Runner:
    """Direct mode: the plain table, banners on the ``driftgate`` logger, composed bodies called in-process.

    A promotion that needs an approver cannot pause here (nothing to resume it): it is left for
    ``driftgate promote VERSION --flow --require-approval``.
    """

    can_pause = False

    def __init__(self) -> None:
        self._steps: Steps | None = None

    @property
    def steps(self) -> Steps:
        if self._steps is None:
            self._steps = Steps(plain)
        return self._steps

    def measure_all(
        self, ws: Workspace, ctx: MonitorContext, paths: Sequence[str], labels: LabelSet | None
    ) -> Iterator[tuple[str, MeasuredBatch | DataError]]:
        """Each batch measured (``tasks.stages.monitoring.measure``), in batch order; a refused one as its error.
        Direct mode measures one at a time, as it goes."""
        for path in paths:
            try:
                yield path, self.steps.measure(ws, ctx, path, labels)
            except DataError as exc:
                yield path, exc

    def banner(self, text: str) -> None:
        log.info("── %s ──", text)

    def say(self, text: str) -> None:
        """A line of a body's own account (a drill step): the ``driftgate`` logger here, the run log in a flow."""
        log.info("%s", text)

    def workspace(self, home: str | None, config: str | None, model: str | None) -> AbstractContextManager[Workspace]:
        """The home of the parameters; every event emitted meanwhile goes to its store's outbox."""
        return _with_outbox(home, config, model)

    def atomic(self, ws: Workspace) -> AbstractContextManager[object]:
        """One store transaction around a decision and the events that announce it (the outbox is in the store)."""
        return ws.store.atomic()

    def retrain_slot(self, name: str | None) -> AbstractContextManager[float | None]:
        """Direct mode holds no Prefect concurrency slot (there is no server): one process, one retrain."""
        return nullcontext(None)

    def approve(self, ws: Workspace, version: str) -> Approval:
        raise NotImplementedError("direct mode cannot wait for an approver")

    def monitor(self, **params: Any) -> dict[str, Any]:
        return monitor_body(self, **params)

    def retrain(self, **params: Any) -> dict[str, Any]:
        return retrain_body(self, **params)

    def promote(self, **params: Any) -> dict[str, Any]:
        return promote_body(self, **params)

    def bootstrap(self, **params: Any) -> dict[str, Any]:
        return bootstrap_body(self, **params)

    def labels(self, **params: Any) -> dict[str, Any]:
        return labels_body(self, **params)

    def replay(self, **params: Any) -> dict[str, Any]:
        from flows.ops_bodies import replay_body

        return replay_body(self, **params)


@contextmanager
def _with_outbox(home: str | None, config: str | None, model: str | None) -> Iterator[Workspace]:
    from tasks.resources import events

    with workspace(home, config, model) as ws, events.outbox(ws.store):
        yield ws


def act_on_retrain(
    run: Runner,
    request: MonitorOutcome | LabelOutcome,
    reason: str,
    home: str | None,
    config: str | None,
    model: str | None,
) -> RetrainOutcome:
    """Retrain for a RETRAIN decision (of a monitored batch, or of a batch judged again on its labels)."""
    from tasks.stages.retraining import RetrainOutcome

    run.banner(f"retrain requested: {reason}")
    start, end = request.window_start, request.window_end
    result = run.retrain(
        window_start=start.isoformat() if start else None,
        window_end=end.isoformat() if end else None,
        idempotency_key=request.retrain_key,
        reason=reason,
        priority_class=request.priority_class,
        home=home,
        config=config,
        model=model,
    )
    return RetrainOutcome.from_dict(result)


def monitor_body(
    run: Runner,
    batches: list[str] | None,
    labels: list[str] | None = None,
    home: str | None = None,
    config: str | None = None,
    model: str | None = None,
    only_new: bool = False,
) -> dict[str, Any]:
    """See flows.monitor.monitor_flow."""
    from flows.results import MonitorRun

    steps = run.steps
    refused: list[DataError] = []
    outcomes: list[MonitorOutcome] = []
    arrival = None
    with run.workspace(home, config, model) as ws:
        paths = steps.select_batches(ws, batches, only_new)
        label_set = steps.read_labels(ws, [str(p) for p in expand_paths(labels)] if labels else None)
        if not paths and label_set is None:
            run.banner("no new batches")
            return asdict(MonitorRun((), None))
        if paths:
            run.banner(f"prepare: production model, reference profile and estimator for {ws.model}")
            ctx = steps.prepare_context(ws)
        for done, (path, measured) in enumerate(run.measure_all(ws, ctx, paths, label_set), start=1):
            run.banner(f"batch {done}/{len(paths)}: {path}")
            if isinstance(measured, DataError):
                refused.append(measured)
                outcomes.append(steps.refuse(ws, path, measured))
                progress.report("monitor", done, len(paths), f"{path}: refused")
                continue
            batch, batch_profile = measured.batch, measured.profile
            est, realized = measured.estimate, measured.realized
            decision = steps.judge(ws, batch, batch_profile, est, realized)
            with run.atomic(ws):  # direct mode: the decision and its outbox events, all or none
                key = steps.record_monitoring(ws, batch, batch_profile, est, realized, decision)
                steps.announce(ws, batch.batch_id, decision, key)
            outcome = steps.report_monitoring(ws, batch, batch_profile, est, realized, decision, key)
            steps.publish_decision_rules(ws, batch.batch_id, decision)
            outcomes.append(outcome)
            progress.report("monitor", done, len(paths), f"{batch.batch_id}: {decision.action.value}")
        if label_set is not None:
            run.banner(f"labels: {label_set.describe()}")
            arrival = steps.attach_labels(ws, label_set, require_match=not paths)
    if refused:
        raise refused[0]
    return asdict(MonitorRun(tuple(outcomes), arrival))


def labels_body(
    run: Runner,
    labels: list[str],
    home: str | None = None,
    config: str | None = None,
    model: str | None = None,
    retrain: bool = False,
) -> dict[str, Any]:
    """See flows.labels.labels_flow."""
    from flows.results import LabelsRun

    with run.workspace(home, config, model) as ws:
        paths = [str(p) for p in expand_paths(labels)]
        label_set = run.steps.read_labels(ws, paths)
        assert label_set is not None  # paths is never empty: expand_paths refuses a pattern matching nothing
        run.banner(f"attach {label_set.describe()} to monitored batches of {ws.model}")
        arrival = run.steps.attach_labels(ws, label_set)
    request = arrival.retrain
    outcome = None
    if retrain and request is not None:
        outcome = act_on_retrain(run, request, f"late labels of batch {request.batch_id}", home, config, model)
    return asdict(LabelsRun(arrival, outcome))


def cycle_body(
    run: Runner,
    batches: list[str],
    labels: list[str] | None = None,
    home: str | None = None,
    config: str | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """See flows.cycle.cycle_flow."""
    from flows.results import CycleRun, MonitorRun
    from tasks.policy.decide import Action

    run.banner("monitor")
    monitored = MonitorRun.from_dict(run.monitor(batches=batches, labels=labels, home=home, config=config, model=model))
    request = next((o for o in monitored.batches if o.action == Action.RETRAIN.value), None)
    late = monitored.labels.retrain if monitored.labels is not None else None
    retrain: RetrainOutcome | None = None
    if request is not None:
        retrain = act_on_retrain(run, request, f"policy RETRAIN on batch {request.batch_id}", home, config, model)
    elif late is not None:
        reason = f"policy RETRAIN on late labels of batch {late.batch_id}"
        retrain = act_on_retrain(run, late, reason, home, config, model)
    return asdict(CycleRun(monitored.batches, monitored.labels, retrain))


def retrain_body(
    run: Runner,
    window_start: str | None = None,
    window_end: str | None = None,
    idempotency_key: str | None = None,
    reason: str = "retrain requested",
    priority_class: str | None = None,
    auto_promote: bool = True,
    actor: str = "driftgate",
    home: str | None = None,
    config: str | None = None,
    model: str | None = None,
    study: str | None = None,
) -> dict[str, Any]:
    """See flows.retrain.retrain_flow."""
    from tasks.stages import retraining
    from tasks.stages.retraining import RetrainOutcome

    steps = run.steps
    with run.workspace(home, config, model) as ws:
        run.banner(f"claim {idempotency_key or 'manual retrain'} ({priority_class or 'unprioritised'})")
        if not steps.claim_window(ws, idempotency_key):
            outcome = steps.record_duplicate(ws, idempotency_key, reason)
            run.banner(f"duplicate request: {idempotency_key} was already claimed, nothing to retrain")
            return asdict(outcome)
        start = datetime.fromisoformat(window_start) if window_start else None
        end = datetime.fromisoformat(window_end) if window_end else None
        run.banner(f"wait for the retrain slot ({ws.settings.retrain_slot or 'none'})")
        with run.retrain_slot(ws.settings.retrain_slot):
            run.banner("collect the labelled window")
            frame = steps.collect_window(ws, start, end)
            window = steps.split_holdout(ws, frame)
            run.banner(
                f"tune and train on a {window.kind} window of {window.train.height} rows "
                f"({window.reference_rows} from the reference; {ws.settings.training.n_trials} trials)"
            )
            trained = steps.train(
                ws,
                window,
                study_name=retraining.study_for(ws, window, idempotency_key, study),
                progress=progress.trial_reporter("tune"),
            )
            run.banner(f"gate: candidate vs champion on {window.holdout.height} paired holdout rows")
            champion = ws.registry.resolve(ws.model, "production")
            judgement = steps.evaluate(ws, trained, window, champion)
            version = steps.register(ws, trained, judgement, reason=reason, actor=actor)
            report = steps.record_retrain(ws, trained, judgement, version, key=idempotency_key, reason=reason)
            steps.publish_gate_evidence(ws, version.version)  # the rule table and links beside the report
            if judgement.gate.passed:  # a version that may serve: its monitoring is fitted now, not per batch
                steps.prepare_version(ws, version)
        gate = judgement.gate
        outcome = RetrainOutcome(
            candidate_version=version.version,
            champion_version=champion.version if champion else None,
            gate_passed=gate.passed,
            reasons=gate.reasons,
            report_path=str(report),
            idempotency_key=idempotency_key,
            candidate_metric=gate.candidate_metric,
            champion_metric=gate.champion_metric,
        )
    if gate.passed and auto_promote:
        run.promote(
            version=version.version,
            reason=f"gate passed: {reason}",
            actor=actor,
            evidence=str(report),
            home=home,
            config=config,
            model=model,
        )
    return asdict(outcome)


def as_read(scored: pl.DataFrame, raw: pl.DataFrame, contract: ModelContract) -> pl.DataFrame:
    """The rows of ``scored`` (the holdout, scored by the candidate) as ``raw`` holds them, plus the scores.

    This is the monitoring reference the version carries. Monitoring compares each batch's schema, as
    read, with the reference's: a reference in validation's dtypes (Float64 features, Int8 labels) would
    make every batch of the user's own data warn "dtype changed". Rows are matched on the entity id,
    which the reference holds once per row (checked by :func:`tasks.data.contract.check_reference`).
    """
    from tasks.training.scoring import VERSION_COLUMN

    scores = [c for c in (contract.probability, contract.prediction, VERSION_COLUMN) if c in scored.columns]
    rows = raw.drop([c for c in scores if c in raw.columns])
    joined = scored.select(contract.entity_id, *scores).join(
        rows, on=contract.entity_id, how="left", maintain_order="left"
    )
    return joined.select(*rows.columns, *scores)


def bootstrap_body(
    run: Runner,
    reference: str,
    promote: bool = True,
    actor: str = "driftgate",
    home: str | None = None,
    config: str | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """See flows.bootstrap.bootstrap_flow."""
    from tasks.stages.retraining import RetrainOutcome

    steps = run.steps
    with run.workspace(home, config, model) as ws:
        run.banner(f"load the labelled reference {reference}")
        raw, frame = steps.read_reference(ws, reference)
        kept = steps.keep_reference(ws, raw, source=reference)
        run.banner(f"reference kept at {kept} (reference-plus-recent windows and the gate's back-test read it)")
        window = steps.split_holdout(ws, frame, with_reference=False)
        del frame
        run.banner(f"tune and train the first model on {window.train.height} rows")
        trained = steps.train(ws, window, study_name=f"{ws.model}-bootstrap", progress=progress.trial_reporter("tune"))
        run.banner("gate: absolute floors (no champion yet)")
        judgement = steps.evaluate(ws, trained, window, None)
        # The version's monitoring reference keeps the dtypes the user's files have (see as_read); the
        # record keeps the validated holdout (parsed timestamps).
        carried = replace(judgement, holdout_scored=as_read(judgement.holdout_scored, raw, ws.contract))
        del raw
        version = steps.register(ws, trained, carried, reason="first model from reference", actor=actor)
        del carried
        report = steps.record_retrain(ws, trained, judgement, version, key=None, reason="first model from reference")
        if judgement.gate.passed:
            steps.prepare_version(ws, version)
    if judgement.gate.passed and promote:
        run.promote(
            version=version.version,
            reason="first model",
            actor=actor,
            evidence=str(report),
            home=home,
            config=config,
            model=model,
        )
    return asdict(
        RetrainOutcome(
            version.version,
            None,
            judgement.gate.passed,
            judgement.gate.reasons,
            str(report),
            None,
            candidate_metric=judgement.gate.candidate_metric,
        )
    )


def promote_body(
    run: Runner,
    version: str,
    reason: str = "promotion requested",
    actor: str = "driftgate",
    evidence: str | None = None,
    home: str | None = None,
    config: str | None = None,
    model: str | None = None,
    watch_batches: list[str] | None = None,
    labels: list[str] | None = None,
    auto_approve: bool | None = None,
    force: bool = False,
    expected: str | None = None,
) -> dict[str, Any]:
    """See flows.promote.promote_flow. Where the runner cannot pause (direct mode) and the policy wants an
    approver, nothing moves: the outcome says "awaiting-approval" and names the command that can wait.
    Otherwise the promotion takes the lease first (refused while another holds it, or when production is no
    longer ``expected``) and a failure after that withdraws the version."""
    from tasks.registry.model import ANY, PRODUCTION
    from tasks.stages.promotion import PromotionOutcome, withdraw_quietly

    steps = run.steps
    with run.workspace(home, config, model) as ws:
        settings = ws.settings.promotion
        run.banner(f"promote {ws.model}:{version} (evidence: {evidence or 'none'})")
        steps.check_candidate(ws, version, force=force)
        approve_now = settings.auto_approve if auto_approve is None else auto_approve
        if not approve_now and not run.can_pause:
            before = ws.registry.aliases(ws.model).get(PRODUCTION)
            why = (
                f"promotion of {version} needs an approver: run `driftgate promote {version} --flow "
                "--require-approval` (a flow run that pauses for `driftgate approve`)"
            )
            # A warning, not a banner: the command must not end on "gate PASSED" as if production had moved.
            log.warning("%s; `driftgate pending` lists it", why)
            steps.await_approval(ws, version, why=why, evidence=evidence)
            return asdict(PromotionOutcome(version, "awaiting-approval", (), before, None, (why,)))
        _lease, before = steps.begin_promotion(
            ws, version, actor=actor, reason=reason, evidence=evidence, expected=ANY if expected is None else expected
        )
        try:
            return _staged_promotion(
                run, ws, version, before, reason, actor, evidence, watch_batches, labels, approve_now
            )
        except Exception as exc:
            withdraw_quietly(ws, version, actor=actor, reason=f"promotion failed: {exc}")
            raise


def _staged_promotion(
    run: Runner,
    ws: Workspace,
    version: str,
    before: str | None,
    reason: str,
    actor: str,
    evidence: str | None,
    watch_batches: list[str] | None,
    labels: list[str] | None,
    approve_now: bool,
) -> dict[str, Any]:
    """Everything after the lease: stage, approval, canary, watch window, production (or withdrawal)."""
    from tasks.stages.promotion import AUTO_APPROVER, Approval, PromotionOutcome

    steps = run.steps
    settings = ws.settings.promotion
    entries = [steps.stage(ws, version, actor=actor, reason=reason, evidence=evidence)]
    if approve_now:
        approval = Approval(AUTO_APPROVER, f"policy allows automatic approval (requested by {actor})")
    else:
        run.banner(f"approval: waiting up to {settings.approval_timeout_seconds} s for an approver")
        approval = run.approve(ws, version)
    entries.append(steps.record_approval(ws, version, approval, evidence=evidence))
    if not approval.approved:
        entries += steps.reject(ws, version, approval)
        steps.track_moves(ws, entries, job="promote", name=f"promote-{version}-rejected")
        return asdict(
            PromotionOutcome(version, "rejected", ("staging",), before, approval.approver, (approval.comment,))
        )
    run.banner(
        f"canary: {ws.settings.canary_share:.0%} of entities routed to {version} (approved by {approval.approver})"
    )
    entries.append(steps.start_canary(ws, version, actor=approval.approver, reason=reason, evidence=evidence))
    for batch in watch_batches or []:
        scored = steps.score_file(ws, batch)
        run.banner(f"scored {scored.batch_id}: {scored.routed} routed, {scored.errors} errors")
    if labels:
        steps.attach_prediction_labels(ws, labels)
    run.banner("watch window: judge the canary")
    outcome = steps.decide_canary(
        ws,
        version,
        actor=approval.approver,
        reason=f"{reason} (approved by {approval.approver})",
        evidence=evidence,
        expected_production=before,
        earlier=entries,
    )
    if outcome.status == "watching":
        steps.hand_over_to_watch(ws, version, actor=approval.approver)
        steps.track_moves(ws, entries, job="promote", name=f"promote-{version}-canary")
    run.banner(f"{version}: {outcome.status} — {outcome.reasons[0]}")
    return asdict(outcome)
