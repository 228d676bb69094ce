"""Every test here is a simulation (thousands of replicates to measure a rate): the slow tier, which CI runs.
The inner loop, `pytest -m "not slow and not integration"`, keeps the unit tests."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = __file__.rsplit("/", 1)[0]
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.slow)
