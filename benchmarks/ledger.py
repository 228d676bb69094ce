"""Cost of one ledger append (a note) and one registry rollback, in-process, on a local registry.

    uv run python benchmarks/ledger.py [--rounds 200] [--history 1000]

The registry starts with three versions and ``--history`` ledger entries, so that the cost of replaying
(and, with the hash chain, checking) the ledger on each locked write is included. Prints medians and p90
in milliseconds, and the load average, since the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tasks.registry.local import LocalRegistry  # noqa: E402

MODEL = "bench"
BOOSTER = b"tree\nversion=v4\nnum_class=1\nfeature_names=a b c\n\nTree=0\nnum_leaves=2\n"


def _ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[int(0.9 * (len(ordered) - 1))]
    return f"median {statistics.median(ordered) * 1000:.2f} ms, p90 {p90 * 1000:.2f} ms (n={len(ordered)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--history", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        reg = LocalRegistry(Path(tmp) / "registry")
        for tag in range(3):
            reg.register(MODEL, {"model.txt": BOOSTER + f"# {tag}\n".encode()}, {}, actor="bench", reason="setup")
        for _ in range(args.history):
            reg.note(MODEL, "audit", actor="bench", reason="history")
        appends = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            reg.note(MODEL, "audit", actor="bench", reason="timed")
            appends.append(time.perf_counter() - start)
        rollbacks = []
        for _ in range(args.rounds // 4):
            for version in ("v0", "v1", "v2"):
                reg.promote(MODEL, version, actor="bench", reason="setup")
            start = time.perf_counter()
            reg.rollback(MODEL, actor="bench", reason="timed", expected_production="v2")
            rollbacks.append(time.perf_counter() - start)
        print(f"ledger entries at the end: {len(reg.ledger(MODEL))}")
        print(f"ledger append (note): {_ms(appends)}")
        print(f"rollback (registry):  {_ms(rollbacks)}")
        print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
