"""Self-contained HTML reports: images inline, links between reports rewritten, an index of every report."""

from __future__ import annotations

import base64
from pathlib import Path

from tasks.report.html import INDEX_NAME, write_html_report, write_index
from tasks.report.markdown import write_report

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def test_a_report_page_carries_its_images_and_links_to_html_siblings(tmp_path: Path) -> None:
    root = tmp_path / "reports"
    folder = root / "gate"
    folder.mkdir(parents=True)
    (folder / "v1-slices.png").write_bytes(PNG)
    markdown = (
        "# Gate v1\n\n| rule | verdict |\n|---|---|\n| superiority | pass |\n\n![slices](v1-slices.png)\n[v0](v0.md)\n"
    )
    md = write_report(folder / "v1.md", markdown, reports_root=root)
    page = md.with_suffix(".html").read_text()
    assert "<title>Gate v1</title>" in page and "<table>" in page
    assert 'src="data:image/png;base64,' in page and "v1-slices.png" not in page
    assert 'href="v0.html"' in page and 'href="../index.html"' in page
    assert md.read_text() == markdown  # the markdown stays as written


def test_the_index_lists_every_report_by_kind_and_shows_performance_plots(tmp_path: Path) -> None:
    root = tmp_path / "reports"
    (root / "performance").mkdir(parents=True)
    (root / "performance" / "churn.png").write_bytes(PNG)
    for kind, name in (("monitor", "d1"), ("monitor", "d2"), ("gate", "v1")):
        (root / kind).mkdir(exist_ok=True)
        write_html_report(root / kind / f"{name}.md", f"# {name}\n", reports_root=root)
    index = (root / INDEX_NAME).read_text()
    assert "monitor (2)" in index and "gate (1)" in index
    assert 'href="monitor/d1.html"' in index and 'href="gate/v1.html"' in index
    assert index.count('src="data:image/png;base64,') == 1
    assert write_index(tmp_path / "empty").read_text().count("No reports yet") == 1
