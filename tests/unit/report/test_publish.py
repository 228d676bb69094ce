"""Published reports carry their images inline (the Prefect UI has no folder beside the report), keys are valid
Prefect artifact keys built in one place, and what would be published is seen through a recording sink."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tasks.core.verdicts import RuleResult, Verdict
from tasks.report import publish as pub
from tasks.report.html import inline_images

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16
PREFECT_KEY = re.compile(r"^[a-z0-9-]+$")  # prefect.types.names.LOWERCASE_LETTERS_NUMBERS_AND_DASHES_ONLY_REGEX


@pytest.fixture()
def recorder() -> Iterator[pub.Recorder]:
    sink = pub.Recorder()
    previous = pub.install(sink)
    try:
        yield sink
    finally:
        pub.install(previous)


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


@pytest.mark.parametrize(
    ("kind", "model", "ref", "expected"),
    [
        ("gate", "churn", "v3", "gate-churn-v3"),
        ("monitor", "car_loan", "2026-11-02T00:00", "monitor-car-loan-2026-11-02t00-00"),
        ("gate-rules", "Car Loan", "batch 7.parquet", "gate-rules-car-loan-batch-7-parquet"),
        ("drill", "churn", None, "drill-churn"),
        ("monitor", "--", "__", "monitor"),
    ],
)
def test_artifact_keys_are_valid_prefect_keys_built_from_kind_model_and_ref(
    kind: str, model: str, ref: str | None, expected: str
) -> None:
    key = pub.artifact_key(kind, model, ref)
    assert key == expected and PREFECT_KEY.match(key)


def test_a_long_key_is_cut_and_ends_in_a_digest_of_the_whole() -> None:
    one, two = (pub.artifact_key("monitor", "m" * 120, ref) for ref in ("batch-a", "batch-b"))
    assert len(one) <= 100 and len(two) <= 100 and one != two
    assert PREFECT_KEY.match(one) and PREFECT_KEY.match(two)
    assert pub.artifact_key("monitor", "m" * 120, "batch-a") == one  # stable


def test_a_published_report_has_its_plots_inline_and_no_relative_image_left(
    tmp_path: Path, recorder: pub.Recorder
) -> None:
    (tmp_path / "forest.png").write_bytes(PNG)
    markdown = "# gate\n![forest](forest.png)\n![gone](missing.png)\n![web](https://example.org/x.png)\n"
    pub.publish(markdown, key="gate-Car_Loan-v1", description="gate v1", images_from=tmp_path)
    (artifact,) = recorder.published
    assert artifact.kind == "markdown" and artifact.key == "gate-car-loan-v1"
    assert "![forest](data:image/png;base64," in artifact.data
    assert "![web](https://example.org/x.png)" in artifact.data
    assert not re.search(r"!\[[^\]]*\]\((?![a-z]+:)[^)]*\)", artifact.data)  # no relative image link
    assert "`missing.png` not available" in artifact.data


def test_rule_tables_and_links_go_out_as_table_and_link_artifacts(recorder: pub.Recorder) -> None:
    rules = (
        RuleResult("superiority", Verdict.PASS, "AUC +0.03", numbers={"p": 0.01}),
        RuleResult.reported("accuracy", "reported only"),
    )
    pub.publish_table(pub.rules_table(rules), key=pub.artifact_key("gate-rules", "m", "v1"), description="rules")
    pub.publish_table([], key="empty", description="nothing to show: not published")
    pub.publish_link("file:///r/v1.html", text="report", key="gate-html-m-v1", description="html")
    table, link = recorder.published
    assert table.kind == "table" and table.key == "gate-rules-m-v1"
    assert table.data == [
        {"rule": "superiority", "verdict": "pass", "blocking": True, "detail": "AUC +0.03", "numbers": "p=0.01"},
        {"rule": "accuracy", "verdict": "reported", "blocking": False, "detail": "reported only", "numbers": ""},
    ]
    assert link.kind == "link" and link.data == ("file:///r/v1.html", "report")


def test_outside_a_flow_nothing_is_published_and_prefect_is_not_imported() -> None:
    code = (
        "import sys\n"
        "from tasks.report import publish as p\n"
        "p.publish('# x', key='k', description='d'); p.publish_table([{'a': 1}], key='k', description='d')\n"
        "p.publish_link('https://x', text='x', key='k', description='d')\n"
        "assert p.flow_run_id() is None\n"
        "assert not any(m == 'prefect' or m.startswith('prefect.') for m in sys.modules), 'prefect imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
