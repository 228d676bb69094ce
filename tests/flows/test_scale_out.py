"""Scale-out of monitoring: the monitor flow measures batch files concurrently on its task runner (threads, or a
local Dask cluster of worker processes through prefect-dask) and still judges and records them in batch order,
leaving the same audit rows as a one-at-a-time run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tasks.core.settings import load_settings
from tasks.data.files import load_car_loan
from tasks.resources.workspace import open_workspace

pytestmark = pytest.mark.slow  # flow runs, a champion trained once per session and a Dask cluster


def _copy(template: Path, target: Path, concurrency: int) -> Path:
    shutil.copytree(template, target)
    config = target / "driftgate.yaml"
    config.write_text(config.read_text().replace(str(template), str(target)) + f"monitor_concurrency: {concurrency}\n")
    return target


def _batches(folder: Path) -> list[str]:
    _, analysis = load_car_loan()
    folder.mkdir()
    paths = []
    for day in range(4):
        path = folder / f"2026-11-0{day + 1}.parquet"
        analysis.slice(day * 2500, 2500).drop("repaid").write_parquet(path)
        paths.append(str(path))
    broken = folder / "2026-11-05.parquet"
    broken.write_text("not a parquet file")  # refused at the boundary, in its place in the order
    return [*paths, str(broken)]


def _rounded(value: Any) -> Any:
    """Thresholds calibrated in another process may differ in the last bits (compiled kernels or their numpy
    twins, whichever that process loaded): equal to 12 significant digits is the same audit."""
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_rounded(v) for v in value)
    return value


def _audit(home: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    ws = open_workspace(load_settings(home / "driftgate.yaml"))
    try:
        signals = sorted(
            _rounded((s["batch_id"], s["kind"], s["name"], s["method"], s["value"], s["threshold"], s["alert"]))
            for s in ws.store.signals(ws.model)
        )
        decisions = [
            (d["outcome"], d["batch_id"], json.dumps(_rounded((d["payload"] or {}).get("evidence")), sort_keys=True))
            for d in ws.store.decisions(ws.model, kind="policy")
        ]
        return signals, decisions
    finally:
        ws.close()


def test_a_dask_cluster_measures_batches_concurrently_and_the_audit_is_the_sequential_one(
    champion_template: Path, tmp_path: Path
) -> None:
    from prefect_dask import DaskTaskRunner

    from flows.bodies import Runner, monitor_body
    from flows.monitor import monitor_flow
    from tasks.core.errors import DataError

    batches = _batches(tmp_path / "inbox")
    sequential = _copy(champion_template, tmp_path / "sequential", 1)
    dask_home = _copy(champion_template, tmp_path / "dask", 2)
    with pytest.raises(DataError, match="2026-11-05"):
        monitor_body(Runner(), batches=batches, home=str(sequential), config=str(sequential / "driftgate.yaml"))
    runner = DaskTaskRunner(
        cluster_kwargs={"n_workers": 2, "threads_per_worker": 1, "processes": True, "dashboard_address": None}
    )
    with pytest.raises(DataError, match="2026-11-05"):
        monitor_flow.with_options(task_runner=runner)(
            batches=batches, home=str(dask_home), config=str(dask_home / "driftgate.yaml")
        )
    signals, decisions = _audit(dask_home)
    expected_signals, expected_decisions = _audit(sequential)
    assert signals == expected_signals
    assert decisions == expected_decisions
    assert [d[1] for d in decisions] == [Path(b).stem for b in batches]  # in batch order, the refusal in place
    assert decisions[-1][0] == "BLOCK" and len(signals) > 20
