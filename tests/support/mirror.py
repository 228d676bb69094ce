"""An in-memory stand-in for the W&B Registry, and a model file to register."""

from __future__ import annotations

from collections.abc import Sequence

from tasks.registry.model import AliasMove, ModelVersion

MODEL = "car-loan"
BOOSTER_TEXT = b"tree\nversion=v4\nnum_class=1\nfeature_names=a b c\n\nTree=0\nnum_leaves=2\n"


class MemoryMirror:
    """An in-memory AliasMirror: what the W&B Registry would show, with switches for outside moves and outages."""

    name = "memory mirror"

    def __init__(self) -> None:
        self.published: dict[str, dict[str, list[str]]] = {}  # model -> version -> aliases
        self.fail_apply_after = -1  # fail the N-th alias edit of the next apply (0 = first); -1 never
        self.fail_publish = False
        self.calls: list[str] = []

    def publish(self, version: ModelVersion, aliases: Sequence[str]) -> None:
        self.calls.append(f"publish {version.version} {sorted(aliases)}")
        if self.fail_publish:
            raise ConnectionError("mirror unreachable")
        versions = self.published.setdefault(version.model, {})
        for held in versions.values():
            held[:] = [a for a in held if a not in aliases]
        versions[version.version] = sorted(aliases)

    def versions(self, model: str) -> set[str]:
        return set(self.published.get(model, {}))

    def aliases(self, model: str) -> dict[str, str]:
        return {alias: v for v, held in self.published.get(model, {}).items() for alias in held}

    def apply(self, model: str, moves: Sequence[AliasMove]) -> None:
        versions = self.published.setdefault(model, {})
        for count, move in enumerate(moves):
            if count == self.fail_apply_after:
                self.fail_apply_after = -1
                raise TimeoutError("mirror timed out mid-move")
            self.calls.append(f"apply {move.alias} {move.from_version}->{move.to_version}")
            if move.from_version is not None and move.from_version in versions:
                versions[move.from_version] = [a for a in versions[move.from_version] if a != move.alias]
            if move.to_version is not None:
                if move.to_version not in versions:
                    raise KeyError(f"{move.to_version} not published")
                versions[move.to_version] = sorted({*versions[move.to_version], move.alias})

    def move_outside(self, model: str, alias: str, version: str | None) -> None:
        """What someone editing aliases in the W&B UI does."""
        for held in self.published[model].values():
            if alias in held:
                held.remove(alias)
        if version is not None:
            self.published[model][version].append(alias)
