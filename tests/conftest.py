from __future__ import annotations

import os

# Telemetry off and no stray network for every test process (set before any library import).
os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_ERROR_REPORTING", "false")
os.environ.setdefault("WANDB__DISABLE_STATS", "true")
os.environ.setdefault("WANDB__DISABLE_MACHINE_INFO", "true")
os.environ.setdefault("WANDB_SILENT", "true")
for _key in [k for k in os.environ if k.startswith("DRIFTGATE_")]:
    del os.environ[_key]
