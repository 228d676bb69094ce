from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect API for all flow tests (entering the harness takes ~15 s)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def champion_template(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> Path:
    """A home with a contract and a champion in production, trained once per session on car-loan rows."""
    from flows.bootstrap import bootstrap_flow
    from tasks.data.contract import infer_contract
    from tasks.data.files import load_car_loan

    home = tmp_path_factory.mktemp("champion")
    reference, _ = load_car_loan()
    reference = reference.head(8000)
    infer_contract(
        reference, name="car-loan", target="repaid", entity_id="id", timestamp="timestamp", slices=["salary_range"]
    ).save(home / "contract.yaml")
    reference.write_parquet(home / "reference.parquet")
    (home / "driftgate.yaml").write_text(
        f"home: {home}\ntraining:\n  n_trials: 2\n  num_boost_round: 60\n"
        "policy:\n  persistence: 1\n  min_new_rows: 500\nprofiling:\n  chunk_size: 2000\n"
    )
    bootstrap_flow(reference=str(home / "reference.parquet"), home=str(home), config=str(home / "driftgate.yaml"))
    return home


@pytest.fixture()
def champion_home(champion_template: Path, tmp_path: Path) -> Callable[[], Path]:
    """A private copy of the champion home (its config rewritten to point at the copy)."""

    def make() -> Path:
        home = tmp_path / "home"
        shutil.copytree(champion_template, home)
        config = home / "driftgate.yaml"
        config.write_text(config.read_text().replace(str(champion_template), str(home)))
        return home

    return make
