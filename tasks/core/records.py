"""Typed results rebuilt from their ``asdict`` form, once, where a dict crossed a boundary.

A flow returns ``asdict(outcome)`` (a plain dict crosses Prefect); the command line turns it back into the frozen
dataclass it was with ``Outcome.from_dict(result)``. A flat result type inherits :class:`FromDict`; one that holds
other results defines ``from_dict`` beside its fields with :func:`from_fields`. Tuples that came back as lists
become tuples again; nested results are rebuilt by the callables the caller names per field; a key the dataclass
does not know is an error (the shape changed on one side only), unless the caller says it is derived (``ignore``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping
from typing import Any, Self, TypeVar

T = TypeVar("T")


def from_fields(
    cls: type[T],
    data: Mapping[str, Any],
    *,
    ignore: Collection[str] = (),
    **nested: Callable[[Any], Any],
) -> T:
    """``cls`` rebuilt from ``data`` (its ``asdict`` form): ``nested[name](value)`` for the fields named there
    (None stays None), lists as tuples where the field is a tuple, missing keys left to their defaults."""
    if not (dataclasses.is_dataclass(cls) and isinstance(cls, type)):
        raise TypeError(f"{cls!r} is not a dataclass")
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(names) - set(ignore)
    if unknown:
        raise TypeError(f"{cls.__name__} has no field(s) {sorted(unknown)}")
    values: dict[str, Any] = {}
    for name, field in names.items():
        if name not in data:
            continue
        value = data[name]
        if name in nested and value is not None:
            value = nested[name](value)
        elif isinstance(value, list) and str(field.type).startswith("tuple"):
            value = tuple(value)
        values[name] = value
    return cls(**values)


def many(build: Callable[[Mapping[str, Any]], T]) -> Callable[[Any], tuple[T, ...]]:
    """A ``nested`` rebuilder of a sequence of results: ``steps=many(DrillStep.from_dict)``."""
    return lambda items: tuple(build(item) for item in items)


class FromDict:
    """Mixin of a flat result dataclass: ``Outcome.from_dict(asdict(outcome)) == outcome``."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Rebuilt from its ``asdict`` form (a flow's result)."""
        return from_fields(cls, data)
