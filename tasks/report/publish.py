"""Reports published as Prefect artifacts: the one place in ``tasks/`` that knows Prefect's run context.

A markdown report links its plots by file name (it sits beside them on disk); the Prefect UI has no such
folder, so a published report carries its PNGs inline as data URIs instead (``tasks/report/html.py``). Rule
verdicts go out as table artifacts (sortable in the UI), reports elsewhere as link artifacts.

Every artifact is keyed by :func:`artifact_key` (kind, model, batch or version), so the UI's artifact page of a
key shows its history: a batch judged again when its labels land, a gate report shown again while its promotion
waits for an approver.

Outside a flow run every call is a no-op (at once when nothing imported Prefect: direct mode never pays for
importing it). Tests see what would be published through :func:`install` (a recording sink), without Prefect.
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from tasks.core.verdicts import RuleResult

# Prefect artifact keys: lowercase letters, digits and dashes only (prefect.types.names.ArtifactKey).
_NOT_IN_KEY = re.compile(r"[^a-z0-9]+")
_MAX_KEY = 100


def artifact_key(kind: str, model: str, ref: str | None = None) -> str:
    """The artifact key of ``kind`` (gate, monitor, canary, ...) for ``model`` and a batch or version ``ref``.

    Anything but lowercase letters and digits becomes one dash (``car_loan`` → ``car-loan``,
    ``2026-11-02T00:00`` → ``2026-11-02t00-00``). A key longer than 100 characters keeps its head and ends in
    a digest of the whole, so two long refs never share a key."""
    raw = "-".join(part for part in (kind, model, ref) if part)
    key = _NOT_IN_KEY.sub("-", raw.lower()).strip("-") or "driftgate"
    if len(key) > _MAX_KEY:
        digest = hashlib.blake2b(raw.encode(), digest_size=4).hexdigest()
        key = f"{key[: _MAX_KEY - len(digest) - 1].rstrip('-')}-{digest}"
    return key


def rules_table(rules: Sequence[RuleResult]) -> list[dict[str, Any]]:
    """A rule table as rows (one per rule: verdict, whether it blocks, why, its figures) for a table artifact."""
    return [
        {
            "rule": r.rule,
            "verdict": str(r.verdict),
            "blocking": r.blocking,
            "detail": r.detail,
            "numbers": ", ".join(f"{k}={v}" for k, v in r.numbers.items()),
        }
        for r in rules
    ]


class Sink(Protocol):
    """Where artifacts go: Prefect's artifact API in a flow run, a recorder in tests."""

    def markdown(self, markdown: str, *, key: str, description: str) -> None: ...

    def table(self, rows: list[dict[str, Any]], *, key: str, description: str) -> None: ...

    def link(self, link: str, *, text: str, key: str, description: str) -> None: ...


@dataclass(frozen=True)
class Published:
    """One artifact as a recording sink saw it."""

    kind: str  # "markdown" | "table" | "link"
    key: str
    description: str
    data: Any  # the markdown, the rows, or (link, text)


class Recorder:
    """A sink that keeps what it is given (tests: ``install(Recorder())``)."""

    def __init__(self) -> None:
        self.published: list[Published] = []

    def markdown(self, markdown: str, *, key: str, description: str) -> None:
        self.published.append(Published("markdown", key, description, markdown))

    def table(self, rows: list[dict[str, Any]], *, key: str, description: str) -> None:
        self.published.append(Published("table", key, description, rows))

    def link(self, link: str, *, text: str, key: str, description: str) -> None:
        self.published.append(Published("link", key, description, (link, text)))


_installed: Sink | None = None


def install(sink: Sink | None) -> Sink | None:
    """Send every artifact to ``sink`` instead of Prefect (None: back to Prefect); returns the previous one."""
    global _installed
    previous, _installed = _installed, sink
    return previous


def publish(markdown: str, *, key: str, description: str, images_from: Path | None = None) -> None:
    """Publish a markdown report as an artifact when running in a flow. ``images_from``: the folder the report's
    relative image links point into; those images travel inline."""
    sink = _sink()
    if sink is None:
        return
    if images_from is not None:
        from tasks.report.html import inline_images

        markdown = inline_images(markdown, images_from)
    sink.markdown(without_relative_images(markdown), key=_valid(key), description=description)


# ![alt](name.png): an image linked by a relative path (no scheme, not a data URI).
_RELATIVE_IMAGE = re.compile(r"!\[(?P<alt>[^\]]*)\]\((?P<name>(?![a-z][a-z0-9+.-]*:)[^)\s]+)\)", re.IGNORECASE)


def without_relative_images(markdown: str) -> str:
    """``markdown`` with every image still linked by a relative path (its file was not found to inline) turned into
    a line of text: the Prefect UI cannot resolve it and would show a broken image."""
    return _RELATIVE_IMAGE.sub(lambda m: f"_(plot {m['alt'] or m['name']}: `{m['name']}` not available)_", markdown)


def publish_table(rows: list[dict[str, Any]], *, key: str, description: str) -> None:
    """Publish rows (e.g. :func:`rules_table`) as a table artifact when running in a flow."""
    sink = _sink()
    if sink is not None and rows:
        sink.table(rows, key=_valid(key), description=description)


def publish_link(link: str, *, text: str, key: str, description: str) -> None:
    """Publish a link artifact (a URL: an HTML report's file URL, a W&B run) when running in a flow."""
    sink = _sink()
    if sink is not None:
        sink.link(link, text=text, key=_valid(key), description=description)


def flow_run_id() -> str | None:
    """The id of the flow run this code runs in, or None (direct mode, or outside any flow run)."""
    if "prefect.context" not in sys.modules:
        return None
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    return str(context.flow_run.id) if context is not None and context.flow_run is not None else None


def _valid(key: str) -> str:
    return artifact_key(key, "")


def _sink() -> Sink | None:
    if _installed is not None:
        return _installed
    if flow_run_id() is None:
        return None
    return _PrefectSink()


class _PrefectSink:
    """Prefect's artifact API (called inside a flow run only: artifacts attach to the current run)."""

    def markdown(self, markdown: str, *, key: str, description: str) -> None:
        from prefect.artifacts import create_markdown_artifact

        create_markdown_artifact(markdown=markdown, key=key, description=description)

    def table(self, rows: list[dict[str, Any]], *, key: str, description: str) -> None:
        from prefect.artifacts import create_table_artifact

        create_table_artifact(table=rows, key=key, description=description)

    def link(self, link: str, *, text: str, key: str, description: str) -> None:
        from prefect.artifacts import create_link_artifact

        create_link_artifact(link=link, link_text=text, key=key, description=description)
