"""A churn table in the dtypes a user's own export has."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl


def churn(n: int, *, seed: int, first_id: int = 0, start: datetime = datetime(2024, 1, 1)) -> pl.DataFrame:
    """A churn table in the dtypes a user's export has: integer and float features, text, a flag,
    a 0/1 Int64 label and ISO text timestamps."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 72, n)
    spend = rng.gamma(2.0, 30.0, n)
    plan = rng.choice(["basic", "plus", "pro"], n)
    promo = rng.random(n) < 0.3
    logit = -0.05 * tenure + 0.01 * spend + np.where(plan == "basic", 0.8, 0.0) + 0.5
    return pl.DataFrame(
        {
            "customer_id": np.arange(first_id, first_id + n, dtype=np.int64),
            "tenure_months": tenure.astype(np.int64),
            "monthly_spend": spend,
            "plan": plan,
            "promo": promo,
            "churned": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64),
            "event_time": [(start + timedelta(minutes=7 * i)).strftime("%Y-%m-%d %H:%M:%S") for i in range(n)],
        }
    )
