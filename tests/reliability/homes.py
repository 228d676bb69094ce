"""Homes for the reliability tests: real registry, audit store and settings, fake (never trained) versions."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from devkit.promotion_home import MODEL, Home, make_home
from tasks.core.errors import AliasConflictError
from tasks.registry.local import LocalRegistry
from tasks.registry.model import CANARY, STAGING
from tests.support.mirror import BOOSTER_TEXT

__all__ = ["MODEL", "add_versions", "audited", "fake_home", "race", "settled"]


def add_versions(registry: LocalRegistry, count: int, *, gate_failed: tuple[int, ...] = ()) -> list[str]:
    """Register ``count`` fake versions (distinct bytes, gate_passed unless listed); returns their names."""
    start = len(registry.versions(MODEL)) if (registry.root / MODEL).is_dir() else 0
    names = []
    for index in range(start, start + count):
        version = registry.register(
            MODEL,
            {"model.txt": BOOSTER_TEXT + f"# {index}\n".encode()},
            {"gate_passed": index not in gate_failed, "params": {"num_leaves": 7}},
            actor="test",
            reason=f"fake version {index}",
        )
        names.append(version.version)
    return names


def fake_home(root: Path, versions: int = 3, *, gate_failed: tuple[int, ...] = ()) -> Home:
    """A home (no tracking, no events) whose registry holds ``versions`` fake versions."""
    home = make_home(root, emit_events=False)
    add_versions(home.registry, versions, gate_failed=gate_failed)
    return home


def race(*operators: Callable[[], object]) -> list[str]:
    """Start the operators at once (threads + barrier); each yields "applied" or "refused" (a lost race)."""
    start = threading.Barrier(len(operators))
    outcomes: list[str] = [""] * len(operators)
    errors: list[BaseException] = []

    def run(index: int, operator: Callable[[], object]) -> None:
        start.wait()
        try:
            operator()
            outcomes[index] = "applied"
        except AliasConflictError:
            outcomes[index] = "refused"
        except BaseException as exc:  # surfaced below with its traceback
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, op)) for i, op in enumerate(operators)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return outcomes


def settled(registry: LocalRegistry) -> None:
    """No stray staging/canary alias, no open promotion lease, the ledger chain and every version check out."""
    aliases = registry.aliases(MODEL)
    assert STAGING not in aliases and CANARY not in aliases, aliases
    assert registry.open_lease(MODEL) is None, registry.open_lease(MODEL)
    assert registry.check(MODEL) == []


def audited(home: Home) -> int:
    """Every promote/rollback/withdraw/complete entry of the chained ledger has exactly one audit row, keyed
    ``ledger:<model>:<seq>:<digest>``; returns how many entries were checked."""
    from tasks.resources.workspace import open_workspace
    from tasks.stages.promotion import _LEDGERED, ledger_key

    ws = open_workspace(home.settings)
    try:
        keys = [(row["payload"] or {}).get("idempotency_key") for row in ws.store.decisions(MODEL)]
        entries = [
            e for e in ws.registry.ledger(MODEL) if e.chained and e.outcome == "applied" and e.action in _LEDGERED
        ]
    finally:
        ws.close()
    for entry in entries:
        assert keys.count(ledger_key(MODEL, entry)) == 1, (entry.seq, entry.action, keys)
    return len(entries)
