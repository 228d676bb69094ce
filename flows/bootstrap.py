"""Bootstrap flow: the first model, trained on a labelled reference file, judged against absolute floors."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows import steps
from flows._common import banner, workspace
from flows.promote import promote_flow
from tasks import progress, retraining
from tasks.retraining import RetrainOutcome

load_labelled = task(name="load-reference", cache_policy=NO_CACHE, persist_result=False)(retraining.load_labelled)
keep_reference = task(name="keep-reference", cache_policy=NO_CACHE, persist_result=False)(retraining.keep_reference)


@flow(name="driftgate-bootstrap", log_prints=True)
def bootstrap_flow(
    reference: str,
    promote: bool = True,
    actor: str = "driftgate",
    home: str | None = None,
    config: str | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """Train the first model on `reference` (labelled); promote it to production if it clears the floors."""
    ws = workspace(home, config, model)
    banner(f"load the labelled reference {reference}")
    frame = load_labelled(ws, reference)
    kept = keep_reference(ws, frame, source=reference)
    banner(f"reference kept at {kept} (reference-plus-recent windows and the gate's back-test read it)")
    window = steps.split_holdout(ws, frame, with_reference=False)
    banner(f"tune and train the first model on {window.train.height} rows")
    trained = steps.train(ws, window, study_name=f"{ws.model}-bootstrap", progress=progress.trial_reporter("tune"))
    banner("gate: absolute floors (no champion yet)")
    judgement = steps.evaluate(ws, trained, window, None)
    version = steps.register(ws, trained, judgement, reason="first model from reference", actor=actor)
    report = steps.record_retrain(ws, trained, judgement, version, key=None, reason="first model from reference")
    ws.close()
    if judgement.gate.passed and promote:
        promote_flow(
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
