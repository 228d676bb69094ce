"""Contract checks at the start (issue 11): a reference the pipeline could not use is refused by
`driftgate contract` (and again at bootstrap), the version's reference keeps the user's dtypes, optional
score columns raise no warning, and the model is named after the contract."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import date, datetime, time, timedelta
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from driftgate.cli import main
from tasks.core.errors import ConfigError, DataError, DtypeError, EmptyBatchError, MissingColumnError, SingleClassError
from tasks.core.settings import load_settings
from tasks.data.contract import ModelContract, check_reference, infer_contract, validate_batch
from tasks.resources.workspace import Workspace, open_workspace
from tests.support.churn import churn

SOURCE = "ref.parquet"
ENV = ("DRIFTGATE_MODEL_NAME", "DRIFTGATE_CONFIG", "DRIFTGATE_HOME", "DRIFTGATE_CONTRACT_PATH")


@pytest.fixture(autouse=True)
def _no_driftgate_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ENV:
        monkeypatch.delenv(key, raising=False)


@pytest.fixture()
def frame() -> pl.DataFrame:
    return churn(40, seed=1)


def infer(frame: pl.DataFrame, **options: str | None) -> ModelContract:
    keys: dict[str, str | None] = {"target": "churned", "entity_id": "customer_id", "timestamp": "event_time"}
    keys.update(options)
    return infer_contract(
        frame,
        name="churn",
        target=keys["target"] or "",
        entity_id=keys["entity_id"] or "",
        timestamp=keys["timestamp"],
        source=SOURCE,
    )


# --- refusals of infer_contract ------------------------------------------------------------------------


def _nulls(frame: pl.DataFrame, column: str, rows: list[int]) -> pl.DataFrame:
    values = frame.get_column(column).to_list()
    for row in rows:
        values[row] = None
    return frame.with_columns(pl.Series(column, values, dtype=frame.schema[column]))


REFUSALS: list[tuple[str, Callable[[pl.DataFrame], pl.DataFrame], type[DataError], str, str]] = [
    # (case, change to the reference, error, column, words of the message)
    ("timestamp all null", lambda f: f.with_columns(pl.lit(None, dtype=pl.String).alias("event_time")),
     DataError, "event_time", "entirely null: pass another column with --timestamp, or leave the option out"),
    ("timestamp of dtype Null", lambda f: f.with_columns(pl.lit(None).alias("event_time")),
     DataError, "event_time", "entirely null"),
    ("timestamp text that does not parse", lambda f: _text_times(f, "not a time"),
     DtypeError, "event_time", "1 of 40 timestamps do not parse as datetimes (e.g. ['not a time'])"),
    ("timestamp as numbers", lambda f: f.with_columns(pl.int_range(0, 40, dtype=pl.Int64).alias("event_time")),
     DtypeError, "event_time", "timestamp column is Int64, not datetimes"),
    ("timestamp as times of day", lambda f: f.with_columns(pl.lit(time(8, 0)).alias("event_time")),
     DtypeError, "event_time", "do not order rows in time"),
    ("target with three classes", lambda f: f.with_columns((pl.col("tenure_months") % 3).alias("churned")),
     DtypeError, "churned", "target has 3 distinct values (e.g. [0, 1, 2]), not a binary label"),
    ("target 1/2", lambda f: f.with_columns(pl.col("churned") + 1),
     DtypeError, "churned", "target values [1, 2] (Int64) are not 0/1 or true/false"),
    ("target as text", lambda f: f.with_columns(pl.col("churned").replace_strict({0: "no", 1: "yes"})),
     DtypeError, "churned", "target values ['no', 'yes'] (String) are not 0/1 or true/false"),
    ("target of one class", lambda f: f.with_columns(pl.lit(1, dtype=pl.Int64).alias("churned")),
     SingleClassError, "churned", "single class [1]"),
    ("target all null", lambda f: f.with_columns(pl.lit(None, dtype=pl.Int64).alias("churned")),
     DataError, "churned", "entirely null, so the reference is unlabelled"),
    ("entity id with nulls", lambda f: _nulls(f, "customer_id", [3, 9]),
     DataError, "customer_id", "entity id is missing on 2 of 40 rows"),
    ("entity id repeated", lambda f: f.with_columns(pl.col("customer_id") // 2),
     DataError, "customer_id", "entity id repeats on 40 rows (e.g. [0, 1, 2]); ids must be unique"),
]  # fmt: skip


def _text_times(frame: pl.DataFrame, bad: str) -> pl.DataFrame:
    values = frame.get_column("event_time").to_list()
    values[5] = bad
    return frame.with_columns(pl.Series("event_time", values))


@pytest.mark.parametrize(("case", "change", "error", "column", "words"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_infer_contract_refuses_what_the_pipeline_cannot_use(
    frame: pl.DataFrame,
    case: str,
    change: Callable[[pl.DataFrame], pl.DataFrame],
    error: type[DataError],
    column: str,
    words: str,
) -> None:
    with pytest.raises(error) as info:
        infer(change(frame))
    message = str(info.value)
    assert type(info.value) is error, case
    assert info.value.source == SOURCE and info.value.column == column
    assert words in message
    assert f"(in {SOURCE}, column {column!r})" in message and "\n" not in message


def test_refusals_name_the_option_to_change(frame: pl.DataFrame) -> None:
    with pytest.raises(DataError, match="--target"):
        infer(frame.with_columns(pl.col("churned") + 1))
    with pytest.raises(DataError, match="--entity-id"):
        infer(frame.with_columns(pl.lit(7).alias("customer_id")))
    with pytest.raises(MissingColumnError, match="'nope'"):
        infer(frame, timestamp="nope")
    with pytest.raises(EmptyBatchError, match="no rows"):
        infer(frame.head(0))


@pytest.mark.parametrize(
    "change",
    [
        lambda f: f,  # ISO text timestamps, Int64 0/1 labels
        lambda f: f.with_columns(pl.col("churned") == 1),  # true/false labels
        lambda f: f.with_columns(pl.col("churned").cast(pl.Float64)),  # 0.0/1.0 labels
        lambda f: f.with_columns(pl.col("event_time").str.to_datetime()),  # datetimes
        lambda f: f.with_columns(pl.col("event_time").str.to_datetime().dt.date()),  # dates
        lambda f: _nulls(f, "event_time", [2]).with_columns(_nulls(f, "churned", [4]).get_column("churned")),
        lambda f: f.with_columns(pl.col("customer_id").cast(pl.String)),  # text ids
    ],
    ids=["text-times", "bool-labels", "float-labels", "datetimes", "dates", "some-nulls", "text-ids"],
)
def test_infer_contract_accepts_every_usable_reference(
    frame: pl.DataFrame, change: Callable[[pl.DataFrame], pl.DataFrame]
) -> None:
    contract = infer(change(frame))
    assert contract.feature_names == ["tenure_months", "monthly_spend", "plan", "promo"]
    validated = validate_batch(change(frame), contract, source=SOURCE, require_target=True)
    assert validated.schema["event_time"] == pl.Datetime("us") or validated.schema["event_time"].is_temporal()


def test_dates_become_datetimes_so_windows_can_order_them(frame: pl.DataFrame) -> None:
    days = frame.with_columns(pl.Series("event_time", [date(2024, 1, 1) + timedelta(days=i) for i in range(40)]))
    contract = infer(days)
    out = validate_batch(days, contract, source=SOURCE)
    assert out.schema["event_time"] == pl.Datetime("us")
    assert out.get_column("event_time")[1] == datetime(2024, 1, 2)


def test_bootstrap_checks_the_contract_against_its_reference_again(frame: pl.DataFrame) -> None:
    """A contract written before (or by hand) meets a reference it does not fit: refused at bootstrap too."""
    contract = infer(frame)
    with pytest.raises(DataError) as info:
        check_reference(frame.with_columns(pl.lit(None, dtype=pl.String).alias("event_time")), contract, source="b.csv")
    message = str(info.value)
    assert "write the contract again (`driftgate contract`): pass another column with --timestamp" in message
    assert "(in b.csv, column 'event_time')" in message


# --- the CLI: one line, exit code 2, nothing written; the contract's name ------------------------------


def _contract_cli(reference: Path, home: Path, *extra: str) -> object:
    args = ["contract", str(reference), "--target", "churned", "--entity-id", "customer_id"]
    return CliRunner().invoke(main, [*args, "--timestamp", "event_time", "--home", str(home), *extra])


def test_cli_refuses_an_all_null_timestamp_in_one_line_and_writes_nothing(tmp_path: Path, frame: pl.DataFrame) -> None:
    reference = tmp_path / "ref.parquet"
    frame.with_columns(pl.lit(None, dtype=pl.String).alias("event_time")).write_parquet(reference)
    home = tmp_path / "state"
    result = _contract_cli(reference, home)
    assert result.exit_code == 2, result.output  # type: ignore[attr-defined]
    lines = result.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1 and lines[0].startswith("error: timestamp column is entirely null")
    assert str(reference) in lines[0] and "'event_time'" in lines[0] and "--timestamp" in lines[0]
    assert "Traceback" not in result.output  # type: ignore[attr-defined]
    assert not home.exists()
    out = tmp_path / "c.yaml"
    result = _contract_cli(reference, home, "--out", str(out))
    assert result.exit_code == 2 and not out.exists() and not list(tmp_path.glob("*.tmp"))  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda f: f.with_columns(pl.col("churned") + 1), "are not 0/1 or true/false"),
        (lambda f: f.with_columns(pl.col("customer_id") // 2), "entity id repeats"),
        (lambda f: _text_times(f, "yesterday"), "do not parse as datetimes"),
    ],
)
def test_cli_refusals_exit_2(
    tmp_path: Path, frame: pl.DataFrame, change: Callable[[pl.DataFrame], pl.DataFrame], words: str
) -> None:
    reference = tmp_path / "ref.csv"
    change(frame).write_csv(reference)
    result = _contract_cli(reference, tmp_path / "state")
    assert result.exit_code == 2 and words in result.stderr  # type: ignore[attr-defined]
    assert len(result.stderr.strip().splitlines()) == 1  # type: ignore[attr-defined]
    assert not (tmp_path / "state").exists()


def test_contract_is_named_after_the_file_unless_a_model_name_is_given(
    tmp_path: Path, frame: pl.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "state"
    for name, expected in [("churn.parquet", "churn"), ("my data (v2).parquet", "my-data-v2"), ("__.parquet", "model")]:
        reference = tmp_path / name
        frame.write_parquet(reference)
        result = _contract_cli(reference, home)
        assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
        assert f"model {expected!r}, 4 features" in result.output  # type: ignore[attr-defined]
        assert ModelContract.load(home / "contract.yaml").name == expected
    result = _contract_cli(tmp_path / "churn.parquet", home, "--model", "retention")
    assert ModelContract.load(home / "contract.yaml").name == "retention", result.output  # type: ignore[attr-defined]
    monkeypatch.setenv("DRIFTGATE_MODEL_NAME", "from-env")
    _contract_cli(tmp_path / "churn.parquet", home)
    assert ModelContract.load(home / "contract.yaml").name == "from-env"


def test_workspace_model_is_the_contract_name_unless_model_name_was_set(
    tmp_path: Path, frame: pl.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "state"

    def model(**overrides: str) -> str:
        return Workspace(load_settings(home=str(home), **overrides)).model

    assert model() == "car-loan"  # no contract yet: the default name
    infer(frame).save(home / "contract.yaml")
    assert model() == "churn"
    assert model(model_name="retention") == "retention"
    yaml_file = tmp_path / "settings.yaml"
    yaml_file.write_text("model_name: car-loan\n")  # the demo's settings name the model explicitly
    assert Workspace(load_settings(yaml_file, home=str(home))).model == "car-loan"
    monkeypatch.setenv("DRIFTGATE_CONFIG", str(yaml_file))
    assert model() == "car-loan"
    monkeypatch.delenv("DRIFTGATE_CONFIG")
    monkeypatch.setenv("DRIFTGATE_MODEL_NAME", "from-env")
    assert model() == "from-env"
    monkeypatch.delenv("DRIFTGATE_MODEL_NAME")
    replace_name = ModelContract.load(home / "contract.yaml").model_copy(update={"name": "not a name"})
    replace_name.save(home / "contract.yaml")
    with pytest.raises(ConfigError, match=r"named 'not a name', which is not a model name.*--model"):
        model()


# --- bootstrap keeps the user's dtypes; a batch of the same data raises no schema issue --------------


@pytest.fixture()
def churn_home(tmp_path: Path) -> Iterator[tuple[Workspace, Path, pl.DataFrame]]:
    reference = tmp_path / "churn.parquet"
    churn(3000, seed=3).write_parquet(reference)
    home = tmp_path / "state"
    result = _contract_cli(reference, home)
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    settings = load_settings(
        home=str(home),
        tracking_mode="disabled",
        emit_events=False,
        training={"n_trials": 2, "num_boost_round": 30, "early_stopping_rounds": 10},
        gate={"n_bootstrap": 200, "stress_features": 0},
        profiling={"chunk_size": 300},
    )
    ws = open_workspace(settings)
    try:
        yield ws, reference, churn(1500, seed=4, first_id=10**6, start=datetime(2024, 3, 1))
    finally:
        ws.close()


@pytest.mark.slow
def test_first_model_keeps_the_reference_as_read_and_is_named_after_the_contract(
    churn_home: tuple[Workspace, Path, pl.DataFrame],
) -> None:
    from flows.bootstrap import as_read
    from tasks.resources.workspace import REFERENCE_FILE
    from tasks.stages import monitoring, retraining
    from tasks.stages.retraining import read_reference

    ws, reference, later = churn_home
    assert ws.model == "churn"
    raw, frame = read_reference(ws, str(reference))
    assert frame.schema["tenure_months"] == pl.Float64 and raw.schema["tenure_months"] == pl.Int64

    kept = retraining.keep_reference(ws, raw, source=str(reference))
    stored = pl.read_parquet(kept)
    # Kept in the dtypes it was read with; only the text timestamps are parsed (the back-test orders by time).
    assert stored.drop("event_time").equals(raw.drop("event_time"))
    assert stored.schema["event_time"] == pl.Datetime("us")

    window = retraining.split_holdout(ws, frame, with_reference=False)
    trained = retraining.train(ws, window, study_name="first")
    judgement = retraining.evaluate(ws, trained, window, None)
    carried = replace(judgement, holdout_scored=as_read(judgement.holdout_scored, raw, ws.contract))
    version = retraining.register(ws, trained, carried, reason="first", actor="test")  # as bootstrap_flow
    retraining.record(ws, trained, judgement, version, key=None, reason="first")
    ws.registry.promote(ws.model, version.version, actor="test", reason="first", expected_production=None)

    kept_rows = pl.read_parquet(io.BytesIO(ws.registry.read_file(version, REFERENCE_FILE)))
    assert {name: dtype for name, dtype in kept_rows.schema.items() if name in raw.columns} == dict(raw.schema)
    assert kept_rows.height == window.holdout.height and kept_rows.schema["y_pred_proba"] == pl.Float64

    # A batch drawn from the same data, without labels or scores (production scores it): no schema issue.
    batch_path = reference.parent / "batch-1.parquet"
    later.drop("churned").write_parquet(batch_path)
    ctx = monitoring.prepare_context(ws)
    loaded = monitoring.load_batch(ws, ctx, str(batch_path))
    assert loaded.scored_by == version.version
    profiled = monitoring.profile(ws, ctx, loaded)
    assert [i for i in profiled.quality.issues if i.check == "schema"] == []

    # The model is the contract's name everywhere: registry and audit rows.
    assert [p.name for p in ws.settings.registry_dir.iterdir() if p.is_dir()] == ["churn"]
    assert ws.registry.aliases("churn")["production"] == version.version
    assert ws.store.counts("churn")["decisions"] >= 1
    assert not any(ws.store.counts("car-loan").values())


def test_a_missing_feature_still_fails_while_missing_scores_pass(
    churn_home: tuple[Workspace, Path, pl.DataFrame],
) -> None:
    from tasks.drift.quality import check_schema
    from tasks.drift.reference import fit_reference_profile

    ws, reference, later = churn_home
    scored = pl.read_parquet(reference).with_columns(
        pl.lit(0.3).alias("y_pred_proba"), pl.lit(0, dtype=pl.Int8).alias("y_pred")
    )
    profile = fit_reference_profile(scored, ws.contract, ws.settings.profiling)
    assert {"y_pred_proba", "y_pred", "churned"} <= set(profile.schema)
    batch = later.drop("churned")
    assert check_schema(profile, batch.schema, ws.contract) == ()
    with pytest.raises(MissingColumnError, match="'plan'"):
        validate_batch(batch.drop("plan"), ws.contract, source="batch-2.parquet")
