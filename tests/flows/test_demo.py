"""The demo, end to end at a small size, under Prefect's test harness; its six outcomes are checked
from the audit store and the registry (tasks/demo.verify), and some rows are checked here directly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flows.demo import demo_flow
from tasks.core.settings import load_settings
from tasks.resources.workspace import open_workspace

pytestmark = pytest.mark.slow  # every flow test runs Prefect flows (and trains)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("demo")
    return demo_flow(home=str(home), seed=7, rows_per_batch=3000, n_trials=3)


def test_demo_shows_the_six_outcomes(demo_run: dict[str, Any]) -> None:
    failed = [c for c in demo_run["checks"] if not c["ok"]]
    assert not failed, failed
    assert len(demo_run["checks"]) >= 6


def test_audit_store_and_registry_hold_the_matching_rows(demo_run: dict[str, Any]) -> None:
    ws = open_workspace(load_settings(Path(demo_run["config"])))
    try:
        policy = ws.store.decisions(ws.model, kind="policy")
        assert len({p["batch_id"] for p in policy}) == 6
        # Labels arrive a day late: each labelled batch is judged again on them.
        assert sum(1 for p in policy if p["payload"]["evidence"]["trigger"] == "labels") == 6
        assert [p["outcome"] for p in policy if "stationary" in p["batch_id"]] != []
        assert ws.store.signals(ws.model, kind="drift")
        assert ws.store.signals(ws.model, kind="estimate")
        assert ws.registry.aliases(ws.model)["production"] == "v0"
        versions = [v.version for v in ws.registry.versions(ws.model)]
        assert versions[:3] == ["v0", "v1", "v2"]
        for version in ws.registry.versions(ws.model):
            ws.registry.verify(version)
        reports = list((ws.settings.reports_dir).rglob("*.md"))
        assert any(r.parent.name == "gate" for r in reports)
        assert any(r.parent.name == "monitor" for r in reports)
        assert list(ws.settings.wandb_dir.rglob("*.wandb"))
    finally:
        ws.close()


def test_walkthrough_notebook_runs_on_the_demo_store(demo_run: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    import nbformat
    from nbclient import NotebookClient

    root = Path(__file__).resolve().parents[2]
    notebook = nbformat.read(root / "notebooks" / "walkthrough.ipynb", as_version=4)
    monkeypatch.setenv("DRIFTGATE_CONFIG", demo_run["config"])
    monkeypatch.setenv("PYTHONPATH", str(root))
    NotebookClient(notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(root)}}).execute()
    last = notebook.cells[-1].outputs[0]["data"]["text/plain"]
    assert "'production': 'v0'" in last
    # the estimated-vs-realized figure is shown inline, so the executed notebook holds it
    images = [o for cell in notebook.cells for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
    assert images, "the executed notebook shows no figure"


def test_html_reports_render_in_a_real_browser(demo_run: dict[str, Any], tmp_path: Path) -> None:
    """Every HTML report the demo left, opened from the index in headless Chromium (the OS package): each image
    decodes and is visible, no link is broken, the console stays clean; one screenshot per page kind."""
    from playwright.sync_api import sync_playwright

    reports = Path(demo_run["home"]) / "reports"
    index = reports / "index.html"
    assert index.is_file(), sorted(p.name for p in reports.iterdir())
    shots = tmp_path / "screenshots"
    shots.mkdir()
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        page = browser.new_page()
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.goto(index.as_uri())
        links = page.eval_on_selector_all("a[href]", "as => as.map(a => a.getAttribute('href'))")
        kinds = {Path(href).parent.as_posix() for href in links}
        assert {"monitor", "gate", "canary", "promotion", "rollback"} <= kinds, kinds  # no drill in the demo
        seen: set[str] = set()
        for href in ["index.html", *links]:
            target = (reports / href).resolve()
            if not target.is_file():
                problems.append(f"index links to missing {href}")
                continue
            page.goto(target.as_uri())
            images = page.eval_on_selector_all(
                "img", "is => is.map(i => [i.alt, i.complete && i.naturalWidth > 0, i.getBoundingClientRect().width])"
            )
            problems += [f"{href}: image {alt!r} broken or hidden" for alt, ok, width in images if not ok or width <= 0]
            for link in page.eval_on_selector_all("a[href]", "as => as.map(a => a.getAttribute('href'))"):
                if "://" not in link and not (target.parent / link).resolve().is_file():
                    problems.append(f"{href}: broken link {link}")
            kind = Path(href).parent.as_posix().strip(".") or "index"
            if kind not in seen:
                seen.add(kind)
                page.screenshot(path=str(shots / f"{kind.replace('/', '-')}.png"), full_page=True)
        browser.close()
    assert not problems, problems
    assert len(list(shots.glob("*.png"))) >= 6  # index, monitor, gate, canary, promotion, rollback
    print(f"screenshots: {shots}")
