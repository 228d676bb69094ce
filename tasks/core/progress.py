"""A process-wide progress sink: the CLI installs a rich progress display; workers leave it silent."""

from __future__ import annotations

from collections.abc import Callable

Sink = Callable[[str, int, int, str], None]  # (task, done, total, detail)

_sink: Sink | None = None


def install(sink: Sink | None) -> None:
    global _sink
    _sink = sink


def report(task: str, done: int, total: int, detail: str = "") -> None:
    if _sink is not None:
        _sink(task, done, total, detail)


def trial_reporter(task: str) -> Callable[[int, int, float | None], None]:
    """Adapter for training's per-trial callback."""

    def on_trial(done: int, total: int, best: float | None) -> None:
        report(task, done, total, "" if best is None else f"best AUC {best:.4f}")

    return on_trial
