"""The README's own-data path on a user's export (issue 11): contract, bootstrap and monitor without
--model name the model after the file, and a batch of the same data raises no schema warning."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from driftgate.cli import main
from tests.support.churn import churn

pytestmark = pytest.mark.slow  # every flow test runs Prefect flows (and trains)


def test_own_data_is_named_after_its_file_and_monitored_without_schema_warnings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import datetime

    from tasks.core.settings import load_settings
    from tasks.resources.workspace import open_workspace

    monkeypatch.delenv("DRIFTGATE_MODEL_NAME", raising=False)
    reference = tmp_path / "churn.parquet"
    churn(3000, seed=3).write_parquet(reference)
    batch = tmp_path / "inbox" / "2024-03-01.parquet"
    batch.parent.mkdir()
    # The same export later on: no labels, no scores (production scores the batch).
    churn(1500, seed=4, first_id=10**6, start=datetime(2024, 3, 1)).drop("churned").write_parquet(batch)
    config = tmp_path / "settings.yaml"
    config.write_text(
        "tracking_mode: disabled\nemit_events: false\ntraining:\n  n_trials: 2\n  num_boost_round: 60\n"
        "gate:\n  n_bootstrap: 200\nprofiling:\n  chunk_size: 300\n"
    )
    common = ["--home", str(tmp_path / "state"), "--config", str(config)]
    runner = CliRunner()

    keys = ["--target", "churned", "--entity-id", "customer_id", "--timestamp", "event_time"]
    result = runner.invoke(main, ["contract", str(reference), *keys, *common])
    assert result.exit_code == 0, result.output
    assert "model 'churn'" in result.output
    result = runner.invoke(main, ["bootstrap", str(reference), *common])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["monitor", str(batch), "--no-retrain", *common])
    assert result.exit_code == 0, result.output

    ws = open_workspace(load_settings(config, home=str(tmp_path / "state")))
    try:
        assert ws.model == "churn"
        assert [p.name for p in ws.settings.registry_dir.iterdir() if p.is_dir()] == ["churn"]
        assert ws.registry.aliases("churn").get("production") == "v0"
        counts = ws.store.counts("churn")
        assert counts["batches"] == 1 and counts["decisions"] >= 1
        assert not any(ws.store.counts("car-loan").values())
        (quality,) = ws.store.signals("churn", kind="quality")
        issues = quality["payload"]["issues"]
        assert [i for i in issues if i["check"] == "schema"] == [], issues
    finally:
        ws.close()
