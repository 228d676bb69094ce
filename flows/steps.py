"""THE table of Prefect task wrappers of the stage functions in tasks/ (no caching: inputs are frames and
resources, and a move is an act). Flows call these; nothing else in the project wraps a function as a task."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.policy import replay
from tasks.stages import arrivals, canary, drill, monitoring, promotion, retraining

select_batches = task(name="select-batches", cache_policy=NO_CACHE, persist_result=False)(monitoring.select_batches)
prepare_context = task(name="prepare-monitoring", cache_policy=NO_CACHE, persist_result=False)(
    monitoring.prepare_context
)
read_labels = task(name="read-labels", cache_policy=NO_CACHE, persist_result=False)(monitoring.read_labels)
refuse = task(name="refuse-batch", cache_policy=NO_CACHE, persist_result=False)(monitoring.refuse)
attach_labels = task(name="attach-labels", cache_policy=NO_CACHE, persist_result=False)(arrivals.attach_labels)
load_batch = task(name="load-batch", cache_policy=NO_CACHE, persist_result=False)(monitoring.load_batch)
profile = task(name="profile-batch", cache_policy=NO_CACHE, persist_result=False)(monitoring.profile)
estimate = task(name="estimate-performance", cache_policy=NO_CACHE, persist_result=False)(monitoring.estimate)
judge = task(name="policy-decide", cache_policy=NO_CACHE, persist_result=False)(monitoring.judge)
record_monitoring = task(name="record-monitoring", cache_policy=NO_CACHE, persist_result=False)(monitoring.record)
announce = task(name="emit-events", cache_policy=NO_CACHE, persist_result=False)(monitoring.announce)
report_monitoring = task(name="report-batch", cache_policy=NO_CACHE, persist_result=False)(monitoring.report)

record_duplicate = task(name="record-duplicate", cache_policy=NO_CACHE, persist_result=False)(
    retraining.record_duplicate
)
claim_window = task(name="claim-window", cache_policy=NO_CACHE, persist_result=False)(retraining.claim)
collect_window = task(name="collect-window", cache_policy=NO_CACHE, persist_result=False)(retraining.collect_window)
split_holdout = task(name="split-holdout", cache_policy=NO_CACHE, persist_result=False)(retraining.split_holdout)
train = task(name="train-candidate", cache_policy=NO_CACHE, persist_result=False)(retraining.train)
evaluate = task(name="gate-candidate", cache_policy=NO_CACHE, persist_result=False)(retraining.evaluate)
register = task(name="register-candidate", cache_policy=NO_CACHE, persist_result=False)(retraining.register)
record_retrain = task(name="record-retrain", cache_policy=NO_CACHE, persist_result=False)(retraining.record)
promote = task(name="move-aliases", cache_policy=NO_CACHE, persist_result=False)(promotion.promote)
rollback = task(name="rollback-alias", cache_policy=NO_CACHE, persist_result=False)(promotion.rollback)
read_reference = task(name="load-reference", cache_policy=NO_CACHE, persist_result=False)(retraining.read_reference)
keep_reference = task(name="keep-reference", cache_policy=NO_CACHE, persist_result=False)(retraining.keep_reference)

check_candidate = task(name="check-candidate", cache_policy=NO_CACHE, persist_result=False)(promotion.check_candidate)
stage = task(name="stage", cache_policy=NO_CACHE, persist_result=False)(promotion.stage)
record_approval = task(name="record-approval", cache_policy=NO_CACHE, persist_result=False)(promotion.record_approval)
reject = task(name="reject-promotion", cache_policy=NO_CACHE, persist_result=False)(promotion.reject)
start_canary = task(name="start-canary", cache_policy=NO_CACHE, persist_result=False)(promotion.start_canary)
decide_canary = task(name="decide-canary", cache_policy=NO_CACHE, persist_result=False)(promotion.decide_canary)
track_moves = task(name="track-alias-moves", cache_policy=NO_CACHE, persist_result=False)(promotion.track_moves)
watch_window = task(name="watch-window", cache_policy=NO_CACHE, persist_result=False)(promotion.watch)

score_file = task(name="score-batch", cache_policy=NO_CACHE, persist_result=False)(canary.score_file)
attach_prediction_labels = task(name="attach-prediction-labels", cache_policy=NO_CACHE, persist_result=False)(
    canary.attach_labels
)

run_drill = task(name="rollback-drill", cache_policy=NO_CACHE, persist_result=False)(drill.run_drill)
replay_policy = task(name="replay-policy", cache_policy=NO_CACHE, persist_result=False)(replay.replay)
