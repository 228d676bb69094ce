"""THE table of Prefect task wrappers of the stage functions in tasks/ (no caching: inputs are frames and
resources, and a move is an act). Flows call these; nothing else in the project wraps a function as a task."""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from prefect import Task, task
from prefect.cache_policies import NO_CACHE

from tasks.policy import replay
from tasks.stages import arrivals, canary, drill, monitoring, promotion, retraining

P = ParamSpec("P")
R = TypeVar("R")


def _step(name: str, fn: Callable[P, R]) -> Task[P, R]:
    """A stage function as a Prefect task; never cached: inputs are frames and resources, and a move is an act."""
    return task(name=name, cache_policy=NO_CACHE, persist_result=False)(fn)


select_batches = _step("select-batches", monitoring.select_batches)
prepare_context = _step("prepare-monitoring", monitoring.prepare_context)
read_labels = _step("read-labels", monitoring.read_labels)
refuse = _step("refuse-batch", monitoring.refuse)
attach_labels = _step("attach-labels", arrivals.attach_labels)
load_batch = _step("load-batch", monitoring.load_batch)
profile = _step("profile-batch", monitoring.profile)
estimate = _step("estimate-performance", monitoring.estimate)
judge = _step("policy-decide", monitoring.judge)
record_monitoring = _step("record-monitoring", monitoring.record)
announce = _step("emit-events", monitoring.announce)
report_monitoring = _step("report-batch", monitoring.report)

record_duplicate = _step("record-duplicate", retraining.record_duplicate)
claim_window = _step("claim-window", retraining.claim)
collect_window = _step("collect-window", retraining.collect_window)
split_holdout = _step("split-holdout", retraining.split_holdout)
train = _step("train-candidate", retraining.train)
evaluate = _step("gate-candidate", retraining.evaluate)
register = _step("register-candidate", retraining.register)
record_retrain = _step("record-retrain", retraining.record)
promote = _step("move-aliases", promotion.promote)
rollback = _step("rollback-alias", promotion.rollback)
read_reference = _step("load-reference", retraining.read_reference)
keep_reference = _step("keep-reference", retraining.keep_reference)

check_candidate = _step("check-candidate", promotion.check_candidate)
begin_promotion = _step("begin-promotion", promotion.begin)
hand_over_to_watch = _step("hand-over-to-watch", promotion.hand_over_to_watch)
withdraw = _step("withdraw", promotion.withdraw)
stage = _step("stage", promotion.stage)
record_approval = _step("record-approval", promotion.record_approval)
reject = _step("reject-promotion", promotion.reject)
start_canary = _step("start-canary", promotion.start_canary)
decide_canary = _step("decide-canary", promotion.decide_canary)
track_moves = _step("track-alias-moves", promotion.track_moves)
watch_window = _step("watch-window", promotion.watch)

score_file = _step("score-batch", canary.score_file)
attach_prediction_labels = _step("attach-prediction-labels", canary.attach_labels)

run_drill = _step("rollback-drill", drill.run_drill)
replay_policy = _step("replay-policy", replay.replay)
