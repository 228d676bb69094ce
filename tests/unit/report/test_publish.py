"""Published reports carry their images inline: the Prefect UI has no folder beside the report."""

from __future__ import annotations

import base64
from pathlib import Path

from tasks.report.html import inline_images

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16


def test_relative_png_links_become_data_uris_and_nothing_else_changes(tmp_path: Path) -> None:
    (tmp_path / "forest.png").write_bytes(PNG)
    (tmp_path.parent / "outside.png").write_bytes(PNG)
    markdown = (
        "# gate\n![per-slice intervals](forest.png)\n![gone](missing.png)\n"
        "![escape](../outside.png)\n![web](https://example.org/x.png)\n[text link](forest.png)\n"
    )
    out = inline_images(markdown, tmp_path)
    uri = "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert f"![per-slice intervals]({uri})" in out
    # a missing file, a link out of the folder, a URL and a plain link stay as they were
    for link in (
        "![gone](missing.png)",
        "![escape](../outside.png)",
        "(https://example.org/x.png)",
        "[text link](forest.png)",
    ):
        assert link in out
    assert out.count("data:image/png") == 1
