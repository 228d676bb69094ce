"""A promotion and a rollback each leave a report (markdown, HTML in the index, a production timeline) that
names the ledger entry, both versions' gates and what served when; a report that cannot be written never fails
or undoes the move."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.etree import ElementTree

import pytest

from tasks.report.moves import MoveLine, served_spans
from tasks.resources.workspace import open_workspace
from tasks.stages import promotion
from tests.reliability.homes import MODEL, fake_home


def test_a_promotion_and_a_rollback_each_leave_a_report_in_the_index(tmp_path: Path) -> None:
    home = fake_home(tmp_path / "home", 3, gate_failed=(2,))
    ws = open_workspace(home.settings)
    try:
        for version in ("v0", "v1"):
            promotion.promote(ws, version, actor="alice", reason=f"ship {version}", evidence=None)
        before, after = promotion.rollback(ws, actor="bob", reason="v1 loses money on slice north")
    finally:
        ws.close()
    assert (before, after) == ("v1", "v0")
    reports = home.settings.reports_dir
    [rollback] = sorted((reports / "rollback").glob("*.md"))
    text = rollback.read_text()
    assert text.startswith(f"# driftgate rollback — {MODEL} — production v1 → v0")
    assert "by **bob**: v1 loses money on slice north" in text
    assert "| v0 | serves production |" in text and "| v1 | left production |" in text
    assert "`driftgate promote v1`" in text  # the way back is one command
    assert "| production | v0 |" in text and "| previous-production |" not in text  # no second step back
    history = text.split("## Production moves")[1]
    assert history.index("| rollback |") < history.index("ship v1") < history.index("ship v0")  # newest first
    assert len(sorted((reports / "promotion").glob("*.md"))) == 2
    # The timeline: one bar per stretch served, hover text with the times; the HTML page carries it inline.
    svg = ElementTree.parse(rollback.with_name(f"{rollback.stem}-timeline.svg")).getroot()
    tips = [t.text or "" for t in svg.iter("{http://www.w3.org/2000/svg}title")]
    assert [t.split(" ")[0] for t in tips] == ["v0", "v1", "v0"] and tips[-1].endswith("to now UTC")
    page = rollback.with_suffix(".html").read_text()
    assert "data:image/svg+xml;base64," in page
    index = (reports / "index.html").read_text()
    assert f"rollback/{rollback.stem}.html" in index and "promotion/" in index


def test_a_report_that_cannot_be_written_leaves_the_move_standing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    home = fake_home(tmp_path / "home", 2)
    (home.settings.reports_dir / "rollback").parent.mkdir(parents=True, exist_ok=True)
    (home.settings.reports_dir / "rollback").write_text("a file where the folder should be")
    ws = open_workspace(home.settings)
    try:
        for version in ("v0", "v1"):
            promotion.promote(ws, version, actor="alice", reason="ship", evidence=None)
        assert promotion.rollback(ws, actor="bob", reason="back") == ("v1", "v0")
        assert ws.registry.aliases(MODEL)["production"] == "v0"
        assert "the rollback report of ledger entry" in caplog.text
    finally:
        ws.close()


@pytest.mark.parametrize("hours", [1, 30])
def test_served_spans_follow_the_production_moves(hours: int) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    moves = [
        MoveLine(1, t0, "promote", None, "v0", "a", "first"),
        MoveLine(2, t0 + timedelta(hours=hours), "promote", "v0", "v1", "a", "better"),
        MoveLine(3, t0 + timedelta(hours=2 * hours), "rollback", "v1", "v0", "b", "worse"),
    ]
    spans = served_spans(moves)
    assert [(s.version, s.end is None) for s in spans] == [("v0", False), ("v1", False), ("v0", True)]
    assert spans[0].end == spans[1].start and spans[1].end == spans[2].start
