"""Self-contained HTML reports and their index: what a reviewer opens in a browser, or attaches anywhere.

Each markdown report (monitor, gate, canary, post-deployment audit, drill) gets an HTML sibling with its plots
inline as data URIs, so the one file shows everything wherever it is copied. ``<reports>/index.html`` links every
HTML report, newest first per kind, and shows the performance plots (estimated vs realized per batch) inline.
Links between reports are relative, so the folder can be moved or served as it is.

Rendering: markdown-it (CommonMark with tables), raw HTML in the markdown left escaped. Writes are atomic
(temporary file + rename), so a reader never sees half a page.
"""

from __future__ import annotations

import base64
import html
import os
import re
from datetime import UTC, datetime
from pathlib import Path

INDEX_NAME = "index.html"

# ![alt](name.png|svg): a relative link to an image, as tasks/report/markdown.py writes them.
_RELATIVE_IMAGE = re.compile(
    r"!\[(?P<alt>[^\]]*)\]\((?P<name>(?![a-z][a-z0-9+.-]*:)[^)\s]+\.(?:png|svg))\)", re.IGNORECASE
)
_MEDIA_TYPES = {".png": "image/png", ".svg": "image/svg+xml"}
# [text](other.md): a link to another markdown report, which has an HTML sibling.
_MARKDOWN_LINK = re.compile(r"(?<!!)\[(?P<text>[^\]]*)\]\((?P<name>(?![a-z][a-z0-9+.-]*:)[^)\s]+)\.md\)")

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#1b1f24;line-height:1.45}
table{border-collapse:collapse;margin:1em 0;font-size:.92em}th,td{border:1px solid #c9d1d9;padding:.3em .6em}
th{background:#f3f5f7;text-align:left}code{background:#f3f5f7;padding:0 .25em;border-radius:3px}
img{max-width:100%;height:auto;border:1px solid #e1e4e8;margin:.5em 0}nav{margin-bottom:1.5em;font-size:.9em}
h1{font-size:1.6em}h2{font-size:1.3em;margin-top:1.6em}li{margin:.15em 0}
"""


def image_data_uri(path: Path) -> str:
    """A PNG or SVG file as a data URI (base64, so an SVG's own characters need no escaping)."""
    media = _MEDIA_TYPES[path.suffix.lower()]
    return f"data:{media};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def inline_images(markdown: str, folder: Path, *, uris: dict[str, str] | None = None) -> str:
    """``markdown`` with each relative PNG or SVG link under ``folder`` replaced by the image as a data URI.

    A link whose file is missing, or that leaves ``folder``, is left as it is (and stays visible as alt text).
    With ``uris``, each link gets a short placeholder instead and ``uris`` maps it to the data URI."""
    root = folder.resolve()

    def embed(match: re.Match[str]) -> str:
        target = (root / match["name"]).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            return match[0]
        if uris is None:
            return f"![{match['alt']}]({image_data_uri(target)})"
        placeholder = f"driftgate-image-{len(uris)}"
        uris[placeholder] = image_data_uri(target)
        return f"![{match['alt']}]({placeholder})"

    return _RELATIVE_IMAGE.sub(embed, markdown)


def render_page(markdown: str, *, folder: Path, title: str, index: Path | None = None) -> str:
    """One self-contained page: the markdown rendered, its images inline, links to .md reports pointing at .html."""
    from markdown_it import MarkdownIt

    # The images go in after rendering: markdown-it scans a link character by character, and a report's data
    # URIs (hundreds of kB) made that most of a monitor's reporting time.
    uris: dict[str, str] = {}
    body_md = _MARKDOWN_LINK.sub(
        lambda m: f"[{m['text']}]({m['name']}.html)", inline_images(markdown, folder, uris=uris)
    )
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(body_md)
    for placeholder, uri in uris.items():
        body = body.replace(f'src="{placeholder}"', f'src="{uri}"')
    nav = ""
    if index is not None:
        back = Path(_relative(index, folder))
        nav = f'<nav><a href="{html.escape(back.as_posix())}">all reports</a></nav>'
    return _page(title, nav + body)


def write_html_report(md_path: Path, markdown: str, *, reports_root: Path) -> Path:
    """Write ``<md_path>.html`` beside the markdown report and refresh the index of ``reports_root``."""
    title = next((line[2:].strip() for line in markdown.splitlines() if line.startswith("# ")), md_path.stem)
    index = reports_root / INDEX_NAME
    page = render_page(markdown, folder=md_path.parent, title=title, index=index)
    out = _atomic_write(md_path.with_suffix(".html"), page)
    write_index(reports_root)
    return out


def write_index(reports_root: Path) -> Path:
    """``<reports_root>/index.html``: every HTML report by kind (its folder), newest first, and the plots of
    ``performance/`` inline."""
    sections: list[str] = []
    folder = reports_root / "performance"
    plots = sorted([*folder.glob("*.svg"), *folder.glob("*.png")]) if folder.is_dir() else []
    if plots:
        images = "".join(
            f'<figure><img src="{image_data_uri(p)}" alt="{html.escape(p.stem)} performance">'
            f"<figcaption>{html.escape(p.stem)}: estimated vs realized per batch</figcaption></figure>"
            for p in plots
        )
        sections.append(f"<h2>Performance</h2>{images}")
    pages = [p for p in reports_root.rglob("*.html") if p.name != INDEX_NAME]
    by_kind: dict[str, list[Path]] = {}
    for page in pages:
        kind = page.parent.relative_to(reports_root).as_posix() if page.parent != reports_root else "reports"
        by_kind.setdefault(kind, []).append(page)
    for kind in sorted(by_kind):
        items = sorted(by_kind[kind], key=lambda p: (p.stat().st_mtime, p.name), reverse=True)
        links = "".join(
            f'<li><a href="{html.escape(p.relative_to(reports_root).as_posix())}">{html.escape(p.stem)}</a>'
            f" <small>{datetime.fromtimestamp(p.stat().st_mtime, UTC):%Y-%m-%d %H:%M} UTC</small></li>"
            for p in items
        )
        sections.append(f"<h2>{html.escape(kind)} ({len(items)})</h2><ul>{links}</ul>")
    if not sections:
        sections.append("<p>No reports yet.</p>")
    return _atomic_write(
        reports_root / INDEX_NAME, _page("driftgate reports", "<h1>driftgate reports</h1>" + "".join(sections))
    )


def _relative(target: Path, start: Path) -> str:
    return os.path.relpath(target, start)


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>{body}</body></html>\n"
    )


def _atomic_write(path: Path, text: str) -> Path:
    from tasks.core.atomic import write_text_atomic

    return write_text_atomic(path, text)
