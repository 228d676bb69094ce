"""`driftgate wandb publish --dry-run` on a small home (no training, no network): it prints the runs, reports
and the alias replay it would perform, the replayed aliases equal the ledger's, and the cursor makes a
re-run publish only what is new. Without an API key, a real publish stops in one line (exit 2)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from devkit.promotion_home import MODEL, Home, good_and_bad_models, make_home
from driftgate.cli import main
from driftgate.wandb_commands import plan_publish
from tasks.report.wandb_report import build_report, spec_path, write_spec
from tasks.resources.store import DecisionRecord, SignalRecord
from tasks.resources.wandb_monitoring import (
    cursor_path,
    read_cursor,
    with_monitoring_cursor,
    write_cursor,
)
from tasks.resources.workspace import open_home
from tests.unit.report.test_wandb_report import _input


def _monitor(home: Home, days: range) -> None:
    """Audit rows of monitored batches, as the monitor records them (one drift alert, a RETRAIN on day 3)."""
    start = datetime(2026, 11, 1, tzinfo=UTC)
    with open_home(home.settings) as ws:
        for day in days:
            batch, begin, end = f"day-{day:02d}", start + timedelta(days=day - 1), start + timedelta(days=day)
            ws.store.record_batch(MODEL, batch, f"inputs/{batch}.parquet", 500, begin, end, "monitored")
            ws.store.record_signals(
                [
                    SignalRecord(MODEL, batch, "drift", "x1", "psi", 0.1 * day, 0.2, day == 3, begin, end),
                    SignalRecord(
                        MODEL,
                        batch,
                        "estimate",
                        "roc_auc",
                        "cbpe",
                        0.9,
                        0.85,
                        False,
                        begin,
                        end,
                        {"lower": 0.88, "upper": 0.92},
                    ),
                    SignalRecord(MODEL, batch, "quality", "data_quality", "checks", 0.0, None, False, begin, end),
                ]
            )
            outcome = "RETRAIN" if day == 3 else "NONE"
            ws.store.record_decision(DecisionRecord(MODEL, "policy", outcome, ("test",), batch_id=batch, version="v0"))


@pytest.fixture(scope="module")
def texts() -> dict[str, str]:
    return good_and_bad_models()


@pytest.fixture
def home(tmp_path: Path, texts: dict[str, str]) -> Home:
    """Three versions; v0 promoted, v1 staged, canaried and promoted, rolled back to v0; four monitored days."""
    home = make_home(tmp_path / "home", emit_events=False)
    for text in (texts["good"], texts["good2"], texts["good"] + "\n"):
        home.register(text)
    with open_home(home.settings) as ws:
        reg = ws.registry
        reg.promote(MODEL, "v0", actor="t", reason="first", expected_production=None)
        reg.move_alias(MODEL, "staging", "v1", expected=None, actor="t", reason="stage")
        reg.move_alias(MODEL, "canary", "v1", expected=None, actor="t", reason="canary")
        reg.promote(MODEL, "v1", actor="t", reason="better", expected_production="v0")
        for alias in ("staging", "canary"):
            reg.move_alias(MODEL, alias, None, expected="v1", actor="t", reason="promoted")
        reg.rollback(MODEL, actor="t", reason="drill")
    _monitor(home, range(1, 5))
    write_spec(build_report(_input()), spec_path(home.settings.reports_dir, MODEL, "v1"))
    offline = home.settings.wandb_dir / "wandb" / "offline-run-20261101_000000-abc123"
    offline.mkdir(parents=True)
    return home


def _publish(home: Home, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(
        main, ["wandb", "publish", *args, "--home", str(home.root), "--config", str(home.config)], env=env
    )
    return result.exit_code, result.output


def test_dry_run_prints_runs_reports_monitoring_and_the_alias_replay(home: Home) -> None:
    code, out = _publish(home, "--dry-run")
    assert code == 0, out
    assert "runs to upload (wandb sync): 1" in out and "offline-run-20261101_000000-abc123" in out
    assert "reports to save: 1" in out and "v1.report.json" in out and "gate passed" in out
    assert "4 batch steps day-01 .. day-04" in out and "tags ['NONE', 'RETRAIN']" in out
    # Removals are part of the replay, in ledger order.
    assert "remove 'canary' from v1" in out and "remove 'previous-production' from v0" in out
    assert "remove 'production' from v1" in out
    with open_home(home.settings) as ws:
        ledger = {a: v for a, v in ws.registry.aliases(MODEL).items() if a != "latest"}
    expected = " ".join(f"{a}={v}" for a, v in sorted(ledger.items()))
    assert f"replayed final aliases: {expected}" in out and f"ledger final aliases:   {expected}" in out
    assert "replayed final state equals the ledger's: yes" in out
    assert not cursor_path(home.settings.wandb_dir).exists()  # a dry run writes nothing


def test_the_replayed_final_state_equals_the_ledger_including_removals(home: Home) -> None:
    with open_home(home.settings) as ws:
        plan = plan_publish(ws).replay
        ledger = {a: v for a, v in ws.registry.aliases(MODEL).items() if a != "latest"}
    assert plan.final == plan.ledger_final == ledger == {"candidate": "v2", "production": "v0"}
    assert {s.action for s in plan.steps} == {"publish", "add", "remove"}


def test_the_cursor_publishes_only_new_batches(home: Home) -> None:
    with open_home(home.settings) as ws:
        first = plan_publish(ws).monitoring
        assert [s.batch_id for s in first.steps] == ["day-01", "day-02", "day-03", "day-04"]
        path = cursor_path(ws.settings.wandb_dir)
        write_cursor(path, with_monitoring_cursor(read_cursor(path), MODEL, first.cursor))
        assert plan_publish(ws).monitoring.steps == ()
    _monitor(home, range(5, 7))
    with open_home(home.settings) as ws:
        again = plan_publish(ws).monitoring
    assert [s.batch_id for s in again.steps] == ["day-05", "day-06"]


def test_publishing_without_an_api_key_names_what_is_missing(
    home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc from `wandb login`
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    code, out = _publish(home)
    assert code == 2
    assert "needs a W&B API key: set WANDB_API_KEY or run `wandb login`" in out
    assert not cursor_path(home.settings.wandb_dir).exists()


def test_publish_sends_each_part_once_and_the_registry_ends_at_the_ledger(
    home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sending path with W&B's network calls stood in: sync, report save, an offline monitoring run,
    and the registry adapter against the in-process W&B API stand-in; a second publish sends nothing."""
    import driftgate.wandb_commands as commands
    import tasks.report.wandb_report as wandb_report
    import tasks.resources.tracking as tracking
    from tasks.registry.wandb_mirror import registry_path
    from tests.support import wandb_api

    synced: list[Path] = []
    saved: list[str] = []
    monkeypatch.setattr(commands, "_sync", synced.append)
    monkeypatch.setattr(wandb_report, "save_spec", lambda spec, entity=None: saved.append(spec["displayName"]) or "url")
    offline = tracking.WandbTracker

    def tracker(**kwargs: object) -> tracking.WandbTracker:
        return offline(**{**kwargs, "mode": "offline"})  # type: ignore[arg-type]

    monkeypatch.setattr(tracking, "WandbTracker", tracker)
    for key in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR"):
        monkeypatch.setenv(key, str(tmp_path / key.lower()))
    api = wandb_api.install(monkeypatch)
    with open_home(home.settings) as ws:
        done = commands.execute(ws, commands.plan_publish(ws))
        ledger = {a: v for a, v in ws.registry.aliases(MODEL).items() if a != "latest"}
        assert [p.name for p in synced] == ["offline-run-20261101_000000-abc123"]
        assert saved == ["car-loan v1 vs v0: gate passed"]
        assert any(line.startswith("monitoring run ") and "4 batch steps" in line for line in done)
        assert {a: v for a, v in api.aliases(registry_path("model", MODEL)).items() if a != "latest"} == ledger
        again = commands.plan_publish(ws)
        # Only the monitoring run this test wrote offline (online it is no offline-run-* folder) is new.
        assert "offline-run-20261101_000000-abc123" not in {p.name for p in again.runs}
        assert (again.reports, again.monitoring.steps) == ((), ())
        commands.execute(ws, again)
    assert len(saved) == 1 and [p.name for p in synced].count("offline-run-20261101_000000-abc123") == 1
