"""Reports published as Prefect artifacts: the one place in ``tasks/`` that knows Prefect's run context.

A markdown report links its plots by file name (it sits beside them on disk); the Prefect UI has no such
folder, so a published report carries its PNGs inline as data URIs instead (``tasks/report/html.py``).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


def publish(markdown: str, *, key: str, description: str, images_from: Path | None = None) -> None:
    """Publish a report as a Prefect artifact when running in a flow (importing Prefect just to learn
    that no flow runs costs seconds, so outside one this is skipped at once). ``images_from``: the folder
    the report's relative image links point into; those images travel inline."""
    if "prefect.context" not in sys.modules:
        return
    publish_markdown(markdown, key=key, description=description, images_from=images_from)


def publish_markdown(markdown: str, *, key: str, description: str, images_from: Path | None = None) -> None:
    """Publish as a Prefect artifact when running inside a flow; a no-op outside one (at once when nothing
    imported Prefect: direct mode never pays for importing it)."""
    if "prefect.context" not in sys.modules:
        return
    from prefect.artifacts import create_markdown_artifact
    from prefect.context import FlowRunContext

    if FlowRunContext.get() is None:
        return
    if images_from is not None:
        from tasks.report.html import inline_images

        markdown = inline_images(markdown, images_from)
    create_markdown_artifact(markdown=markdown, key=_artifact_key(key), description=description)


def _artifact_key(key: str) -> str:
    # Prefect artifact keys: lowercase letters, digits and dashes only.
    return re.sub(r"[^a-z0-9-]+", "-", key.lower()).strip("-")[:100] or "driftgate"
