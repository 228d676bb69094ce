"""The CLI answers --help without importing the heavy stack, and telemetry switches are set by default."""

from __future__ import annotations

import os
import subprocess
import sys

from click.testing import CliRunner

from driftgate.cli import main
from tasks.core.telemetry import TELEMETRY_OFF, disable_telemetry

HEAVY = ("prefect", "polars", "nannyml", "wandb", "lightgbm", "optuna", "sqlalchemy", "pandas")


def test_help_imports_nothing_heavy() -> None:
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom driftgate.cli import main\n"
        "r = CliRunner().invoke(main, ['monitor', '--help'])\nassert r.exit_code == 0, r.output\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_command_explains_itself() -> None:
    runner = CliRunner()
    top = runner.invoke(main, ["--help"])
    assert top.exit_code == 0
    for command in ("demo", "contract", "bootstrap", "monitor", "labels", "retrain", "promote", "rollback", "history"):
        assert command in top.output
        result = runner.invoke(main, [command, "--help"])
        assert result.exit_code == 0, command
        assert "--home" in result.output
        assert len(result.output.splitlines()) > 6


def test_telemetry_off_by_default_but_user_values_win(monkeypatch: object) -> None:
    import pytest

    mp = pytest.MonkeyPatch()
    try:
        for key in TELEMETRY_OFF:
            mp.delenv(key, raising=False)
        mp.setenv("DO_NOT_TRACK", "0")
        disable_telemetry()
        assert os.environ["NML_DISABLE_USAGE_LOGGING"] == "1"
        assert os.environ["WANDB__DISABLE_STATS"] == "true"
        assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
        assert os.environ["DO_NOT_TRACK"] == "0"
    finally:
        mp.undo()
