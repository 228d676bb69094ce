"""Fault injection for crash tests: ``DRIFTGATE_FAULT=<step>:<point>`` ends the process at that point.

The one home of the hook. Code calls :func:`fault_point` at the named points of its durable steps; when
the variable names that point, the process ends at once with ``os._exit(137)`` (what a SIGKILL looks
like to a shell: no ``finally``, no flush, no atexit), so a test can prove that every crash leaves a
state that `driftgate verify` accepts or the next write repairs. Unset (always, in production) it costs
one environment lookup.

Named points (``FAULT_POINTS``):

- every ledger append of action ``<a>`` (register, lease, promote, rollback, withdraw, complete, ...):
  ``<a>:before_ledger`` (lock held, nothing written), ``<a>:after_ledger`` (line fsync'd, anchor not yet
  rewritten), ``<a>:after_anchor`` (both durable, the caller not yet told);
- the promotion stage (``tasks.stages.promotion.promote``): ``promote:after_lease``,
  ``promote:after_staging``, ``promote:after_canary``, ``promote:after_production``, ``promote:after_audit``;
- the rollback stage: ``rollback:after_production``, ``rollback:after_audit``.
"""

from __future__ import annotations

import os
from typing import Final

FAULT_ENV: Final = "DRIFTGATE_FAULT"
KILLED_EXIT_CODE: Final = 137

FAULT_POINTS: Final = (
    "promote:after_lease",
    "lease:before_ledger",
    "lease:after_ledger",
    "lease:after_anchor",
    "promote:after_staging",
    "promote:after_canary",
    "promote:before_ledger",
    "promote:after_ledger",
    "promote:after_anchor",
    "promote:after_production",
    "promote:after_audit",
    "rollback:before_ledger",
    "rollback:after_ledger",
    "rollback:after_anchor",
    "rollback:after_production",
    "rollback:after_audit",
)


def fault_point(step: str, point: str) -> None:
    """End the process (exit code 137) if ``DRIFTGATE_FAULT`` names ``<step>:<point>``; otherwise do nothing."""
    wanted = os.environ.get(FAULT_ENV)
    if wanted and wanted == f"{step}:{point}":
        os._exit(KILLED_EXIT_CODE)
