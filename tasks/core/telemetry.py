"""Turn off the usage telemetry of every dependency unless the user opted in."""

from __future__ import annotations

import os

# Each switch must be set before the library is imported.
TELEMETRY_OFF = {
    "NML_DISABLE_USAGE_LOGGING": "1",  # NannyML (segment analytics)
    "DO_NOT_TRACK": "1",  # Prefect client
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # Prefect server
    "WANDB_ERROR_REPORTING": "false",  # W&B sentry
    "WANDB__DISABLE_STATS": "true",
    "WANDB__DISABLE_MACHINE_INFO": "true",
    "WANDB_SILENT": "true",
}


def disable_telemetry() -> None:
    """Idempotent; an explicit value already in the environment wins, and DRIFTGATE_TELEMETRY=1 opts in."""
    if os.environ.get("DRIFTGATE_TELEMETRY", "").lower() in {"1", "true", "yes"}:
        return
    for key, value in TELEMETRY_OFF.items():
        os.environ.setdefault(key, value)
