"""The retrain slot: a Prefect global concurrency limit that the priority retrain deployments share."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from prefect import get_client

from flows._common import retrain_slot

pytestmark = pytest.mark.slow  # every flow test runs Prefect flows (and trains)

HOLD_SECONDS = 1.5


def hold_slot(name: str | None) -> tuple[float, float, float | None]:
    """Enter the slot, hold it for HOLD_SECONDS; (entered, left, reported wait). Two threads stand for two
    retrain flow runs: sync flow runs started from two threads of one process did not overlap here."""
    with retrain_slot(name) as waited:
        entered = time.monotonic()
        time.sleep(HOLD_SECONDS)
        left = time.monotonic()
    return entered, left, waited


def _two_at_once(name: str | None) -> list[tuple[float, float, float | None]]:
    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(hold_slot, [name, name]))


def test_a_limit_of_one_lets_one_retrain_train_at_a_time() -> None:
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name("test-retrain-slot", 1)
    first, second = sorted(_two_at_once("test-retrain-slot"))
    assert second[0] >= first[1] - 0.05, "the second retrain entered before the first left"
    assert max(first[2] or 0.0, second[2] or 0.0) >= HOLD_SECONDS * 0.8, "one of them waited for the slot"


def test_without_the_limit_on_the_server_nothing_is_held() -> None:
    first, second = sorted(_two_at_once("no-such-retrain-slot"))
    assert second[0] < first[1], "both ran at once"
    assert first[2] is None and second[2] is None
    assert hold_slot(None)[2] is None
