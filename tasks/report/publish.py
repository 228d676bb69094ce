"""Reports published as Prefect artifacts: the one place in ``tasks/`` that knows Prefect's run context."""

from __future__ import annotations

import sys


def publish(markdown: str, *, key: str, description: str) -> None:
    """Publish a report as a Prefect artifact when running in a flow (importing Prefect just to learn
    that no flow runs costs seconds, so outside one this is skipped at once)."""
    if "prefect.context" not in sys.modules:
        return
    publish_markdown(markdown, key=key, description=description)


def publish_markdown(markdown: str, *, key: str, description: str) -> None:
    """Publish as a Prefect artifact when running inside a flow; a no-op outside one (at once when nothing
    imported Prefect: direct mode never pays for importing it)."""
    if "prefect.context" not in sys.modules:
        return
    from prefect.artifacts import create_markdown_artifact
    from prefect.context import FlowRunContext

    if FlowRunContext.get() is None:
        return
    create_markdown_artifact(markdown=markdown, key=_artifact_key(key), description=description)


def _artifact_key(key: str) -> str:
    # Prefect artifact keys: lowercase letters, digits and dashes only.
    import re

    return re.sub(r"[^a-z0-9-]+", "-", key.lower()).strip("-")[:100] or "driftgate"
