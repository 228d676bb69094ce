"""Bad input is refused before anything heavy is imported or started: one line on stderr, exit code 2."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from tasks.data.contract import infer_contract

REPO = Path(__file__).resolve().parents[3]
HEAVY = ("prefect", "nannyml", "lightgbm", "optuna", "wandb")


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    frame = pl.DataFrame(
        {"id": list(range(40)), "x": [float(i) for i in range(40)], "colour": ["a", "b"] * 20, "y": [0, 1] * 20}
    )
    home = tmp_path / "home"
    infer_contract(frame, name="m", target="y", entity_id="id").save(home / "contract.yaml")
    frame.drop("y").write_parquet(tmp_path / "good.parquet")
    frame.drop("y", "colour").write_parquet(tmp_path / "bad.parquet")
    frame.select("id").write_parquet(tmp_path / "labels.parquet")
    return home


def _cli(args: list[str]) -> tuple[subprocess.CompletedProcess[str], float]:
    probe = (
        "import atexit, sys\n"
        f"atexit.register(lambda: print('HEAVY', sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr))\n"
        "from driftgate.cli import main\n"
        f"main({args!r})\n"
    )
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=120)
    return out, time.perf_counter() - started


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["monitor", "{tmp}/bad.parquet"], "column 'colour'"),
        pytest.param(["monitor", "{tmp}/nothing-*.parquet"], "no file matches", marks=pytest.mark.slow),
        pytest.param(["labels", "{tmp}/labels.parquet"], "column 'y'", marks=pytest.mark.slow),
        pytest.param(["bootstrap", "{tmp}/good.parquet"], "column 'y'", marks=pytest.mark.slow),
        pytest.param(
            ["monitor", "{tmp}/good.parquet", "--config", "{tmp}/settings.yaml"], "settings", marks=pytest.mark.slow
        ),
    ],
    ids=["missing-column", "no-file", "labels-without-target", "reference-without-target", "bad-settings"],
)
def test_bad_input_is_one_line_exit_2_before_heavy_imports(home: Path, args: list[str], needle: str) -> None:
    tmp = home.parent
    (tmp / "settings.yaml").write_text("policy:\n  persistence: -3\n")
    out, seconds = _cli([a.format(tmp=tmp) for a in args] + ["--home", str(home)])
    lines = [line for line in out.stderr.splitlines() if not line.startswith("HEAVY")]
    assert out.returncode == 2, out.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert "HEAVY []" in out.stderr
    assert seconds < 30, f"{seconds:.1f} s"  # ~1 s on a quiet machine; the bound only catches a server start


def test_a_refused_batch_is_recorded_as_block(home: Path) -> None:
    from tasks.core.settings import load_settings
    from tasks.resources.workspace import open_home

    out, _ = _cli(["monitor", str(home.parent / "bad.parquet"), "--home", str(home)])
    assert out.returncode == 2, out.stderr
    with open_home(load_settings(home=str(home))) as ws:
        (decision,) = ws.store.decisions(ws.model)
    assert decision["outcome"] == "BLOCK" and decision["batch_id"] == "bad"
    assert "refused at the boundary" in decision["reasons"][0]
