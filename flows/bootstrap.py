"""Bootstrap flow: the first model, trained on a labelled reference file, judged against absolute floors."""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

from prefect import flow

from flows import steps
from flows._common import banner, workspace
from flows.promote import promote_flow
from tasks.core import progress
from tasks.stages.retraining import RetrainOutcome

if TYPE_CHECKING:
    import polars as pl

    from tasks.data.contract import ModelContract


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
    with workspace(home, config, model) as ws:
        banner(f"load the labelled reference {reference}")
        raw, frame = steps.read_reference(ws, reference)
        kept = steps.keep_reference(ws, raw, source=reference)
        banner(f"reference kept at {kept} (reference-plus-recent windows and the gate's back-test read it)")
        window = steps.split_holdout(ws, frame, with_reference=False)
        del frame
        banner(f"tune and train the first model on {window.train.height} rows")
        trained = steps.train(ws, window, study_name=f"{ws.model}-bootstrap", progress=progress.trial_reporter("tune"))
        banner("gate: absolute floors (no champion yet)")
        judgement = steps.evaluate(ws, trained, window, None)
        # The version's monitoring reference keeps the dtypes the user's files have (see as_read); the
        # record keeps the validated holdout (parsed timestamps).
        carried = replace(judgement, holdout_scored=as_read(judgement.holdout_scored, raw, ws.contract))
        del raw
        version = steps.register(ws, trained, carried, reason="first model from reference", actor=actor)
        del carried
        report = steps.record_retrain(ws, trained, judgement, version, key=None, reason="first model from reference")
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
